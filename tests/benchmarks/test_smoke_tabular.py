"""Smoke test of the tabular benchmark (benchmarks/tabular_*.py): a 2-list table, its replay and its analysis.

The space is 2 stages summing to 3 (the lists [1,2] and [2,1]) with tiny widths, 64 training images and 2 epochs,
one seed; the scripts run in this process (their `main(argv)`), so torch is imported once: a few seconds.
"""

import json
import math
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
TINY = [
    "--budget",
    "3",
    "--stages",
    "2",
    "--constraint",
    "none",
    "--seeds",
    "0",
    "--widths",
    "4,8",
    "--train-limit",
    "64",
    "--epochs",
    "2",
    "--threads",
    "1",
]
RUN_KEYS = {
    "hierarchy",
    "index",
    "seed",
    "units",
    "output_acc",
    "unit_acc",
    "params",
    "params_aux",
    "flops",
    "unit_epochs",
    "wall_time",
    "history",
}
ROW_KEYS = {
    "sampler",
    "pruner",
    "trials_to_best",
    "unit_epochs_to_best",
    "best_reached",
    "trials_to_top",
    "unit_epochs_to_top",
    "top_reached",
    "pruned_fraction",
    "unit_epochs",
    "found_acc",
    "replays",
    "best_in_first_pass",
    "revisits",
}


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        import tabular_analysis
        import tabular_replay
        import tabular_table

        yield tabular_table, tabular_replay, tabular_analysis, tmp_path_factory.mktemp("tabular")


@pytest.fixture(scope="module")
def table_path(scripts):
    tabular_table, _, _, tmp = scripts
    path = tmp / "table.json"
    assert tabular_table.main([*TINY, "--out", str(path)]) == 0
    return path


def test_table_has_every_run_with_its_epochs_and_resumes(scripts, table_path, capsys):
    tabular_table = scripts[0]
    table = json.loads(table_path.read_text())
    header = table["header"]
    assert {"commands", "torch", "optuna", "settings", "seed_rule", "lists", "val_images"} <= set(header)
    assert header["settings"]["recipe"]["loss"] == "pred" and header["settings"]["widths"] == [4, 8]
    assert [r["hierarchy"] for r in table["runs"]] == [[1, 2], [2, 1]]
    for run in table["runs"]:
        assert RUN_KEYS <= set(run) and run["units"] == 3 and run["unit_epochs"] == 6
        assert [h["step"] for h in run["history"]] == [1, 2] and len(run["history"][0]["unit_acc"]) == 3
        assert run["history"][-1]["output_acc"] == run["output_acc"]
    capsys.readouterr()
    assert tabular_table.main([*TINY, "--out", str(table_path)]) == 0  # resumed: nothing left to train
    assert "0 to train" in capsys.readouterr().out
    assert tabular_table.main([*TINY, "--widths", "4,4", "--out", str(table_path)]) == 2  # other settings: refused
    assert len(json.loads(table_path.read_text())["runs"]) == 2


def test_replay_measures_every_sampler_and_pruner(scripts, table_path, tmp_path):
    tabular_replay = scripts[1]
    out = tmp_path / "replay.json"
    assert tabular_replay.main([str(table_path), "--replays", "2", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    # every list, then each pruned one once more (as lwl-search does); --no-revisit: one pass
    assert d["lists"] == 2 and d["trial_cap"] == 4 and d["revisit"] and d["replays"] == 2 and d["seeds"] == [0]
    assert [(r["sampler"], r["pruner"]) for r in d["rows"]] == [
        (s, p) for s in ("tpe", "random", "grid") for p in ("median", "hyperband", "none")
    ]
    for row in d["rows"]:
        assert ROW_KEYS <= set(row) and row["replays"] == 2
        assert row["top_reached"] == 2  # two lists and a top-3: every study completes one at its first trial
        assert ("saved_same_trials" in row) == ("equal_acc" in row) == (row["pruner"] != "none")
        if row["pruner"] != "none":
            assert {"target", "unit_epochs", "unit_epochs_none", "saved"} == set(row["equal_acc"])
    none = next(r for r in d["rows"] if r["pruner"] == "none")
    assert none["trials_to_top"] == [1, 1, 1] and none["unit_epochs"] == 12 and none["pruned_fraction"] == 0
    assert none["revisits"] == 0 and none["best_in_first_pass"] == 2
    assert tabular_replay.main([str(table_path), "--replays", "2", "--no-revisit", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["trial_cap"] == 2 and not d["revisit"] and all(r["revisits"] == 0 for r in d["rows"])


def test_a_continued_revisit_pays_only_what_its_pruned_visit_left(scripts):
    """On the project's chosen table (35 lists, 10 epochs of 8 units): pruning, then revisiting every pruned list
    with continuation, costs exactly one unpruned sweep; from the start, more."""
    _, tabular_replay, _, _ = scripts
    table = tabular_replay.load_table(BENCH / "results" / "tabular_digits_b8_s4_none_w4-32.json")
    runs = tabular_replay.by_list(table)
    header = table["header"]["settings"]
    settings = tabular_replay.StudySettings.from_dict({**header, "recipe": {**header["recipe"], "seed": 0}})
    totals = {}
    for resume in (True, False):
        log = tabular_replay.replay_study(runs, settings, "random", "hyperband", 0, 0, 70, False, True, resume)
        assert any(e["pruned"] for e in log) and any(e["revisit"] for e in log)
        totals[resume] = sum(e["unit_epochs"] for e in log)
    assert totals[True] == 35 * 10 * 8 < totals[False]


def test_quantiles_treat_misses_as_misses(scripts):
    quantiles = scripts[1].quantiles
    assert quantiles([1, 2, 3, 4, 5]) == (2, 3, 4)
    assert quantiles([1, 2, 3, math.inf])[:2] == (1.75, 2.5) and quantiles([1, 2, 3, math.inf])[2] == math.inf


def test_analysis_reports_spread_signal_and_thesis(scripts, table_path, tmp_path):
    tabular_analysis = scripts[2]
    out = tmp_path / "analysis.json"
    assert tabular_analysis.main([str(table_path), "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert {"ranking", "spread", "early", "thesis", "command"} <= set(d)
    assert len(d["ranking"]) == 2 and d["early"]["epochs"] == 2
    assert len(d["early"]["output_vs_final"]) == 2 and len(d["early"]["unit_vs_final"]) == 3
    assert d["thesis"]["shallow_stages"] == 1


def test_pareto_replay_on_the_committed_table(tmp_path):
    """benchmarks/pareto_replay.py on the committed 35-list table, one replay: shares are fractions of the true
    hypervolume, and every method that trains every list to the end returns the same front at the trial cap."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        import pareto_replay

    out = tmp_path / "pareto.json"
    table = BENCH / "results" / "tabular_digits_b8_s4_none_w4-32.json"
    argv = [str(table), "--replays", "2", "--methods", "dominance,random", "--dominators", "2", "--caps", "10"]
    assert pareto_replay.main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows) == {"dominance k=2", "random"}
    assert all(0 < v <= 1 for r in rows.values() for v in r["share_at"].values())
    assert rows["dominance k=2"]["final_share"] == pytest.approx(rows["random"]["final_share"])
    assert len(result["confirm_grid"]) == 2 * 3 and result["true_front"]


def test_a_table_trained_together_holds_the_same_runs(scripts, table_path, tmp_path):
    """--together trains a seed's lists in one pass through their shared units: the same accuracies and curves as
    one run at a time (wall times aside), the test accuracy included."""
    tabular_table = scripts[0]
    path = tmp_path / "together.json"
    assert tabular_table.main([*TINY, "--with-test", "--together", "--out", str(path)]) == 0
    alone_path = tmp_path / "alone.json"
    assert tabular_table.main([*TINY, "--with-test", "--out", str(alone_path)]) == 0

    def strip(run):
        run = {k: v for k, v in run.items() if k != "wall_time"}
        run["history"] = [{k: v for k, v in p.items() if k != "elapsed"} for p in run["history"]]
        return run

    together = [strip(r) for r in json.loads(path.read_text())["runs"]]
    alone = [strip(r) for r in json.loads(alone_path.read_text())["runs"]]
    assert together == alone and all("test_output_acc" in r for r in together)
