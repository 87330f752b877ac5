"""The feasible set: its sizes pinned (budget 16, 4 stages: the README's 61 lists), the Eq. 7 reading, and
user-facing errors."""

import dataclasses
import functools
import itertools
import time

import pytest

from lwl.search import (
    CONSTRAINTS,
    MAX_LISTS,
    PAPER_HIERARCHIES,
    SearchSpace,
    SpaceError,
    paper_baselines,
    smallest_feasible_budget,
)


@pytest.mark.parametrize(
    ("budget", "stages", "expected"),
    [(8, 4, 3), (8, 5, 1), (12, 4, 20), (12, 5, 17), (16, 4, 61), (16, 5, 87), (24, 4, 257), (24, 5, 670)],
)
def test_pinned_strict_counts(budget: int, stages: int, expected: int) -> None:
    space = SearchSpace(budget=budget, stages=stages)
    assert space.k == stages // 2
    assert len(space) == expected
    assert space.count() == expected


def test_all_compositions_of_16_into_4() -> None:
    assert len(SearchSpace(16, 4, constraint="none")) == 455


def test_budget_8_lists_exactly() -> None:
    assert SearchSpace(8, 4).lists() == ((1, 1, 2, 4), (1, 1, 3, 3), (1, 1, 4, 2))
    assert SearchSpace(8, 5).lists() == ((1, 1, 2, 2, 2),)


@pytest.mark.parametrize("constraint", CONSTRAINTS)
@pytest.mark.parametrize("stages", [1, 2, 3, 4, 5])
def test_enumeration_matches_brute_force(constraint: str, stages: int) -> None:
    ks = [None] if constraint == "none" else list(range(1, stages))
    for k in ks:
        for budget in range(stages, 13):
            space = SearchSpace(budget, stages, k, constraint)
            top = budget - stages + 1
            brute = [
                h
                for h in itertools.product(range(1, top + 1), repeat=stages)
                if sum(h) == budget and space.is_feasible(h)
            ]
            assert list(space.lists()) == brute  # product() is lexicographic too
            assert space.count() == len(brute)
            assert all(sum(h) == budget and min(h) >= 1 for h in brute)


def test_lists_are_cached() -> None:
    space = SearchSpace(16, 4)
    assert space.lists() is SearchSpace(16, 4).lists()


def test_strict_rule() -> None:
    space = SearchSpace(16, 4)
    assert space.is_feasible((1, 2, 8, 5))
    assert space.is_feasible([2, 3, 7, 4])
    assert not space.is_feasible((4, 4, 4, 4))  # equal is not smaller
    assert not space.is_feasible((1, 5, 6, 4))  # 5 is not < 4
    assert not space.is_feasible((1, 2, 8, 4))  # sums to 15
    assert not space.is_feasible((1, 2, 13))  # wrong length
    assert not space.is_feasible((0, 2, 8, 6))
    assert not space.is_feasible((1.0, 2, 8, 5))
    assert (1, 2, 8, 5) in space


def test_k1_reading_of_eq7_rejects_paper_winner() -> None:
    # The reason for k = n // 2 (README, "The search"): with k = 1, [1,1,2,2] is infeasible (d2 = 1 is not
    # larger than d1 = 1), while the default k = 2 accepts it.
    assert not SearchSpace(6, 4, shallow_stages=1).is_feasible((1, 1, 2, 2))
    assert "(1) smaller than every deep stage (1,2,2)" in SearchSpace(6, 4, 1).violation((1, 1, 2, 2))
    assert SearchSpace(6, 4).is_feasible((1, 1, 2, 2))
    # With k = 1 a budget of 6 admits nothing at all (d1 = 1 forces three deep stages >= 2).
    assert len(SearchSpace(6, 4, shallow_stages=1)) == 0
    assert SearchSpace(7, 4, shallow_stages=1).lists() == ((1, 2, 2, 2),)


def test_sum_and_none_rules() -> None:
    s = SearchSpace(16, 4, constraint="sum")
    assert s.is_feasible((1, 6, 1, 8))  # 7 < 9 though 6 > 1
    assert not s.is_feasible((4, 4, 4, 4))
    assert "sum to less" in s.violation((4, 4, 4, 4))
    n = SearchSpace(16, 4, constraint="none")
    assert n.is_feasible((13, 1, 1, 1))


def test_params() -> None:
    space = SearchSpace(16, 4)
    assert space.param_names() == ("d1", "d2", "d3", "d4")
    assert space.param_range() == (1, 13)
    lows, highs = zip(*[(min(c), max(c)) for c in zip(*space.lists())])
    assert min(lows) >= 1 and max(highs) <= 13


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(budget=3, stages=4),
            "budget 3 is smaller than --stages 4: every stage needs at least one unit; the smallest budget with a "
            "feasible list is 6: use --budget 6 or more",
        ),
        (dict(budget=8, stages=0), "--stages 0"),
        (dict(budget=8, stages=4, constraint="loose"), "choose one of strict, sum, none"),
        (dict(budget=8, stages=4, shallow_stages=4), "--shallow-stages between 1 and 3"),
        (dict(budget=8, stages=4, shallow_stages=0, constraint="sum"), "1 <= k < 4"),
        (dict(budget=8, stages=1), "--constraint none"),
        (dict(budget=8.5, stages=4), "whole number"),
    ],
)
def test_construction_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(SpaceError) as info:
        SearchSpace(**kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_empty_space_is_allowed_but_checkable() -> None:
    space = SearchSpace(5, 4)
    assert len(space) == 0
    with pytest.raises(SpaceError) as info:
        space.check_nonempty()
    assert str(info.value) == (
        "no hierarchy of 4 stages sums to 5 under the strict constraint (k=2): the smallest budget with one is 6"
    )
    SearchSpace(6, 4).check_nonempty()


@pytest.mark.parametrize("constraint", CONSTRAINTS)
@pytest.mark.parametrize("stages", [2, 3, 4, 5, 6])
def test_smallest_feasible_budget(constraint: str, stages: int) -> None:
    ks = [None] if constraint == "none" else [None, *range(1, stages)]
    for k in ks:
        smallest = smallest_feasible_budget(stages, k, constraint)
        assert SearchSpace(smallest, stages, k, constraint).count() > 0
        for budget in range(stages, smallest):
            assert SearchSpace(budget, stages, k, constraint).count() == 0


def test_huge_space_is_refused_with_a_fix() -> None:
    space = SearchSpace(80, 8, constraint="none")
    assert space.count() > MAX_LISTS
    with pytest.raises(SpaceError, match="feasible lists; at most 200,000 can be searched: lower --budget or --stages"):
        space.lists()


@functools.cache
def _ways(parts: int, total: int, low: int, high: int) -> int:
    """Compositions of `total` into `parts` values in [low, high], by dynamic programming: the test's own count."""
    if parts == 0:
        return int(total == 0)
    return sum(_ways(parts - 1, total - v, low, high) for v in range(low, min(high, total) + 1))


def _reference_count(budget: int, stages: int, k: int, constraint: str) -> int:
    deep = stages - k
    if constraint == "none":
        return _ways(stages, budget, 1, budget)
    if constraint == "sum":
        return sum(_ways(k, s, 1, s) * _ways(deep, budget - s, 1, budget) for s in range(budget) if s < budget - s)
    return sum(  # strict: the largest shallow value is m, every deep one above it
        (_ways(k, s, 1, m) - _ways(k, s, 1, m - 1)) * _ways(deep, budget - s, m + 1, budget)
        for m in range(1, budget + 1)
        for s in range(k, budget + 1)
    )


@pytest.mark.parametrize("constraint", CONSTRAINTS)
@pytest.mark.parametrize("stages", [1, 2, 3, 4, 5, 6])
def test_count_matches_enumeration_and_dynamic_programming(constraint: str, stages: int) -> None:
    """The count (in closed form, independent of the budget) against enumeration for small budgets and against a
    dynamic program for larger ones, for every constraint, stage count and k."""
    ks = list(range(stages + 1)) if constraint == "none" else list(range(1, stages))
    for k in ks:
        for budget in range(1, 22 if stages < 6 else 17):
            space = SearchSpace(max(budget, stages), stages, k, constraint)
            assert space.count() == len(space.lists()), (budget, stages, k)
        for budget in (30, 47, 64) if stages < 6 else (30,):
            assert SearchSpace(budget, stages, k, constraint).count() == _reference_count(budget, stages, k, constraint)


def test_a_huge_budget_is_counted_at_once_and_refused_with_the_count() -> None:
    start = time.perf_counter()
    with pytest.raises(SpaceError, match=r"summing to 100000 .* has 2\.8e13 feasible lists; at most 200,000"):
        SearchSpace(100_000, 4).check_searchable()
    for constraint in CONSTRAINTS:
        assert SearchSpace(10**30, 6, constraint=constraint).count() > 10**100
    assert SearchSpace(10**30, 3, constraint="none").count() == (10**30 - 1) * (10**30 - 2) // 2
    assert time.perf_counter() - start < 2
    SearchSpace(16, 4).check_searchable()  # 61 lists
    with pytest.raises(SpaceError, match="the smallest budget with one is 6"):
        SearchSpace(5, 4).check_searchable()


def test_paper_table_rows() -> None:
    assert len(PAPER_HIERARCHIES) == 61
    assert ("ResNet18_r5", "Table VI", (1, 1, 2, 4)) in PAPER_HIERARCHIES
    assert {t for _, t, _ in PAPER_HIERARCHIES} == {
        "Table I",
        "Table II",
        "Table III",
        "Table IV",
        "Table V",
        "Table VI",
    }


def test_paper_baselines() -> None:
    # (1,1,2,4) sums to 8, so it belongs to the budget-8 space, not budget 16.
    assert paper_baselines(SearchSpace(16, 4)) == [(2, 3, 7, 4), (1, 2, 8, 5)]
    assert paper_baselines(SearchSpace(8, 4)) == [(1, 1, 2, 4)]
    assert paper_baselines(SearchSpace(6, 4)) == [(1, 1, 2, 2)]
    # Distinct, in table order: ResNet18 [2,2,2,2] (Table III) comes before ResNet18_r5.
    assert paper_baselines(SearchSpace(8, 4, constraint="none")) == [(2, 2, 2, 2), (1, 1, 2, 4)]
    assert paper_baselines(SearchSpace(8, 5)) == [(1, 1, 2, 2, 2)]
    assert paper_baselines(SearchSpace(7, 5, constraint="none")) == [(2, 2, 1, 1, 1)]
    assert paper_baselines(SearchSpace(30, 4)) == []


def test_space_is_hashable_and_frozen() -> None:
    space = SearchSpace(16, 4)
    assert space.shallow_stages == 2  # None is resolved, so equal spaces compare equal
    assert {space: 1}[SearchSpace(16, 4, 2)] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        space.budget = 8  # type: ignore[misc]
