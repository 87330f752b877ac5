"""Loading a report's data: open an existing study (never creating a storage or a study), read its settings and
trials through lwl.search's one reader (`read_settings`, `read_trial`), and compute what the page shows beyond the
trials themselves: counts, the top trials, parameter importance and the global-loss comparison. Nothing here draws.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from lwl.models import LwlError
from lwl.search import (
    DERIVED_ATTR,
    SETTINGS_ATTR,
    StorageError,
    StudyError,
    TrialRecord,
    answer_lines,
    confirmed,
    interval_text,
    load_existing_study,
    mask_url,
    open_storage,
    read_settings,
    read_trial,
    study_answer,
    top_trials,
    verdict,
)

from ._rows import TrialRow
from ._thesis import Thesis, thesis

MIN_IMPORTANCE_TRIALS = 2  # as optuna-dashboard: importance is shown from 2 complete trials with different lists
IMPORTANCE_RESAMPLES = 100  # bootstrap resamples of the complete trials that give the importance's spread
IMPORTANCE_INTERVAL = (5.0, 95.0)  # percentiles of the resampled importances shown as whiskers
TOP_K = 10


class ReportError(LwlError, ValueError):
    """A study the report cannot describe (e.g. without a complete trial); one line. A study not made by lwl-search,
    or the derived Pareto study, is refused by lwl.search.read_settings with a StudyError."""


# --------------------------------------------------------------------------------------------- opening


def open_study(storage_url: str, study_name: str | None) -> tuple[BaseStorage, optuna.Study]:
    """Open an existing storage and study, or raise a one-line StorageError; never creates either."""
    storage = open_storage(storage_url, heartbeat=False, create=False)
    if study_name is None:  # the storage's one search study (derived Pareto studies do not count)
        names = [
            s.study_name
            for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
            if DERIVED_ATTR not in s.user_attrs
        ]
        if len(names) != 1:
            listed = ", ".join(names) if names else "none"
            raise StorageError(f"name the study with --study-name; studies in {mask_url(storage_url)!r}: {listed}")
        study_name = names[0]
    return storage, load_existing_study(storage, study_name)


# --------------------------------------------------------------------------------------------- the data


@dataclass
class ReportData:
    study_name: str
    storage_url: str  # masked
    settings: dict[str, Any]  # StudySettings.to_dict()
    user_attrs: dict[str, Any]
    counts: dict[str, int]  # state name -> trials
    rows: list[TrialRow]  # COMPLETE and PRUNED trials
    top: list[TrialRow]
    importances: dict[str, float] | None
    importance_note: str  # why there is none, or how far to trust it
    global_groups: dict[str, dict[str, float]] = field(default_factory=dict)  # training -> {label: accuracy}
    global_source: str = ""
    n_failed: int = 0
    fail_reasons: dict[str, int] = field(default_factory=dict)
    # name -> (low, high): the IMPORTANCE_INTERVAL of the importance over IMPORTANCE_RESAMPLES bootstrap resamples
    importance_spread: dict[str, tuple[float, float]] | None = None
    # search trial -> (mean over seeds with its 95 % interval, seeds) for the lists confirmation trained again
    confirmed: dict[int, tuple[str, int]] = field(default_factory=dict)
    verdict: str = ""  # the paired test of the winner against the runner-up, in words ("" without confirmation)
    answer: tuple[str, ...] = ()  # the answer in words: the named list, its 95 % set, the seed sd, expected regret
    # search trial -> (the model's mean with its 95 % interval, probability of being the best list)
    model: dict[int, tuple[str, float]] = field(default_factory=dict)
    thesis: Thesis | None = None  # did accelerated downsampling help here (the thesis section)

    @property
    def complete(self) -> list[TrialRow]:
        return [r for r in self.rows if r.value is not None]

    @property
    def param_names(self) -> list[str]:
        return [f"d{i}" for i in range(1, int(self.settings["stages"]) + 1)]


def _row(trial: FrozenTrial, record: TrialRecord) -> TrialRow:
    """A trial without a recorded wall_time is timed by Optuna's start and completion, when it completed."""
    wall = None
    if trial.state == TrialState.COMPLETE and trial.datetime_start and trial.datetime_complete:
        wall = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return TrialRow.from_record(record, wall_time=wall)


def _best_by_label(rows: Iterable[TrialRow | TrialRecord]) -> dict[str, float]:
    best: dict[str, float] = {}
    for r in rows:
        if r.value is not None:
            best[r.label] = max(best.get(r.label, -math.inf), r.value)
    return best


def _ped_anova(study: optuna.Study, names: list[str]) -> dict[str, float]:
    """Optuna 5.0's default evaluator (the one optuna-dashboard uses), normalised to sum to 1."""
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator, params=names))


def _bootstrap(trials: Sequence[FrozenTrial], names: list[str], seed: int = 0) -> dict[str, tuple[float, float]]:
    """How much the importance moves when the complete trials are resampled with replacement: each parameter's
    IMPORTANCE_INTERVAL over IMPORTANCE_RESAMPLES resamples (seeded, so a report is reproducible).

    A resample holds copies of what PED-ANOVA reads of a trial (its value, parameters and distributions), not the
    user attributes and intermediate values the storage's trials carry; a draw of the same trials in the same order
    as an earlier one has the same importances and is not evaluated again (a small study draws many repeats)."""
    rng = np.random.default_rng(seed)
    light = [optuna.trial.create_trial(value=t.value, params=t.params, distributions=t.distributions) for t in trials]
    seen: dict[tuple[int, ...], dict[str, float]] = {}
    samples: dict[str, list[float]] = {n: [] for n in names}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory" for each resample
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning, PED-ANOVA's "importances will be equal"
            for _ in range(IMPORTANCE_RESAMPLES):
                draw = tuple(int(i) for i in rng.integers(0, len(trials), len(trials)))
                if draw not in seen:
                    resample = optuna.create_study(direction="maximize")
                    resample.add_trials([light[i] for i in draw])
                    seen[draw] = _ped_anova(resample, names)
                for name, value in seen[draw].items():
                    samples[name].append(value)
    finally:
        optuna.logging.set_verbosity(verbosity)
    lo, hi = IMPORTANCE_INTERVAL
    return {n: (float(np.percentile(v, lo)), float(np.percentile(v, hi))) for n, v in samples.items() if v}


def _importances(
    study: optuna.Study, names: list[str]
) -> tuple[dict[str, float] | None, dict[str, tuple[float, float]] | None, str]:
    """PED-ANOVA importance of d1..dn whenever it can be computed (MIN_IMPORTANCE_TRIALS complete trials of
    different lists), with its bootstrap spread and a sentence on how far to trust it."""
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value) and all(n in t.params for n in names)
    ]
    n = len(complete)
    if n < MIN_IMPORTANCE_TRIALS:
        why = (
            f"Too few trials for parameter importance: {n} complete, at least {MIN_IMPORTANCE_TRIALS} are "
            "needed. Run lwl-search with a larger --trials."
        )
        return None, None, why
    if len({tuple(t.params[p] for p in names) for t in complete}) < 2:
        why = f"No parameter importance: all {n} complete trials trained the same list, so no stage's units vary."
        return None, None, why
    try:
        result = _ped_anova(study, names)
        spread = _bootstrap(complete, names)
    except (ValueError, RuntimeError) as exc:
        return None, None, f"Parameter importance could not be computed: {str(exc).splitlines()[0]}"
    lo, hi = IMPORTANCE_INTERVAL
    note = (
        f"Computed from {n} complete trials; the whiskers span {lo:g}-{hi:g} % of the importances over "
        f"{IMPORTANCE_RESAMPLES} bootstrap resamples of those trials (how much it moves with other trials)."
    )
    if n < 10:
        note += f" With only {n} trials it is a rough indication: one more trial can change the order."
    elif n < 50:
        note += " With fewer than about 50 trials treat it as indicative."
    return result, spread, note


# --------------------------------------------------------------------------------------------- global loss


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings without the loss (and the mode when the loss is global, which forces simultaneous)."""
    recipe = {k: v for k, v in settings["recipe"].items() if k != "loss"}
    return {**settings, "recipe": recipe}


def _siblings_match(a: dict[str, Any], b: dict[str, Any]) -> bool:
    la, lb = a["recipe"].get("loss"), b["recipe"].get("loss")
    if la == lb or "global" not in (la, lb):
        return False
    ca, cb = _comparable(a), _comparable(b)
    ca["recipe"].pop("mode", None)
    cb["recipe"].pop("mode", None)
    mode_a, mode_b = a["recipe"].get("mode"), b["recipe"].get("mode")
    return ca == cb and (mode_a == mode_b or "global" in (la, lb))


def find_sibling_studies(storage: BaseStorage, study_name: str, settings: dict[str, Any]) -> list[str]:
    """Studies in the same storage whose settings equal this one's except the loss, one side being 'global'."""
    found = []
    for s in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if s.study_name == study_name or SETTINGS_ATTR not in s.user_attrs:
            continue
        try:
            other = read_settings(s.study_name, s.user_attrs).to_dict()
        except StudyError:
            continue
        if _siblings_match(settings, other):
            found.append(s.study_name)
    return sorted(found)


def _global_groups(
    storage: BaseStorage,
    data_name: str,
    settings: dict[str, Any],
    rows: Sequence[TrialRow],
    records: Sequence[TrialRecord],
) -> tuple[dict[str, dict[str, float]], str]:
    loss = settings["recipe"].get("loss", "?")
    own = _best_by_label(rows)
    # 1. trials that carry a global accuracy of their own list
    attr: dict[str, float] = {}
    for r in records:
        if r.state == "complete" and isinstance(r.global_acc, (int, float)):
            attr[r.label] = max(attr.get(r.label, -math.inf), float(r.global_acc))
    if attr:
        return {
            f"{loss} (this study)": {k: v for k, v in own.items() if k in attr},
            "global (user attr global_acc)": attr,
        }, "the trials' global_acc attribute"
    # 2. sibling studies in the same storage
    groups: dict[str, dict[str, float]] = {}
    names = find_sibling_studies(storage, data_name, settings)
    for name in names:
        sib = load_existing_study(storage, name)
        sib_settings = read_settings(name, sib.user_attrs)
        stages = sib_settings.space.stages
        best = _best_by_label(
            read_trial(t, stages) for t in sib.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        )
        if best:
            groups[f"{sib_settings.recipe.loss} ({name})"] = best
    if not groups:
        return {}, ", ".join(names)
    common = set(own).intersection(*[set(g) for g in groups.values()])
    groups = {f"{loss} (this study)": own, **groups}
    return {k: {h: v for h, v in g.items() if h in common} for k, g in groups.items()}, ", ".join(names)


# --------------------------------------------------------------------------------------------- loading


def load_report_data(storage: BaseStorage, study: optuna.Study, storage_url: str) -> ReportData:
    """Everything the page shows of `study`; a StudyError for a study lwl-search did not make, a ReportError for
    one without a complete trial."""
    study_settings = read_settings(study.study_name, study.user_attrs)
    settings = study_settings.to_dict()
    stages = study_settings.space.stages
    trials = study.get_trials(deepcopy=False)
    records = [read_trial(t, stages) for t in trials]
    counts: dict[str, int] = {}
    for r in records:
        counts[r.state] = counts.get(r.state, 0) + 1
    rows = [_row(t, r) for t, r in zip(trials, records) if r.state in ("complete", "pruned")]
    n_complete = sum(r.value is not None for r in rows)
    if n_complete == 0:
        summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no trials"
        raise ReportError(
            f"study {study.study_name!r} has no complete trial yet ({summary}): "
            "run lwl-search on it until one completes"
        )
    by_number = {r.number: r for r in rows}
    evidence = confirmed(study)
    judged = study_answer(study)
    top = [by_number[t.number] for t in top_trials(study, TOP_K, judged)]
    model = {}
    if judged is not None:
        for row in top:
            b = judged.belief(tuple(row.hierarchy))
            if b is not None:
                model[row.number] = (interval_text(b.mean, b.sd), b.p_best)
    paired = verdict(evidence)
    names = [f"d{i}" for i in range(1, stages + 1)]
    importances, spread, note = _importances(study, names)
    groups, source = _global_groups(storage, study.study_name, settings, rows, records)
    reasons: dict[str, int] = {}
    for r in records:
        if r.state == "failed":
            reason = "no reason recorded" if r.fail_reason is None else str(r.fail_reason)
            reasons[reason] = reasons.get(reason, 0) + 1
    return ReportData(
        study.study_name,
        mask_url(storage_url),
        settings,
        dict(study.user_attrs),
        counts,
        rows,
        top,
        importances,
        note,
        groups,
        source,
        counts.get("failed", 0),
        reasons,
        importance_spread=spread,
        confirmed={c.trial.number: (c.estimate.text(), c.estimate.n) for c in evidence},
        verdict=paired.text() if paired is not None else "",
        answer=tuple(line.strip() for line in answer_lines(study, judged)) if judged is not None else (),
        model=model,
        thesis=thesis(rows, study_settings.space.k),
    )


__all__ = [
    "MIN_IMPORTANCE_TRIALS",
    "TOP_K",
    "ReportData",
    "ReportError",
    "find_sibling_studies",
    "load_report_data",
    "open_study",
]
