"""The dominance-aware pruner of a study with `--objectives`: a candidate is stopped only when it is beaten at no
greater cost.

A median pruner compares a candidate's accuracy with everyone's and so stops every cheap list for being less
accurate than dear ones: exactly the lists the front needs. This pruner compares it only with candidates that cost
no more in every objective, whose costs are known before anything trains (`CostModel`), so it can judge from the
first step it is allowed to.
"""

from __future__ import annotations

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from .._sampling.costs import CostModel

DOMINATORS = 2  # candidates of no greater cost that must have been more accurate: benchmarks/README.md, Pareto


class DominancePruner(BasePruner):
    """Prune at step s when at least `min_dominators` finished candidates (complete, or pruned after reaching s) of no
    greater cost in every objective were more accurate at step s.

    Args:
        costs: the study's costs of a trial (`CostModel.of_trial`: parameters, FLOPs and memory from the record,
            time measured or projected from the pace).
        min_dominators: how many such candidates it takes; more is more cautious (early values are noisy).
        n_startup_trials: finished trials before it judges at all.
        n_warmup_steps: steps before it judges a candidate (`median_warmup`: the epoch after the first
            learning-rate drop, before which early accuracy ranks lists poorly).
    """

    def __init__(
        self,
        costs: CostModel,
        min_dominators: int = DOMINATORS,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
    ) -> None:
        if min_dominators < 1:
            raise ValueError(f"min_dominators must be at least 1, got {min_dominators}")
        self.costs = costs
        self.min_dominators = int(min_dominators)
        self.n_startup_trials = int(n_startup_trials)
        self.n_warmup_steps = int(n_warmup_steps)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if len(finished) < self.n_startup_trials:
            return False
        mine = self.costs.of_trial(trial)
        if mine is None:
            return False
        value = trial.intermediate_values[step]
        beaten = 0
        for other in finished:
            theirs = other.intermediate_values.get(step)
            if theirs is None or not theirs > value:
                continue
            cost = self.costs.of_trial(other)
            if cost is not None and all(c <= m for c, m in zip(cost, mine)):
                beaten += 1
                if beaten >= self.min_dominators:
                    return True
        return False


__all__ = ["DOMINATORS", "DominancePruner"]
