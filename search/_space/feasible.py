"""The feasible set of hierarchy lists a study searches over.

A hierarchy ``D = (d1, ..., dn)`` gives the number of locally trained units in each of ``n`` stages
(README, "What it searches"). The search space is every list of ``n`` positive integers summing to a unit budget
that also satisfies the paper's Eq. 7 ordering constraint (or a looser variant). The set is small
enough to enumerate exactly (hundreds to a few thousand lists for realistic budgets), which is what
lets the sampler propose only feasible, never-seen lists instead of relying on soft constraints.

Reading of Eq. 7 (documented on purpose): the paper writes ``k < n/2`` shallow stages, but its own
best schedules ``[1,1,2,2]``, ``[1,1,2,4]``, ``[1,2,8,5]`` and ``[2,3,7,4]`` only satisfy the
constraint with ``k = n/2``; the default is therefore ``k = n // 2`` and the user may pick another.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache

from lwl.models import PAPER_RESULTS

from .._errors import SpaceError

__all__ = [
    "CONSTRAINTS",
    "MAX_LISTS",
    "PAPER_HIERARCHIES",
    "SearchSpace",
    "SpaceError",
    "paper_baselines",
    "smallest_feasible_budget",
]

CONSTRAINTS = ("strict", "sum", "none")

# Above this many lists exact enumeration (and TPE scoring of every remaining list) stops being
# cheap; refuse with a message instead of silently eating memory.
MAX_LISTS = 200_000


# (model, table, hierarchy) for every row of the paper's Tables I-VI, in table order (lwl.models holds the tables
# with their accuracies). The VGG8b family has 5 stages in Table I but 4 in Table II; both are kept as printed.
PAPER_HIERARCHIES: tuple[tuple[str, str, tuple[int, ...]], ...] = tuple(
    (r.model, f"Table {r.table}", r.hierarchy) for r in PAPER_RESULTS
)


def _as_int(value: object, what: str) -> int:
    """Accept ints (and numpy ints) but not floats/bools, so `--budget 16.5` cannot slip through."""
    if isinstance(value, bool):
        raise SpaceError(f"{what} {value!r}: expected a whole number")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise SpaceError(f"{what} {value!r}: expected a whole number") from None


def _comb(n: int, r: int) -> int:
    return math.comb(n, r) if 0 <= r <= n else 0


def _sum_to(f: Callable[[int], int], last: int, degree: int) -> int:
    """f(1) + ... + f(last) for an f that is a polynomial of `degree` on 1..last, in time independent of `last`.

    The partial sums are a polynomial of degree + 1: they are computed at 0..degree+1 and interpolated at `last`
    (Lagrange at consecutive integer nodes, whose basis values at an integer are integers: exact).
    """
    n = degree + 1
    if last <= n + 1:
        return sum(f(x) for x in range(1, last + 1))
    sums = [0]
    for x in range(1, n + 1):
        sums.append(sums[-1] + f(x))
    return sum((-1) ** (n - i) * y * _comb(last, i) * _comb(last - i - 1, n - i) for i, y in enumerate(sums))


def _sum_binomials(top: int, step: int, r: int) -> int:
    """The sum over m >= 1 of C(top - step*m, r), the terms below r counting 0 (a polynomial in m up to there)."""
    if top < r:
        return 0
    return _sum_to(lambda m: _comb(top - step * m, r), (top - r) // step, r)


@lru_cache(maxsize=256)
def _count(budget: int, stages: int, k: int, constraint: str) -> int:
    """Size of the feasible set by counting, never enumerating, in time independent of the budget: a huge space is
    refused with its size at once (tests/search/test_space.py checks every constraint against enumeration).

    none: the compositions of the budget, C(budget - 1, stages - 1). sum: over the shallow sum s < budget - s, the
    compositions of s times those of budget - s. strict: over the largest shallow value m, the deep values are
    >= m + 1; the lists whose shallow values are all <= h number sum_j (-1)^j C(k, j) C(budget - 1 - d*m - j*h,
    stages - 1) (inclusion-exclusion over the values above h; d = stages - k deep stages), and those with h = m
    minus those with h = m - 1 have their largest shallow value exactly m. Each sum over m is a sum of a
    polynomial, taken in closed form by `_sum_to`.
    """
    if budget < stages:
        return 0
    if constraint == "none":
        return _comb(budget - 1, stages - 1)
    deep, r = stages - k, stages - 1
    if constraint == "sum":
        return _sum_to(lambda s: _comb(s - 1, k - 1) * _comb(budget - s - 1, deep - 1), (budget - 1) // 2, r - 1)
    top = budget - 1
    return sum(
        (-1) ** j * _comb(k, j) * (_sum_binomials(top, deep + j, r) - _sum_binomials(top + j, deep + j, r))
        for j in range(k + 1)
    )


@lru_cache(maxsize=64)
def _enumerate(budget: int, stages: int, k: int, constraint: str) -> tuple[tuple[int, ...], ...]:
    """Generate feasible lists directly (pruned recursion), already in lexicographic order."""
    out: list[tuple[int, ...]] = []
    prefix: list[int] = []

    def deep_fill(pos: int, left: int, low: int) -> None:
        if pos == stages:
            if left == 0:
                out.append(tuple(prefix))
            return
        rest = stages - pos - 1
        for d in range(low, left - rest * low + 1):
            prefix.append(d)
            deep_fill(pos + 1, left - d, low)
            prefix.pop()

    def shallow_fill(pos: int, left: int, shallow_max: int, shallow_sum: int) -> None:
        if pos == k:
            deep_low = shallow_max + 1 if constraint == "strict" else 1
            if constraint == "sum" and not shallow_sum < left:
                return
            deep_fill(pos, left, deep_low)
            return
        rest_shallow = k - pos - 1
        deep = stages - k
        for d in range(1, left - rest_shallow - deep + 1):
            new_max = max(shallow_max, d)
            if constraint == "strict" and left - d - rest_shallow < deep * (new_max + 1):
                # Deep stages alone already need more units than are left; larger d only worse.
                break
            if constraint == "sum" and 2 * (shallow_sum + d + rest_shallow) >= budget:
                break
            prefix.append(d)
            shallow_fill(pos + 1, left - d, new_max, shallow_sum + d)
            prefix.pop()

    if constraint == "none":
        deep_fill(0, budget, 1)
    else:
        shallow_fill(0, budget, 0, 0)
    return tuple(out)


def _figure(n: int) -> str:
    """A count for a message: 123,456, or 1.7e14 when it is large."""
    return f"{n:,}" if n < 10**7 else f"{Decimal(n):.1e}".replace("e+", "e")


def smallest_feasible_budget(stages: int, shallow_stages: int | None = None, constraint: str = "strict") -> int:
    """The least budget with at least one feasible list: what an empty-space error suggests."""
    space = SearchSpace(budget=max(int(stages), 1), stages=stages, shallow_stages=shallow_stages, constraint=constraint)
    k, n = space.k, space.stages
    if constraint == "strict":
        return k + 2 * (n - k)  # shallow all 1, deep all 2
    if constraint == "sum":
        return k + max(n - k, k + 1)  # shallow all 1, deep sum > k
    return n


@dataclass(frozen=True)
class SearchSpace:
    """Budget, stage count and ordering constraint; everything else (the lists) derives from them.

    ``shallow_stages`` (``k``) is how many leading stages count as shallow for the constraint;
    ``None`` means ``stages // 2`` (see the module docstring for why not ``k < n/2``) and is
    replaced by that value on construction.
    """

    budget: int
    stages: int = 4
    shallow_stages: int | None = None
    constraint: str = "strict"
    # The lists within the study's cost limits (`restricted`; lexicographic), None: no limits. Costs depend on the
    # network a list makes, so the settings compute them (`StudySettings.create`); the space only keeps the result.
    within: tuple[tuple[int, ...], ...] | None = None
    limits: str = ""  # the limits in words, e.g. "--max-params 5M", for messages

    def __post_init__(self) -> None:
        stages = _as_int(self.stages, "--stages")
        budget = _as_int(self.budget, "--budget")
        object.__setattr__(self, "stages", stages)
        object.__setattr__(self, "budget", budget)
        if self.constraint not in CONSTRAINTS:
            raise SpaceError(
                f"--constraint {self.constraint}: unknown constraint; choose one of {', '.join(CONSTRAINTS)}"
            )
        if stages < 1:
            raise SpaceError(f"--stages {stages}: a network needs at least one stage; use --stages >= 1")
        if budget < stages:
            try:  # the true smallest: 4 strict stages need 6 units, not 4
                smallest = smallest_feasible_budget(stages, self.shallow_stages, self.constraint)
            except SpaceError:  # --shallow-stages does not fit --stages: that error comes with the budget fixed
                smallest = stages
            raise SpaceError(
                f"budget {budget} is smaller than --stages {stages}: every stage needs at least "
                f"one unit; the smallest budget with a feasible list is {smallest}: use --budget {smallest} or more"
            )
        # Store the resolved k so that equal spaces compare (and hash) equal on resume checks.
        k = stages // 2 if self.shallow_stages is None else _as_int(self.shallow_stages, "--shallow-stages")
        object.__setattr__(self, "shallow_stages", k)
        if self.constraint != "none" and not 1 <= k < stages:
            if stages < 2:
                raise SpaceError(
                    f"the {self.constraint} constraint needs shallow and deep stages, but "
                    f"--stages is {stages}; use --stages >= 2 or --constraint none"
                )
            raise SpaceError(
                f"--shallow-stages {k} with --stages {stages}: the {self.constraint} constraint "
                f"needs 1 <= k < {stages}; use --shallow-stages between 1 and {stages - 1}"
            )
        if self.constraint == "none" and not 0 <= k <= stages:
            raise SpaceError(f"--shallow-stages {k} with --stages {stages}: use a value between 0 and {stages}")

    @property
    def k(self) -> int:
        """Resolved number of shallow stages."""
        return self.stages // 2 if self.shallow_stages is None else int(self.shallow_stages)

    def restricted(self, lists: Sequence[tuple[int, ...]], limits: str) -> SearchSpace:
        """This space with only `lists` (a subset of its lists, those within the cost `limits`) feasible."""
        return replace(self, within=tuple(sorted(tuple(h) for h in lists)), limits=limits)

    @functools.cached_property
    def _within_set(self) -> frozenset[tuple[int, ...]]:
        return frozenset(self.within or ())

    def describe(self) -> str:
        """Short human label used in messages and reports."""
        rule = (
            "no order constraint" if self.constraint == "none" else (f"the {self.constraint} constraint (k={self.k})")
        )
        text = f"{self.stages} stages summing to {self.budget} under {rule}"
        if self.within is not None:
            text += f", within {self.limits} ({len(self.within)} of {_figure(self.unrestricted_count())} lists)"
        return text

    def violation(self, hierarchy: Sequence[int]) -> str | None:
        """Why a list is infeasible (None if feasible): error messages need the reason, not a bool."""
        try:
            values = [operator.index(d) for d in hierarchy]
        except TypeError:
            return "every stage must be a whole number of units"
        if any(isinstance(d, bool) for d in hierarchy):
            return "every stage must be a whole number of units"
        if len(values) != self.stages:
            return f"it has {len(values)} stages, the space has {self.stages}"
        if min(values) < 1:
            return "every stage needs at least one unit"
        if sum(values) != self.budget:
            return f"it sums to {sum(values)}, the budget is {self.budget}"
        shallow, deep = values[: self.k], values[self.k :]
        if self.constraint == "strict" and not max(shallow) < min(deep):
            return (
                f"the strict constraint (k={self.k}) needs every shallow stage "
                f"({','.join(map(str, shallow))}) smaller than every deep stage "
                f"({','.join(map(str, deep))})"
            )
        if self.constraint == "sum" and not sum(shallow) < sum(deep):
            return (
                f"the sum constraint (k={self.k}) needs the shallow stages to sum to less "
                f"than the deep ones ({sum(shallow)} vs {sum(deep)})"
            )
        if self.within is not None and tuple(values) not in self._within_set:
            return f"its network is over the study's limits ({self.limits})"
        return None

    def is_feasible(self, hierarchy: Sequence[int]) -> bool:
        return self.violation(hierarchy) is None

    def count(self) -> int:
        """Size of the feasible set without enumerating it (within the limits, when there are any)."""
        return len(self.within) if self.within is not None else self.unrestricted_count()

    def unrestricted_count(self) -> int:
        """Size of the feasible set before cost limits, counted in closed form."""
        return _count(self.budget, self.stages, self.k, self.constraint)

    def lists(self) -> tuple[tuple[int, ...], ...]:
        """Every feasible list, lexicographic (consecutive lists share long prefixes, which training reuses:
        README, "Training shared prefixes once")."""
        if self.within is not None:
            return self.within
        self._check_size()
        return _enumerate(self.budget, self.stages, self.k, self.constraint)

    def __len__(self) -> int:
        return len(self.lists())

    def __contains__(self, hierarchy: object) -> bool:
        return isinstance(hierarchy, Sequence) and self.is_feasible(hierarchy)

    def param_names(self) -> tuple[str, ...]:
        return tuple(f"d{i}" for i in range(1, self.stages + 1))

    def param_range(self) -> tuple[int, int]:
        """One (low, high) for every d_i over the whole study.

        A fixed range keeps one int parameter per stage with a single distribution, which is what
        importance evaluators and optuna-dashboard need; ranges that shrink per trial make them
        drop the parameters (README, "Sampling"). When ``budget == stages`` the range is a single
        value and Optuna never asks the sampler: stop such a study with a callback instead.
        """
        return 1, self.budget - (self.stages - 1)

    def check_nonempty(self) -> None:
        """Raise the user-facing error for an empty space (construction allows it, for reports); a space empty
        only under cost limits is refused where they are applied (`CostLimits.within`)."""
        if self.unrestricted_count() == 0:
            rule = (
                "with no order constraint"
                if self.constraint == "none"
                else (f"under the {self.constraint} constraint (k={self.k})")
            )
            smallest = smallest_feasible_budget(self.stages, self.shallow_stages, self.constraint)
            raise SpaceError(
                f"no hierarchy of {self.stages} stages sums to {self.budget} {rule}: "
                f"the smallest budget with one is {smallest}"
            )

    def _check_size(self) -> None:
        n = self.unrestricted_count()
        if n > MAX_LISTS:
            raise SpaceError(
                f"{self.describe()} has {_figure(n)} feasible lists; at most {MAX_LISTS:,} can be searched: "
                "lower --budget or --stages"
            )

    def check_searchable(self) -> None:
        """Raise the user-facing error for a space that is empty or too large to search: what a command checks
        before it creates anything (counting only, so a huge budget is refused at once)."""
        self.check_nonempty()
        self._check_size()

    def nearest(self, hierarchy: Sequence[int]) -> tuple[int, ...] | None:
        """The feasible list closest in L1 distance (for 'did you mean' hints); None if empty."""
        if self.count() == 0 or self.count() > MAX_LISTS:
            return None
        target = list(hierarchy)
        if len(target) != self.stages:
            return None
        return min(self.lists(), key=lambda h: sum(abs(a - b) for a, b in zip(h, target)))


def paper_baselines(space: SearchSpace) -> list[tuple[int, ...]]:
    """The paper's published hierarchies that this space contains, distinct, in table order.

    Enqueued first unless ``--no-paper-baselines``: the search starts from lists with published accuracies, and its
    answer says whether it found better ones.
    """
    seen: list[tuple[int, ...]] = []
    for _, _, hierarchy in PAPER_HIERARCHIES:
        if hierarchy not in seen and space.is_feasible(hierarchy):
            seen.append(hierarchy)
    return seen


def paper_name(hierarchy: Sequence[int]) -> str | None:
    """The paper's network names for this list ('ResNet18_r5'), or None when no table holds it."""
    names = [model for model, _, h in PAPER_HIERARCHIES if h == tuple(hierarchy)]
    return ", ".join(dict.fromkeys(names)) or None
