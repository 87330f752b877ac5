#!/usr/bin/env python3
"""GPU run of the search (issue #6, item 4): a budget-16 CIFAR-100-shaped ResNet search of a few trials.

    python3 benchmarks/gpu_search.py                                 # on a CUDA machine; an H100 is the reference
    python3 benchmarks/gpu_search.py --device cpu --tiny --threads 1 # smoke run: tiny widths, few images, seconds

Runs the search machinery itself: lwl-search's own flags become `StudySettings` (`parse_search_flags`), the study
is created by `prepare_study` in a temporary SQLite file, and `run_search` trains the trials (the feasible-set
TPE sampler, the paper's schedules enqueued first) on synthetic data built as train_speed.py builds it
(`dataset_info("cifar100")`: 3x32x32 images, 100 classes, the engine's crop + flip). The search's display hook
records every trial's per-epoch `Progress`, from which each trial's throughput is measured as train_speed.py
measures it (first epoch dropped as warm-up).

Prints per trial: the hierarchy, seconds (wall clock from the trial's start to its end, Optuna's bookkeeping
included), s/epoch, images/s, achieved TFLOP/s (3 x flops_aux x images/s), its share of the device's measured
bf16 matmul rate, peak memory (CUDA peak allocated, data set included), and the extrapolated seconds of a
candidate at the study's default fidelity. Writes every figure, with the exact command, to
benchmarks/results/gpu_search_<device>_<date>.json (--tiny runs write only where --out says).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from train_speed import (
    CONVENTION,
    Setup,
    _mib,
    _num,
    _positive_int,
    candidate_fidelity,
    candidate_seconds,
    device_info,
    epoch_plan,
    measure_matmul,
    synthetic_data,
    timing,
)

from lwl.models import Progress, complexity, dataset_info
from lwl.search import StudySettings, parse_search_flags, prepare_study, run_search

PROG = "gpu_search"
RESULTS = Path(__file__).resolve().parent / "results"
# The run, in one place. The search is `lwl-search` with these flags: budget 16, 4 stages, the strict constraint,
# CIFAR-100, ResNet basic blocks (the family's widths 64..512 unless --tiny) and the search's own recipe (predsim,
# simultaneous, batch 128, the paper's CIFAR-100 lr and dropout, TPE). Pruner none: whole trials are timed (and a
# few trials are below the median pruner's 5 start-up trials anyway). FULL mirrors CIFAR-100's split (45,000
# training and 5,000 validation images, validated after every epoch as in the search); TINY keeps the script
# working on a CPU in seconds.
SEARCH_FLAGS = [
    "--budget",
    "16",
    "--stages",
    "4",
    "--constraint",
    "strict",
    "--dataset",
    "cifar100",
    "--family",
    "resnet",
    "--block",
    "basic",
    "--pruner",
    "none",
]
FULL = {
    "trials": 4,
    "epochs": 3,
    "n_images": 45_000,
    "n_val": 5_000,
    "batch_size": None,
    "widths": None,
    "matmul_size": 8192,
}
TINY = {
    "trials": 2,
    "epochs": 2,
    "n_images": 64,
    "n_val": 16,
    "batch_size": 32,
    "widths": "4,8,16,32",
    "matmul_size": 64,
}


def _epochs(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("at least 2: the first epoch is warm-up, throughput is timed after it")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Time a budget-16, 4-stage ResNet search of a few trials on CIFAR-100-shaped synthetic data "
        "on a CUDA device, with the search machinery of lwl-search.",
    )
    p.add_argument("--device", default="cuda", help="cuda, cuda:1, ...; cpu only with --tiny (default cuda)")
    p.add_argument("--tiny", action="store_true", help="smoke size: widths 4..32, 64 images, 2 trials of 2 epochs")
    p.add_argument("--trials", type=_positive_int, help="trials to run (default 4; 2 with --tiny)")
    p.add_argument("--epochs", type=_epochs, help="epochs per trial (default 3; 2 with --tiny)")
    p.add_argument("--n-images", type=_positive_int, help="synthetic training images (default 45,000; 64 --tiny)")
    p.add_argument("--n-val", type=_positive_int, help="synthetic validation images (default 5,000; 16 --tiny)")
    p.add_argument("--batch-size", type=_positive_int, help="default the search's 128 (32 with --tiny)")
    p.add_argument("--widths", help="channels per stage (default the family's 64,128,256,512; 4,8,16,32 --tiny)")
    p.add_argument("--seed", type=int, default=0, help="seeds the data, training and the sampler (default 0)")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads (for --device cpu on a shared CPU)")
    p.add_argument("--matmul-reps", type=_positive_int, default=5, help="timed repetitions of the matmul")
    p.add_argument(
        "--out",
        type=Path,
        help="where to write the JSON (default benchmarks/results/gpu_search_<device>_<date>.json; none with --tiny)",
    )
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the flags left out from FULL or TINY."""
    for key, value in (TINY if args.tiny else FULL).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


class TrialClock:
    """The search's display hook: every trial's wall-clock span and its per-epoch progress records."""

    def __init__(self) -> None:
        self.started: dict[int, tuple[float, list[Progress]]] = {}
        self.finished: dict[int, dict[str, Any]] = {}

    def trial_started(self, number: int, hierarchy: tuple[int, ...], total_steps: int) -> None:
        print(f"{PROG}: trial {number} [{','.join(map(str, hierarchy))}] ...", file=sys.stderr, flush=True)
        self.started[number] = (time.perf_counter(), [])

    def progress(self, p: Progress) -> None:
        self.started[max(self.started)][1].append(p)  # one trial at a time (batch 1)

    def trial_finished(self, trial: optuna.trial.FrozenTrial, best: float | None) -> None:
        if trial.number in self.started:
            t0, records = self.started.pop(trial.number)
            self.finished[trial.number] = {"seconds": time.perf_counter() - t0, "records": records}


def trial_figures(
    trial: optuna.trial.FrozenTrial,
    clock: TrialClock,
    settings: StudySettings,
    args: argparse.Namespace,
    dev: torch.device,
    candidate: dict[str, Any],
) -> dict[str, Any]:
    """One trial's row: train_speed's figures over its epochs after the first, plus its wall clock and memory."""
    hierarchy = trial.user_attrs.get("hierarchy")
    seen = clock.finished.get(trial.number, {"seconds": None, "records": []})
    row: dict[str, Any] = {
        "number": trial.number,
        "hierarchy": hierarchy,
        "state": trial.state.name.lower(),
        "fail_reason": trial.user_attrs.get("fail_reason"),
        "seconds": seen["seconds"],
        "engine_wall_time": trial.user_attrs.get("wall_time"),
        "peak_memory": trial.user_attrs.get("peak_memory"),
        "params": trial.user_attrs.get("params"),
        "output_acc": trial.value,
    }
    records = seen["records"]
    if hierarchy is None or len(records) < 2:
        return row
    schedule = settings.schedule(hierarchy)
    plan = {
        **epoch_plan(args.n_images, settings.recipe.batch_size, 1, 1),
        "warmup_epochs": 1,
        "timed_epochs": len(records) - 1,
    }
    s = Setup(
        dataset_info(settings.recipe.dataset),
        schedule,
        settings.recipe,
        plan,
        dev,
        complexity(schedule, settings.recipe.head),
    )
    figures = timing(s, [p.elapsed for p in records], [p.unit_epochs for p in records])
    return {**row, **figures, "s_per_candidate": candidate_seconds(candidate, figures["images_per_s"])}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def render(s: dict[str, Any], out: Path | None) -> str:
    st, r = s["settings"], s["settings"]["recipe"]
    mm = s["matmul"]
    lines = [
        f"{PROG}  {s['date']}  torch {s['env']['torch']}  python {s['env']['python']}",
        f"device: {s['env']['device']} ({s['env']['device_name']})"
        + (f", CUDA {s['env']['cuda']}" if "cuda" in s["env"] else f", {s['env']['cpu_threads']} torch threads"),
        f"search: budget {st['budget']}, {st['stages']} stages, {st['constraint']} constraint "
        f"({s['feasible']} feasible lists); {st['family']} {st['block']} widths {','.join(map(str, st['widths']))}; "
        f"{r['loss']}, {r['mode']}, {r['epochs']} epochs, batch {r['batch_size']}, lr {r['lr']:g}, "
        f"dropout {r['dropout']:g}; sampler {s['sampler']} (paper's lists first), pruner {s['pruner']}",
        f"data: synthetic {s['data']['dataset_info']}-shaped, {s['data']['n_images']} train / {s['data']['n_val']} "
        f"val images, validated every epoch",
        "",
        f"  {'trial':>5}  {'hierarchy':<14} {'state':<8} {'seconds':>8} {'s/epoch':>8} {'images/s':>9} "
        f"{'GFLOP/img':>9} {'TFLOP/s':>8} {'of ' + mm['dtype']:>9} {'peak mem':>11} {'s/cand':>8}",
    ]
    for t in s["trials"]:
        h = "[" + ",".join(map(str, t["hierarchy"] or [])) + "]"
        if "images_per_s" in t:
            timed = (
                f"{t['s_per_epoch']:>8.2f} {t['images_per_s']:>9.0f} {3 * t['flops_aux'] / 1e9:>9.3f} "
                f"{t['achieved_tflops']:>8.3g} {100 * t['achieved_tflops'] / mm['tflops']:>8.1f}%"
            )
            cand = f"{t['s_per_candidate']:>8.0f}"
        else:  # failed before its second epoch
            timed, cand = f"{'n/a':>8} {'n/a':>9} {'n/a':>9} {'n/a':>8} {'n/a':>9}", f"{'n/a':>8}"
        reason = f"  ({t['fail_reason']})" if t["fail_reason"] else ""
        lines.append(
            f"  {t['number']:>5}  {h:<14} {t['state']:<8} {_num(t['seconds']):>8} {timed} "
            f"{_mib(t['peak_memory']):>11} {cand}{reason}"
        )
    secs = [t["seconds"] for t in s["trials"] if t["seconds"] is not None]
    if secs:
        lines += [
            "",
            f"seconds per trial: mean {sum(secs) / len(secs):.1f} over {len(secs)} trials "
            f"({r['epochs']} epochs each); the whole search {s['search_seconds']:.1f} s",
        ]
    c = s["candidate"]
    lines += [
        "seconds: a trial's start to its end (network built, trained, validated every epoch, stored); s/epoch, "
        "images/s and TFLOP/s over its epochs after the first (warm-up), validation included",
        "TFLOP/s = 3 x flops_aux x images/s / 1e12 (GFLOP/img = 3 x flops_aux, aux heads included); peak mem: "
        + (
            "CUDA peak allocated during the trial, data set included"
            if s["env"]["device"].startswith("cuda")
            else "n/a off CUDA"
        ),
        f"s/cand (extrapolated): {c['epochs']} epochs (lwl-search on {c['dataset']}) x {c['images_per_epoch']:,} "
        "training images / images/s",
        f"matmul: {mm['dtype']} {mm['size']}^3 x{mm['reps']}: {mm['tflops']:.3g} TFLOP/s (best rep "
        f"{mm['tflops_best']:.3g})",
        f"written to {out}" if out is not None else "not written (--tiny without --out)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = resolve(build_parser().parse_args(argv))
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(
            f"{PROG}: no CUDA device is visible: this benchmark measures a GPU; run it on a CUDA machine, or "
            "give --device cpu --tiny for a smoke run",
            file=sys.stderr,
        )
        return 2
    if dev.type != "cuda" and not args.tiny:
        print(f"{PROG}: --device {args.device} needs --tiny: the full size is a GPU benchmark", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    flags = [*SEARCH_FLAGS, "--epochs", str(args.epochs), "--seed", str(args.seed)]
    flags += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    flags += ["--widths", args.widths] if args.widths else []
    settings, sargs = parse_search_flags(flags)
    data = synthetic_data(dataset_info(settings.recipe.dataset), args.n_images, args.n_val, args.seed).to(dev)
    candidate = candidate_fidelity(settings.recipe.dataset, settings.recipe.batch_size)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    clock = TrialClock()
    with tempfile.TemporaryDirectory(prefix=f"{PROG}-") as tmp:
        study = prepare_study(
            settings,
            f"sqlite:///{tmp}/{PROG}.db",
            PROG,
            sampler=sargs.sampler,
            pruner=sargs.pruner,
            seed=sargs.seed,
            pruner_startup=sargs.pruner_startup,
            heartbeat_seconds=sargs.heartbeat,
        )
        t0 = time.perf_counter()
        outcome = run_search(
            settings,
            data,
            study,
            trials=args.trials,
            paper=not sargs.no_paper_baselines,
            device=str(dev),
            display=clock,
        )
        search_seconds = time.perf_counter() - t0
        trials = [
            trial_figures(t, clock, settings, args, dev, candidate)
            for t in study.get_trials(deepcopy=False)
            if t.number in clock.finished
        ]
    del data
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    # After the search (it cannot disturb it), in the dtype the study's trials computed in.
    matmul = measure_matmul(dev, args.matmul_size, args.matmul_reps, settings.recipe.precision)
    env = device_info(dev)
    now = datetime.datetime.now().astimezone()
    out = args.out if args.out or args.tiny else RESULTS / f"{PROG}_{_slug(env['device_name'])}_{now:%Y-%m-%d}.json"
    summary = {
        "date": now.isoformat(timespec="seconds"),
        "command": shlex.join(["python3", "benchmarks/gpu_search.py", *argv]),
        "env": env,
        "loadavg_1min_at_start": load,
        "settings": settings.to_dict(),
        "feasible": outcome.feasible,
        "sampler": sargs.sampler,
        "pruner": sargs.pruner,
        "stop_reason": outcome.stop_reason,
        "data": {
            "kind": "synthetic",
            "dataset_info": settings.recipe.dataset,
            "n_images": args.n_images,
            "n_val": args.n_val,
        },
        "search_seconds": search_seconds,
        "trials": trials,
        "candidate": candidate,
        "matmul": matmul,
        "convention": CONVENTION,
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=1) + "\n")
    print(render(summary, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
