"""`lwl-search --workers N`: the storage several local processes can share, and the processes themselves (one GPU
each where there are several, the CPU cores split between them otherwise)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from .._errors import StorageError
from .._space.feasible import SearchSpace
from .._storage.backends import default_storage, kind_of, mask_url
from .._study.run import count_finished, exhausted, exhausted_reason, held_text


def storage_for(args: argparse.Namespace, study_name: str) -> str:
    """The default is SQLite for one process; several workers need a storage that is safe for them."""
    if args.workers <= 1:
        return args.storage or default_storage(study_name)
    if args.storage is None:
        return str(Path("studies") / f"{study_name}.log")
    if kind_of(args.storage) == "rdb" and args.storage.startswith("sqlite"):
        raise StorageError(
            f"--workers {args.workers} with SQLite ({mask_url(args.storage)}) is not safe: leave "
            "--storage out (a journal file is used), or give a .log path, PostgreSQL, MySQL or Redis"
        )
    return args.storage


HELD_EXIT = 3  # lwl-search's exit status when others' RUNNING trials (no heartbeat to tell) left the count short
_STOP_WAIT_S = 60.0


def run_workers(
    args: argparse.Namespace, argv: Sequence[str], storage_url: str, study: optuna.Study, space: SearchSpace
) -> tuple[str, int]:
    """Start --workers processes on the same study (one GPU each where there are several), wait for them, and say
    why the study stopped: (reason, exit status), from the study itself.

    SIGINT or SIGTERM to this process stops the whole group: each worker gets SIGTERM (its running trial is failed
    as 'interrupted'), this process waits for them and raises KeyboardInterrupt (exit status 130). The workers run
    in their own session, so a Ctrl-C reaches them once, through this process, not twice.
    """
    import torch

    gpus = torch.cuda.device_count() if args.device in ("auto", "cuda") else 0
    procs: list[subprocess.Popen] = []
    signalled: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if not signalled:  # the first one stops the group; any further one while it stops is ignored
            signalled.append(signum)
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for i in range(args.workers):
            env = dict(os.environ)
            if gpus > 1:
                env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
            if gpus == 0 and "OMP_NUM_THREADS" not in env:
                # CPU workers share the cores: torch's default of one thread per core each would oversubscribe them,
                # and its threads wait for each other at every operator (measured: minutes instead of seconds).
                env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.workers))
            command = [sys.executable, "-m", "lwl.search", *argv, "--workers", "1", "--storage", storage_url]
            procs.append(subprocess.Popen([*command, "--quiet", "--no-summary"], env=env, start_new_session=True))
        reported = -1
        while any(p.poll() is None for p in procs):
            done = count_finished(study)
            if done != reported and not args.quiet:
                print(f"lwl-search: {done}/{args.trials} finished trials ({args.workers} workers)", file=sys.stderr)
                reported = done
            time.sleep(2)
    except KeyboardInterrupt:
        _stop(procs)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return _group_outcome(study, space, args, [p.returncode for p in procs])


def _stop(procs: Sequence[Any]) -> None:
    """SIGTERM every worker still running (each fails its trial as 'interrupted'), wait, SIGKILL any that hangs."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_WAIT_S
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:  # it hangs
            p.kill()
            p.wait()


def _group_outcome(
    study: optuna.Study, space: SearchSpace, args: argparse.Namespace, codes: list[int]
) -> tuple[str, int]:
    """Why the study stopped, and the exit status, read from the study once every worker has ended."""
    done = count_finished(study)
    if done >= args.trials:
        return f"reached --trials {args.trials} ({args.workers} workers)", 0
    failed = [c for c in codes if c not in (0, HELD_EXIT)]
    if failed:
        return f"a worker failed (exit codes {codes}); {done} of {args.trials} trials finished", 1
    held = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    if held:
        return held_text(held, done, args.trials), HELD_EXIT
    if exhausted(study, space):
        return exhausted_reason(study, space), 0
    if args.timeout is not None:
        return f"--timeout {args.timeout:g}s reached", 0
    return f"the workers stopped with {done} of {args.trials} trials finished (too many failed trials)", 0
