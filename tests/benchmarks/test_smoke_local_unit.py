"""Smoke test of benchmarks/local_unit.py: one list, both local units, two seeds, one epoch."""

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def local_unit():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
        import local_unit

        yield local_unit


@pytest.mark.slow
def test_both_local_units_are_trained_on_the_same_seeds(local_unit, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["--lists", "1,1", "--widths", "4,8", "--epochs", "1", "--seeds", "2", "--threads", "1", "--json", str(out)]
    assert local_unit.main(args) == 0
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [(r["hierarchy"], r["local_unit"], r["units"]) for r in rows] == [([1, 1], "block", 2), ([1, 1], "conv", 5)]
    for r in rows:
        assert [run["seed"] for run in r["runs"]] == [0, 1]
        tests = [run["test"] for run in r["runs"]]
        assert r["test"][0] == pytest.approx(sum(tests) / 2) and r["test"][1] >= 0
        assert all(0 <= run["best_unit"] <= 1 for run in r["runs"])
    assert "1,1        conv      5" in capsys.readouterr().out
