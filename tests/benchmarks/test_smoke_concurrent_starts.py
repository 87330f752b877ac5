"""Smoke test of benchmarks/concurrent_starts.py: one round of simultaneous fresh starts on PostgreSQL."""

import json
import os
import socket

import pytest


@pytest.fixture(scope="module")
def concurrent_starts():
    from pathlib import Path

    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail("postgresql is not running on 127.0.0.1:5432; CI must start it (see .ci/run)")
        pytest.skip("postgresql is not running on 127.0.0.1:5432")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
        import concurrent_starts

        yield concurrent_starts


@pytest.mark.slow
def test_one_round_on_postgresql_is_exact(concurrent_starts, tmp_path, capsys):
    out = tmp_path / "starts.json"
    assert concurrent_starts.main(["--repeats", "1", "--servers", "postgresql", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    pg = report["servers"]["postgresql"]
    assert report["workers"] == 4 and report["trials"] == 6 and pg["runs"] == 1
    assert pg["crashed_workers"] == 0, pg["details"]
    assert pg["exact_runs"] == 1 and pg["trained_twice"] == 0 and pg["left_running_or_waiting"] == 0
    (run,) = pg["details"]
    assert set(run["failed"]) <= {"duplicate", "surplus"}, run
    assert "postgresql: 0 of 4 workers crashed; totals exact in 1 of 1 runs" in capsys.readouterr().out
