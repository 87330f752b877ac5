"""The report's HTML: the page skeleton and its CSS are the template `report.html` (package data, filled with
`string.Template`); this module builds the pieces that go into it. Every value is HTML-escaped where it is text:
a template placeholder named `*_html` takes markup built here (its own text escaped where it is made), any other
placeholder takes text and is escaped when the page is filled.
"""

from __future__ import annotations

import datetime as _dt
import functools
import html
import importlib.resources
import shlex
import string
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.offline

from lwl.models import REFERENCE_FIELDS, extras_phrases, format_widths
from lwl.search import (
    FEASIBLE_ATTR,
    INTERMEDIATE_ATTR,
    OBJECTIVE_ATTR,
    VALIDATION_ATTR,
    StudySettings,
    dashboard_command,
    mask_url,
)

from ._load import ReportData
from ._rows import TrialRow

TEMPLATE = "report.html"  # in this package


def escape(value: Any) -> str:
    """`value` as HTML text."""
    return html.escape(str(value))


_e = escape


@functools.cache
def page_template() -> string.Template:
    return string.Template(importlib.resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8"))


def fill_page(**values: Any) -> str:
    """The page: `*_html` values go in as they are (markup), every other value is escaped as text."""
    return page_template().substitute({k: v if k.endswith("_html") else escape(v) for k, v in values.items()})


# --------------------------------------------------------------------------------------------- pieces


def _validation(images: object, fraction: object) -> str:
    """The split's size and what one image is worth: accuracies closer than that are ties."""
    share = f"{100 * fraction:g} % of the training images" if isinstance(fraction, (int, float)) else "?"
    if not isinstance(images, int) or images <= 0:
        return share
    return f"{images:,} images ({share}); one image is {100 / images:.2f} % of accuracy"


def header_html(
    study_name: str,
    storage_url: str,
    settings: dict[str, Any],
    counts: dict[str, int],
    user_attrs: dict[str, Any] | None = None,
    verdict: str = "",
    answer: Sequence[str] = (),
) -> str:
    """The study's name, settings, trial counts by state, the confirmation's verdict and its storage URL, the
    password always masked."""
    user_attrs = user_attrs or {}
    r = settings.get("recipe", {})
    k = settings.get("shallow_stages")
    rule = (
        "no order constraint"
        if settings.get("constraint") == "none"
        else f"the {settings.get('constraint')} constraint, k = {k} shallow stages"
    )
    feasible = user_attrs.get(FEASIBLE_ATTR)
    space = f"{settings.get('stages')} stages summing to budget {settings.get('budget')} under {rule}" + (
        f"; {feasible} feasible lists" if feasible is not None else ""
    )
    limits = settings.get("limits") or {}
    if limits:
        space += " within " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in sorted(limits.items()))
    family = settings.get("family", "?")
    if family == "resnet":
        family += f" ({settings.get('block', '?')} blocks)"
    network = ", ".join(extras_phrases(settings).values())
    options = ", ".join(f"{name} {r[name]}" for name in REFERENCE_FIELDS if name in r)
    items = [
        ("space", space),
        ("family", f"{family}, downsampling by {settings.get('downsample', '?')}"),
        ("widths", format_widths(settings.get("widths", []), settings.get("lead_widths")).replace(",", ", ")),
        *([("network", network)] if network else []),
        (
            "dataset",
            r.get("dataset", "?") + (f" (first {r['train_limit']} training images)" if r.get("train_limit") else ""),
        ),
        ("loss", r.get("loss", "?")),
        ("mode", r.get("mode", "?")),
        ("epochs", f"{r.get('epochs', '?')}" + (" per unit" if r.get("mode") == "sequential" else "")),
        (
            "recipe",
            f"batch {r.get('batch_size', '?')}, lr {r.get('lr', '?')}, dropout {r.get('dropout', '?')}, "
            f"seed {r.get('seed', '?')}",
        ),
        *([("reference options", options)] if options else []),
        ("objective", user_attrs.get(OBJECTIVE_ATTR, "validation accuracy")),
        *(
            [("searched for", "the front of accuracy against " + ", ".join(settings["objectives"][1:]))]
            if settings.get("objectives")
            else []
        ),
        ("validation split", _validation(user_attrs.get(VALIDATION_ATTR), r.get("val_fraction"))),
        ("intermediate values", user_attrs.get(INTERMEDIATE_ATTR, "-")),
        ("trials", ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"),
        *([("answer", " · ".join(answer))] if answer else []),
        ("confirmation", verdict or "none: lwl-search --confirm K trains the top K lists with more seeds"),
        ("storage", mask_url(storage_url)),
    ]
    body = "".join(f"<dt>{_e(a)}</dt><dd>{_e(b)}</dd>" for a, b in items)
    return (
        f'<header id="lwl-header"><h1>lwl-search study {_e(study_name)}</h1>'
        f'<section class="card"><dl class="settings">{body}</dl></section></header>'
    )


def _units_curve(r: TrialRow) -> str:
    units = [a for a in r.unit_acc if a is not None]
    return f"{100 * units[0]:.1f} → {100 * units[-1]:.1f}" if units else "-"


def table_html(
    rows: Sequence[TrialRow],
    confirmed: Mapping[int, tuple[str, int]] | None = None,
    model: Mapping[int, tuple[str, float]] | None = None,
) -> str:
    """The top lists; `confirmed` (trial -> (mean ± interval, seeds)) adds the confirmation's columns, `model`
    (trial -> (the answer's mean ± interval, P(best))) the answer's."""
    confirmed, model = confirmed or {}, model or {}
    extra = "<th>model (95 % interval)</th><th>P(best)</th>" if model else ""
    extra += "<th>mean over seeds (95 % interval)</th><th>seeds</th>" if confirmed else ""
    head = (
        f"<tr><th>rank</th><th>trial</th><th>hierarchy</th><th>val. accuracy</th>{extra}<th>params</th>"
        "<th>wall time</th><th>units: first → last (%)</th><th>paper</th><th>state</th></tr>"
    )
    body = []
    for rank, r in enumerate(rows, 1):
        state = r.state + (f" (enqueued: {r.enqueued})" if r.enqueued else "")
        cells = ""
        if model:
            text, chance = model.get(r.number, ("-", 0.0))
            cells += f"<td class='num'>{_e(text)}</td><td class='num'>{100 * chance:.0f} %</td>"
        if confirmed:
            mean, seeds = confirmed.get(r.number, ("-", 1))
            cells += f"<td class='num'>{_e(mean)}</td><td class='num'>{seeds}</td>"
        body.append(
            f"<tr><td class='num'>{rank}</td><td class='num'>{r.number}</td><td><code>{_e(r.label)}</code></td>"
            f"<td class='num'>{'-' if r.value is None else f'{100 * r.value:.2f} %'}</td>{cells}"
            f"<td class='num'>{'-' if r.params is None else f'{r.params:,}'}</td>"
            f"<td class='num'>{'-' if r.wall_time is None else f'{r.wall_time:.1f} s'}</td>"
            f"<td class='num'>{_e(_units_curve(r))}</td><td>{_e(r.paper or '')}</td><td>{_e(state)}</td></tr>"
        )
    return f'<table class="data" id="lwl-top-table">{head}{"".join(body)}</table>'


def global_command(data: ReportData, k: int = 5) -> str:
    """The lwl-search command that trains this study's best lists (and its paper lists) end to end, same settings."""
    lists = list(dict.fromkeys([t.hierarchy for t in data.top[:k]] + [t.hierarchy for t in data.complete if t.paper]))
    # The study's own settings (network, reference options, precision, split included), then the global loss: the
    # settings the report's sibling search looks for.
    flags: list[Any] = ["lwl-search", *StudySettings.from_dict(data.settings).to_flags()]
    flags[flags.index("--loss") + 1] = "global"
    for h in lists:
        flags += ["--enqueue", ",".join(map(str, h))]
    flags += [
        "--no-paper-baselines",
        "--trials",
        len(lists),
        "--storage",
        data.storage_url,
        "--study-name",
        f"{data.study_name}-global",
    ]
    return shlex.join(str(f) for f in flags)


def _global_hint(data: ReportData) -> str:
    if data.settings["recipe"].get("loss") == "global":
        return (
            "<p>This study trains end to end (loss global). Run the same lwl-search with a local loss "
            "(e.g. <code>--loss predsim</code>) into the same storage to compare; the report then picks it "
            "up.</p>"
        )
    found = f" (found {_e(data.global_source)}, but no hierarchy evaluated in both)" if data.global_source else ""
    return (
        f"<p>No global (end-to-end back-propagation) results for these lists{found}. To get them, train this "
        "study's best lists with <code>--loss global</code> into the same storage:</p>"
        f"<p><code>{_e(global_command(data))}</code></p>"
        "<p>The report then picks up automatically any study in this storage whose settings equal this one's "
        "except the loss (put the password back into the URL if it shows ***), as well as trials that carry a "
        "user attribute <code>global_acc</code>.</p>"
    )


def _flops_note(data: ReportData) -> str:
    flops = sorted({r.flops for r in data.complete if r.flops is not None})
    if not flops:
        span = "the trials record no FLOPs"
    elif len(flops) == 1:
        span = f"here every complete list has {flops[0]:,} FLOPs per image"
    else:
        span = (
            f"here the complete lists span {flops[0]:,} to {flops[-1]:,} FLOPs per image "
            f"({len(flops)} distinct values for {len(data.complete)} lists)"
        )
    if "flops" in (data.settings.get("objectives") or []):  # searched against FLOPs: their front is drawn below
        return f"FLOPs are an objective of this study (--objectives): {span}; their front is drawn below."
    if len(flops) > 1:
        return (
            f"FLOPs are not an objective of this study (--objectives accuracy,flops makes them one): {span}. "
            "The other fronts are drawn below."
        )
    return (
        "FLOPs are not a Pareto axis: with widths doubling at every downsampling every unit costs the same FLOPs "
        "wherever it sits, so all lists of one budget have equal FLOPs (e.g. [2,2,2,2] and "
        f"[1,1,2,4]); {span}. The lists differ in parameters, memory and measured time instead."
    )


def _fig_html(fid: str, fig: go.Figure) -> str:
    return (
        f'<div class="fig" data-figure="{_e(fid)}">'
        + fig.to_html(
            full_html=False, include_plotlyjs=False, div_id=fid, config={"displaylogo": False, "responsive": True}
        )
        + "</div>"
    )


def _figs_html(figures: Mapping[str, go.Figure], *ids: str) -> str:
    return "".join(_fig_html(fid, figures[fid]) for fid in ids)


def _importance_html(data: ReportData, figures: Mapping[str, go.Figure]) -> str:
    if "lwl-importance" not in figures:
        return f'<p class="placeholder" id="lwl-importance-placeholder">{_e(data.importance_note)}</p>'
    return (
        '<p class="note" id="lwl-importance-note">PED-ANOVA compares the top 10 % of the complete trials with all of '
        f"them. {_e(data.importance_note)}</p>" + _fig_html("lwl-importance", figures["lwl-importance"])
    )


def _failed_html(data: ReportData) -> str:
    if not data.n_failed:
        return ""
    reasons = "; ".join(f"{n} × {r}" for r, n in data.fail_reasons.items())
    return f'<p class="note" id="failed-note">{data.n_failed} failed trial(s): {_e(reasons)}.</p>'


def _thesis_html(data: ReportData, figures: Mapping[str, go.Figure]) -> str:
    """The verdict in words, then the two figures (none when there are too few trials to tell)."""
    t = data.thesis
    if t is None:
        return ""
    words = (
        f'<p class="note" id="lwl-thesis-verdict"><b>Verdict:</b> {_e(t.verdict)}.</p>'
        '<p class="note">Shallow units: those of the first '
        f"{t.shallow_stages} stage{'s' if t.shallow_stages != 1 else ''} (the study's k). The paper finds that fewer "
        "units before the early downsamplings help layer-wise training; fewer shallow units also means more deep, "
        "wide units, so the same test is repeated with the parameter count held fixed (a partial rank "
        "correlation). p-values: two-sided, from 2,000 permutations of the accuracies.</p>"
    )
    return words + _figs_html(figures, *(f for f in ("lwl-thesis-shallow", "lwl-thesis-depth") if f in figures))


def _global_html(data: ReportData, figures: Mapping[str, go.Figure]) -> str:
    if "lwl-global" in figures:
        return _fig_html("lwl-global", figures["lwl-global"])
    return f'<div class="placeholder" id="lwl-global-placeholder">{_global_hint(data)}</div>'


# --------------------------------------------------------------------------------------------- the page


def render_html(data: ReportData, figures: dict[str, go.Figure], *, generated: str | None = None) -> str:
    """The self-contained page: plotly.js inlined once, every figure under its stable id."""
    return fill_page(
        study_name=data.study_name,
        plotlyjs_html=plotly.offline.get_plotlyjs(),
        header_html=header_html(
            data.study_name, data.storage_url, data.settings, data.counts, data.user_attrs, data.verdict, data.answer
        ),
        flops_note=_flops_note(data),
        pareto_html=_figs_html(
            figures,
            *(
                f
                for f in ("lwl-pareto-params", "lwl-pareto-memory", "lwl-pareto-time", "lwl-pareto-flops")
                if f in figures
            ),
        ),
        importance_html=_importance_html(data, figures),
        curves_html=_figs_html(figures, "lwl-curves", "lwl-unit-acc"),
        hierarchy_html=_figs_html(figures, "lwl-hierarchy", "lwl-ranked"),
        history_html=_figs_html(figures, "lwl-history"),
        thesis_html=_thesis_html(data, figures),
        top_count=len(data.top),
        top_table_html=table_html(data.top, data.confirmed, data.model),
        failed_html=_failed_html(data),
        global_html=_global_html(data, figures),
        generated=generated or _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        storage_url=data.storage_url,
        dashboard_command=dashboard_command(data.storage_url, data.user_attrs),
    )


__all__ = [
    "TEMPLATE",
    "escape",
    "fill_page",
    "global_command",
    "header_html",
    "page_template",
    "render_html",
    "table_html",
]
