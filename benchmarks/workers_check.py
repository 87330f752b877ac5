"""Many workers on the real servers, at a larger size than the tests: trials lost, lists trained twice, kills survived.

Not a test and not timed: it prints what it finds. Needs the loopback servers the tests use (PostgreSQL, MariaDB,
Redis; .ci/run starts them) and the installed `lwl-search`.

    python3 benchmarks/workers_check.py --workers 4 --trials 12 --kills 3

For each server and sampler it runs `lwl-search --workers N` on one fresh study and checks the study afterwards:
finished trials (COMPLETE + PRUNED) against --trials (or the size of the space when that is smaller), trials left
RUNNING or WAITING, and duplicate lists among finished trials. Then, on PostgreSQL, it starts N single workers by
hand, SIGKILLs one mid-trial --kills times (starting a replacement each time), and checks that every killed trial
was failed by its heartbeat, its list retried, and the study still ends with exactly --trials finished trials.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import optuna
from optuna.trial import TrialState

from lwl.search import SearchSpace, open_storage

SERVERS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
    "redis": "redis://127.0.0.1:6379/0",
}
LWL_SEARCH = [sys.executable, "-m", "lwl.search"]  # this interpreter's lwl-search
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def tiny_args(budget: int, epochs: int) -> list[str]:
    """Candidates that train in about a second each: the check is about the storage, not the networks."""
    return [
        "--dataset",
        "digits",
        "--widths",
        "4,8,8,16",
        "--epochs",
        str(epochs),
        "--train-limit",
        "256",
        "--device",
        "cpu",
        "--budget",
        str(budget),
        "--pruner",
        "none",
        "--no-paper-baselines",
        "--quiet",
    ]


def check(study: optuna.Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state for t in trials)
    lists = [tuple(t.params[f"d{i + 1}"] for i in range(len(t.params))) for t in trials if t.state in FINISHED]
    return {
        "finished": states[TrialState.COMPLETE] + states[TrialState.PRUNED],
        "failed": states[TrialState.FAIL],
        "unfinished": states[TrialState.RUNNING] + states[TrialState.WAITING],
        "duplicates": len(lists) - len(set(lists)),
    }


def drop(url: str, name: str) -> None:
    storage = open_storage(url, heartbeat=False)
    for study_name in (name, f"{name}-pareto"):
        try:
            optuna.delete_study(study_name=study_name, storage=storage)
        except KeyError:
            pass


def run_workers(url: str, sampler: str, args: argparse.Namespace) -> dict[str, object]:
    name = f"wc-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    done = subprocess.run(
        [
            *LWL_SEARCH,
            *tiny_args(args.budget, args.epochs),
            "--sampler",
            sampler,
            "--trials",
            str(args.trials),
            "--workers",
            str(args.workers),
            "--storage",
            url,
            "--study-name",
            name,
            "--no-summary",
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - t0
    try:
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1:]}
        found = check(optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=False)))
    finally:
        drop(url, name)
    expected = min(args.trials, len(SearchSpace(args.budget, 4)))
    return {**found, "expected": expected, "lost": expected - found["finished"], "seconds": round(seconds, 1)}


def kill_loop(url: str, args: argparse.Namespace) -> dict[str, object]:
    """N hand-started workers; SIGKILL one mid-trial `kills` times, a replacement each time; then finish."""
    name = f"wk-{uuid.uuid4().hex[:8]}"
    cmd = [
        *LWL_SEARCH,
        *tiny_args(args.budget, 6),
        "--sampler",
        "grid",
        "--trials",
        str(args.trials),
        "--storage",
        url,
        "--study-name",
        name,
        "--heartbeat",
        "1",
    ]
    storage = open_storage(url, heartbeat=False)
    rng = random.Random(0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as --workers does on a CPU
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        for _ in range(args.workers)
    ]
    killed: list[int] = []
    try:
        while len(killed) < args.kills:
            time.sleep(rng.uniform(1.0, 3.0))
            try:
                study = optuna.load_study(study_name=name, storage=storage)
            except KeyError:
                continue
            running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            alive = [p for p in procs if p.poll() is None]
            if not running or not alive:
                break
            victim = rng.choice(alive)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed.append(victim.pid)
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        for p in procs:
            p.wait(timeout=900)
        time.sleep(4)  # a trial stranded by the last kill expires; one more worker fails it and tops the study up
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900, env=env)
        study = optuna.load_study(study_name=name, storage=storage)
        found = check(study)
        failed = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.FAIL]
        retried = sum(any(o.params == t.params and o.state in FINISHED for o in study.trials) for t in failed)
    finally:
        for p in procs:
            p.kill()
        drop(url, name)
    return {
        **found,
        "kills": len(killed),
        "failed_by_heartbeat": len(failed),
        "retried": retried,
        "expected": args.trials,
        "lost": args.trials - found["finished"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--budget", type=int, default=12, help="4-stage strict space; 12 has 20 lists")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--servers", nargs="*", default=list(SERVERS))
    args = p.parse_args()
    print(
        f"space: budget {args.budget}, 4 stages, strict: {len(SearchSpace(args.budget, 4))} lists; "
        f"{args.workers} workers x {args.trials} trials"
    )
    print(
        f"{'server':<11} {'sampler':<7} {'finished':>8} {'expected':>8} {'lost':>4} {'dupes':>5} {'unfinished':>10} "
        f"{'failed':>6} {'seconds':>7}"
    )
    for server in args.servers:
        for sampler in ("grid", "tpe", "random"):
            r = run_workers(SERVERS[server], sampler, args)
            if "error" in r:
                print(f"{server:<11} {sampler:<7} ERROR {r['error']}")
                continue
            print(
                f"{server:<11} {sampler:<7} {r['finished']:>8} {r['expected']:>8} {r['lost']:>4} "
                f"{r['duplicates']:>5} {r['unfinished']:>10} {r['failed']:>6} {r['seconds']:>7}",
                flush=True,
            )
    if args.kills and "postgresql" in args.servers:
        r = kill_loop(SERVERS["postgresql"], args)
        print(
            f"\nSIGKILL loop on postgresql ({args.workers} workers, grid, heartbeat 1 s): {r['kills']} kills; "
            f"{r['failed_by_heartbeat']} trials failed by heartbeat, {r['retried']} of them retried to a final "
            f"state; finished {r['finished']}/{r['expected']} (lost {r['lost']}), duplicates {r['duplicates']}, "
            f"left unfinished {r['unfinished']}"
        )


if __name__ == "__main__":
    main()
