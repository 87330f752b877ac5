"""From a finished search to training configs: the selected trials' schedules with the paper's full recipe.

A search trains every candidate briefly (its fidelity, e.g. 15 epochs on CIFAR, maybe on a subset) and judges it
on a validation split; what it finds is a hierarchy list, not a trained network. The config carries that list with
the study's recipe at full length (`paper_recipe(...).epochs`: 400 on CIFAR) on the whole training set (no
validation split: `val_fraction: 0`; the test set is the final measure), the search's --data-root, and where it came
from, so that `lwl-train --config` reproduces the paper's protocol for it as printed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lwl.models import RecipeError, TrainingConfig, complexity, paper_recipe

from .._answer.model import Answer
from .._answer.ranking import Confirmed, complete_trials, confirmed, study_answer, top_trials
from .._errors import ExportError
from .._sampling.pareto import pareto_front
from .._space.feasible import paper_name
from .._space.settings import StudySettings
from .._storage.attributes import DATA_ROOT_ATTR, STORAGE_ATTR, hierarchy_of, read_settings
from .._storage.backends import mask_url

SELECTIONS = ("best", "top", "pareto", "trial")


@dataclass(frozen=True)
class Selection:
    """Which complete trials to export: the best, the top K, the Pareto front (accuracy vs parameters), or trial N."""

    kind: str = "best"
    n: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in SELECTIONS:
            raise ExportError(f"unknown selection {self.kind!r}: choose one of {', '.join(SELECTIONS)}")
        if self.kind in ("top", "trial") and (
            not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < (1 if self.kind == "top" else 0)
        ):
            what = "--top K needs K >= 1" if self.kind == "top" else "--trial N needs a trial number N >= 0"
            raise ExportError(f"{what}, got {self.n!r}")

    @classmethod
    def parse(cls, text: str | Selection) -> Selection:
        """'best', 'pareto', 'top:3' or 'trial:12'."""
        if isinstance(text, Selection):
            return text
        kind, _, n = str(text).partition(":")
        try:
            return cls(kind, int(n) if n else None)
        except ValueError:
            raise ExportError(f"selection {text!r}: write best, pareto, top:K or trial:N") from None

    def describe(self) -> str:
        return {"best": "best", "pareto": "pareto", "top": f"top {self.n}", "trial": f"trial {self.n}"}[self.kind]


def study_settings(study: optuna.Study) -> StudySettings:
    """The settings `lwl-search` stored with the study; refuses a study it did not make (`StudyError`)."""
    return read_settings(study.study_name, study.user_attrs)


def _hierarchy(trial: FrozenTrial, settings: StudySettings) -> tuple[int, ...]:
    hierarchy = hierarchy_of(trial, settings.space.stages)
    if not hierarchy:
        raise ExportError(f"trial {trial.number} holds no hierarchy (no 'hierarchy' attribute, no d1.. params)")
    return hierarchy


def select_trials(study: optuna.Study, selection: Selection | str, settings: StudySettings) -> list[FrozenTrial]:
    chosen = Selection.parse(selection)
    if chosen.kind == "trial":
        trials = study.get_trials(deepcopy=False)
        match = [t for t in trials if t.number == chosen.n]
        if not match:
            span = f"trials 0-{trials[-1].number}" if trials else "no trials"
            raise ExportError(
                f"study {study.study_name!r} has no trial {chosen.n} ({span}): pick one that "
                "lwl-search reported as complete"
            )
        trial = match[0]
        if trial.state != TrialState.COMPLETE or trial.value is None:
            numbers = ", ".join(str(t.number) for t in complete_trials(study)[:20]) or "none yet"
            words = {TrialState.FAIL: "failed", TrialState.RUNNING: "still running"}
            state = words.get(trial.state, trial.state.name.lower())
            raise ExportError(
                f"trial {chosen.n} of study {study.study_name!r} is {state}, not "
                f"complete: only a complete trial has a final accuracy; complete trials: {numbers}"
            )
        return [trial]
    done = complete_trials(study)
    if not done:
        raise ExportError(f"study {study.study_name!r} has no complete trial yet: run lwl-search until one finishes")
    if chosen.kind == "pareto":  # confirmed lists by their mean over seeds, as the summary's front
        return pareto_front(study, {c.trial.number: c.estimate.mean for c in confirmed(study)})
    return top_trials(study, 1 if chosen.kind == "best" or chosen.n is None else chosen.n)


def export_configs(
    study: optuna.Study, selection: Selection | str = "best", *, storage_url: str | None = None
) -> list[TrainingConfig]:
    """One `TrainingConfig` per selected complete trial (see `trial_config`)."""
    settings = study_settings(study)
    selection = Selection.parse(selection)
    storage = storage_url if storage_url is not None else str(study.user_attrs.get(STORAGE_ATTR, ""))
    evidence = {c.trial.number: c for c in confirmed(study)}
    judged = study_answer(study)
    return [
        trial_config(
            settings,
            _hierarchy(t, settings),
            study_name=study.study_name,
            trial=t.number,
            accuracy=t.value,
            selection=selection.describe(),
            storage_url=storage,
            data_root=study.user_attrs.get(DATA_ROOT_ATTR),
            confirmation=evidence.get(t.number),
            judged=judged,
        )
        for t in select_trials(study, selection, settings)
    ]


def trial_config(
    settings: StudySettings,
    hierarchy: Sequence[int],
    *,
    study_name: str,
    trial: int,
    accuracy: float | None,
    selection: str = "trial",
    storage_url: str = "",
    data_root: str | None = None,
    confirmation: Confirmed | None = None,
    judged: Answer | None = None,
) -> TrainingConfig:
    """A trial's schedule with the study's recipe at the paper's full length on the whole training set (no
    validation split), the search's `data_root`, and where it came from (storage URL masked). Takes the trial's
    facts, not the trial, so a running trial can be exported as it completes (an artifact can only be attached to a
    running trial). A `confirmation` adds the mean over seeds, its interval and the seeds; `judged` (the study's
    answer) the model's view of the list and the answer's set."""
    search = settings.recipe
    try:
        full = paper_recipe(search.dataset, settings.network.family).epochs
        recipe = replace(search, epochs=full, train_limit=None, val_fraction=0.0)
    except RecipeError as exc:
        raise ExportError(f"study {study_name!r}: {exc}") from None
    schedule = settings.schedule(tuple(hierarchy))
    provenance: dict[str, Any] = {
        "study": study_name,
        "trial": trial,
        "selection": selection,
        "search_accuracy": accuracy,
        "search_epochs": search.epochs,
        "search_train_limit": search.train_limit,
        "search_val_fraction": search.val_fraction,
        "params": complexity(schedule, search.head).params,
        "paper": paper_name(schedule.hierarchy),
        "storage": mask_url(storage_url) if storage_url else None,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if confirmation is not None:
        e = confirmation.estimate
        provenance["confirmed"] = {
            "seeds": list(confirmation.seeds),
            "accuracies": [round(confirmation.values[s], 6) for s in confirmation.seeds],
            "mean": round(e.mean, 6),
            "interval_95": [round(e.low, 6), round(e.high, 6)],
        }
    belief = judged.belief(tuple(hierarchy)) if judged is not None else None
    if judged is not None and belief is not None:
        provenance["answer"] = {
            "model_mean": round(belief.mean, 6),
            "model_interval_95": [
                round(max(0.0, belief.mean - 1.96 * belief.sd), 6),
                round(min(1.0, belief.mean + 1.96 * belief.sd), 6),
            ],
            "p_best": round(belief.p_best, 4),
            "named": judged.named == tuple(hierarchy),
            "best_set": [list(h) for h in judged.best_set],
            "level": judged.level,
            "seed_sd": round(judged.seed_sd, 6),
            "seed_df": judged.seed_df,
            "expected_regret_of_named": round(judged.expected_regret, 6),
        }
    return TrainingConfig(schedule, recipe, provenance, data_root or None)


def config_filename(config: TrainingConfig) -> str:
    """'trial-12_1-1-2-4.yaml': unique within a study, readable in a listing."""
    trial = config.provenance.get("trial", "x")
    return f"trial-{trial}_{'-'.join(map(str, config.schedule.hierarchy))}.yaml"


def output_paths(configs: Sequence[TrainingConfig], out: str | os.PathLike[str]) -> list[Path]:
    """A .yaml path for a single config, a folder (existing or to be made) for any number; checked before writing."""
    out = Path(out)
    if out.suffix in (".yaml", ".yml"):
        if len(configs) != 1:
            raise ExportError(f"--out {out} names one file but {len(configs)} trials were selected: give a folder")
        if out.is_dir():
            raise ExportError(f"--out {out} is a folder: drop the .yaml ending or choose a file name")
        return [out]
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} exists and is not a folder: give a folder or a .yaml file name")
    return [out / config_filename(c) for c in configs]


def write_configs(configs: Sequence[TrainingConfig], out: str | os.PathLike[str]) -> list[Path]:
    """Write every config (atomically, each) once all paths are known to be usable; returns the paths."""
    paths = output_paths(configs, out)
    for config, path in zip(configs, paths):
        try:
            config.save_yaml(path)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ExportError(f"--out {out}: cannot write {path} ({reason}): choose a place you can write to") from None
    return paths
