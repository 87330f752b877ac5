"""The derived Pareto study: accuracy against the study's costs (`--objectives`; parameters when it searched
accuracy alone), published beside the search study in the same storage.

Optuna cannot prune multi-objective studies (optuna#3450), so the search stays single-objective and every complete
trial is copied into a multi-objective study (accuracy, then one objective per cost) whose `best_trials` is the true
front. optuna-dashboard then shows its Pareto page; nothing else reads it, and it can always be rebuilt from the search
study.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from .._storage import optuna_private as private
from .._storage.attributes import DERIVED_ATTR, SETTINGS_ATTR, read_settings
from .costs import COST_NAMES, CostModel, dominated, front_costs

SOURCE_ATTR = "source_trial"  # on each derived trial: its trial number in the search study
NUMBERS_ATTR = "trial_numbers"  # on the derived study: how its trial numbers map to the search study's, in words


def _costs(study: optuna.Study) -> CostModel:
    """The cost model of a search study's front (parameters for a study without settings, as before objectives)."""
    attrs = study.user_attrs
    if SETTINGS_ATTR not in attrs:
        raise ValueError(f"study {study.study_name!r} has no lwl-search settings")
    settings = read_settings(study.study_name, attrs)
    return CostModel.of(settings, front_costs(settings))


def pareto_study_name(study_name: str) -> str:
    return f"{study_name}-pareto"


def _open(study: optuna.Study, costs: CostModel) -> optuna.Study:
    name = pareto_study_name(study.study_name)
    derived = optuna.create_study(
        study_name=name,
        storage=private.storage_of(study),
        directions=[StudyDirection.MAXIMIZE, *[StudyDirection.MINIMIZE] * len(costs.costs)],
        load_if_exists=True,
    )
    attrs = derived.user_attrs
    if DERIVED_ATTR not in attrs:
        derived.set_user_attr(DERIVED_ATTR, study.study_name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            derived.set_metric_names(["validation accuracy", *(COST_NAMES[c] for c in costs.costs)])
    if NUMBERS_ATTR not in attrs:  # shown on the study's page in optuna-dashboard
        derived.set_user_attr(
            NUMBERS_ATTR,
            f"trial numbers here are this study's own; each trial's user attribute {SOURCE_ATTR!r} is its number "
            f"in the search study {study.study_name!r} (what lwl-export --trial N takes)",
        )
    return derived


def _copy(trial: FrozenTrial, cost: tuple[float, ...]) -> FrozenTrial:
    attrs: dict[str, Any] = {
        k: trial.user_attrs[k]
        for k in ("hierarchy", "schedule", "paper", "params", "flops", "memory", "wall_time")
        if k in trial.user_attrs
    }
    attrs[SOURCE_ATTR] = trial.number
    return optuna.trial.create_trial(
        params=trial.params,
        distributions=trial.distributions,
        values=[float(trial.value or 0.0), *cost],
        user_attrs=attrs,
    )


def publish_pareto(study: optuna.Study) -> optuna.Study:
    """Copy every complete trial not yet in the derived study; cheap enough to call after each trial."""
    costs = _costs(study)
    derived = _open(study, costs)
    present = {t.user_attrs.get(SOURCE_ATTR) for t in derived.get_trials(deepcopy=False)}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.number in present or trial.value is None:
            continue
        cost = costs.of_trial(trial)
        if cost is not None:
            derived.add_trial(_copy(trial, cost))
    return derived


Cost = float | Sequence[float]


def pareto_indices(points: Sequence[tuple[Cost, float]]) -> list[int]:
    """Indices of the non-dominated (cost, accuracy) points, a cost being one number or one per objective: lower
    costs and higher accuracy are better.

    A point is dominated when another is at least as good in every objective and better in one; equal points are
    all kept. The indices come back sorted by cost (the first cost, then the rest), then by accuracy, best first.
    """
    vectors = [
        ((float(c),) if isinstance(c, (int, float)) else tuple(float(x) for x in c), float(a)) for c, a in points
    ]
    front = [
        i for i, (ci, ai) in enumerate(vectors) if not dominated(ci, ai, [v for j, v in enumerate(vectors) if j != i])
    ]
    return sorted(front, key=lambda i: (vectors[i][0], -vectors[i][1]))


def pareto_front(study: optuna.Study, accuracy: Mapping[int, float] | None = None) -> list[FrozenTrial]:
    """The search study's complete trials that no other beats on accuracy and every cost of its front (its
    --objectives' costs; parameters when it searched accuracy alone); cheapest first. `accuracy` (trial number ->
    accuracy) replaces the search's value where given: a confirmed list's mean over seeds."""
    costs = _costs(study)
    given = accuracy or {}
    done = [
        (t, c)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and (c := costs.of_trial(t)) is not None
    ]
    points = [(c, float(given.get(t.number, t.value or 0.0))) for t, c in done]
    return [done[i][0] for i in pareto_indices(points)]
