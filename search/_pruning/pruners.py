"""The pruners a study can use (`--pruner`), each judging `Progress.value`, and the first step the median may judge."""

from __future__ import annotations

import math

import optuna
from optuna.pruners import BasePruner

from .._errors import SpaceError, UsageError
from .._sampling.costs import CostModel
from .._space.settings import StudySettings
from .dominance import DOMINATORS, DominancePruner

PRUNERS = ("median", "dominance", "hyperband", "sha", "wilcoxon", "none")


def median_warmup(settings: StudySettings) -> int:
    """The first step the median pruner may judge.

    Simultaneous mode: the first epoch after the first learning-rate drop. Before it, epoch accuracy ranks lists
    poorly (Spearman with the final accuracy 0.26-0.72 over epochs 1-4 of 10 on the tabular digits table, 0.86
    at epoch 6), and judging from 40 % of the epochs lost the best list for good in 6 of 20 replayed TPE studies;
    from the epoch after the drop, in none, reaching it in fewer unit-epochs than without pruning
    (benchmarks/README.md). Sequential mode (a step is a unit, each with its own schedule): 40 % of the units.
    """
    recipe = settings.recipe
    first = recipe.first_decay_epoch()
    if recipe.mode == "simultaneous" and first is not None:
        return min(first, recipe.epochs)
    steps = recipe.epochs if recipe.mode == "simultaneous" else settings.space.budget
    return math.ceil(0.4 * steps)


def make_pruner(
    name: str, settings: StudySettings, startup_trials: int = 5, min_dominators: int = DOMINATORS
) -> BasePruner:
    """Pruners judge `Progress.value`: output accuracy per epoch, or the newest unit's accuracy per unit. `dominance`
    (a study with --objectives) compares a candidate only with those of no greater cost, from the median's warm-up."""
    steps = settings.recipe.epochs if settings.recipe.mode == "simultaneous" else settings.space.budget
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=median_warmup(settings))
    if name == "dominance":
        if not settings.costs:
            raise UsageError(
                "--pruner dominance judges accuracy at no greater cost: give the costs with --objectives, e.g. "
                "--objectives accuracy,params, or choose another --pruner"
            )
        return DominancePruner(
            CostModel.of(settings),
            min_dominators,
            n_startup_trials=startup_trials,
            n_warmup_steps=median_warmup(settings),
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(steps, 1), reduction_factor=3)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SpaceError(f"--pruner {name}: unknown pruner; choose one of {', '.join(PRUNERS)}")


__all__ = ["PRUNERS", "make_pruner", "median_warmup"]
