"""The derived Pareto study: accuracy against parameters, published beside the search study in the same storage.

Optuna cannot prune multi-objective studies (optuna#3450), so the search stays single-objective and every complete
trial is copied into a 2-objective study whose `best_trials` is the true front. optuna-dashboard then shows its Pareto
page; nothing else reads it, and it can always be rebuilt from the search study.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from . import _optuna as private
from ._record import DERIVED_ATTR, read_trial

SOURCE_ATTR = "source_trial"  # on each derived trial: its trial number in the search study
NUMBERS_ATTR = "trial_numbers"  # on the derived study: how its trial numbers map to the search study's, in words
OBJECTIVES = ("validation accuracy", "parameters")


def pareto_study_name(study_name: str) -> str:
    return f"{study_name}-pareto"


def _open(study: optuna.Study) -> optuna.Study:
    name = pareto_study_name(study.study_name)
    derived = optuna.create_study(
        study_name=name, storage=private.storage_of(study), directions=["maximize", "minimize"], load_if_exists=True
    )
    attrs = derived.user_attrs
    if DERIVED_ATTR not in attrs:
        derived.set_user_attr(DERIVED_ATTR, study.study_name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            derived.set_metric_names(list(OBJECTIVES))
    if NUMBERS_ATTR not in attrs:  # shown on the study's page in optuna-dashboard
        derived.set_user_attr(
            NUMBERS_ATTR,
            f"trial numbers here are this study's own; each trial's user attribute {SOURCE_ATTR!r} is its number "
            f"in the search study {study.study_name!r} (what lwl-export --trial N takes)",
        )
    return derived


def _copy(trial: FrozenTrial) -> FrozenTrial:
    record = read_trial(trial)
    attrs: dict[str, Any] = {
        k: trial.user_attrs[k]
        for k in ("hierarchy", "schedule", "paper", "flops", "wall_time")
        if k in trial.user_attrs
    }
    attrs[SOURCE_ATTR] = trial.number
    return optuna.trial.create_trial(
        params=trial.params,
        distributions=trial.distributions,
        values=[float(trial.value or 0.0), float(record.params or 0)],
        user_attrs=attrs,
    )


def publish_pareto(study: optuna.Study) -> optuna.Study:
    """Copy every complete trial not yet in the derived study; cheap enough to call after each trial."""
    derived = _open(study)
    present = {t.user_attrs.get(SOURCE_ATTR) for t in derived.get_trials(deepcopy=False)}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.number not in present and trial.value is not None and read_trial(trial).params is not None:
            derived.add_trial(_copy(trial))
    return derived


def pareto_indices(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (cost, accuracy) points: lower cost and higher accuracy are better.

    A point is dominated when another is at least as good in both and better in one; equal points are all kept.
    The indices come back sorted by cost (then by accuracy, best first).
    """
    front = [
        i
        for i, (ci, ai) in enumerate(points)
        if not any(cj <= ci and aj >= ai and (cj < ci or aj > ai) for j, (cj, aj) in enumerate(points) if j != i)
    ]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The search study's complete trials that no other beats on both accuracy and parameters; smallest first."""
    done = [
        (t, r)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and (r := read_trial(t)).params is not None
    ]
    return [done[i][0] for i in pareto_indices([(float(r.params or 0), float(t.value or 0.0)) for t, r in done])]
