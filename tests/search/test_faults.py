"""Training faults end one trial, with the reason stored, and the study goes on."""

import subprocess
import sys
import weakref

import optuna
import pytest
import torch
from cases import tiny
from optuna.trial import TrialState

import lwl.models  # the engine the objective trains with, at the time it trains: inject an out-of-memory error
from lwl.search.commands import search_main as main

TINY = tiny("--pruner", "none", "--budget", "10", epochs=2, train_limit=256)


def _trials(db, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}").trials


def test_a_diverging_candidate_fails_as_diverged_and_the_study_goes_on(tmp_path, capsys):
    db = tmp_path / "d.db"
    assert (
        main(
            [
                *TINY,
                "--loss",
                "pred",
                "--lr",
                "1e30",
                "--trials",
                "2",
                "--storage",
                f"sqlite:///{db}",
                "--study-name",
                "d",
            ]
        )
        == 0
    )
    trials = _trials(db, "d")
    assert len(trials) >= 2, "the study stopped at the first failure"
    assert all(t.state == TrialState.FAIL and t.user_attrs["fail_reason"] == "diverged" for t in trials)
    assert "not finite" in trials[0].user_attrs["fail_detail"]
    assert "failed" in capsys.readouterr().out


def test_out_of_memory_fails_the_trial_frees_its_memory_and_the_study_goes_on(tmp_path, monkeypatch, capsys):
    # No GPU here: the engine is made to raise CUDA's own out-of-memory error once, holding a tensor as a real
    # out-of-memory failure holds its activations. The trial must fail with its reason and release that tensor.
    real_train = lwl.models.train
    held: list[weakref.ref] = []

    def train_once_out_of_memory(*args, **kwargs):
        if not held:
            activations = torch.empty(1 << 20)
            held.append(weakref.ref(activations))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        assert held[0]() is None, "the failed trial's tensors are still alive when the next trial starts"
        return real_train(*args, **kwargs)

    monkeypatch.setattr(lwl.models, "train", train_once_out_of_memory)
    db = tmp_path / "m.db"
    assert main([*TINY, "--trials", "2", "--storage", f"sqlite:///{db}", "--study-name", "m"]) == 0
    trials = _trials(db, "m")
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[0].user_attrs["fail_reason"] == "out of memory"
    assert "Tried to allocate 20.00 GiB" in trials[0].user_attrs["fail_detail"]
    assert "1 failed" in capsys.readouterr().out


@pytest.mark.slow
def test_an_enqueued_copy_of_a_list_an_earlier_trial_holds_ends_as_duplicate_and_does_not_count(tmp_path, capsys):
    """Workers that start at once each enqueue the same lists; the later copy must not train the list again."""
    db = tmp_path / "q.db"
    flags = [*TINY, "--no-paper-baselines", "--storage", f"sqlite:///{db}", "--study-name", "q"]
    assert main([*flags, "--trials", "1", "--enqueue", "1,1,4,4"]) == 0
    study = optuna.load_study(study_name="q", storage=f"sqlite:///{db}")
    for _ in range(2):  # what two racing workers leave behind: copies queued before either saw the first
        study.enqueue_trial({"d1": 1, "d2": 1, "d3": 4, "d4": 4}, skip_if_exists=False)
    capsys.readouterr()
    assert main([*flags, "--trials", "3"]) == 0
    trials = _trials(db, "q")
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 3
    assert [tuple(t.params.values()) for t in finished].count((1, 1, 4, 4)) == 1
    copies = [t for t in trials if t.state == TrialState.FAIL]
    assert len(copies) == 2 and all(t.user_attrs["fail_reason"] == "duplicate" for t in copies)
    assert all("trial 0 holds the list" in t.user_attrs["fail_detail"] for t in copies)
    assert "3 complete, 0 pruned, 2 failed; stopped:" in capsys.readouterr().out


@pytest.mark.slow
def test_a_full_prefix_store_disk_warns_once_and_the_trials_complete(tmp_path, monkeypatch, capsys):
    """The prefix store is a cache: a disk that is full (ENOSPC) turns it off, said once; the search goes on."""
    import errno

    import lwl.models._files as files_module  # a private mechanism on purpose: the stores' one file writer

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(files_module, "atomic_write", full)
    db = tmp_path / "p.db"
    flags = [*TINY, "--mode", "sequential", "--trials", "2", "--storage", f"sqlite:///{db}", "--study-name", "p"]
    assert main([*flags, "--prefix-store", str(tmp_path / "prefixes")]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "prefix store" in line]
    assert len(warnings) == 1 and "No space left on device (ENOSPC)" in warnings[0], err
    assert "Traceback" not in err
    assert [t.state for t in _trials(db, "p")] == [TrialState.COMPLETE, TrialState.COMPLETE]


@pytest.mark.slow
@pytest.mark.timeout(1200)  # waits up to 5 min for the victim, then 10 for the rerun
def test_a_rerun_after_a_sigkill_on_a_storage_without_heartbeats_names_the_held_trial_and_fails(tmp_path):
    """A journal file cannot tell a killed worker's trial from a live one: the rerun trains what it can, then says
    which trial holds the count and exits non-zero; it never claims to have reached --trials."""
    import signal
    import subprocess
    import sys
    import time

    journal = tmp_path / "j.log"
    cmd = [sys.executable, "-m", "lwl.search", *TINY, "--epochs", "8", "--sampler", "grid", "--no-paper-baselines"]
    cmd += ["--storage", str(journal), "--study-name", "j", "--trials", "2"]
    log = tmp_path / "victim.err"
    with open(log, "w") as err:
        victim = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert victim.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            if journal.exists():
                study = optuna.load_study(
                    study_name="j",
                    storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal))),
                )
                running = study.get_trials(states=(TrialState.RUNNING,))
                if running and running[0].intermediate_values:
                    break
            time.sleep(0.2)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        victim.kill()
    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 3, rerun.stderr
    assert "reached --trials" not in rerun.stdout + rerun.stderr
    assert "trial 0 is still RUNNING, held by another worker or one that was killed" in rerun.stdout
    assert "1 of 2 trials finished" in rerun.stdout
    study = optuna.load_study(
        study_name="j", storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    )
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.COMPLETE]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE and SIGXFSZ as Linux has them")
@pytest.mark.slow
def test_a_storage_refused_on_a_full_disk_leaves_no_partial_database(tmp_path):
    """SQLite meets a full disk (here a file size limit) while it creates its schema: one line, exit 2, and neither
    the partial .db file nor the folder made for it is left."""
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))\n"
        "from lwl.search.commands import search_main\n"
        "sys.exit(search_main(sys.argv[1:]))\n"
    )
    flags = tiny("--budget", "8", "--trials", "1", quiet=False)
    run = subprocess.run(
        [sys.executable, "-c", script, *flags, "--storage", f"sqlite:///{tmp_path / 'made' / 's.db'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2, run.stderr
    assert "cannot open storage" in run.stderr and "free space" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr, run.stderr
    assert list(tmp_path.iterdir()) == [], "the refused storage left files behind"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE and SIGXFSZ as Linux has them")
@pytest.mark.slow
def test_a_journal_file_that_cannot_grow_mid_study_is_one_line(tmp_path):
    """The journal file meets a full disk (a file size limit) after the study was created: the lost storage's one
    line, exit status 1, no traceback."""
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "from lwl.search.commands import search_main\n"
        "sys.exit(search_main(sys.argv[1:]))\n"
    )
    flags = tiny("--budget", "8", train_limit=64, quiet=False)
    run = subprocess.run(
        [sys.executable, "-c", script, *flags, "--trials", "1", "--storage", str(tmp_path / "s.log")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("lwl-search: lost")]
    assert len(lines) == 1 and "File too large" in lines[0] and "once its disk has space" in lines[0], run.stderr
