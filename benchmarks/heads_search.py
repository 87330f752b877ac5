"""Which list does `lwl-search --aux-net KIND` name on digits, how good is it over seeds, and does the thesis hold.

Not a test: it prints figures. For every head kind it runs a real study (`python -m lwl.search`, a subprocess, SQLite
in --dir) with heads.py's recipe (digits, widths 8,16,32,64, 10 epochs, validation fraction 0.1, fp32), over every
4-stage list of --budget units (--constraint none, so that the paper's [1,1,2,4], ResNet-18's [2,2,2,2] and the
reverse [4,2,1,1], all enqueued, are in it). Then it reads, through the public functions the report uses:

- the list the study names (`lwl.search.study_answer`: the answer `lwl-search` prints and the report shows), and
- the report's thesis statistics (`lwl.dashboards.load_report_data(...).thesis`: Spearman's rank correlation of the
  units in the shallow stages with validation accuracy, the same with the parameter count held fixed, their
  permutation p-values and the verdict in words),

and retrains the named list as heads.py trains the paper's lists (`heads.run`: the same seeds 0..S-1, splits and
recipe): the output classifier's validation and test accuracy as mean ± sd over the seeds, and the time per epoch.

    python3 benchmarks/heads_search.py --trials 20 --json benchmarks/results/heads_search_digits_b8_w8-64_e10.json
    python3 benchmarks/heads_search.py --kinds dgl --trials 12 --seeds 5      # one kind, a shorter search
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import heads
import torch

from lwl.dashboards import load_report_data, open_study
from lwl.models import AUX_NETS, cpu_flags, paper_recipe
from lwl.search import read_settings, study_answer


def cpu_model() -> str:
    """The CPU's name as `lscpu` prints it ("Model name"), from /proc/cpuinfo; the machine type elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def search_command(args: argparse.Namespace, kind: str, storage: str, study_name: str) -> list[str]:
    cmd = [
        sys.executable, "-m", "lwl.search", "--dataset", args.dataset, "--budget", str(args.budget),
        "--constraint", "none", "--widths", args.widths, "--epochs", str(args.epochs),
        "--val-fraction", str(args.val_fraction), "--precision", args.precision, "--aux-net", kind,
        "--trials", str(args.trials), "--pruner", args.pruner, "--confirm", args.confirm, "--seed", "0",
        "--device", "cpu", "--storage", storage, "--study-name", study_name, "--quiet",
    ]  # fmt: skip
    for text in args.enqueue:
        cmd += ["--enqueue", text]
    if args.train_limit:
        cmd += ["--train-limit", str(args.train_limit)]
    return cmd


def _correlation(c) -> dict | None:
    return None if c is None else dict(rho=c.rho, p_value=c.p_value, trials=c.trials)


def search(args: argparse.Namespace, kind: str, folder: Path) -> dict:
    """One study with head kind `kind`: what it names and what the report's thesis section says of it."""
    storage, study_name = f"sqlite:///{folder / kind}.db", f"digits-{kind}"
    cmd = search_command(args, kind, storage, study_name)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    t0, c0 = time.perf_counter(), os.times()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.search_timeout)
    c1 = os.times()
    if done.returncode != 0:
        raise SystemExit(f"lwl-search --aux-net {kind} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    store, study = open_study(storage, study_name)
    judged = study_answer(study)
    if judged is None or judged.named is None:
        raise SystemExit(f"lwl-search --aux-net {kind}: the study names no list")
    report = load_report_data(store, study, storage)
    thesis = report.thesis
    assert thesis is not None
    # The study's recipe must be the one heads.run retrains with: otherwise its best is not the list measured.
    searched = dataclasses.asdict(read_settings(study.study_name, study.user_attrs).recipe)
    heads_recipe = dataclasses.asdict(
        paper_recipe(args.dataset, "resnet", epochs=args.epochs, seed=0, aux_net=kind, precision=args.precision)
    )
    differs = sorted(k for k in searched if k != "train_limit" and searched[k] != heads_recipe.get(k))
    return dict(
        aux_net=kind,
        command="lwl-search " + " ".join(cmd[3:]),
        study=study_name,
        search_seconds=time.perf_counter() - t0,
        search_cpu_seconds=(c1.children_user + c1.children_system) - (c0.children_user + c0.children_system),
        counts=report.counts,
        complete_lists=thesis.trials,
        named=list(judged.named),
        best_set=[list(h) for h in judged.best_set],
        answer=list(report.answer),
        named_validation=next(b.mean for b in judged.beliefs if b.hierarchy == judged.named),
        recipe_differs_from_heads=differs,
        thesis=dict(
            shallow_stages=thesis.shallow_stages,
            trials=thesis.trials,
            shallow=_correlation(thesis.shallow),
            at_equal_params=_correlation(thesis.at_equal_params),
            verdict=thesis.verdict,
        ),
    )


def retrain(args: argparse.Namespace, kind: str, lists: list[str]) -> list[dict]:
    """The lists trained as heads.py trains the paper's: its own `run`, the same seeds, splits and recipe."""
    keep = argparse.Namespace(
        lists=lists, kinds=[kind], dataset=args.dataset, widths=args.widths, epochs=args.epochs, seeds=args.seeds,
        threads=args.threads, precision=args.precision, train_limit=args.train_limit,
    )  # fmt: skip
    return heads.run(keep)["rows"]


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    kinds = []
    with tempfile.TemporaryDirectory(prefix="heads_search_") as tmp:
        folder = Path(args.dir) if args.dir else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for kind in args.kinds:
            found = search(args, kind, folder)
            named = ",".join(map(str, found["named"]))
            print(f"{kind}: names [{named}] from {found['complete_lists']} lists in {found['search_seconds']:.0f} s; "
                  f"{found['thesis']['verdict']}", file=sys.stderr)  # fmt: skip
            lists = [named] + [text for text in args.compare if text != named]
            rows = retrain(args, kind, lists)
            kinds.append(dict(found, best=rows[0], compared=rows[1:]))
    return dict(
        command="python3 benchmarks/heads_search.py " + " ".join(sys.argv[1:]),
        dataset=args.dataset,
        budget=args.budget,
        widths=args.widths,
        epochs=args.epochs,
        val_fraction=args.val_fraction,
        trials=args.trials,
        seeds=args.seeds,
        threads=args.threads,
        precision=args.precision,
        cpu=cpu_model(),
        cpu_flags=sorted(cpu_flags()),
        torch=torch.__version__,
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        kinds=kinds,
    )


def _cells(row: dict) -> str:
    val, test = (f"{100 * m:5.1f} ± {100 * s:4.1f}" for m, s in (row["val"], row["test"]))
    label = ",".join(map(str, row["hierarchy"]))
    return f"{label:<8} {val:>13} {test:>13} {row['params'] / 1e3:>6.0f}k {row['cpu_seconds_per_epoch']:>6.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", nargs="+", default=list(AUX_NETS), choices=AUX_NETS, help="head kinds")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--budget", type=int, default=8, help="units per list (8: the paper's lists of heads.py)")
    p.add_argument("--widths", default="8,16,32,64")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--val-fraction", type=float, default=0.1, help="heads.py's split (load_data's default)")
    p.add_argument("--trials", type=int, default=20, help="finished trials of each study")
    p.add_argument("--pruner", default="none", help="none: every trial complete, so the thesis rests on all")
    p.add_argument("--confirm", default="auto", help="lwl-search's --confirm (auto: its default)")
    p.add_argument("--enqueue", nargs="*", default=["4,2,1,1"], help="lists every study trains first")
    p.add_argument("--compare", nargs="*", default=[], help="lists retrained beside the named one")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..S-1 the named list is retrained with")
    p.add_argument("--threads", type=int, default=1, help="torch threads, in the searches too")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    p.add_argument("--train-limit", type=int, help="train on the first N training images only (quick checks)")
    p.add_argument("--search-timeout", type=float, default=3600, help="seconds one lwl-search may take")
    p.add_argument("--dir", help="keep the studies' SQLite files here (default: a temporary folder)")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)
    report = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    print(f"{report['dataset']}, budget {args.budget}, widths {args.widths}, {args.epochs} epochs, {args.trials} "
          f"trials per study, {args.seeds} seeds, {args.threads} thread(s), {report['precision']}")  # fmt: skip
    print(f"{'head':<10} {'list':<8} {'val output':>13} {'test output':>13} {'params':>7} {'cpu s/ep':>6}  thesis")
    for k in report["kinds"]:
        print(f"{k['aux_net']:<10} {_cells(k['best'])}  {k['thesis']['verdict']}")
        for row in k["compared"]:
            print(f"{'':<10} {_cells(row)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
