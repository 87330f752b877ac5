"""Which auxiliary network (`--aux-net`) to train each unit with, and does the paper's schedule still win under it.

Not a test: it prints figures. Every list is trained with every head kind over several seeds (the same seeds, so the
same batches and splits); it reports the output classifier's validation and test accuracy as mean ± sd over the
seeds, the mean of the best unit's test accuracy, the parameters with heads, and the time per epoch: wall time and
the process's CPU time (with --threads 1 the CPU time is the compute, whatever else the machine runs).

    python3 benchmarks/heads.py                                        # digits, 3 lists, 4 kinds, 3 seeds
    python3 benchmarks/heads.py --lists 1,1,2,4 2,2,2,2 --seeds 5 --json benchmarks/results/heads.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch

from lwl.models import (
    AUX_NETS,
    Schedule,
    complexity,
    cpu_flags,
    dataset_info,
    load_data,
    paper_recipe,
    parse_int_list,
    train,
)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    data = load_data(args.dataset, with_test=True, limit=args.train_limit)
    info = dataset_info(args.dataset)
    widths = parse_int_list(args.widths, "--widths")
    rows = []
    for kind in args.kinds:
        for text in args.lists:
            hierarchy = parse_int_list(text)
            schedule = Schedule(
                hierarchy,
                widths=widths[: len(hierarchy)],
                num_classes=info.num_classes,
                in_channels=info.in_channels,
                input_size=info.input_size,
            )
            runs = []
            for seed in range(args.seeds):
                recipe = paper_recipe(
                    args.dataset, "resnet", epochs=args.epochs, seed=seed, aux_net=kind, precision=args.precision
                )
                t0, c0 = time.perf_counter(), time.process_time()
                r = train(schedule, recipe, data, device="cpu", test=True)
                seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
                best_unit = max(a for a in (r.test_unit_acc or ()) if a is not None)
                runs.append(
                    dict(seed=seed, val=r.output_acc, test=r.test_output_acc, best_unit=best_unit, s=seconds, cpu_s=cpu)
                )
                print(f"  {kind:<10} {text} seed {seed}: val {r.output_acc:.4f} test {r.test_output_acc:.4f} "
                      f"best unit {best_unit:.4f}, {seconds:.1f} s", file=sys.stderr)  # fmt: skip
            cost = complexity(schedule, recipe.head)
            rows.append(
                dict(
                    aux_net=kind,
                    loss=recipe.loss,
                    hierarchy=list(hierarchy),
                    units=schedule.units,
                    params=cost.params,
                    params_aux=cost.params_aux,
                    flops_aux=cost.flops_aux,
                    runs=runs,
                    val=_mean_sd([r["val"] for r in runs]),
                    test=_mean_sd([r["test"] for r in runs]),
                    best_unit=_mean_sd([r["best_unit"] for r in runs]),
                    seconds_per_epoch=statistics.fmean(r["s"] for r in runs) / args.epochs,
                    cpu_seconds_per_epoch=statistics.fmean(r["cpu_s"] for r in runs) / args.epochs,
                )
            )
    return dict(
        command="python3 benchmarks/heads.py " + " ".join(sys.argv[1:]),
        dataset=args.dataset,
        widths=list(widths),
        epochs=args.epochs,
        seeds=args.seeds,
        threads=args.threads,
        precision=recipe.precision,
        cpu=platform.processor() or platform.machine(),
        cpu_flags=sorted(cpu_flags()),
        torch=torch.__version__,
        rows=rows,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lists", nargs="+", default=["1,1,2,4", "2,2,2,2", "4,2,1,1"], help="hierarchy lists")
    p.add_argument("--kinds", nargs="+", default=list(AUX_NETS), choices=AUX_NETS, help="head kinds")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--widths", default="16,32,64,128")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    p.add_argument("--train-limit", type=int, help="train on the first N training images only (quick checks)")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)
    report = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    print(f"{report['dataset']}, widths {args.widths}, {args.epochs} epochs, {args.seeds} seeds, "
          f"{args.threads} thread(s), {report['precision']}, torch {report['torch']}")  # fmt: skip
    header = f"{'head':<10} {'list':<8} {'val output':>13} {'test output':>13} {'best unit':>13}"
    print(f"{header} {'params+aux':>10} s/epoch cpu s/epoch")
    for r in report["rows"]:
        cells = [f"{100 * m:5.1f} ± {100 * s:4.1f}" for m, s in (r["val"], r["test"], r["best_unit"])]
        label = ",".join(map(str, r["hierarchy"]))
        times = f"{r['seconds_per_epoch']:>7.2f} {r['cpu_seconds_per_epoch']:>11.2f}"
        print(f"{r['aux_net']:<10} {label:<8} {cells[0]:>13} {cells[1]:>13} {cells[2]:>13} "
              f"{r['params_aux'] / 1e6:>9.2f}M {times}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
