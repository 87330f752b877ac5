"""The trial record: the attributes lwl-search writes on a search study and on its trials, each named here with its
type. A trial's user attributes are `TrialRecord`'s fields: the search writes them through `write` (a failure's
reason through `write_failure`; `write` refuses any other name), except `enqueued`, which an enqueued trial carries
from `enqueue_lists`; the summary, the export and the report read them through `read_trial` (the Pareto study copies
a few as they are; a retry drops `FAILURE_ATTRS`). A study's are set where it is made or run (`_study.run`,
`_console.lwl_search`) and read by these names only, the report too (`lwl.search` exports them; the settings through
`read_settings`). Not here: the sampler's claim on a list (system attributes, `_sampling.sampler`) and the derived
studies' own attributes (`_sampling.pareto`, `_study.confirm`).

The names are the storage's: they are what optuna-dashboard shows on a trial's page, so they stay plain words.
A trial holds the attributes of the stages it reached (a pruned trial has no `unit_acc`, a failed one has a
`fail_reason`); the reader gives None for the rest.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from lwl.models import LwlError

from .._space.settings import StudySettings

# ------------------------------------------------------------------------------------------ study attributes
SETTINGS_ATTR = "lwl:settings"  # StudySettings as JSON: what every trial's numbers mean; fixed for the study
DERIVED_ATTR = "lwl:derived_from"  # on a derived study (NAME-pareto, NAME-confirm): the search study it belongs to
STORAGE_ATTR = "storage"  # the storage URL, password masked
ARTIFACT_DIR_ATTR = "artifact_dir"  # where the trials' training configs are stored as Optuna artifacts
# the --data-root of the latest lwl-search run that gave one, as given (never the default's expanded path):
# exported configs carry it, so that `lwl-train --config` finds the files where the search did
DATA_ROOT_ATTR = "data_root"
FEASIBLE_ATTR = "feasible_lists"  # the size of the feasible set
VALIDATION_ATTR = "validation_images"  # images in the validation split the trials are ranked on
OBJECTIVE_ATTR = "objective"  # the objective in words
INTERMEDIATE_ATTR = "intermediate_value"  # what a trial's intermediate values are, in words
METRIC_NAME = "validation accuracy"  # the objective's name, which optuna-dashboard shows instead of "Objective 0"

STATE_NAMES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


class StudyError(LwlError, ValueError):
    """A study lwl-search cannot read: not made by it, the derived Pareto study, or damaged settings."""


def name_metrics(study: optuna.Study, names: Sequence[str] = (METRIC_NAME,)) -> None:
    """Name the study's objectives for optuna-dashboard (once: a study that has names keeps them)."""
    if study.metric_names is None:
        with warnings.catch_warnings():  # set_metric_names is "experimental" in Optuna 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(names))


def read_settings(study_name: str, user_attrs: Mapping[str, Any]) -> StudySettings:
    """The settings lwl-search stored with a study; refuses a study it did not make, naming what to do."""
    raw = user_attrs.get(SETTINGS_ATTR)
    if raw is None and DERIVED_ATTR in user_attrs:
        raise StudyError(
            f"study {study_name!r} is derived from {user_attrs[DERIVED_ATTR]!r} (its Pareto front or its "
            "confirmation runs): "
            f"use --study-name {user_attrs[DERIVED_ATTR]}"
        )
    if raw is None:
        raise StudyError(
            f"study {study_name!r} was not made by lwl-search (no {SETTINGS_ATTR!r} attribute): "
            "give the --study-name of an lwl-search study"
        )
    try:
        return StudySettings.from_dict(json.loads(raw))
    except (TypeError, ValueError, KeyError, LwlError) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise StudyError(f"study {study_name!r}: its stored settings cannot be read ({reason})") from None


# ------------------------------------------------------------------------------------------ trial attributes
@dataclass(frozen=True)
class TrialRecord:
    """One trial as lwl-search recorded it. The fields after `intermediate` are the trial's user attributes, under
    these names in the storage; `write` refuses any other name."""

    number: int  # Optuna's trial number
    state: str  # complete, pruned, failed, running, waiting
    value: float | None  # validation accuracy of the output classifier (complete trials only)
    intermediate: dict[int, float]  # step -> the value the pruner judged (epoch or unit)
    # -- set when the trial starts, before anything trains
    hierarchy: tuple[int, ...] = ()  # the list; () when the trial never got one
    schedule: str | None = None  # the list's label, e.g. "[1,1,2,4]"
    units: int | None = None  # sum of the list
    conv_layers: int | None = None
    params: int | None = None  # parameters of the network without the auxiliary heads
    params_aux: int | None = None  # parameters of the auxiliary heads
    flops: int | None = None  # forward FLOPs per image (multiply + add = 2)
    activations: int | None = None  # activation elements per image
    memory: int | None = None  # estimated training memory in bytes at the study's batch size (`memory_estimate`)
    paper: str | None = None  # the paper's name for the list (e.g. "ResNet18"), "" when it is not the paper's
    enqueued: str | None = None  # "paper", "largest" or "user" for an enqueued list
    revisit_of: int | None = None  # the pruned trial whose list this trial trains again, to the end
    resumed_from: int | None = None  # the pruned trial whose paused state this revisit continued
    resumed_step: int | None = None  # the step (epoch or unit) that trial had trained: the revisit's first is +1
    precision: str | None = None  # fp32 or bf16 (autocast): the study's resolved --precision
    batch: tuple[int, ...] | None = None  # --batch: the trials trained together with this one
    # -- confirmation runs only (trials of the derived NAME-confirm study)
    confirms: int | None = None  # the search trial whose list this run trains again with another seed
    seed: int | None = None  # the seed it trained with (training and validation split): the study's seed + 1, + 2..
    # -- updated after every progress record
    unit_acc_history: tuple[tuple[float | None, ...], ...] = ()  # per record: every unit's validation accuracy
    output_acc_history: tuple[float | None, ...] = ()  # per record: the output classifier's
    unit_epochs: int | None = None  # unit-epochs trained so far
    elapsed: float | None = None  # seconds since training began
    # -- set when the trial completes
    unit_acc: tuple[float | None, ...] = ()  # every unit's final validation accuracy
    wall_time: float | None = None  # seconds the training took (a continued revisit: its paused visit's too)
    peak_memory: int | None = None  # bytes at peak on an accelerator; None on the CPU
    device: str | None = None
    artifact_error: str | None = None  # why the training config could not be stored as an artifact
    # -- sharing
    reused_units: int | None = None  # sequential mode: units loaded from the prefix store
    reused_seconds: float | None = None  # what training those units took when they were first trained
    batch_unit_epochs: tuple[int, int] | None = None  # --batch: unit-epochs trained together vs alone
    # -- failures
    fail_reason: str | None = None  # a short word: interrupted, diverged, out of memory, surplus, ...
    fail_detail: str | None = None  # the message, at most 500 characters
    # -- read, never written by the search: a trial's end-to-end accuracy, for the report's comparison
    global_acc: float | None = None

    @property
    def complete(self) -> bool:
        return self.state == "complete" and self.value is not None

    @property
    def label(self) -> str:
        return self.schedule or ("[" + ",".join(map(str, self.hierarchy)) + "]")

    @property
    def last_value(self) -> float | None:
        """The final value of a complete trial, else its last intermediate value."""
        if self.complete:
            return self.value
        return self.intermediate[max(self.intermediate)] if self.intermediate else None


_BASE = ("number", "state", "value", "intermediate")
ATTRS = tuple(f.name for f in fields(TrialRecord) if f.name not in _BASE)  # every user attribute's name
_TUPLES = {"hierarchy", "unit_acc", "output_acc_history", "batch", "batch_unit_epochs"}


def hierarchy_of(trial: FrozenTrial, stages: int | None = None) -> tuple[int, ...]:
    """The list a trial trained: its `hierarchy` attribute, else its d1..dn parameters (all `stages` of them)."""
    stored = trial.user_attrs.get("hierarchy")
    if isinstance(stored, (list, tuple)) and stored:
        try:
            return tuple(int(d) for d in stored)
        except (TypeError, ValueError):
            return ()
    names = [f"d{i}" for i in range(1, (stages or 0) + 1)]
    if names and all(n in trial.params for n in names):
        return tuple(int(trial.params[n]) for n in names)
    return ()


def read_trial(trial: FrozenTrial, stages: int | None = None) -> TrialRecord:
    """The record of a stored trial; attributes it lacks (or of the wrong shape) read as None or empty."""
    attrs = trial.user_attrs
    values: dict[str, Any] = {}
    for name in ATTRS:
        if name not in attrs or attrs[name] is None:
            continue
        value = attrs[name]
        if name == "unit_acc_history":
            value = tuple(tuple(row) for row in value) if isinstance(value, list) else ()
        elif name in _TUPLES:
            value = tuple(value) if isinstance(value, (list, tuple)) else None
        values[name] = value
    values["hierarchy"] = hierarchy_of(trial, stages)
    steps = sorted(trial.intermediate_values)
    return TrialRecord(
        number=trial.number,
        state=STATE_NAMES.get(trial.state, trial.state.name.lower()),
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        intermediate={s: float(trial.intermediate_values[s]) for s in steps},
        **values,
    )


class Writable(Protocol):
    """What the writer needs of a trial: an `optuna.Trial`, or a trial known by its storage id only."""

    def set_user_attr(self, key: str, value: Any) -> None: ...


class StoredTrial:
    """A RUNNING trial known by its storage id (another worker's, found stale): a target for `write_failure`."""

    def __init__(self, storage: BaseStorage, trial_id: int) -> None:
        self.storage, self.trial_id = storage, trial_id

    def set_user_attr(self, key: str, value: Any) -> None:
        self.storage.set_trial_user_attr(self.trial_id, key, value)


FAILURE_ATTRS = ("fail_reason", "fail_detail")  # what a retry of a failed trial must not inherit


def write(trial: Writable, **values: Any) -> None:
    """Record `values` on a running trial under the record's names (tuples stored as lists)."""
    for name, value in values.items():
        if name not in ATTRS:
            raise KeyError(f"{name!r} is not a trial record field: add it to TrialRecord first")
        trial.set_user_attr(name, list(value) if isinstance(value, tuple) else value)


def write_failure(trial: Writable, reason: str, detail: str | None = None) -> None:
    """Why a trial failed: a short word, and the message (cut to 500 characters)."""
    write(trial, fail_reason=reason)
    if detail is not None:
        write(trial, fail_detail=" ".join(str(detail).split())[:500])


__all__ = [
    "ARTIFACT_DIR_ATTR",
    "ATTRS",
    "DATA_ROOT_ATTR",
    "DERIVED_ATTR",
    "FAILURE_ATTRS",
    "FEASIBLE_ATTR",
    "INTERMEDIATE_ATTR",
    "METRIC_NAME",
    "OBJECTIVE_ATTR",
    "SETTINGS_ATTR",
    "VALIDATION_ATTR",
    "STATE_NAMES",
    "STORAGE_ATTR",
    "StoredTrial",
    "StudyError",
    "TrialRecord",
    "Writable",
    "hierarchy_of",
    "name_metrics",
    "read_settings",
    "read_trial",
    "write",
    "write_failure",
]
