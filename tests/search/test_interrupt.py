"""Ctrl-C and SIGTERM on a real `lwl-search` process: the running trial is failed as 'interrupted', the study stays
consistent, and the same command continues it."""

import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

ARGS = [
    "--dataset",
    "digits",
    "--widths",
    "4,8,8,16",
    "--epochs",
    "8",
    "--train-limit",
    "256",
    "--device",
    "cpu",
    "--budget",
    "10",
    "--pruner",
    "none",
    "--sampler",
    "grid",
    "--no-paper-baselines",
    "--study-name",
    "i",
]


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
