"""`lwl-search --workers N`: the storage several local processes can share, and the processes themselves (one GPU
each where there are several, the CPU cores split between them otherwise)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import optuna

from ._errors import StorageError
from ._storage import default_storage, kind_of, mask_url
from ._study import count_finished


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


def run_workers(args: argparse.Namespace, argv: Sequence[str], storage_url: str, study: optuna.Study) -> str:
    """Start --workers processes on the same study (one GPU each where there are several) and wait for them."""
    import subprocess

    import torch

    gpus = torch.cuda.device_count() if args.device in ("auto", "cuda") else 0
    procs = []
    for i in range(args.workers):
        env = dict(os.environ)
        if gpus > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
        if gpus == 0 and "OMP_NUM_THREADS" not in env:
            # CPU workers share the cores: torch's default of one thread per core each would oversubscribe them,
            # and its threads wait for each other at every operator (measured: minutes instead of seconds).
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.workers))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lwl.search",
                    *argv,
                    "--workers",
                    "1",
                    "--storage",
                    storage_url,
                    "--quiet",
                    "--no-summary",
                ],
                env=env,
            )
        )
    reported = -1
    try:
        while any(p.poll() is None for p in procs):
            done = count_finished(study)
            if done != reported and not args.quiet:
                print(f"lwl-search: {done}/{args.trials} finished trials ({args.workers} workers)", file=sys.stderr)
                reported = done
            time.sleep(2)
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        raise
    codes = [p.returncode for p in procs]
    if any(c not in (0, 130) for c in codes):
        return f"a worker failed (exit codes {codes})"
    return f"{args.workers} workers finished"
