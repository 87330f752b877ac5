"""Smoke test of benchmarks/heads_search.py: two head kinds, a real two-trial study each, the named list retrained."""

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def heads_search():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
        import heads_search

        yield heads_search


@pytest.mark.timeout(300)
def test_each_kind_names_a_list_states_the_thesis_and_retrains_it(heads_search, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = [
        "--kinds", "local-loss", "auglocal", "--widths", "4,8,8,16", "--epochs", "1", "--trials", "2",
        "--confirm", "off", "--seeds", "2", "--train-limit", "256", "--compare", "1,1,2,4",
        "--search-timeout", "120", "--dir", str(tmp_path / "studies"), "--json", str(out),
    ]  # fmt: skip
    assert heads_search.main(args) == 0
    kinds = json.loads(out.read_text())["kinds"]
    assert [k["aux_net"] for k in kinds] == ["local-loss", "auglocal"]
    for k in kinds:
        assert k["counts"]["complete"] == 2 and k["recipe_differs_from_heads"] == []
        assert "--aux-net " + k["aux_net"] in k["command"] and (tmp_path / "studies" / f"{k['aux_net']}.db").exists()
        assert sum(k["named"]) == 8 and k["answer"][0].startswith("answer: [" + ",".join(map(str, k["named"])))
        # two lists cannot test the thesis: the report's own words say so, and no correlation is computed
        assert k["thesis"]["shallow"] is None and k["thesis"]["verdict"].startswith("too few trials to tell")
        best = k["best"]
        assert best["aux_net"] == k["aux_net"] and best["hierarchy"] == k["named"]
        assert [run["seed"] for run in best["runs"]] == [0, 1] and best["cpu_seconds_per_epoch"] > 0
        assert [r["hierarchy"] for r in k["compared"]] == ([] if k["named"] == [1, 1, 2, 4] else [[1, 1, 2, 4]])
    assert "too few trials to tell" in capsys.readouterr().out
