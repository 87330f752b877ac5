"""`lwl-report` on studies built without training (create_trial + add_trial, realistic attributes), read back from
the written HTML (the JSON embedded in each plotly div) and from the storage the way optuna-dashboard reads it."""

from __future__ import annotations

import html
import io
import json
import re
import uuid
import wsgiref.util
from pathlib import Path

import optuna
import pytest
from cases import tiny
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from lwl.dashboards import (
    FIGURE_IDS,
    build_figures,
    header_html,
    load_report_data,
    open_study,
    save_dashboard_figures,
    write_report,
)
from lwl.dashboards.commands import report_main as main
from lwl.models import Recipe, complexity
from lwl.search import (
    FEASIBLE_ATTR,
    INTERMEDIATE_ATTR,
    OBJECTIVE_ATTR,
    VALIDATION_ATTR,
    SearchSpace,
    StudySettings,
    mask_url,
    open_storage,
    pareto_indices,
    prepare_study,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

BUDGET, STAGES = 12, 4
WIDTHS = (4, 8, 8, 16)
PAPER = (1, 2, 6, 3)  # ResNet50 family's [1,2,6,3]: the paper's only feasible budget-12 list
PAPER_ACC = 0.985
EVERY_FIGURE = set(FIGURE_IDS) - {"lwl-pareto-flops"}  # that one only for a study searched against FLOPs


def _settings(loss: str = "predsim", epochs: int = 3) -> StudySettings:
    recipe = Recipe(dataset="digits", loss=loss, epochs=epochs, batch_size=64, lr=2e-3, train_limit=256)
    return StudySettings.create(SearchSpace(BUDGET, STAGES), recipe, family="resnet", widths=WIDTHS)


def _accuracy(h: tuple[int, ...]) -> float:
    """A made-up but structured objective: fewer shallow units is better (the paper's claim)."""
    return round(0.99 - 0.012 * (h[0] + h[1]) - 0.002 * abs(h[2] - h[3]), 5)


def _attrs(settings: StudySettings, h: tuple[int, ...]) -> dict:
    schedule = settings.schedule(h)
    cost = complexity(schedule, settings.recipe.head)
    return {
        "hierarchy": list(h),
        "schedule": schedule.label(),
        "units": schedule.units,
        "conv_layers": cost.conv_layers,
        "params": cost.params,
        "params_aux": cost.params_aux,
        "flops": cost.flops,
        "activations": cost.activations,
        "paper": "ResNet50_r2" if h == PAPER else None,
    }


def _add(
    study: optuna.Study,
    settings: StudySettings,
    h: tuple[int, ...],
    state: TrialState,
    *,
    acc: float,
    steps: int = 3,
    extra: dict | None = None,
) -> None:
    low, high = settings.space.param_range()
    values = {s: round(acc - 0.05 * (steps - s) ** 1.2, 5) for s in range(1, steps + 1)}
    units = [
        round(0.45 + (acc - 0.45) * (u / (settings.space.budget - 1)) ** 0.5, 5) for u in range(settings.space.budget)
    ]
    attrs = {
        **_attrs(settings, h),
        "unit_acc_history": [units] * steps,
        "output_acc_history": list(values.values()),
        "unit_epochs": steps * settings.space.budget,
        "elapsed": 2.0 * steps,
        **(extra or {}),
    }
    if state == TrialState.COMPLETE:
        attrs.update(unit_acc=units, wall_time=round(4.0 + sum(h[2:]) * 0.7, 3), peak_memory=None, device="cpu")
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            value=acc if state == TrialState.COMPLETE else None,
            params={f"d{i + 1}": d for i, d in enumerate(h)},
            distributions={f"d{i + 1}": IntDistribution(low, high) for i in range(len(h))},
            user_attrs=attrs,
            intermediate_values=values if state != TrialState.FAIL else {},
        )
    )


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> str:
    """One SQLite storage with: 'rich' (12 complete incl. the paper baseline, 4 pruned, 2 failed), its 'global'
    sibling, 'few' (3 complete, 1 pruned), 'empty' (only pruned) and a study not made by lwl-search."""
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'studies.db'}"
    settings = _settings()
    lists = SearchSpace(BUDGET, STAGES).lists()
    rich = prepare_study(settings, url, "rich", sampler="tpe", pruner="median", seed=0)
    _add(rich, settings, PAPER, TrialState.COMPLETE, acc=PAPER_ACC, extra={"enqueued": "paper"})
    others = [h for h in lists if h != PAPER]
    for h in others[:11]:
        _add(rich, settings, h, TrialState.COMPLETE, acc=_accuracy(h))
    for h in others[11:15]:
        _add(rich, settings, h, TrialState.PRUNED, acc=_accuracy(h) - 0.3, steps=2)
    _add(rich, settings, others[15], TrialState.FAIL, acc=0.0, extra={"fail_reason": "out of memory"})
    _add(rich, settings, others[16], TrialState.FAIL, acc=0.0, extra={"fail_reason": "interrupted"})

    glob = prepare_study(_settings("global"), url, "rich-global", sampler="tpe", pruner="none", seed=0)
    for h in [PAPER, *others[:3]]:
        _add(glob, _settings("global"), h, TrialState.COMPLETE, acc=_accuracy(h) + 0.004)

    few = prepare_study(_settings("pred", epochs=2), url, "few", sampler="tpe", pruner="median", seed=0)
    for h in others[:3]:
        _add(few, settings, h, TrialState.COMPLETE, acc=_accuracy(h))
    _add(few, settings, others[3], TrialState.PRUNED, acc=0.5, steps=1)

    empty = prepare_study(_settings("sim"), url, "empty", sampler="tpe", pruner="median", seed=0)
    _add(empty, settings, others[0], TrialState.PRUNED, acc=0.5, steps=1)
    derived = optuna.create_study(
        study_name="rich-pareto", storage=open_storage(url, heartbeat=False), directions=["maximize", "minimize"]
    )
    derived.set_user_attr("lwl:derived_from", "rich")  # what lwl.search publishes next to a study
    optuna.create_study(study_name="foreign", storage=open_storage(url, heartbeat=False)).add_trial(
        optuna.trial.create_trial(value=1.0, params={}, distributions={})
    )
    return url


@pytest.fixture(scope="module")
def rich_report(storage, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("out") / "rich.html"
    assert main(["--storage", storage, "--study-name", "rich", "--out", str(out)]) == 0
    return out.read_text()


# --------------------------------------------------------------------------------------------- HTML parsing


def figures(page: str) -> dict[str, dict]:
    """div id -> {'data': [...], 'layout': {...}} from every Plotly.newPlot call in the page."""
    found = {}
    decoder = json.JSONDecoder()
    for m in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        data, end = decoder.raw_decode(page, m.end())
        rest = re.match(r"\s*,\s*", page[end:])
        layout, _ = decoder.raw_decode(page, end + rest.end())
        found[m.group(1)] = {"data": data, "layout": layout}
    return found


def without_plotlyjs(page: str) -> str:
    return re.sub(r'<script type="text/javascript" id="plotlyjs">.*?</script>', "", page, count=1, flags=re.S)


def _trials(storage: str, name: str, *states: TrialState) -> list:
    study = optuna.load_study(study_name=name, storage=storage)
    return study.get_trials(deepcopy=False, states=states or None)


# --------------------------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_plotlyjs_is_inlined_exactly_once_and_nothing_is_fetched(rich_report):
    import plotly.offline

    js = plotly.offline.get_plotlyjs()
    assert rich_report.count(js) == 1
    assert len(re.findall(r"<script\b", rich_report)) == len(figures(rich_report)) + 1
    assert not re.search(r"<script[^>]*\bsrc\s*=", rich_report), "a script is loaded from elsewhere"
    rest = without_plotlyjs(rich_report)
    assert "cdn.plot.ly" not in rest and "https://" not in rest and "<link" not in rest


def test_every_figure_is_present_with_its_stable_id(rich_report):
    figs = figures(rich_report)
    assert set(figs) == EVERY_FIGURE, "the rich study has enough trials for every figure, global included"
    for fid in figs:
        assert f'<div id="{fid}" class="plotly-graph-div"' in rich_report


def test_pareto_fronts_hold_every_complete_trial_and_label_the_front(storage, rich_report):
    complete = _trials(storage, "rich", TrialState.COMPLETE)
    figs = figures(rich_report)
    for fid in ("lwl-pareto-params", "lwl-pareto-memory", "lwl-pareto-time"):
        points, front = figs[fid]["data"][0], figs[fid]["data"][1]
        assert points["meta"]["role"] == "points" and front["meta"]["role"] == "front"
        assert len(points["x"]) == len(complete) == 12
        assert sorted(points["text"]) == sorted(t.user_attrs["schedule"] for t in complete)
        # the front is exactly the non-dominated set of the plotted (cost, accuracy) points, labelled by list
        expected = pareto_indices(list(zip(points["x"], points["y"])))
        assert front["text"] == [points["text"][i] for i in expected] and front["text"]
        assert front["x"] == [points["x"][i] for i in expected]
    # the paper baseline has the best accuracy: it is on every front
    assert all("[1,2,6,3]" in figs[f]["data"][1]["text"] for f in ("lwl-pareto-params", "lwl-pareto-time"))
    params = {t.user_attrs["schedule"]: t.user_attrs["params"] for t in complete}
    p = figs["lwl-pareto-params"]["data"][0]
    assert dict(zip(p["text"], p["x"])) == params


def test_memory_axis_is_labelled_an_estimate_on_cpu_trials(storage, rich_report):
    fig = figures(rich_report)["lwl-pareto-memory"]
    assert "ESTIMATE" in fig["layout"]["xaxis"]["title"]["text"]
    assert "ESTIMATE" in fig["layout"]["title"]["text"]
    t = _trials(storage, "rich", TrialState.COMPLETE)[0]
    expected = t.user_attrs["activations"] * 64 * 4 + t.user_attrs["params_aux"] * 16
    points = fig["data"][0]
    assert dict(zip(points["text"], points["x"]))[t.user_attrs["schedule"]] == expected
    # widths 4,8,8,16 do not double at every stage: the lists' FLOPs differ, and the note says so
    assert 'id="flops-note"' in rich_report and "FLOPs are not an objective of this study" in rich_report
    assert "here the complete lists span" in rich_report and "all lists of one budget have equal" not in rich_report


def test_importance_names_the_evaluator_and_the_trial_count(rich_report):
    fig = figures(rich_report)["lwl-importance"]
    assert "PED-ANOVA" in fig["layout"]["title"]["text"] and "12 complete trials" in fig["layout"]["title"]["text"]
    bars = fig["data"][0]
    assert sorted(bars["y"]) == ["d1", "d2", "d3", "d4"]
    assert sum(bars["x"]) == pytest.approx(1.0)
    assert "lwl-importance-placeholder" not in rich_report


def test_curves_show_every_finished_trial_and_pruned_ones_dashed(storage, rich_report):
    figs = figures(rich_report)
    finished = _trials(storage, "rich", TrialState.COMPLETE, TrialState.PRUNED)
    pruned = {t.number for t in finished if t.state == TrialState.PRUNED}
    for fid in ("lwl-curves", "lwl-unit-acc"):
        traces = [tr for tr in figs[fid]["data"] if "meta" in tr]
        assert {tr["meta"]["trial"] for tr in traces} == {t.number for t in finished}
        for tr in traces:
            is_pruned = tr["meta"]["trial"] in pruned
            assert (tr["line"].get("dash") == "dash") == is_pruned
            assert (tr["meta"]["state"] == "pruned") == is_pruned
    curves = {tr["meta"]["trial"]: tr for tr in figs["lwl-curves"]["data"]}
    for t in finished:
        assert curves[t.number]["x"] == sorted(t.intermediate_values)
        assert curves[t.number]["y"] == [t.intermediate_values[s] for s in sorted(t.intermediate_values)]
    units = {tr["meta"]["trial"]: tr for tr in figs["lwl-unit-acc"]["data"]}
    for t in finished:
        expected = t.user_attrs.get("unit_acc") or t.user_attrs["unit_acc_history"][-1]
        assert units[t.number]["y"] == expected and units[t.number]["x"] == list(range(1, BUDGET + 1))


def test_hierarchy_views_mark_the_paper_baseline(storage, rich_report):
    figs = figures(rich_report)
    par = figs["lwl-hierarchy"]["data"][0]
    dims = {d["label"]: d["values"] for d in par["dimensions"]}
    assert set(dims) == {"d1", "d2", "d3", "d4", "paper baseline", "accuracy"}
    assert sum(dims["paper baseline"]) == 1
    i = dims["paper baseline"].index(1)
    assert [dims[f"d{k}"][i] for k in range(1, 5)] == list(PAPER) and dims["accuracy"][i] == PAPER_ACC
    ranked = figs["lwl-ranked"]
    by_name = {tr["name"]: tr for tr in ranked["data"]}
    assert by_name["paper baseline"]["y"] == [PAPER_ACC] and by_name["paper baseline"]["marker"]["symbol"] == "star"
    assert ranked["layout"]["xaxis"]["categoryarray"][0] == by_name["paper baseline"]["x"][0] == "#0 [1,2,6,3]"
    assert len(by_name["complete trials"]["x"]) == 11
    assert any(a["text"] == "ResNet50_r2" for a in ranked["layout"]["annotations"])


def test_history_and_best_so_far(storage, rich_report):
    fig = figures(rich_report)["lwl-history"]
    complete = _trials(storage, "rich", TrialState.COMPLETE)
    by_name = {tr["name"]: tr for tr in fig["data"]}
    assert sorted(by_name["complete: objective"]["x"] + by_name["complete: paper baseline"]["x"]) == [
        t.number for t in complete
    ]
    assert len(by_name["pruned: last reported value"]["x"]) == 4
    assert max(by_name["best so far"]["y"]) == PAPER_ACC
    assert by_name["best so far"]["y"] == sorted(by_name["best so far"]["y"])


def test_top_table_and_failed_trials(storage, rich_report):
    table = re.search(r'<table class="data" id="lwl-top-table">(.*?)</table>', rich_report, re.S).group(1)
    rows = re.findall(r"<tr><td class='num'>(\d+)</td>.*?<code>([^<]+)</code>", table)
    assert len(rows) == 10 and rows[0] == ("1", "[1,2,6,3]")
    assert "ResNet50_r2" in table and "enqueued: paper" in table and "→" in table
    assert "2 failed trial(s)" in rich_report and "out of memory" in rich_report


def test_header_settings_and_counts(rich_report):
    header = re.search(r'<header id="lwl-header">(.*?)</header>', rich_report, re.S).group(1)
    for text in (
        "12 complete",
        "4 pruned",
        "2 failed",
        "resnet (basic blocks)",
        "4, 8, 8, 16",
        "predsim",
        "simultaneous",
        "digits",
        "budget 12",
        "20 feasible lists",
    ):
        assert text in header, text


def test_the_page_shows_the_study_attributes_the_search_writes(storage, rich_report):
    """Read by the names lwl.search writes them under (a renamed attribute fails here instead of showing '-')."""
    attrs = optuna.load_study(study_name="rich", storage=storage).user_attrs
    header = re.search(r'<header id="lwl-header">(.*?)</header>', rich_report, re.S).group(1)
    assert f"; {attrs[FEASIBLE_ATTR]} feasible lists" in header
    assert f"<dt>objective</dt><dd>{html.escape(attrs[OBJECTIVE_ATTR])}</dd>" in header
    assert f"<dt>intermediate values</dt><dd>{html.escape(attrs[INTERMEDIATE_ATTR])}</dd>" in header
    curves = figures(rich_report)["lwl-curves"]["layout"]
    assert f"({attrs[INTERMEDIATE_ATTR]})" in curves["title"]["text"] and curves["xaxis"]["title"]["text"] == "epoch"


def test_the_dashboards_read_no_study_attribute_by_a_literal_name():
    """Every `user_attrs.get(...)` / `user_attrs[...]` in lwl.dashboards names its key through lwl.search's constant."""
    import ast

    import lwl.dashboards

    for path in Path(lwl.dashboards.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
                owner, key = node.func.value, node.args[0] if node.args else None
            elif isinstance(node, ast.Subscript):
                owner, key = node.value, node.slice
            else:
                continue
            reads_attrs = isinstance(owner, ast.Attribute | ast.Name) and "user_attrs" in ast.unparse(owner)
            assert not (reads_attrs and isinstance(key, ast.Constant)), (path.name, node.lineno, ast.unparse(node))


def test_global_sibling_is_found_and_compared(storage, rich_report):
    fig = figures(rich_report)["lwl-global"]
    by_name = {tr["name"]: tr for tr in fig["data"]}
    assert set(by_name) == {"predsim (this study)", "global (rich-global)"}
    glob = {t.user_attrs["schedule"]: t.value for t in _trials(storage, "rich-global", TrialState.COMPLETE)}
    assert dict(zip(by_name["global (rich-global)"]["x"], by_name["global (rich-global)"]["y"])) == glob
    assert "lwl-global-placeholder" not in rich_report
    assert fig["layout"]["yaxis"]["range"][0] == 0, "bars start at 0: a truncated axis exaggerates differences"


def test_few_trials_give_importance_with_its_spread_and_the_global_hint(storage, tmp_path, monkeypatch, capsys):
    """3 complete trials: optuna-dashboard shows an importance, so the report does too, with the bootstrap spread
    as whiskers and a plain sentence on how little 3 trials say."""
    monkeypatch.chdir(tmp_path)
    assert main(["--storage", storage, "--study-name", "few", "--no-dashboard"]) == 0
    assert "wrote few-report.html with 9 figures" in capsys.readouterr().out  # default: NAME-report.html in the cwd
    page = (tmp_path / "few-report.html").read_text()
    figs = figures(page)
    assert "lwl-global" not in figs and 'id="lwl-importance-placeholder"' not in page
    fig = figs["lwl-importance"]
    assert "3 complete trials" in fig["layout"]["title"]["text"] and "bootstrap" in fig["layout"]["title"]["text"]
    bars = fig["data"][0]
    assert sorted(bars["y"]) == ["d1", "d2", "d3", "d4"] and sum(bars["x"]) == pytest.approx(1.0)
    whiskers = bars["error_x"]
    assert len(whiskers["array"]) == len(whiskers["arrayminus"]) == 4
    assert all(w >= 0 for w in whiskers["array"] + whiskers["arrayminus"])
    assert all(0.0 <= low <= high <= 1.0 for low, high in bars["customdata"])
    note = re.search(r'id="lwl-importance-note">(.*?)</p>', page, re.S).group(1)
    assert "3 complete trials" in note and "bootstrap" in note and "rough indication" in note
    hint = re.search(r'id="lwl-global-placeholder">(.*?)</div>', page, re.S).group(1)
    assert "--loss global" in hint and "--study-name few-global" in hint and "--enqueue" in hint
    assert len(figures(page)["lwl-pareto-params"]["data"][0]["x"]) == 3
    # --no-dashboard wrote nothing to the study
    assert not [k for k in _system_attrs(storage, "few") if k.startswith("dashboard:plot_data:")]


def _system_attrs(storage: str, name: str) -> dict:
    opened = open_storage(storage, heartbeat=False)
    return opened.get_study_system_attrs(opened.get_study_id_from_name(name))


def _dashboard_graph_objects(storage: str, name: str) -> dict[str, dict]:
    """What optuna-dashboard's own REST API serves for the study's plotly graph objects."""
    from optuna_dashboard import wsgi

    opened = open_storage(storage, heartbeat=False)
    app = wsgi(opened)
    study_id = opened.get_study_id_from_name(name)
    environ: dict = {"PATH_INFO": f"/api/studies/{study_id}", "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    wsgiref.util.setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("200"), status
    return {g["id"]: json.loads(g["graph_object"]) for g in json.loads(body)["plotly_graph_objects"]}


@pytest.mark.slow
def test_dashboard_figures_are_saved_and_replaced_not_duplicated(storage, rich_report, tmp_path):
    saved = _dashboard_graph_objects(storage, "rich")
    assert set(saved) == EVERY_FIGURE
    # optuna-dashboard draws each in a half-width box 450 px high: every one takes its box's size
    assert all(
        g["layout"].get("autosize") is True and not {"width", "height"} & set(g["layout"]) for g in saved.values()
    )
    page_figs = figures(rich_report)
    assert saved["lwl-pareto-params"]["data"][1]["text"] == page_figs["lwl-pareto-params"]["data"][1]["text"]
    before = sorted(k for k in _system_attrs(storage, "rich") if k.startswith("dashboard:plot_data:"))
    assert len(before) >= len(EVERY_FIGURE)
    assert main(["--storage", storage, "--study-name", "rich", "--out", str(tmp_path / "again.html")]) == 0
    after = sorted(k for k in _system_attrs(storage, "rich") if k.startswith("dashboard:plot_data:"))
    assert after == before and set(_dashboard_graph_objects(storage, "rich")) == EVERY_FIGURE


def test_saving_for_the_dashboard_leaves_the_page_s_figures_as_they_were(storage, tmp_path):
    """Each figure is fitted to the dashboard's box while it is saved, then given its own size back."""
    import shutil

    copy = tmp_path / "copy.db"
    shutil.copy(storage.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    opened, study = open_study(url, "few")
    figs = build_figures(load_report_data(opened, study, url))
    before = {fid: json.loads(fig.to_json()) for fid, fig in figs.items()}
    assert all(f["layout"]["height"] > 0 and f["layout"]["autosize"] is True for f in before.values())
    assert save_dashboard_figures(study, figs) == list(figs)
    assert {fid: json.loads(fig.to_json()) for fid, fig in figs.items()} == before


def test_importance_needs_two_complete_trials_of_different_lists(tmp_path):
    url = f"sqlite:///{tmp_path / 'i.db'}"
    settings = _settings()
    one = prepare_study(settings, url, "one", sampler="tpe", pruner="median", seed=0)
    same = prepare_study(settings, url, "same", sampler="tpe", pruner="median", seed=0)
    h = SearchSpace(BUDGET, STAGES).lists()[0]
    _add(one, settings, h, TrialState.COMPLETE, acc=0.9)
    _add(same, settings, h, TrialState.COMPLETE, acc=0.9)
    _add(same, settings, h, TrialState.COMPLETE, acc=0.91)  # a revisit: the same list again
    for name, why in (("one", "Too few trials for parameter importance: 1 complete"), ("same", "the same list")):
        out = tmp_path / f"{name}.html"
        write_report(url, name, out, dashboard=False)
        page = out.read_text()
        assert "lwl-importance" not in figures(page) and 'id="lwl-importance-placeholder"' in page and why in page


def test_header_names_the_whole_network_and_the_reference_options():
    from lwl.search import parse_search_flags

    flags = ["--budget", "8", "--family", "vgg", "--widths", "4:8,16,16,32", "--fc-units", "24", "--conv-bias", "on"]
    settings = parse_search_flags([*flags, "--optimizer", "sgd", "--momentum", "0.9", "--device", "cpu"])[0]
    header = header_html("s", "sqlite:///s.db", settings.to_dict(), {"complete": 1})
    assert "4:8, 16, 16, 32" in header and "FC 24, conv bias" in header
    assert "reference options" in header and "optimizer sgd, momentum 0.9" in header
    plain = header_html("s", "sqlite:///s.db", parse_search_flags(["--budget", "8"])[0].to_dict(), {"complete": 1})
    assert "reference options" not in plain and "<dt>network</dt>" not in plain


def test_header_never_shows_a_password():
    url = "postgresql+psycopg://u:secret@127.0.0.1/x"
    header = header_html("s", url, {"recipe": {}}, {"complete": 1})
    assert "secret" not in header and mask_url(url) in header and "u:***@127.0.0.1" in header


@pytest.mark.parametrize(
    "args, message",
    [
        (["--study-name", "nope"], "no study named 'nope'"),
        (["--study-name", "empty"], "has no complete trial"),
        (["--study-name", "foreign"], "not made by lwl-search"),
        (["--study-name", "rich-pareto"], "derived Pareto studies lwl-search keeps; use the search study's name"),
        ([], "name the study with --study-name"),
    ],
)
def test_study_errors_exit_2_with_one_line(storage, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["--storage", storage, *args, "--out", str(tmp_path / "r.html")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lwl-report: error:") and message in err and "\n" not in err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/missing.db", "postgresql+psycopg://u:secret@127.0.0.1:1/x"])
def test_unreachable_storage_exits_2_and_creates_nothing(tmp_path, capsys, url):
    url = url.format(tmp=tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["--storage", url, "--study-name", "s", "--out", str(tmp_path / "r.html")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "secret" not in err and "lwl-report: error:" in err
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "r.html").exists()


def _postgres_url() -> str | None:
    url = "postgresql+psycopg://postgres:secret@127.0.0.1:5432/test"  # trust auth: the password is ignored
    try:
        import sqlalchemy

        with sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3}).connect():
            return url
    except Exception:  # noqa: BLE001 - no server or no driver: skip
        return None


def test_a_password_in_a_real_server_url_never_reaches_the_page_or_the_terminal(tmp_path, capsys):
    url = _postgres_url()
    if url is None:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432 (or no psycopg)")
    name = f"lwl-report-test-{uuid.uuid4().hex[:8]}"
    settings = _settings()
    study = prepare_study(settings, url, name, sampler="tpe", pruner="median", seed=0)
    try:
        for h in SearchSpace(BUDGET, STAGES).lists()[:2]:
            _add(study, settings, h, TrialState.COMPLETE, acc=_accuracy(h))
        out = tmp_path / "pg.html"
        assert main(["--storage", url, "--study-name", name, "--out", str(out)]) == 0
        page, captured = out.read_text(), capsys.readouterr()
        assert "secret" not in page and "secret" not in captured.out + captured.err
        assert "postgres:***@127.0.0.1" in page
        assert set(_dashboard_graph_objects(url, name)) >= {"lwl-pareto-params", "lwl-history"}
        assert not any("secret" in str(v) for v in _system_attrs(url, name).values())
    finally:
        optuna.delete_study(study_name=name, storage=url)


def test_pareto_front_helper():
    pts = [(1.0, 0.5), (2.0, 0.7), (2.0, 0.6), (3.0, 0.7), (0.5, 0.4), (1.0, 0.5)]
    assert pareto_indices(pts) == [4, 0, 5, 1]


def test_installed_command_exists():
    import shutil

    exe = shutil.which("lwl-report")
    if exe is None:
        pytest.skip("lwl-report is not on PATH (package not installed)")
    assert Path(exe).is_file()


@pytest.mark.slow
def test_a_real_tiny_search_reports(tmp_path):
    """lwl-search end to end (2 trials, 1 epoch, 128 images), then the report of what it stored."""
    from lwl.search.commands import search_main

    url = f"sqlite:///{tmp_path / 'real.db'}"
    assert (
        search_main(
            tiny("--budget", "8", "--pruner", "none", "--trials", "2", "--storage", url, "--study-name", "real")
        )
        == 0
    )
    out = tmp_path / "real.html"
    assert main(["--storage", url, "--study-name", "real", "--out", str(out)]) == 0
    page = out.read_text()
    figs = figures(page)
    complete = _trials(url, "real", TrialState.COMPLETE)
    assert len(complete) == 2
    assert len(figs["lwl-pareto-params"]["data"][0]["x"]) == 2
    assert "ESTIMATE" in figs["lwl-pareto-memory"]["layout"]["xaxis"]["title"]["text"]  # CPU: no measured peak
    assert {tr["meta"]["trial"] for tr in figs["lwl-curves"]["data"] if "meta" in tr} == {t.number for t in complete}
    # budget 8 enqueues the paper's [1,1,2,4] (ResNet18_r5) first: it is marked in the page
    assert "[1,1,2,4]" in page and "ResNet18" in page
    val = optuna.load_study(study_name="real", storage=url).user_attrs[VALIDATION_ATTR]
    assert f"<dt>validation split</dt><dd>{val:,} images (20 % of the training images); one image is " in page
    assert "lwl-importance" in figs, "2 complete trials of different lists: the dashboard shows importance, so do we"
    assert set(_dashboard_graph_objects(url, "real")) == set(figs)
    # the thesis section of a study too small to tell says so, and plots nothing
    assert 'id="thesis"' in page and "too few trials to tell: 2 complete lists" in page
    assert "lwl-thesis-shallow" not in figs and 'data-figure="lwl-thesis-shallow"' not in page


def test_text_in_the_page_is_escaped(tmp_path):
    """A study name with markup in it reaches the page as text only (title, header, the global hint's command).

    The commands refuse such a name (`check_study_name`); the library's `write_report` does not, so it escapes."""
    url = f"sqlite:///{tmp_path / 'esc.db'}"
    name = '<i>odd&"name"</i>'
    settings = _settings()
    study = prepare_study(settings, url, name, sampler="tpe", pruner="median", seed=0)
    for h in SearchSpace(BUDGET, STAGES).lists()[:2]:
        _add(study, settings, h, TrialState.COMPLETE, acc=_accuracy(h))
    out = tmp_path / "esc.html"
    write_report(url, name, out, dashboard=False)
    rest = without_plotlyjs(out.read_text())
    assert "<i>" not in rest and 'odd&"' not in rest
    assert "<title>lwl-search report: &lt;i&gt;odd&amp;&quot;name&quot;&lt;/i&gt;</title>" in rest
    assert "<h1>lwl-search study &lt;i&gt;odd&amp;&quot;name&quot;&lt;/i&gt;</h1>" in rest
    assert "$" not in rest.replace("$$", ""), "a template placeholder was left unfilled"


def test_the_page_template_is_package_data():
    import importlib.resources

    template = importlib.resources.files("lwl.dashboards").joinpath("report.html")
    assert template.is_file() and "${header_html}" in template.read_text(encoding="utf-8")


def test_the_dashboards_import_only_public_names():
    """Across packages only lwl.*'s public modules; inside dashboards no underscore name from a sibling module."""
    import ast

    import lwl.dashboards

    for path in Path(lwl.dashboards.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not any(p.startswith("_") for p in alias.name.split(".")), (path.name, alias.name)
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 0 and module.startswith("lwl."):
                    assert not any(p.startswith("_") for p in module.split(".")), (path.name, module)
                assert not any(a.name.startswith("_") for a in node.names), (path.name, module, node.names)


def test_a_study_searched_against_flops_gets_that_front_and_says_what_it_searched(tmp_path):
    recipe = Recipe(dataset="digits", loss="predsim", epochs=3, batch_size=64, lr=2e-3, train_limit=256)
    settings = StudySettings.create(
        SearchSpace(BUDGET, STAGES), recipe, family="resnet", widths=WIDTHS, objectives=("accuracy", "flops")
    )
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = prepare_study(settings, url, "front", sampler="hvi", pruner="dominance", seed=0)
    for h in SearchSpace(BUDGET, STAGES).lists()[:4]:
        _add(study, settings, h, TrialState.COMPLETE, acc=_accuracy(h))
    out = tmp_path / "front.html"
    assert main(["--storage", url, "--study-name", "front", "--out", str(out)]) == 0
    page = out.read_text()
    assert "lwl-pareto-flops" in figures(page)
    assert "the front of accuracy against flops" in page
    assert "not a Pareto axis" not in page and "FLOPs are an objective of this study" in page


def test_the_report_does_not_announce_its_100_resampled_studies(storage, tmp_path, capfd):
    """The importance's bootstrap makes 100 in-memory studies; Optuna's 'A new study created in memory' for each
    reached stderr. The report prints its own lines only, and leaves the caller's Optuna verbosity as it was."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        out = tmp_path / "quiet.html"
        assert main(["--storage", storage, "--study-name", "rich", "--out", str(out), "--no-dashboard"]) == 0
        err = capfd.readouterr().err
        assert "A new study created" not in err, err[:500]
        optuna.logging.set_verbosity(optuna.logging.INFO)
        write_report(storage, "rich", tmp_path / "lib.html", dashboard=False)  # the library call alone
        assert "A new study created" not in capfd.readouterr().err
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
