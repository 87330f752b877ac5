"""Plotly figures of one study, built from plain per-trial rows (`TrialRow`); nothing here touches the storage.

Over 400 lines (about 520): one short function per figure of the report, ten of them; none is read apart from
the others, and a split by figure would only scatter the shared styling helpers.

Every figure gets a stable id (``FIGURE_IDS``): the report uses it as the HTML id of the figure's div and as the
``graph_object_id`` under which the figure is saved for optuna-dashboard, so a rerun replaces rather than adds.
Data go into the figures as Python lists (never numpy arrays), so the embedded JSON stays plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from lwl.models import percent
from lwl.search import pareto_indices

from ._rows import TrialRow, memory_estimate

# id -> section title. Order is the order of the report.
FIGURE_IDS: dict[str, str] = {
    "lwl-pareto-params": "Accuracy vs parameters",
    "lwl-pareto-memory": "Accuracy vs peak memory",
    "lwl-pareto-time": "Accuracy vs training time",
    "lwl-pareto-flops": "Accuracy vs FLOPs (a study searched against FLOPs)",
    "lwl-importance": "Importance of d1..dn",
    "lwl-curves": "Intermediate values per trial",
    "lwl-unit-acc": "Final accuracy of every unit",
    "lwl-hierarchy": "Accuracy by hierarchy (parallel coordinates)",
    "lwl-ranked": "Accuracy by hierarchy (ranked)",
    "lwl-history": "Optimization history",
    "lwl-thesis-shallow": "Shallow units vs accuracy (the paper's thesis)",
    "lwl-thesis-depth": "Per-unit accuracy by depth: best, worst, paper's lists",
    "lwl-global": "Layer-wise vs global",
}

COMPLETE_COLOR = "#1f77b4"
BEST_COLOR = "#d62728"
PRUNED_COLOR = "#9e9e9e"
FRONT_COLOR = "#d62728"
PAPER_COLOR = "#ff7f0e"
FONT = dict(family="Helvetica, Arial, sans-serif", size=13)


# --------------------------------------------------------------------------------------------- helpers


def _pct(v: float | None) -> str:
    return percent(v, suffix=" %")


def _layout(fig: go.Figure, title: str, *, height: int = 430, **kwargs: Any) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left", font=dict(size=15)),
        height=height,
        autosize=True,  # the width of the page (the report's figures are drawn responsive)
        template="plotly_white",
        font=FONT,
        margin=dict(l=70, r=30, t=70, b=60),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
        **kwargs,
    )
    return fig


def _hover(row: TrialRow) -> str:
    paper = f"<br>paper: {row.paper}" if row.paper else ""
    return f"trial {row.number} {row.label}<br>{row.state}, accuracy {_pct(row.last_value)}{paper}"


# Along a front (cost and accuracy both rising) the region above-left of a point is empty (a point there would
# dominate it); alternating above-left / below-right keeps neighbouring labels on opposite sides.
_TEXT_POSITIONS = ("top left", "bottom right")


# --------------------------------------------------------------------------------------------- Pareto


@dataclass(frozen=True)
class CostAxis:
    title: str  # axis title (with unit)
    cost: Callable[[TrialRow], float | None]
    fmt: Callable[[float], str]
    log: bool = False


def fmt_params(v: float) -> str:
    return f"{v / 1e6:.3g} M" if v >= 1e5 else f"{v / 1e3:.3g} k"


def fmt_bytes(v: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if v >= size:
            return f"{v / size:.3g} {unit}"
    return f"{v:.0f} B"


def memory_axis(rows: Sequence[TrialRow], batch_size: int) -> CostAxis:
    """Measured peak memory when every complete trial has it (CUDA), else the analytic estimate for all."""
    measured = [r.peak_memory for r in rows]
    if rows and all(m is not None for m in measured):
        return CostAxis("peak memory, measured (CUDA max allocated)", lambda r: r.peak_memory, fmt_bytes)
    some = sum(m is not None for m in measured)
    why = f"; {some} of {len(rows)} trials measured, not mixed in" if some else ""
    return CostAxis(
        f"ESTIMATED training memory: activations × batch {batch_size} × 4 B + params with heads × 16 B "
        f"(no peak measured on CPU{why})",
        lambda r: memory_estimate(r, batch_size),
        fmt_bytes,
    )


def time_seconds(row: TrialRow) -> float | None:
    return row.wall_time


def pareto_figure(rows: Sequence[TrialRow], axis: CostAxis, title: str) -> go.Figure:
    """All complete trials as points; the non-dominated front as a highlighted, labelled staircase."""
    done = [r for r in rows if r.value is not None and axis.cost(r) is not None]
    done.sort(key=lambda r: bool(r.paper))  # the legend shows the first point's symbol: a circle
    costs = [float(axis.cost(r)) for r in done]  # type: ignore[arg-type]
    accs = [float(r.value) for r in done]  # type: ignore[arg-type]
    front = pareto_indices(list(zip(costs, accs)))
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=costs,
            y=accs,
            mode="markers",
            name=f"complete trials ({len(done)})",
            marker=dict(
                size=9,
                color=COMPLETE_COLOR,
                symbol=["star" if r.paper else "circle" for r in done],
                line=dict(width=1, color="white"),
            ),
            text=[r.label for r in done],
            customdata=[[r.number, axis.fmt(c), r.paper or ""] for r, c in zip(done, costs)],
            hovertemplate="trial %{customdata[0]} %{text}<br>accuracy %{y:.2%}<br>cost %{customdata[1]}"
            "<br>%{customdata[2]}<extra></extra>",
            meta=dict(role="points"),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[costs[i] for i in front],
            y=[accs[i] for i in front],
            mode="lines+markers+text",
            name=f"Pareto front ({len(front)})",
            line=dict(color=FRONT_COLOR, width=2, shape="hv"),
            marker=dict(
                size=11,
                color=FRONT_COLOR,
                symbol=["star" if done[i].paper else "circle" for i in front],
                line=dict(width=1, color="white"),
            ),
            text=[done[i].label for i in front],
            textposition=[_TEXT_POSITIONS[k % len(_TEXT_POSITIONS)] for k in range(len(front))],
            textfont=dict(size=12, color="#7f0000"),
            cliponaxis=False,
            customdata=[[done[i].number, axis.fmt(costs[i]), done[i].paper or ""] for i in front],
            hovertemplate="Pareto: trial %{customdata[0]} %{text}<br>accuracy %{y:.2%}<br>cost %{customdata[1]}"
            "<br>%{customdata[2]}<extra></extra>",
            meta=dict(role="front"),
        )
    )
    if any(r.paper for r in done):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name="paper baseline (star)",
                marker=dict(symbol="star", size=10, color="#555"),
            )
        )
    _layout(fig, title)
    fig.update_xaxes(title_text=axis.title, type="log" if axis.log else "linear", range=_padded(costs, 0.07))
    fig.update_yaxes(title_text="validation accuracy", tickformat=".1%", range=_padded(accs, 0.12))
    return fig


def _padded(values: Sequence[float], frac: float) -> list[float] | None:
    """An axis range with room around the data, so markers and front labels are not cut at the edges."""
    if not values:
        return None
    lo, hi = min(values), max(values)
    pad = (hi - lo) * frac if hi > lo else (abs(hi) * 0.05 or 1.0)
    return [lo - pad, hi + pad]


# --------------------------------------------------------------------------------------------- importance


def importance_figure(
    importances: dict[str, float], title: str, spread: dict[str, tuple[float, float]] | None = None
) -> go.Figure:
    """Horizontal bars of the importance of each parameter; with `spread` (name -> (low, high) over bootstrap
    resamples of the trials) whiskers and the interval beside each value."""
    names = sorted(importances, key=lambda k: importances[k])  # plotly draws bottom-up: most important on top
    x = [importances[n] for n in names]
    bar: dict[str, Any] = {}
    text = [f"{v:.2f}" for v in x]
    if spread:
        low = [spread.get(n, (v, v))[0] for n, v in zip(names, x)]
        high = [spread.get(n, (v, v))[1] for n, v in zip(names, x)]
        bar["error_x"] = dict(
            type="data",
            symmetric=False,
            array=[max(h - v, 0.0) for h, v in zip(high, x)],
            arrayminus=[max(v - lo, 0.0) for lo, v in zip(low, x)],
            color="#444",
            thickness=1.5,
            width=6,
        )
        text = [f"{v:.2f} ({lo:.2f}-{h:.2f})" for v, lo, h in zip(x, low, high)]
        bar["customdata"] = [[lo, h] for lo, h in zip(low, high)]
        bar["hovertemplate"] = "%{y}: %{x:.3f} (resampled: %{customdata[0]:.2f}-%{customdata[1]:.2f})<extra></extra>"
    fig = go.Figure(
        go.Bar(
            x=x,
            y=names,
            orientation="h",
            marker_color=COMPLETE_COLOR,
            text=text,
            textposition="outside",
            cliponaxis=False,
            **{"hovertemplate": "%{y}: %{x:.3f}<extra></extra>", **bar},
        )
    )
    _layout(fig, title, height=max(260, 70 + 45 * len(names)))
    fig.update_xaxes(title_text="normalised importance (sums to 1)", range=[0, 1.3 if spread else 1.08])
    fig.update_yaxes(title_text="units in stage")
    return fig


# --------------------------------------------------------------------------------------------- curves


def _trial_style(row: TrialRow, best: int | None) -> dict[str, Any]:
    if row.state == "pruned":
        return dict(
            line=dict(color=PRUNED_COLOR, dash="dash", width=1.5),
            opacity=0.9,
            legendgroup="pruned",
            name="pruned trials",
        )
    if row.number == best:
        return dict(
            line=dict(color=BEST_COLOR, width=3.5),
            opacity=1.0,
            legendgroup="best",
            name=f"best: trial {row.number} {row.label}",
        )
    return dict(
        line=dict(color=COMPLETE_COLOR, width=1.5), opacity=0.55, legendgroup="complete", name="complete trials"
    )


def _best_number(rows: Sequence[TrialRow]) -> int | None:
    done = [r for r in rows if r.value is not None]
    return max(done, key=lambda r: r.value).number if done else None  # type: ignore[arg-type,return-value]


def _ordered(rows: Sequence[TrialRow], best: int | None) -> list[TrialRow]:
    """Pruned first, then complete, the best last, so the highlighted line is drawn on top."""
    rank = {"pruned": 0, "complete": 1}
    return sorted(rows, key=lambda r: (r.number == best, rank.get(r.state, 0), r.number))


def curves_figure(rows: Sequence[TrialRow], title: str, step_label: str) -> go.Figure:
    """The intermediate values every trial reported (what the pruner judged), pruned ones grey and dashed."""
    best = _best_number(rows)
    fig = go.Figure()
    shown: set[str] = set()
    for r in _ordered(rows, best):
        if not r.steps:
            continue
        style = _trial_style(r, best)
        fig.add_trace(
            go.Scatter(
                x=list(r.steps),
                y=list(r.values),
                mode="lines+markers",
                marker=dict(size=5),
                showlegend=style["legendgroup"] not in shown,
                hovertemplate=_hover(r) + "<br>step %{x}: %{y:.2%}<extra></extra>",
                meta=dict(trial=r.number, state=r.state),
                **style,
            )
        )
        shown.add(style["legendgroup"])
    _layout(fig, title)
    fig.update_xaxes(title_text=step_label, dtick=1)
    fig.update_yaxes(title_text="accuracy", tickformat=".0%")
    return fig


def unit_accuracy_figure(rows: Sequence[TrialRow], title: str) -> go.Figure:
    """Unit index -> accuracy of its local classifier at the end (or at pruning) of every trial."""
    best = _best_number(rows)
    fig = go.Figure()
    shown: set[str] = set()
    units = 0
    for r in _ordered(rows, best):
        if not r.unit_acc:
            continue
        units = max(units, len(r.unit_acc))
        style = _trial_style(r, best)
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(r.unit_acc) + 1)),
                y=list(r.unit_acc),
                mode="lines+markers",
                marker=dict(size=5),
                showlegend=style["legendgroup"] not in shown,
                hovertemplate=_hover(r) + "<br>unit %{x}: %{y:.2%}<extra></extra>",
                meta=dict(trial=r.number, state=r.state),
                **style,
            )
        )
        shown.add(style["legendgroup"])
        if r.number == best:  # the best list's stage boundaries, for reading the curve
            edge = 0
            for d in r.hierarchy[:-1]:
                edge += d
                fig.add_vline(x=edge + 0.5, line=dict(color=BEST_COLOR, width=1, dash="dot"), opacity=0.5)
    _layout(fig, title)
    fig.update_xaxes(title_text="unit (dotted: the best list's downsamplings)", dtick=1, range=[0.5, units + 0.5])
    fig.update_yaxes(title_text="accuracy of the unit's local classifier", tickformat=".0%")
    return fig


# --------------------------------------------------------------------------------------------- hierarchy


def hierarchy_figure(rows: Sequence[TrialRow], names: Sequence[str], high: int, title: str) -> go.Figure:
    """Parallel coordinates d1..dn, 'paper baseline' (0/1) and accuracy, coloured by accuracy."""
    done = [r for r in rows if r.value is not None]
    accs = [float(r.value) for r in done]  # type: ignore[arg-type]
    dims = [
        dict(label=n, values=[r.hierarchy[i] for r in done], range=[1, high], tickvals=list(range(1, high + 1)))
        for i, n in enumerate(names)
    ]
    dims.append(
        dict(
            label="paper baseline",
            values=[1 if r.paper else 0 for r in done],
            range=[-0.1, 1.1],
            tickvals=[0, 1],
            ticktext=["no", "yes"],
        )
    )
    lo, hi = (min(accs), max(accs)) if accs else (0.0, 1.0)
    dims.append(dict(label="accuracy", values=accs, range=[lo, hi if hi > lo else lo + 1e-3], tickformat=".1%"))
    fig = go.Figure(
        go.Parcoords(
            line=dict(
                color=accs,
                colorscale="Viridis",
                showscale=True,
                cmin=lo,
                cmax=hi,
                colorbar=dict(title=dict(text="accuracy"), tickformat=".1%"),
            ),
            dimensions=dims,
            labelangle=0,
            labelside="top",
        )
    )
    _layout(fig, title, height=420)
    fig.update_layout(margin=dict(l=60, r=60, t=110, b=40))
    return fig


def ranked_figure(rows: Sequence[TrialRow], title: str, k: int = 40) -> go.Figure:
    """The best k complete lists by accuracy, the paper's baselines as labelled stars."""
    done = sorted((r for r in rows if r.value is not None), key=lambda r: -r.value)[:k]  # type: ignore[operator]
    x = [f"#{r.number} {r.label}" for r in done]
    fig = go.Figure()
    for paper in (False, True):
        pick = [(r, xi) for r, xi in zip(done, x) if bool(r.paper) == paper]
        if not pick:
            continue
        fig.add_trace(
            go.Scatter(
                x=[xi for _, xi in pick],
                y=[r.value for r, _ in pick],
                mode="markers",
                name="paper baseline" if paper else "complete trials",
                marker=dict(
                    size=15 if paper else 9,
                    symbol="star" if paper else "circle",
                    color=PAPER_COLOR if paper else COMPLETE_COLOR,
                    line=dict(width=1, color="white"),
                ),
                customdata=[r.paper or "" for r, _ in pick],
                hovertemplate="%{x}<br>accuracy %{y:.2%}<br>%{customdata}<extra></extra>",
            )
        )
    for r, xi in zip(done, x):
        if r.paper:
            fig.add_annotation(
                x=xi,
                y=r.value,
                text=r.paper,
                showarrow=True,
                arrowhead=0,
                ax=0,
                ay=-28,
                font=dict(size=11, color=PAPER_COLOR),
            )
    _layout(fig, title, height=440)
    fig.update_xaxes(
        title_text="trial and hierarchy, best first",
        tickangle=-45,
        type="category",
        categoryorder="array",
        categoryarray=x,
    )
    fig.update_yaxes(title_text="validation accuracy", tickformat=".1%")
    fig.update_layout(margin=dict(l=70, r=30, t=70, b=120))
    return fig


# --------------------------------------------------------------------------------------------- history


def history_figure(rows: Sequence[TrialRow], title: str) -> go.Figure:
    done = sorted((r for r in rows if r.value is not None), key=lambda r: r.number)
    pruned = sorted((r for r in rows if r.state == "pruned" and r.values), key=lambda r: r.number)
    fig = go.Figure()
    for paper in (False, True):
        pick = [r for r in done if bool(r.paper) == paper]
        if pick:
            fig.add_trace(
                go.Scatter(
                    x=[r.number for r in pick],
                    y=[r.value for r in pick],
                    mode="markers",
                    name="complete: paper baseline" if paper else "complete: objective",
                    marker=dict(
                        size=13 if paper else 9,
                        color=PAPER_COLOR if paper else COMPLETE_COLOR,
                        symbol="star" if paper else "circle",
                    ),
                    text=[r.label + (f" ({r.paper})" if r.paper else "") for r in pick],
                    hovertemplate="trial %{x} %{text}<br>%{y:.2%}<extra></extra>",
                )
            )
    if pruned:
        fig.add_trace(
            go.Scatter(
                x=[r.number for r in pruned],
                y=[r.values[-1] for r in pruned],
                mode="markers",
                name="pruned: last reported value",
                marker=dict(size=9, symbol="x", color=PRUNED_COLOR),
                text=[r.label for r in pruned],
                hovertemplate="trial %{x} %{text} (pruned)<br>%{y:.2%}<extra></extra>",
            )
        )
    best, xs, ys = -math.inf, [], []
    for r in done:
        best = max(best, float(r.value))  # type: ignore[arg-type]
        xs.append(r.number)
        ys.append(best)
    last = max([r.number for r in rows], default=None)
    if xs and last is not None and last > xs[-1]:
        xs.append(last)
        ys.append(best)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="best so far", line=dict(color=BEST_COLOR, shape="hv")))
    _layout(fig, title)
    fig.update_xaxes(title_text="trial number")
    fig.update_yaxes(title_text="validation accuracy", tickformat=".1%")
    return fig


# --------------------------------------------------------------------------------------------- global


def global_figure(groups: dict[str, dict[str, float]], title: str) -> go.Figure:
    """Grouped bars: one group per hierarchy label, one bar per training (group name -> {label: accuracy})."""
    labels = sorted(
        {h for accs in groups.values() for h in accs}, key=lambda h: -max(accs.get(h, -1.0) for accs in groups.values())
    )
    fig = go.Figure()
    colors = [COMPLETE_COLOR, PAPER_COLOR, "#2ca02c", "#9467bd", "#8c564b"]
    for i, (name, accs) in enumerate(groups.items()):
        fig.add_trace(
            go.Bar(
                x=labels,
                y=[accs.get(h) for h in labels],
                name=name,
                marker_color=colors[i % len(colors)],
                text=[_pct(accs.get(h)) if h in accs else "" for h in labels],
                textposition="outside",
                hovertemplate=name + " %{x}: %{y:.2%}<extra></extra>",
            )
        )
    _layout(fig, title, barmode="group")
    values = [v for accs in groups.values() for v in accs.values()]
    hi = max(values) if values else 1.0
    fig.update_xaxes(title_text="hierarchy", type="category")
    # Bars start at 0 (a bar's length is its value); the labels above them carry the differences.
    fig.update_yaxes(title_text="best validation accuracy", tickformat=".0%", range=[0.0, max(hi, 0.01) * 1.12])
    return fig


__all__ = [
    "FIGURE_IDS",
    "CostAxis",
    "TrialRow",
    "curves_figure",
    "fmt_bytes",
    "fmt_params",
    "global_figure",
    "hierarchy_figure",
    "history_figure",
    "importance_figure",
    "memory_axis",
    "memory_estimate",
    "pareto_figure",
    "ranked_figure",
    "time_seconds",
    "unit_accuracy_figure",
]
