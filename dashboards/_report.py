"""One self-contained HTML report of a study, and the same figures saved for optuna-dashboard: which figures the
report holds (ids, titles, axes), and `write_report`, which glues loading (_load), figures (_figures) and the page
(_render) together.

The report only reads the storage; the one write is optional: the figures saved as study system attributes for
optuna-dashboard (`save_plotly_graph_object`, stable ids, so a rerun replaces them). plotly.js is inlined once; the
page needs no network.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import plotly.graph_objects as go

from lwl.models import writable_file
from lwl.search import INTERMEDIATE_ATTR

from ._figures import (
    CostAxis,
    curves_figure,
    fmt_params,
    global_figure,
    hierarchy_figure,
    history_figure,
    importance_figure,
    memory_axis,
    pareto_figure,
    ranked_figure,
    time_seconds,
    unit_accuracy_figure,
)
from ._load import ReportData, ReportError, load_report_data, open_study
from ._render import render_html
from ._thesis import depth_figure, shallow_figure


def build_figures(data: ReportData) -> dict[str, go.Figure]:
    """Every figure of the report by its stable id (the importance and global ones only when they have data)."""
    s = data.settings
    batch = int(s["recipe"].get("batch_size", 128))
    complete = data.complete
    params_axis = CostAxis("parameters (network without auxiliary heads)", lambda r: r.params, fmt_params)
    time_axis = CostAxis("training time of the trial (wall_time, s)", time_seconds, lambda v: f"{v:.1f} s")
    mem_axis = memory_axis(complete, batch)
    figs: dict[str, go.Figure] = {
        "lwl-pareto-params": pareto_figure(data.rows, params_axis, "Validation accuracy vs parameters"),
        "lwl-pareto-memory": pareto_figure(
            data.rows,
            mem_axis,
            "Validation accuracy vs peak memory"
            if mem_axis.title.startswith("peak")
            else "Validation accuracy vs training memory (ESTIMATE: no peak measured on CPU)",
        ),
        "lwl-pareto-time": pareto_figure(data.rows, time_axis, "Validation accuracy vs training time"),
    }
    if "flops" in (s.get("objectives") or []):  # searched against FLOPs (--objectives): its front too
        flops_axis = CostAxis("forward FLOPs per image (multiply + add = 2)", lambda r: r.flops, fmt_params)
        figs["lwl-pareto-flops"] = pareto_figure(data.rows, flops_axis, "Validation accuracy vs FLOPs")
    if data.importances is not None:
        figs["lwl-importance"] = importance_figure(
            data.importances,
            f"Importance of {', '.join(data.param_names)}: PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator, "
            f"top 10 %), {len(complete)} complete trials"
            + ("; whiskers: 5-95 % over bootstrap resamples of the trials" if data.importance_spread else ""),
            data.importance_spread,
        )
    step_label = str(data.user_attrs.get(INTERMEDIATE_ATTR) or "step")
    step_axis = "epoch" if "epoch" in step_label else "unit" if "unit" in step_label else "step"
    figs["lwl-curves"] = curves_figure(
        data.rows, f"Intermediate values ({step_label}) of every trial; pruned trials grey, dashed", step_axis
    )
    figs["lwl-unit-acc"] = unit_accuracy_figure(
        data.rows, "Final accuracy of every unit's local classifier (pruned trials: at pruning)"
    )
    figs["lwl-hierarchy"] = hierarchy_figure(
        data.rows,
        data.param_names,
        int(s["budget"]) - int(s["stages"]) + 1,
        "Hierarchy lists of the complete trials, coloured by accuracy (paper baselines: 'yes' on their axis)",
    )
    figs["lwl-ranked"] = ranked_figure(data.rows, "Accuracy by hierarchy, best first (stars: the paper's lists)")
    figs["lwl-history"] = history_figure(data.rows, "Optimization history: objective per trial and best so far")
    if data.thesis is not None and data.thesis.shallow is not None:  # too few trials: words, no plot of noise
        figs["lwl-thesis-shallow"] = shallow_figure(data.rows, data.thesis)
        figs["lwl-thesis-depth"] = depth_figure(data.thesis)
    if any(data.global_groups.values()):
        figs["lwl-global"] = global_figure(
            data.global_groups, f"Layer-wise vs global training, per hierarchy (from {data.global_source})"
        )
    return figs


def save_dashboard_figures(study: optuna.Study, figures: dict[str, go.Figure]) -> list[str]:
    """Save the figures as the study's plotly graph objects for optuna-dashboard, under their stable ids.

    optuna-dashboard draws each in a half-width box 450 px high (`Plotly.react` with the figure's layout): saved
    sized to its box (autosize, no fixed width or height), a figure fits there instead of being cut off at the box's
    edges. Each figure is saved so and then given its own size back (no copy: copying a figure validates it, the
    template included, again)."""
    from optuna_dashboard import save_plotly_graph_object

    saved = []
    for fid, fig in figures.items():
        with _fitted(fig):
            saved.append(save_plotly_graph_object(study, fig, graph_object_id=fid))
    return saved


@contextlib.contextmanager
def _fitted(fig: go.Figure) -> Iterator[go.Figure]:
    """`fig` sized to the box it is drawn in while the block runs; its own size (and autosize) again after it."""
    size = {"autosize": fig.layout.autosize, "width": fig.layout.width, "height": fig.layout.height}
    fig.update_layout(autosize=True, width=None, height=None)
    try:
        yield fig
    finally:
        fig.update_layout(**size)


@dataclass
class ReportResult:
    path: Path
    figures: list[str]  # ids of the figures in the page
    saved: list[str]  # ids saved to the study for optuna-dashboard
    data: ReportData


def write_report(
    storage_url: str, study_name: str | None, out: str | Path | None = None, *, dashboard: bool = True
) -> ReportResult:
    """Read the study, write the HTML report, and (unless dashboard=False) save its figures to the study."""
    storage, study = open_study(storage_url, study_name)
    data = load_report_data(storage, study, storage_url)
    figures = build_figures(data)
    path = writable_file(Path(out) if out is not None else Path(f"{study.study_name}-report.html"), "--out")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(data, figures), encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ReportError(f"--out {path}: cannot write it ({reason}): choose a place you can write to") from None
    saved = save_dashboard_figures(study, figures) if dashboard else []
    return ReportResult(path, list(figures), saved, data)


__all__ = [
    "ReportResult",
    "build_figures",
    "save_dashboard_figures",
    "write_report",
]
