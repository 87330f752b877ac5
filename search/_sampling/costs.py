"""What a study trades accuracy against: `--objectives accuracy,params` (also `memory`, `flops`, `time`).

A list's parameters, FLOPs and estimated training memory are known exactly before it trains (`complexity`,
`memory_estimate`); its training time is measured (a complete trial's wall time; a pruned or running one's projected
from its pace, elapsed / steps done x all steps). The Optuna study stays single-objective (validation accuracy) so that
its trials can be pruned -- Optuna cannot prune a multi-objective study (optuna#3450) -- while the costs are trial
user attributes, the sampler and the pruner read them through a `CostModel`, and the derived NAME-pareto study has
one objective per cost (`front_costs`: parameters when the study searched accuracy alone).

Hypervolume (the share of the objective space a front dominates) is computed here once, for the sampler's score, the
summary and the benchmarks, in one normalised space: accuracy as it is, each cost as log(cost) scaled to [0, 1] over
the feasible set (0: the cheapest list, 1: the dearest), the reference point at accuracy `floor` and cost 1.1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from lwl.models import Complexity, complexity

from .._errors import UsageError
from .._space.limits import memory_estimate
from .._space.settings import StudySettings
from .._storage.attributes import TrialRecord, read_trial

ACCURACY = "accuracy"
COSTS = ("params", "memory", "flops", "time")
# What each cost is, for messages, the derived study's metric names and the report.
COST_NAMES = {
    "params": "parameters",
    "memory": "estimated training memory (bytes)",
    "flops": "forward FLOPs per image",
    "time": "training time (s)",
}
COST_REFERENCE = 1.1  # the reference point's normalised cost: the dearest list still adds a sliver of volume


def parse_objectives(text: str | Sequence[str], origin: str = "--objectives") -> tuple[str, ...]:
    """'accuracy,params' -> ('accuracy', 'params'): accuracy first, then distinct costs; a UsageError otherwise."""
    items = [s.strip().lower() for s in (text.split(",") if isinstance(text, str) else text)]
    known = f"accuracy followed by any of {', '.join(COSTS)}, e.g. --objectives accuracy,params"
    if not items or items[0] != ACCURACY:
        raise UsageError(f"{origin} {','.join(items)}: the first objective is accuracy: write {known}")
    costs = items[1:]
    unknown = [c for c in costs if c not in COSTS]
    if unknown:
        raise UsageError(f"{origin} {','.join(items)}: unknown objective {unknown[0]!r}: write {known}")
    if len(set(costs)) != len(costs):
        raise UsageError(f"{origin} {','.join(items)}: an objective is named twice: name each once")
    return (ACCURACY, *costs)


def check_costs_vary(settings: StudySettings) -> None:
    """Refuse a known cost (params, memory, flops) that is the same for every list of the feasible space: it ranks
    nothing, and its front would be one point. FLOPs are the usual case: where each stage doubles the widths and
    halves the resolution (every family's default widths), a unit costs the same FLOPs in every stage, so every list
    of one budget costs the same. Time is measured, so it is left alone. Stops at the first lists that differ."""
    pending = [c for c in settings.costs if c != "time"]
    if not pending:
        return
    model = CostModel.of(settings, pending)
    first: tuple[float, ...] | None = None
    varies = [False] * len(pending)
    for h in settings.space.lists():
        values = model.of_list(h)
        if first is None:
            first = values
            continue
        varies = [v or a != b for v, a, b in zip(varies, values, first)]
        if all(varies):
            return
    if first is None:
        return
    cost, value = next((c, f) for c, f, v in zip(pending, first, varies) if not v)
    others = [c for c in settings.objectives if c != cost]
    raise UsageError(
        f"--objectives {','.join(settings.objectives)}: {cost} is the same for every list of the space "
        f"({value:,.0f} {COST_NAMES[cost]}), so it ranks nothing: leave it out (--objectives {','.join(others)})"
    )


def front_costs(settings: StudySettings) -> tuple[str, ...]:
    """The costs the study's front is drawn against: its objectives' costs, else parameters (as before objectives)."""
    return settings.costs or ("params",)


@dataclass(frozen=True)
class CostModel:
    """A study's costs of a list (before it trains) and of a trial (from its record), in `costs` order.

    Time is not known before training: for a list it is predicted in proportion to its forward FLOPs (so that in the
    normalised space it is FLOPs), for a trial it is measured or projected from its pace.
    """

    settings: StudySettings
    costs: tuple[str, ...]
    _static: dict[tuple[int, ...], Complexity] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, settings: StudySettings, costs: Sequence[str] | None = None) -> CostModel:
        return cls(settings, tuple(front_costs(settings) if costs is None else costs))

    @property
    def total_steps(self) -> int:
        recipe = self.settings.recipe
        return recipe.epochs if recipe.mode == "simultaneous" else self.settings.space.budget

    def _complexity(self, hierarchy: tuple[int, ...]) -> Complexity:
        found = self._static.get(hierarchy)
        if found is None:
            found = complexity(self.settings.schedule(hierarchy), self.settings.recipe.head)
            self._static[hierarchy] = found
        return found

    def of_list(self, hierarchy: Sequence[int]) -> tuple[float, ...]:
        """Known costs of a list; time as its FLOPs (what time is predicted in proportion to)."""
        c = self._complexity(tuple(int(d) for d in hierarchy))
        values = {
            "params": c.params,
            "flops": c.flops,
            "time": c.flops,
            "memory": memory_estimate(c.activations, c.params_aux, self.settings.recipe.batch_size),
        }
        return tuple(float(values[name]) for name in self.costs)

    def of_trial(self, trial: FrozenTrial) -> tuple[float, ...] | None:
        """Costs of a trial from its record (time measured, or projected for a pruned or running one); None when a
        cost is not known yet (a trial that has not started training)."""
        record = read_trial(trial)
        out = []
        for name in self.costs:
            if name == "time":
                value = self._time(trial, record.wall_time, record.elapsed)
            elif name == "memory":
                value = self._memory(record)
            else:
                raw = record.params if name == "params" else record.flops
                value = None if raw is None else float(raw)
            if value is None:
                return None
            out.append(value)
        return tuple(out)

    def _memory(self, record: TrialRecord) -> float | None:
        """The recorded estimate; for a trial recorded before `memory` was, the same rule from its counts."""
        if record.memory is not None:
            return float(record.memory)
        if record.activations is None or record.params_aux is None:
            return None
        return float(memory_estimate(record.activations, record.params_aux, self.settings.recipe.batch_size))

    def _time(self, trial: FrozenTrial, wall_time: float | None, elapsed: float | None) -> float | None:
        if trial.state == TrialState.COMPLETE and wall_time is not None:
            return float(wall_time)
        steps = trial.intermediate_values
        if elapsed is None or not steps:
            return None
        return float(elapsed) / max(max(steps), 1) * self.total_steps

    def scale(self, lists: Sequence[Sequence[int]]) -> Callable[[Sequence[float]], np.ndarray]:
        """The map from a list's costs (`of_list`) to the normalised space over `lists`, the feasible set."""
        return normaliser([self.of_list(h) for h in lists])


def normaliser(costs: Sequence[Sequence[float]]) -> Callable[[Sequence[float]], np.ndarray]:
    """log(cost) scaled to [0, 1] per cost over `costs` (a cost equal everywhere maps to 0)."""
    logs = np.log(np.maximum(np.asarray(costs, dtype=float), 1e-12))
    low, high = logs.min(axis=0), logs.max(axis=0)
    span = np.where(high > low, high - low, 1.0)

    def apply(values: Sequence[float]) -> np.ndarray:
        return (np.log(np.maximum(np.asarray(values, dtype=float), 1e-12)) - low) / span

    return apply


def dominated(cost: Sequence[float], acc: float, others: Sequence[tuple[Sequence[float], float]]) -> bool:
    """Whether some other point costs no more in every cost and is at least as accurate, better in one."""
    return any(
        all(o <= c for o, c in zip(oc, cost)) and oa >= acc and (oa > acc or any(o < c for o, c in zip(oc, cost)))
        for oc, oa in others
    )


def hypervolume(points: Sequence[tuple[Sequence[float], float]], floor: float) -> float:
    """The volume the (normalised cost vector, accuracy) points dominate up to the reference point (accuracy `floor`,
    every cost `COST_REFERENCE`). With no costs it is max(accuracy) - floor."""
    kept = [(tuple(c), a) for c, a in points if a > floor and all(x < COST_REFERENCE for x in c)]
    if not kept:
        return 0.0
    # The volume is the integral over the cost box of (best accuracy reachable at no greater cost - floor).
    return float(_improvement_cells(kept, [0.0] * len(kept[0][0]), floor, lambda best: best - floor))


def _improvement_cells(
    front: Sequence[tuple[Sequence[float], float]],
    corner: Sequence[float],
    floor: float,
    gain: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Sum over the cells of the cost box [corner, reference] of cell volume x gain(best accuracy in the cell), the
    best accuracy being the front's highest at no greater cost than the whole cell (`floor` where none is); `gain`
    maps those bests (an array) to what counts per unit of cost volume."""
    dims = len(corner)
    best_floor = np.asarray(floor, dtype=float)
    if dims == 0:
        top = max([floor, *(a for _, a in front)])
        return np.asarray(gain(np.asarray(top)))
    cuts = []
    for d in range(dims):
        inner = sorted({float(c[d]) for c, _ in front if corner[d] < c[d] < COST_REFERENCE})
        cuts.append(np.asarray([float(corner[d]), *inner, COST_REFERENCE]))
    lows = np.meshgrid(*[c[:-1] for c in cuts], indexing="ij")
    widths = np.meshgrid(*[np.diff(c) for c in cuts], indexing="ij")
    low = np.stack([g.ravel() for g in lows], axis=1)  # cells x dims
    volume = np.prod(np.stack([w.ravel() for w in widths], axis=1), axis=1)
    best = np.full(len(low), best_floor)
    for cost, acc in front:
        reach = np.all(np.asarray(cost)[None, :] <= low + 1e-12, axis=1)
        best = np.where(reach & (acc > best), acc, best)
    return np.asarray(np.sum(volume * gain(best)))


def expected_improvement(
    front: Sequence[tuple[Sequence[float], float]],
    cost: Sequence[float],
    mean: float,
    sd: float,
    floor: float,
) -> float:
    """The expected hypervolume improvement of a list of known normalised `cost` whose accuracy is believed normal
    (`mean`, `sd`), over `front` (exact: the cost box above `cost` is cut into cells where the best accuracy at no
    greater cost is constant, and each cell adds its volume x the expected excess of the list's accuracy over it).
    With no costs it is the classic expected improvement over the best accuracy."""
    if any(c >= COST_REFERENCE for c in cost):
        return 0.0
    sd = max(float(sd), 1e-9)

    def gain(best: np.ndarray) -> np.ndarray:
        z = (mean - best) / sd
        return sd * _pdf(z) + (mean - best) * _cdf(z)

    return float(_improvement_cells(front, cost, floor, gain))


def _pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _cdf(z: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf, otypes=[float])
    return 0.5 * (1.0 + erf(z / math.sqrt(2.0)))


__all__ = [
    "ACCURACY",
    "COSTS",
    "COST_NAMES",
    "COST_REFERENCE",
    "CostModel",
    "dominated",
    "expected_improvement",
    "front_costs",
    "hypervolume",
    "normaliser",
    "parse_objectives",
]
