"""Ctrl-C and SIGTERM on a real `lwl-search` process: the running trial is failed as 'interrupted', the study stays
consistent, and the same command continues it."""

import signal
import subprocess
import sys
import time

import optuna
import pytest
from cases import tiny
from optuna.trial import TrialState

ARGS = tiny(
    *("--budget", "10", "--pruner", "none", "--sampler", "grid", "--no-paper-baselines"),
    *("--study-name", "i"),
    epochs=8,
    train_limit=256,
    quiet=False,
)


def _start(storage: str, trials: int) -> subprocess.Popen:
    code = "import sys; from lwl.search.commands import search_main; sys.exit(search_main())"
    return subprocess.Popen(
        [sys.executable, "-c", code, *ARGS, "--storage", storage, "--trials", str(trials)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_running_step(storage: str, deadline: float = 120) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            study = optuna.load_study(study_name="i", storage=storage)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if running and running[0].intermediate_values:
                return
        except KeyError:
            pass
        time.sleep(0.3)
    raise AssertionError("no trial reported progress in time")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_search_records_and_continues(tmp_path, sig):
    storage = f"sqlite:///{tmp_path / 'i.db'}"
    proc = _start(storage, 2)
    try:
        _wait_for_running_step(storage)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert "0 complete, 0 pruned, 1 failed" in out
    (trial,) = optuna.load_study(study_name="i", storage=storage).trials
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == "interrupted"
    assert trial.user_attrs["unit_acc_history"], "what the trial learned before the interrupt is kept"
    # The same command continues: the failed list is free again and the study reaches --trials.
    code = "import sys; from lwl.search.commands import search_main; sys.exit(search_main())"
    rerun = subprocess.run(
        [sys.executable, "-c", code, *ARGS, "--storage", storage, "--trials", "1", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name="i", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[1].params == trial.params, "grid retries the interrupted list first"


def _children(pid: int) -> list[int]:
    """The process ids whose parent is `pid` (Linux /proc)."""
    from pathlib import Path

    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(900)  # waits up to 5 min for both workers, then 2 for the group to stop
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_signal_to_a_workers_parent_stops_the_whole_group(tmp_path, sig):
    """SIGTERM or SIGINT to `lwl-search --workers 2`: no orphaned worker trains on, each running trial is failed
    as 'interrupted', the parent prints one summary and exits 130."""
    journal = tmp_path / "w.log"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    args = list(ARGS)
    args[args.index("--epochs") + 1] = "40"  # trials that are still training when the signal comes
    proc = subprocess.Popen(
        [sys.executable, "-m", "lwl.search", *args, "--storage", str(journal), "--trials", "4", "--workers", "2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        end = time.monotonic() + 300
        while True:
            assert proc.poll() is None and time.monotonic() < end, "the workers never reported progress"
            try:
                running = optuna.load_study(study_name="i", storage=storage).get_trials(states=(TrialState.RUNNING,))
            except KeyError:
                running = []
            if len(running) == 2 and all(t.intermediate_values for t in running):
                break
            time.sleep(0.3)
        workers = _children(proc.pid)
        assert len(workers) == 2
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    time.sleep(0.5)
    assert not [w for w in workers if _alive(w)], "a worker outlived its parent"
    assert "Traceback" not in err, err
    assert out.count("study 'i':") == 1, out
    study = optuna.load_study(study_name="i", storage=storage)
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 2 and all(t.user_attrs["fail_reason"] == "interrupted" for t in failed)
