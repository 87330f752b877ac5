"""One self-contained HTML report of a study, and the same figures saved for optuna-dashboard.

The report only reads the storage (through lwl.search's helpers); the one write is optional: the figures saved as
study system attributes for optuna-dashboard (`save_plotly_graph_object`, stable ids, so a rerun replaces them).
plotly.js is inlined once; the page needs no network.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import shlex
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go
import plotly.offline
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from lwl.models import LwlError
from lwl.search import StorageError, dashboard_command, mask_url, open_storage, top_trials
from lwl.search._storage import load_existing_study

from ._figures import (
    CostAxis,
    TrialRow,
    _fmt_params,
    curves_figure,
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

SETTINGS_ATTR = "lwl:settings"
DERIVED_ATTR = "lwl:derived_from"  # lwl.search's 2-objective Pareto study in the same storage
MIN_IMPORTANCE_TRIALS = 10
TOP_K = 10
STATE_NAMES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
               TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}


class ReportError(LwlError, ValueError):
    """A study the report cannot describe (not made by lwl-search, or without a complete trial); one line."""


# --------------------------------------------------------------------------------------------- loading


def _check_reachable(url: str) -> None:
    """A report never creates a storage: a missing SQLite or journal file is an error, not an empty study."""
    path: str | None = None
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path in ("", ":memory:"):
            raise StorageError(f"storage {mask_url(url)!r} is an in-memory database: it holds no study")
    elif url.startswith("journal:") or ("://" not in url and url.endswith((".log", ".journal", ".jsonl"))):
        path = url.removeprefix("journal:")
    if path is not None and not Path(path).is_file():
        raise StorageError(f"storage {mask_url(url)!r}: no such file {path!r}: check the path (lwl-search creates it)")


def open_study(storage_url: str, study_name: str | None) -> tuple[BaseStorage, optuna.Study]:
    """Open an existing storage and study, or raise a one-line StorageError; never creates either."""
    _check_reachable(storage_url)
    storage = open_storage(storage_url, heartbeat=False)
    if study_name is None:  # the storage's one search study (derived Pareto studies do not count)
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
                 if DERIVED_ATTR not in s.user_attrs]
        if len(names) != 1:
            listed = ", ".join(names) if names else "none"
            raise StorageError(f"name the study with --study-name; studies in {mask_url(storage_url)!r}: {listed}")
        study_name = names[0]
    return storage, load_existing_study(storage, study_name)


def study_settings(study_name: str, user_attrs: dict[str, Any]) -> dict[str, Any]:
    raw = user_attrs.get(SETTINGS_ATTR)
    if raw is None and DERIVED_ATTR in user_attrs:
        raise ReportError(f"study {study_name!r} is the Pareto study derived from {user_attrs[DERIVED_ATTR]!r}: "
                          f"run lwl-report --study-name {user_attrs[DERIVED_ATTR]}")
    if raw is None:
        raise ReportError(f"study {study_name!r} was not made by lwl-search (no {SETTINGS_ATTR!r} attribute): "
                          "lwl-report describes lwl-search studies only")
    try:
        settings = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        raise ReportError(f"study {study_name!r}: its {SETTINGS_ATTR!r} attribute is not valid JSON") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("recipe"), dict):
        raise ReportError(f"study {study_name!r}: its {SETTINGS_ATTR!r} attribute lacks the recipe")
    return settings


def _hierarchy(t: FrozenTrial, stages: int) -> tuple[int, ...]:
    h = t.user_attrs.get("hierarchy")
    if isinstance(h, list) and h:
        return tuple(int(d) for d in h)
    return tuple(int(t.params[f"d{i}"]) for i in range(1, stages + 1) if f"d{i}" in t.params)


def trial_row(t: FrozenTrial, stages: int) -> TrialRow:
    a = t.user_attrs
    h = _hierarchy(t, stages)
    steps = sorted(t.intermediate_values)
    unit_acc = a.get("unit_acc")
    if not unit_acc:
        history = a.get("unit_acc_history") or []
        unit_acc = history[-1] if history else []
    wall = a.get("wall_time")
    if wall is None and t.state == TrialState.COMPLETE and t.datetime_start and t.datetime_complete:
        wall = (t.datetime_complete - t.datetime_start).total_seconds()
    return TrialRow(
        number=t.number, state=t.state.name.lower(),
        value=t.value if t.state == TrialState.COMPLETE else None,
        hierarchy=h, label=a.get("schedule") or ("[" + ",".join(map(str, h)) + "]"),
        params=a.get("params"), params_aux=a.get("params_aux"), flops=a.get("flops"),
        activations=a.get("activations"), wall_time=wall, peak_memory=a.get("peak_memory"),
        paper=a.get("paper") or None, enqueued=a.get("enqueued"), device=a.get("device"),
        steps=steps, values=[float(t.intermediate_values[s]) for s in steps],
        unit_acc=[None if v is None else float(v) for v in unit_acc],
    )


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings without the loss (and the mode when the loss is global, which forces simultaneous)."""
    recipe = {k: v for k, v in settings["recipe"].items() if k != "loss"}
    return {**settings, "recipe": recipe}


def _siblings_match(a: dict[str, Any], b: dict[str, Any]) -> bool:
    la, lb = a["recipe"].get("loss"), b["recipe"].get("loss")
    if la == lb or "global" not in (la, lb):
        return False
    ca, cb = _comparable(a), _comparable(b)
    ca["recipe"].pop("mode", None)
    cb["recipe"].pop("mode", None)
    mode_a, mode_b = a["recipe"].get("mode"), b["recipe"].get("mode")
    return ca == cb and (mode_a == mode_b or "global" in (la, lb))


def find_sibling_studies(storage: BaseStorage, study_name: str, settings: dict[str, Any]) -> list[str]:
    """Studies in the same storage whose settings equal this one's except the loss, one side being 'global'."""
    found = []
    for s in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if s.study_name == study_name or SETTINGS_ATTR not in s.user_attrs:
            continue
        try:
            other = json.loads(s.user_attrs[SETTINGS_ATTR])
        except (TypeError, json.JSONDecodeError):
            continue
        if isinstance(other, dict) and isinstance(other.get("recipe"), dict) and _siblings_match(settings, other):
            found.append(s.study_name)
    return sorted(found)


def _best_by_label(rows: Sequence[TrialRow]) -> dict[str, float]:
    best: dict[str, float] = {}
    for r in rows:
        if r.value is not None:
            best[r.label] = max(best.get(r.label, -math.inf), r.value)
    return best


@dataclass
class ReportData:
    study_name: str
    storage_url: str  # masked
    settings: dict[str, Any]
    user_attrs: dict[str, Any]
    counts: dict[str, int]  # state name -> trials
    rows: list[TrialRow]  # COMPLETE and PRUNED trials
    top: list[TrialRow]
    importances: dict[str, float] | None
    importance_note: str
    global_groups: dict[str, dict[str, float]] = field(default_factory=dict)  # training -> {label: accuracy}
    global_source: str = ""
    n_failed: int = 0
    fail_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> list[TrialRow]:
        return [r for r in self.rows if r.value is not None]

    @property
    def param_names(self) -> list[str]:
        return [f"d{i}" for i in range(1, int(self.settings["stages"]) + 1)]


def _importances(study: optuna.Study, names: list[str], n_complete: int) -> tuple[dict[str, float] | None, str]:
    if n_complete < MIN_IMPORTANCE_TRIALS:
        return None, (f"Too few trials for parameter importance: {n_complete} complete, at least "
                      f"{MIN_IMPORTANCE_TRIALS} are needed (PED-ANOVA wants about 50 for stable results). "
                      "Run lwl-search with a larger --trials.")
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()  # Optuna 5.0's default evaluator
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = optuna.importance.get_param_importances(study, evaluator=evaluator, params=names)
    except (ValueError, RuntimeError) as exc:
        return None, f"Parameter importance could not be computed: {str(exc).splitlines()[0]}"
    return dict(result), ""


def _global_groups(storage: BaseStorage, data_name: str, settings: dict[str, Any],
                   rows: Sequence[TrialRow], trials: Sequence[FrozenTrial]) -> tuple[dict[str, dict[str, float]], str]:
    loss = settings["recipe"].get("loss", "?")
    own = _best_by_label(rows)
    # 1. trials that carry a global accuracy of their own list
    attr: dict[str, float] = {}
    for t in trials:
        g = t.user_attrs.get("global_acc")
        if t.state == TrialState.COMPLETE and isinstance(g, (int, float)):
            label = t.user_attrs.get("schedule") or str(t.user_attrs.get("hierarchy"))
            attr[label] = max(attr.get(label, -math.inf), float(g))
    if attr:
        return {f"{loss} (this study)": {k: v for k, v in own.items() if k in attr},
                "global (user attr global_acc)": attr}, "the trials' global_acc attribute"
    # 2. sibling studies in the same storage
    groups: dict[str, dict[str, float]] = {}
    names = find_sibling_studies(storage, data_name, settings)
    for name in names:
        sib = load_existing_study(storage, name)
        sib_settings = study_settings(name, sib.user_attrs)
        stages = int(sib_settings["stages"])
        sib_rows = [trial_row(t, stages) for t in sib.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        best = _best_by_label(sib_rows)
        if best:
            groups[f"{sib_settings['recipe'].get('loss')} ({name})"] = best
    if not groups:
        return {}, ", ".join(names)
    common = set(own).intersection(*[set(g) for g in groups.values()])
    groups = {f"{loss} (this study)": own, **groups}
    return {k: {h: v for h, v in g.items() if h in common} for k, g in groups.items()}, ", ".join(names)


def load_report_data(storage: BaseStorage, study: optuna.Study, storage_url: str) -> ReportData:
    settings = study_settings(study.study_name, study.user_attrs)
    stages = int(settings["stages"])
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for t in trials:
        name = STATE_NAMES.get(t.state, t.state.name.lower())
        counts[name] = counts.get(name, 0) + 1
    rows = [trial_row(t, stages) for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    n_complete = sum(r.value is not None for r in rows)
    if n_complete == 0:
        summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no trials"
        raise ReportError(f"study {study.study_name!r} has no complete trial yet ({summary}): "
                          "run lwl-search on it until one completes")
    by_number = {r.number: r for r in rows}
    top = [by_number[t.number] for t in top_trials(study, TOP_K)]
    names = [f"d{i}" for i in range(1, stages + 1)]
    importances, note = _importances(study, names, n_complete)
    groups, source = _global_groups(storage, study.study_name, settings, rows, trials)
    reasons: dict[str, int] = {}
    for t in trials:
        if t.state == TrialState.FAIL:
            reason = str(t.user_attrs.get("fail_reason", "no reason recorded"))
            reasons[reason] = reasons.get(reason, 0) + 1
    return ReportData(study.study_name, mask_url(storage_url), settings, dict(study.user_attrs), counts, rows, top,
                      importances, note, groups, source, counts.get("failed", 0), reasons)


# --------------------------------------------------------------------------------------------- figures


def build_figures(data: ReportData) -> dict[str, go.Figure]:
    """Every figure of the report by its stable id (the importance and global ones only when they have data)."""
    s = data.settings
    batch = int(s["recipe"].get("batch_size", 128))
    complete = data.complete
    params_axis = CostAxis("parameters (network without auxiliary heads)", lambda r: r.params, _fmt_params)
    time_axis = CostAxis("training time of the trial (wall_time, s)", time_seconds, lambda v: f"{v:.1f} s")
    mem_axis = memory_axis(complete, batch)
    figs: dict[str, go.Figure] = {
        "lwl-pareto-params": pareto_figure(data.rows, params_axis, "Validation accuracy vs parameters"),
        "lwl-pareto-memory": pareto_figure(
            data.rows, mem_axis, "Validation accuracy vs peak memory" if mem_axis.title.startswith("peak")
            else "Validation accuracy vs training memory (ESTIMATE: no peak measured on CPU)"),
        "lwl-pareto-time": pareto_figure(data.rows, time_axis, "Validation accuracy vs training time"),
    }
    if data.importances is not None:
        figs["lwl-importance"] = importance_figure(
            data.importances,
            f"Importance of {', '.join(data.param_names)}: PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator, "
            f"top 10 %), {len(complete)} complete trials")
    step_label = str(data.user_attrs.get("intermediate_value") or "step")
    step_axis = "epoch" if "epoch" in step_label else "unit" if "unit" in step_label else "step"
    figs["lwl-curves"] = curves_figure(
        data.rows, f"Intermediate values ({step_label}) of every trial; pruned trials grey, dashed", step_axis)
    figs["lwl-unit-acc"] = unit_accuracy_figure(
        data.rows, "Final accuracy of every unit's local classifier (pruned trials: at pruning)")
    figs["lwl-hierarchy"] = hierarchy_figure(
        data.rows, data.param_names, int(s["budget"]) - int(s["stages"]) + 1,
        "Hierarchy lists of the complete trials, coloured by accuracy (paper baselines: 'yes' on their axis)")
    figs["lwl-ranked"] = ranked_figure(data.rows, "Accuracy by hierarchy, best first (stars: the paper's lists)")
    figs["lwl-history"] = history_figure(data.rows, "Optimization history: objective per trial and best so far")
    if any(data.global_groups.values()):
        figs["lwl-global"] = global_figure(data.global_groups, "Layer-wise vs global training, per hierarchy "
                                           f"(from {data.global_source})")
    return figs


def save_dashboard_figures(study: optuna.Study, figures: dict[str, go.Figure]) -> list[str]:
    """Save the figures as the study's plotly graph objects for optuna-dashboard, under their stable ids."""
    from optuna_dashboard import save_plotly_graph_object

    return [save_plotly_graph_object(study, fig, graph_object_id=fid) for fid, fig in figures.items()]


# --------------------------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 0; background: #f6f7f9; color: #222; }
main { max-width: 1320px; margin: 0 auto; padding: 18px 28px 60px; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 30px 0 8px; border-bottom: 1px solid #ccd;
 padding-bottom: 4px; }
section.card { background: white; border: 1px solid #dde; border-radius: 6px; padding: 10px 16px; margin: 12px 0; }
table { border-collapse: collapse; font-size: 14px; } td, th { padding: 4px 10px; text-align: left; }
table.data tr:nth-child(even) { background: #f2f4f8; } table.data th { background: #e4e8f0; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
dl.settings { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; margin: 6px 0; font-size: 14px; }
dl.settings dt { font-weight: bold; } dl.settings dd { margin: 0; }
p.note { font-size: 14px; color: #444; max-width: 1100px; } .placeholder { font-size: 15px; color: #8a4b00;
 background: #fff6e5; border: 1px solid #f0d49c; padding: 10px 14px; border-radius: 4px; }
code { background: #eef; padding: 1px 4px; border-radius: 3px; font-size: 13px; }
.fig { min-height: 200px; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def header_html(study_name: str, storage_url: str, settings: dict[str, Any], counts: dict[str, int],
                user_attrs: dict[str, Any] | None = None) -> str:
    """The study's name, settings, trial counts by state and its storage URL, the password always masked."""
    user_attrs = user_attrs or {}
    r = settings.get("recipe", {})
    k = settings.get("shallow_stages")
    rule = ("no order constraint" if settings.get("constraint") == "none"
            else f"the {settings.get('constraint')} constraint, k = {k} shallow stages")
    feasible = user_attrs.get("feasible_lists")
    space = (f"{settings.get('stages')} stages summing to budget {settings.get('budget')} under {rule}"
             + (f"; {feasible} feasible lists" if feasible is not None else ""))
    family = settings.get("family", "?")
    if family == "resnet":
        family += f" ({settings.get('block', '?')} blocks)"
    items = [
        ("space", space),
        ("family", f"{family}, downsampling by {settings.get('downsample', '?')}"),
        ("widths", ", ".join(map(str, settings.get("widths", [])))),
        ("dataset", r.get("dataset", "?") + (f" (first {r['train_limit']} training images)"
                                             if r.get("train_limit") else "")),
        ("loss", r.get("loss", "?")),
        ("mode", r.get("mode", "?")),
        ("epochs", f"{r.get('epochs', '?')}" + (" per unit" if r.get("mode") == "sequential" else "")),
        ("recipe", f"batch {r.get('batch_size', '?')}, lr {r.get('lr', '?')}, dropout {r.get('dropout', '?')}, "
                   f"seed {r.get('seed', '?')}"),
        ("objective", user_attrs.get("objective", "validation accuracy")),
        ("intermediate values", user_attrs.get("intermediate_value", "-")),
        ("trials", ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"),
        ("storage", mask_url(storage_url)),
    ]
    body = "".join(f"<dt>{_e(a)}</dt><dd>{_e(b)}</dd>" for a, b in items)
    return (f'<header id="lwl-header"><h1>lwl-search study {_e(study_name)}</h1>'
            f'<section class="card"><dl class="settings">{body}</dl></section></header>')


def _units_curve(r: TrialRow) -> str:
    units = [a for a in r.unit_acc if a is not None]
    return f"{100 * units[0]:.1f} → {100 * units[-1]:.1f}" if units else "-"


def table_html(rows: Sequence[TrialRow]) -> str:
    head = ("<tr><th>rank</th><th>trial</th><th>hierarchy</th><th>val. accuracy</th><th>params</th>"
            "<th>wall time</th><th>units: first → last (%)</th><th>paper</th><th>state</th></tr>")
    body = []
    for rank, r in enumerate(rows, 1):
        state = r.state + (f" (enqueued: {r.enqueued})" if r.enqueued else "")
        body.append(
            f"<tr><td class='num'>{rank}</td><td class='num'>{r.number}</td><td><code>{_e(r.label)}</code></td>"
            f"<td class='num'>{'-' if r.value is None else f'{100 * r.value:.2f} %'}</td>"
            f"<td class='num'>{'-' if r.params is None else f'{r.params:,}'}</td>"
            f"<td class='num'>{'-' if r.wall_time is None else f'{r.wall_time:.1f} s'}</td>"
            f"<td class='num'>{_e(_units_curve(r))}</td><td>{_e(r.paper or '')}</td><td>{_e(state)}</td></tr>")
    return f'<table class="data" id="lwl-top-table">{head}{"".join(body)}</table>'


def global_command(data: ReportData, k: int = 5) -> str:
    """The lwl-search command that trains this study's best lists (and its paper lists) end to end, same settings."""
    s, r = data.settings, data.settings["recipe"]
    lists = list(dict.fromkeys([t.hierarchy for t in data.top[:k]] + [t.hierarchy for t in data.complete if t.paper]))
    flags: list[Any] = [
        "lwl-search", "--dataset", r.get("dataset"), "--budget", s.get("budget"), "--stages", s.get("stages"),
        "--shallow-stages", s.get("shallow_stages"), "--constraint", s.get("constraint"),
        "--family", s.get("family"), *(["--block", s.get("block")] if s.get("family") == "resnet" else []),
        "--widths", ",".join(map(str, s.get("widths", []))), "--downsample", s.get("downsample"),
        "--epochs", r.get("epochs"), "--batch-size", r.get("batch_size"), "--lr", r.get("lr"),
        "--dropout", r.get("dropout"), "--seed", r.get("seed"),
        *(["--train-limit", r["train_limit"]] if r.get("train_limit") else []),
        "--loss", "global",
    ]
    for h in lists:
        flags += ["--enqueue", ",".join(map(str, h))]
    flags += ["--no-paper-baselines", "--trials", len(lists), "--storage", data.storage_url,
              "--study-name", f"{data.study_name}-global"]
    return shlex.join(str(f) for f in flags)


def _global_hint(data: ReportData) -> str:
    if data.settings["recipe"].get("loss") == "global":
        return ("<p>This study trains end to end (loss global). Run the same lwl-search with a local loss "
                "(e.g. <code>--loss predsim</code>) into the same storage to compare; the report then picks it "
                "up.</p>")
    found = f" (found {_e(data.global_source)}, but no hierarchy evaluated in both)" if data.global_source else ""
    return (f"<p>No global (end-to-end back-propagation) results for these lists{found}. To get them, train this "
            "study's best lists with <code>--loss global</code> into the same storage:</p>"
            f"<p><code>{_e(global_command(data))}</code></p>"
            "<p>The report then picks up automatically any study in this storage whose settings equal this one's "
            "except the loss (put the password back into the URL if it shows ***), as well as trials that carry a "
            "user attribute <code>global_acc</code>.</p>")


def _flops_note(data: ReportData) -> str:
    flops = sorted({r.flops for r in data.complete if r.flops is not None})
    if not flops:
        span = "the trials record no FLOPs"
    elif len(flops) == 1:
        span = f"here every complete list has {flops[0]:,} FLOPs per image"
    else:
        span = (f"here the complete lists span {flops[0]:,} to {flops[-1]:,} FLOPs per image "
                f"({len(flops)} distinct values for {len(data.complete)} lists)")
    return ("FLOPs are not a Pareto axis: with widths doubling at every downsampling every unit costs the same FLOPs "
            "wherever it sits, so all lists of one budget have equal FLOPs (design notes §1; e.g. [2,2,2,2] and "
            f"[1,1,2,4]); {span}. The lists differ in parameters, memory and measured time instead.")


def _fig_html(fid: str, fig: go.Figure) -> str:
    return (f'<div class="fig" data-figure="{fid}">'
            + fig.to_html(full_html=False, include_plotlyjs=False, div_id=fid,
                          config={"displaylogo": False, "responsive": True})
            + "</div>")


def render_html(data: ReportData, figures: dict[str, go.Figure], *, generated: str | None = None) -> str:
    f = figures
    counts = data.counts
    generated = generated or _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [header_html(data.study_name, data.storage_url, data.settings, counts, data.user_attrs)]
    front_note = ("Every complete trial is a point (stars: the paper's lists); the red staircase joins the "
                  "non-dominated trials (higher accuracy, lower cost), each labelled with its hierarchy list.")
    parts.append(f'<h2 id="pareto">Pareto fronts</h2><p class="note">{front_note}</p>'
                 f'<p class="note" id="flops-note">{_e(_flops_note(data))}</p>')
    parts += [_fig_html(fid, f[fid]) for fid in ("lwl-pareto-params", "lwl-pareto-memory", "lwl-pareto-time")]
    parts.append('<h2 id="importance">Parameter importance</h2>')
    if "lwl-importance" in f:
        parts.append(f'<p class="note">{"PED-ANOVA compares the top 10 % of the complete trials with all of them; "}'
                     f"{'with fewer than about 50 trials treat it as indicative.' if len(data.complete) < 50 else ''}"
                     "</p>" + _fig_html("lwl-importance", f["lwl-importance"]))
    else:
        parts.append(f'<p class="placeholder" id="lwl-importance-placeholder">{_e(data.importance_note)}</p>')
    parts.append('<h2 id="curves">Per-unit accuracy</h2>')
    parts += [_fig_html("lwl-curves", f["lwl-curves"]), _fig_html("lwl-unit-acc", f["lwl-unit-acc"])]
    parts.append('<h2 id="hierarchy">Accuracy by hierarchy</h2>')
    parts += [_fig_html("lwl-hierarchy", f["lwl-hierarchy"]), _fig_html("lwl-ranked", f["lwl-ranked"])]
    parts.append('<h2 id="history">Optimization history</h2>' + _fig_html("lwl-history", f["lwl-history"]))
    parts.append(f'<h2 id="top">Top {len(data.top)} schedules</h2><section class="card">{table_html(data.top)}'
                 "</section>")
    if data.n_failed:
        reasons = "; ".join(f"{n} × {r}" for r, n in data.fail_reasons.items())
        parts.append(f'<p class="note" id="failed-note">{data.n_failed} failed trial(s): {_e(reasons)}.</p>')
    parts.append('<h2 id="global">Layer-wise vs global</h2>')
    if "lwl-global" in f:
        parts.append(_fig_html("lwl-global", f["lwl-global"]))
    else:
        parts.append(f'<div class="placeholder" id="lwl-global-placeholder">{_global_hint(data)}</div>')
    parts.append(f'<p class="note">Generated by lwl-report on {_e(generated)} from {_e(data.storage_url)}; '
                 f"open the same storage in optuna-dashboard: <code>{_e(dashboard_command(data.storage_url, data.user_attrs))}"
                 "</code>.</p>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>lwl-search report: {_e(data.study_name)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript" id="plotlyjs">{plotly.offline.get_plotlyjs()}</script>'
        f"</head><body><main>{''.join(parts)}</main></body></html>\n"
    )


@dataclass
class ReportResult:
    path: Path
    figures: list[str]  # ids of the figures in the page
    saved: list[str]  # ids saved to the study for optuna-dashboard
    data: ReportData


def write_report(storage_url: str, study_name: str | None, out: str | Path | None = None, *,
                 dashboard: bool = True) -> ReportResult:
    """Read the study, write the HTML report, and (unless dashboard=False) save its figures to the study."""
    storage, study = open_study(storage_url, study_name)
    data = load_report_data(storage, study, storage_url)
    figures = build_figures(data)
    path = Path(out) if out is not None else Path(f"{study.study_name}-report.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data, figures), encoding="utf-8")
    saved = save_dashboard_figures(study, figures) if dashboard else []
    return ReportResult(path, list(figures), saved, data)


__all__ = [
    "ReportData",
    "ReportError",
    "ReportResult",
    "build_figures",
    "find_sibling_studies",
    "global_command",
    "header_html",
    "load_report_data",
    "open_study",
    "render_html",
    "save_dashboard_figures",
    "write_report",
]
