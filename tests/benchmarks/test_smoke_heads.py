"""Smoke test of benchmarks/heads.py: one list, every head kind, two seeds, one epoch."""

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def heads():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
        import heads

        yield heads


@pytest.mark.slow
def test_every_kind_is_trained_on_the_same_seeds_and_counted(heads, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["--lists", "1,1", "--widths", "4,8", "--epochs", "1", "--seeds", "2", "--threads", "1", "--json", str(out)]
    assert heads.main(args) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["aux_net"], r["loss"]) for r in rows] == [
        ("local-loss", "predsim"), ("dgl", "pred"), ("infopro", "pred"), ("auglocal", "pred"),
    ]  # fmt: skip
    for r in rows:
        assert [run["seed"] for run in r["runs"]] == [0, 1]
        tests = [run["test"] for run in r["runs"]]
        assert r["test"][0] == pytest.approx(sum(tests) / 2) and r["params_aux"] > r["params"]
        assert r["seconds_per_epoch"] > 0 and r["cpu_seconds_per_epoch"] > 0
    assert len({r["params_aux"] for r in rows}) == 4  # each kind's heads are counted, each differently
    assert "auglocal   1,1" in capsys.readouterr().out
