"""The report's thesis section: did accelerated downsampling help in this study? Rank correlations against values
computed by hand, the verdict's cases on studies built to show them, and a study with too few trials, where the thesis
says so and plots nothing (a real report's: tests/dashboards/test_report.py)."""

import itertools
import math

import numpy as np
import pytest

from lwl.dashboards._rows import TrialRow
from lwl.dashboards._thesis import MIN_TRIALS, shallow_figure, thesis, tick_format
from lwl.search import partial_spearman, rankdata, spearman, spearman_p


def test_spearman_matches_the_textbook_with_ties():
    assert list(rankdata([10, 20, 20, 5])) == [2, 3.5, 3.5, 1]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.9486832980505138)  # scipy.stats.spearmanr


def test_ranks_and_spearman_by_hand():
    assert list(rankdata([3.0, 1.0, 2.0, 2.0])) == [4.0, 1.0, 2.5, 2.5]  # ties share their mean rank
    x, y = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    # no ties: rho = 1 - 6 sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 4 / 120 = 0.8
    assert spearman(x, y) == pytest.approx(0.8)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    # the Monte Carlo p-value against the exact permutation distribution of rho (all 120 orders of y)
    extreme = sum(abs(spearman(x, list(order))) >= 0.8 - 1e-12 for order in itertools.permutations(y))
    p = spearman_p(x, y, np.random.default_rng(0), permutations=20_000)
    assert p == pytest.approx(extreme / 120, abs=0.01)
    # partial correlation: rho_xy.z = (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2))
    z = [5, 3, 4, 1, 2]
    rxy, rxz, ryz = spearman(x, y), spearman(x, z), spearman(y, z)
    expected = (rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2))
    assert partial_spearman(x, y, z) == pytest.approx(expected)


def _row(number, hierarchy, value, params, paper=None):
    return TrialRow(
        number=number,
        state="complete",
        value=value,
        hierarchy=hierarchy,
        label="[" + ",".join(map(str, hierarchy)) + "]",
        params=params,
        paper=paper,
        unit_acc=[0.5 + 0.01 * i for i in range(sum(hierarchy))],
    )


def _lists(n=12):
    """n distinct 4-stage lists of budget 12 with 2..7 shallow units."""
    out = []
    for s in range(2, 8):
        for a in range(1, s):
            rest = 12 - s
            out.append((a, s - a, rest // 2, rest - rest // 2))
    return out[:n]


def test_fewer_shallow_units_winning_at_equal_parameters_holds_the_thesis():
    rows = [
        _row(i, h, 0.99 - 0.01 * sum(h[:2]) + 0.001 * (i % 3), 1000 + 7 * ((i * 5) % 11))
        for i, h in enumerate(_lists())
    ]
    t = thesis(rows, 2)
    assert t.shallow is not None and t.shallow.rho < -0.8 and t.shallow.p_value < 0.01 and t.shallow.trials == 12
    assert t.at_equal_params is not None and t.at_equal_params.rho < 0 and t.at_equal_params.p_value < 0.05
    assert t.verdict.startswith("accelerated downsampling helped here") and "holds at equal parameters" in t.verdict


def test_the_shallow_figures_ticks_are_distinct_where_accuracies_lie_close():
    """Accuracies within 2 points: whole-percent ticks would read '97%, 98%, 98%, 98%'; each tick differs."""
    rows = [_row(i, h, 0.97 + 0.02 * i / 11, 1000 + i) for i, h in enumerate(_lists())]
    fig = shallow_figure(rows, thesis(rows, 2))
    fmt = fig.layout.yaxis.tickformat
    ticks = [0.97 + 0.005 * j for j in range(5)]  # plotly's step over this span
    assert fmt == ".1%" and len({format(v, fmt) for v in ticks}) == len(ticks)
    assert tick_format([0.1, 0.9]) == ".0%" and tick_format([0.981, 0.984]) == ".2%" and tick_format([]) == ".0%"


def test_a_gain_that_is_only_capacity_is_called_so():
    # three parameter levels, fewer shallow units at the higher ones; accuracy follows parameters, and at equal
    # parameters more shallow units do slightly better: the raw correlation says "helped", the partial one flips
    rows = []
    for i, h in enumerate(_lists()):
        shallow = sum(h[:2])
        level = 2 if shallow <= 3 else 1 if shallow <= 5 else 0
        rows.append(_row(i, h, 0.5 + 0.1 * level + 0.004 * shallow, 1000 + 1000 * level))
    t = thesis(rows, 2)
    assert t.shallow.rho < 0 and t.shallow.p_value < 0.05
    assert t.at_equal_params.rho > 0 and t.at_equal_params.p_value < 0.05
    assert "the sign flips" in t.verdict and "capacity" in t.verdict


def test_unrelated_accuracies_give_no_evidence_either_way():
    rng = np.random.default_rng(3)
    rows = [_row(i, h, float(rng.uniform(0.9, 0.95)), int(rng.integers(1000, 2000))) for i, h in enumerate(_lists())]
    t = thesis(rows, 2)
    assert t.shallow.p_value >= 0.05 and t.verdict.startswith("no evidence either way from 12 trials")


def test_too_few_trials_are_said_and_not_plotted():
    """(A real study's report says so too: tests/dashboards/test_report.py, test_a_real_tiny_search_reports.)"""
    rows = [_row(i, h, 0.9 + 0.01 * i, 1000) for i, h in enumerate(_lists(MIN_TRIALS - 1))]
    t = thesis(rows, 2)
    assert t.shallow is None and t.at_equal_params is None and t.verdict.startswith("too few trials to tell")


def test_the_best_worst_and_paper_curves_are_the_trials_they_name():
    rows = [_row(i, h, 0.9 + 0.001 * i, 1000 + i) for i, h in enumerate(_lists())]
    rows.append(_row(99, (1, 1, 2, 8), 0.85, 5000, paper="ResNet18_r5"))
    t = thesis(rows, 2)
    assert t.curves["best"].number == 11 and t.curves["worst"].number == 99
    assert "paper: ResNet18_r5" not in t.curves  # the worst list is the paper's here: shown once, as the worst
