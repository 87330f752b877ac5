"""The report's thesis section, its numbers and its two figures: the paper's thesis tested on the user's own study.
Did accelerated downsampling (fewer units in the shallow stages) help here, and is that more than capacity?

Over the study's complete trials: Spearman's rank correlation of the shallow-unit count (d1 + ... + dk, k the
study's shallow stages) with validation accuracy, and the same with the parameter count held fixed (a partial rank
correlation: fewer shallow units means more deep, wide units, hence more parameters), each with a permutation
p-value and the number of trials it rests on; the per-unit accuracy by depth of the best, the worst and the paper's
lists (the paper's Figures 4-5 are per-layer curves); and a verdict in words that says when there are too few
trials to tell, instead of reading noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

from lwl.search import partial_p, partial_spearman, spearman, spearman_p

from ._rows import TrialRow

MIN_TRIALS = 8  # complete trials of different lists before any correlation is computed
MIN_SHALLOW_COUNTS = 3  # distinct shallow-unit counts among them
ALPHA = 0.05
PERMUTATIONS = 2000  # per p-value; seeded, so the report is the same every time it is written
SEED = 0


@dataclass
class Correlation:
    rho: float
    p_value: float
    trials: int

    def text(self) -> str:
        return f"ρ = {self.rho:+.2f}, permutation p = {self.p_value:.3g}, {self.trials} trials"


@dataclass
class Thesis:
    """What the report's thesis section shows."""

    shallow_stages: int  # k
    trials: int  # complete trials of distinct lists it rests on
    shallow: Correlation | None  # shallow-unit count vs accuracy; None with too few trials
    at_equal_params: Correlation | None  # the same, parameters held fixed
    verdict: str
    curves: dict[str, TrialRow] = field(default_factory=dict)  # "best" / "worst" / the paper's name -> its trial


def _distinct(rows: Sequence[TrialRow]) -> list[TrialRow]:
    """One complete trial per list (the best, should a list have been trained twice)."""
    best: dict[tuple[int, ...], TrialRow] = {}
    for r in rows:
        if r.value is not None and math.isfinite(r.value) and r.hierarchy:
            if r.hierarchy not in best or r.value > (best[r.hierarchy].value or -math.inf):
                best[r.hierarchy] = r
    return sorted(best.values(), key=lambda r: r.number)


def thesis(rows: Sequence[TrialRow], shallow_stages: int) -> Thesis:
    done = _distinct(rows)
    k = shallow_stages
    curves: dict[str, TrialRow] = {}
    if done:
        ranked = sorted(done, key=lambda r: (-(r.value or 0.0), r.params or 0, r.number))
        curves["best"] = ranked[0]
        if len(ranked) > 1:
            curves["worst"] = ranked[-1]
        for r in done:
            if r.paper and r.number not in {c.number for c in curves.values()}:
                curves[f"paper: {r.paper}"] = r
    shallow = [sum(r.hierarchy[:k]) for r in done]
    if k < 1:
        return Thesis(k, len(done), None, None, "the study has no shallow stages (--shallow-stages 0): no test", curves)
    if len(done) < MIN_TRIALS or len(set(shallow)) < MIN_SHALLOW_COUNTS:
        verdict = (
            f"too few trials to tell: {len(done)} complete list{'s' if len(done) != 1 else ''} with "
            f"{len(set(shallow))} different shallow-unit count{'s' if len(set(shallow)) != 1 else ''}; the test "
            f"needs at least {MIN_TRIALS} lists and {MIN_SHALLOW_COUNTS} counts (run lwl-search with more --trials), "
            "so nothing is concluded and nothing is plotted"
        )
        return Thesis(k, len(done), None, None, verdict, curves)
    rng = np.random.default_rng(SEED)
    acc = [float(r.value or 0.0) for r in done]
    params = [float(r.params or 0) for r in done]
    corr = Correlation(spearman(shallow, acc), spearman_p(shallow, acc, rng, PERMUTATIONS), len(done))
    partial = None
    if len(set(params)) > 2 and math.isfinite(partial_spearman(shallow, acc, params)):
        partial = Correlation(
            partial_spearman(shallow, acc, params), partial_p(shallow, acc, params, rng, PERMUTATIONS), len(done)
        )
    return Thesis(k, len(done), corr, partial, _verdict(corr, partial, k), curves)


def _verdict(corr: Correlation, partial: Correlation | None, k: int) -> str:
    where = f"the first {k} stage{'s' if k != 1 else ''}"
    if not math.isfinite(corr.rho):
        return "every complete list has the same accuracy or the same shallow-unit count: nothing to rank"
    if corr.p_value >= ALPHA:
        first = (
            f"no evidence either way from {corr.trials} trials: the rank correlation of the units in {where} with "
            f"accuracy is {corr.text().replace(', ', ' (', 1)})"
        )
    elif corr.rho < 0:
        first = f"accelerated downsampling helped here: lists with fewer units in {where} ranked higher, {corr.text()}"
    else:
        first = (
            f"the opposite of the paper's finding here: lists with more units in {where} ranked higher ({corr.text()})"
        )
    if partial is None:
        return first + "; the parameter count does not vary enough to hold it fixed"
    if partial.p_value >= ALPHA:
        second = f"with the parameter count held fixed there is no evidence either way ({partial.text()})"
    elif (partial.rho < 0) == (corr.rho < 0) and corr.p_value < ALPHA:
        second = f"and it holds at equal parameters ({partial.text()}): more than capacity"
    elif corr.p_value < ALPHA:
        second = (
            f"but with the parameter count held fixed the sign flips ({partial.text()}): the gain is capacity (more "
            "deep, wide units), not the schedule itself"
        )
    else:
        direction = "fewer" if partial.rho < 0 else "more"
        second = f"at equal parameters, lists with {direction} shallow units ranked higher ({partial.text()})"
    return f"{first}; {second}"


def tick_format(values: Sequence[float | None]) -> str:
    """A percentage tick format with as many decimals as the accuracies' span needs for distinct ticks: plotly puts
    about five ticks on an axis, so a span of 2 points at '.0%' labels them '97%, 98%, 98%, 98%, 99%'."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    span = max(known) - min(known) if known else 1.0
    return ".0%" if span >= 0.1 else ".1%" if span >= 0.01 else ".2%"


def shallow_figure(rows: Sequence[TrialRow], t: Thesis) -> go.Figure:
    """Shallow-unit count against accuracy, one point per complete list, coloured by parameters."""
    done = _distinct(rows)
    k = t.shallow_stages
    fig = go.Figure(
        go.Scatter(
            x=[sum(r.hierarchy[:k]) for r in done],
            y=[r.value for r in done],
            mode="markers",
            marker=dict(
                size=10,
                color=[float(r.params or 0) / 1e6 for r in done],
                colorscale="Viridis",
                colorbar=dict(title="params (M)"),
                line=dict(width=1, color="#333"),
            ),
            text=[f"trial {r.number} {r.label}" + (f" ({r.paper})" if r.paper else "") for r in done],
            hovertemplate="%{text}<br>shallow units %{x}<br>accuracy %{y:.2%}<extra></extra>",
        )
    )
    parts = [f"shallow units vs accuracy: {t.shallow.text()}" if t.shallow else ""]
    if t.at_equal_params is not None:
        parts.append(f"at equal parameters {t.at_equal_params.text()}")
    fig.update_layout(
        title=dict(text="; ".join(p for p in parts if p), x=0.01, xanchor="left", font=dict(size=14)),
        height=430,
        template="plotly_white",
        margin=dict(l=70, r=30, t=70, b=60),
    )
    fig.update_xaxes(title_text=f"units in the first {k} stages (d1 + ... + d{k})", dtick=1)
    fig.update_yaxes(title_text="validation accuracy", tickformat=tick_format([r.value for r in done]))
    return fig


CURVE_COLORS = {"best": "#d62728", "worst": "#7f7f7f"}
PAPER_COLOR = "#ff7f0e"


def depth_figure(t: Thesis) -> go.Figure:
    """Per-unit accuracy by depth of the best, the worst and the paper's lists; dotted: each list's downsamplings."""
    fig = go.Figure()
    units = 0
    for name, r in t.curves.items():
        if not r.unit_acc:
            continue
        units = max(units, len(r.unit_acc))
        color = CURVE_COLORS.get(name, PAPER_COLOR)
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(r.unit_acc) + 1)),
                y=list(r.unit_acc),
                mode="lines+markers",
                name=f"{name}: {r.label} (trial {r.number})",
                line=dict(color=color, width=2, dash="dash" if name.startswith("paper") else "solid"),
                hovertemplate=f"{name} {r.label}<br>unit %{{x}}: %{{y:.2%}}<extra></extra>",
            )
        )
    fig.update_layout(
        title=dict(
            text="Accuracy of every unit's local classifier by depth: the best, the worst and the paper's lists",
            x=0.01,
            xanchor="left",
            font=dict(size=14),
        ),
        height=430,
        template="plotly_white",
        margin=dict(l=70, r=30, t=70, b=60),
        legend=dict(orientation="h", y=-0.2),
    )
    fig.update_xaxes(title_text="unit (depth)", dtick=1, range=[0.5, units + 0.5])
    accs = [a for r in t.curves.values() for a in r.unit_acc]
    fig.update_yaxes(title_text="accuracy", tickformat=tick_format(accs))
    return fig


__all__ = ["MIN_TRIALS", "Correlation", "Thesis", "depth_figure", "shallow_figure", "thesis", "tick_format"]
