"""Workers started at the same moment on a fresh database: crashed workers, exact totals, lists trained twice.

Not a test and not timed: it prints what it finds. Needs the loopback servers the tests use (PostgreSQL, MariaDB;
see .ci/run) and the installed `lwl-search`.

    python3 benchmarks/concurrent_starts.py --repeats 10 --json results/concurrent_starts.json

For each server and repeat it creates a fresh database (`CREATE DATABASE lwl_race_XXXXXXXX`, dropped at the end;
with `--tables`, Optuna's tables are created in it first, so that only the study, its settings and the queue race),
then starts `--workers` independent `lwl-search` processes (each its own interpreter, as `python -m lwl.search`
runs it: `lwl.search.commands.search_main`) on one study there. Each process imports everything first and then
waits at a barrier, so that all of them open the storage, create the schema, the study and its settings and
enqueue the lists within a few milliseconds of each other (the import alone takes seconds and would spread the
starts). The candidates are tiny (digits, widths 4,8,8,16, one epoch on 128 images, budget 10): the run measures
the storage, not the networks. Budget 10 holds no paper list, so the lists every worker enqueues are given with
`--enqueue` (default 1,1,4,4 and 1,2,3,4), which takes the same road as the paper's baselines (`enqueue_lists`).

Per run it reads the study afterwards: exit statuses, finished trials (COMPLETE + PRUNED) against --trials, lists
finished twice, trials left RUNNING or WAITING, and the bookkeeping failures (`duplicate`, `surplus`). Per server
it prints the crashed workers (non-zero exits), the runs whose total is exact and the lists trained twice.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

SERVERS = {
    "postgresql": ("postgresql://postgres@127.0.0.1:5432", "test"),
    "mariadb": ("mysql+pymysql://root@127.0.0.1:3306", "test"),
}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
TINY = [
    "--dataset",
    "digits",
    "--widths",
    "4,8,8,16",
    "--epochs",
    "1",
    "--train-limit",
    "128",
    "--device",
    "cpu",
    "--budget",
    "10",
    "--pruner",
    "none",
    "--quiet",
    "--no-summary",
]
# A worker: import everything, say so, wait for the barrier, then run lwl-search's main with the given flags.
WORKER = """
import os, sys, time
from lwl.search.commands import search_main
ready, go = sys.argv[1], sys.argv[2]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
sys.exit(search_main(sys.argv[3:]))
"""


def _admin(server: str) -> Any:
    import sqlalchemy

    base, db = SERVERS[server]
    return sqlalchemy.create_engine(f"{base}/{db}", isolation_level="AUTOCOMMIT")


def create_database(server: str) -> tuple[str, str]:
    """A fresh, empty database on `server`: (its name, its URL)."""
    import sqlalchemy

    name = f"lwl_race_{uuid.uuid4().hex[:8]}"
    engine = _admin(server)
    try:
        with engine.connect() as c:
            c.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    finally:
        engine.dispose()
    return name, f"{SERVERS[server][0]}/{name}"


def drop_database(server: str, name: str) -> None:
    import sqlalchemy

    engine = _admin(server)
    try:
        with engine.connect() as c:
            force = " WITH (FORCE)" if server == "postgresql" else ""
            c.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name}{force}"))
    finally:
        engine.dispose()


def one_run(
    server: str, workers: int, trials: int, enqueue: list[str], timeout: float, tables: bool = False
) -> dict[str, Any]:
    """`workers` simultaneous fresh starts on a new database (with Optuna's tables already there when `tables`);
    what the study holds afterwards."""
    from lwl.search import open_storage

    name, url = create_database(server)
    try:
        if tables:  # the schema exists, the study does not: the race is the study's, its settings' and the queue's
            open_storage(url, heartbeat=False).engine.dispose()
        flags = [*TINY, "--trials", str(trials), "--storage", url, "--study-name", "race"]
        for e in enqueue:
            flags += ["--enqueue", e]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        with tempfile.TemporaryDirectory() as tmp:
            go = os.path.join(tmp, "go")
            ready = [os.path.join(tmp, f"ready-{i}") for i in range(workers)]
            procs = [
                subprocess.Popen(
                    [sys.executable, "-c", WORKER, ready[i], go, *flags],
                    cwd=tmp,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for i in range(workers)
            ]
            deadline = time.monotonic() + timeout
            while not all(os.path.exists(r) for r in ready) and time.monotonic() < deadline:
                if any(p.poll() is not None for p in procs):
                    break
                time.sleep(0.05)
            t0 = time.monotonic()
            Path(go).touch()
            outputs, codes = [], []
            for p in procs:
                try:
                    out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    out, _ = p.communicate()
                outputs.append(out.strip())
                codes.append(p.returncode)
            seconds = time.monotonic() - t0
        storage = open_storage(url, heartbeat=False)
        try:
            study = optuna.load_study(study_name="race", storage=storage)
            trials_ = study.get_trials(deepcopy=False)
        except KeyError:
            trials_ = []
        finally:
            engine = getattr(storage, "engine", None)
            if engine is not None:
                engine.dispose()
        states = Counter(t.state for t in trials_)
        lists = [tuple(t.params.values()) for t in trials_ if t.state in FINISHED]
        reasons = Counter(t.user_attrs.get("fail_reason") for t in trials_ if t.state == TrialState.FAIL)
        finished = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
        return {
            "exit_codes": codes,
            "crashed": sum(c != 0 for c in codes),
            "finished": finished,
            "exact": finished == trials,
            "trained_twice": len(lists) - len(set(lists)),
            "left_running_or_waiting": states[TrialState.RUNNING] + states[TrialState.WAITING],
            "failed": dict(reasons),
            "seconds": round(seconds, 1),
            "errors": [o.splitlines()[-1][:300] for o, c in zip(outputs, codes) if c != 0 and o],
        }
    finally:
        drop_database(server, name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10, help="fresh databases per server (default 10)")
    ap.add_argument("--servers", default="postgresql,mariadb", help="comma-separated: postgresql, mariadb")
    ap.add_argument("--workers", type=int, default=4, help="simultaneous lwl-search processes (default 4)")
    ap.add_argument("--trials", type=int, default=6, help="--trials of the study (default 6)")
    ap.add_argument("--enqueue", action="append", help="a list every worker enqueues (default: 1,1,4,4 and 1,2,3,4)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds one run may take (default 900)")
    ap.add_argument(
        "--tables",
        action="store_true",
        help="create Optuna's tables before the workers start (then only the study, its settings and the queue race)",
    )
    ap.add_argument("--json", help="also write every figure to this file")
    args = ap.parse_args(argv)
    enqueue = args.enqueue if args.enqueue is not None else ["1,1,4,4", "1,2,3,4"]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        ap.error(f"--servers: unknown {', '.join(unknown)}; choose from {', '.join(SERVERS)}")
    report: dict[str, Any] = {
        "workers": args.workers,
        "trials": args.trials,
        "repeats": args.repeats,
        "enqueue": enqueue,
        "tables_present": args.tables,
        "flags": TINY,
        "servers": {},
    }
    for server in servers:
        runs = []
        for i in range(args.repeats):
            run = one_run(server, args.workers, args.trials, enqueue, args.timeout, args.tables)
            runs.append(run)
            print(
                f"{server} run {i + 1}/{args.repeats}: exits {run['exit_codes']}, {run['finished']}/{args.trials} "
                f"finished, {run['trained_twice']} trained twice, failed {run['failed']}, {run['seconds']}s",
                file=sys.stderr,
                flush=True,
            )
            for error in run["errors"]:
                print(f"    {error}", file=sys.stderr)
        summary = {
            "crashed_workers": sum(r["crashed"] for r in runs),
            "workers_started": args.workers * len(runs),
            "exact_runs": sum(r["exact"] for r in runs),
            "runs": len(runs),
            "trained_twice": sum(r["trained_twice"] for r in runs),
            "left_running_or_waiting": sum(r["left_running_or_waiting"] for r in runs),
            "duplicates_stopped": sum(r["failed"].get("duplicate", 0) for r in runs),
            "surplus_stopped": sum(r["failed"].get("surplus", 0) for r in runs),
        }
        report["servers"][server] = {**summary, "details": runs}
        print(
            f"{server}: {summary['crashed_workers']} of {summary['workers_started']} workers crashed; totals exact "
            f"in {summary['exact_runs']} of {summary['runs']} runs; {summary['trained_twice']} lists trained twice; "
            f"{summary['duplicates_stopped']} enqueued copies stopped as duplicates before training"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
