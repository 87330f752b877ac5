"""Many workers on the real database servers this machine runs (PostgreSQL, MariaDB, Redis on loopback).

In CI (CI=true) a missing server is a failure, not a skip: CI starts them. On a user's machine without them, skip."""

import os
import signal
import time
import socket
import subprocess
import sys
import uuid
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

SERVERS = {
    "postgresql": ("127.0.0.1", 5432, "postgresql://postgres:s3cret-pw@127.0.0.1:5432/test"),
    "mariadb": ("127.0.0.1", 3306, "mysql+pymysql://root@127.0.0.1:3306/test"),
    "redis": ("127.0.0.1", 6379, "redis://127.0.0.1:6379/0"),
}
TINY = ["--dataset", "digits", "--widths", "4,8,8,16", "--epochs", "1", "--train-limit", "128", "--device", "cpu",
        "--budget", "10", "--pruner", "none", "--no-paper-baselines"]
CODE = "import sys; from lwl.search._cli import main; sys.exit(main())"


def _require(name: str) -> str:
    host, port, url = SERVERS[name]
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not running on {host}:{port}; CI must start it (see .ci/run)")
        pytest.skip(f"{name} is not running on {host}:{port}")
    return url


@pytest.fixture(params=list(SERVERS))
def server(request):
    url = _require(request.param)
    name = f"w-{uuid.uuid4().hex[:8]}"
    yield url, name
    storage = url.replace("s3cret-pw", "")
    for study in (name, f"{name}-pareto"):
        try:
            from lwl.search import open_storage

            optuna.delete_study(study_name=study, storage=open_storage(storage, heartbeat=False))
        except KeyError:
            pass


def test_workers_share_one_study_exactly(server, tmp_path):
    url, name = server
    out = subprocess.run([sys.executable, "-c", CODE, *TINY, "--sampler", "grid", "--trials", "5", "--workers", "3",
                          "--storage", url, "--study-name", name], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    from lwl.search import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=False))
    states = Counter(t.state for t in study.trials)
    assert states[TrialState.COMPLETE] + states[TrialState.PRUNED] == 5, states
    assert states[TrialState.RUNNING] == states[TrialState.WAITING] == 0, "every trial ends in a final state"
    lists = [tuple(t.params.values()) for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(lists) == len(set(lists)), "grid trained a list twice"
    # The password never appears: not in output, not in the study's attributes.
    assert "s3cret-pw" not in out.stdout + out.stderr
    assert "s3cret-pw" not in repr(study.user_attrs) + repr([t.user_attrs for t in study.trials])


def test_sqlite_is_refused_for_several_workers(tmp_path):
    out = subprocess.run([sys.executable, "-c", CODE, *TINY, "--workers", "2", "--storage",
                          f"sqlite:///{tmp_path / 'x.db'}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "not safe" in out.stderr and not (tmp_path / "x.db").exists()


def test_an_unreachable_server_is_one_line_without_the_password(tmp_path):
    out = subprocess.run([sys.executable, "-c", CODE, *TINY, "--storage",
                          "postgresql://postgres:hunter2@127.0.0.1:1/none"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "cannot open storage" in out.stderr and "hunter2" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_worker_killed_mid_trial_is_failed_by_heartbeat_and_its_list_retried(tmp_path):
    url = _require("postgresql")
    name = f"k-{uuid.uuid4().hex[:8]}"
    args = [*TINY, "--epochs", "8", "--sampler", "grid", "--storage", url, "--study-name", name, "--heartbeat", "1",
            "--quiet"]
    from lwl.search import open_storage

    storage = open_storage(url, heartbeat=False)
    victim = subprocess.Popen([sys.executable, "-c", CODE, *args, "--trials", "2"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                running = optuna.load_study(study_name=name, storage=storage).get_trials(states=(TrialState.RUNNING,))
            except KeyError:
                running = []
            if running and running[0].intermediate_values:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the first worker never reported progress")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed = running[0]
        time.sleep(4)  # three missed heartbeats
        rescuer = subprocess.run([sys.executable, "-c", CODE, *args, "--trials", "2"], cwd=tmp_path,
                                 capture_output=True, text=True, timeout=600)
        assert rescuer.returncode == 0, rescuer.stderr
        study = optuna.load_study(study_name=name, storage=storage)
        states = {t.number: t.state for t in study.trials}
        assert states[killed.number] == TrialState.FAIL, "the killed worker's trial must not stay RUNNING"
        assert TrialState.RUNNING not in states.values()
        retried = [t for t in study.trials if t.number != killed.number and t.params == killed.params]
        assert retried and retried[0].state == TrialState.COMPLETE, "another worker retried the same list"
        finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) == 2
    finally:
        victim.kill()
        for study_name in (name, f"{name}-pareto"):
            try:
                optuna.delete_study(study_name=study_name, storage=storage)
            except KeyError:
                pass
