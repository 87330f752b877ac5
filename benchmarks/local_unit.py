"""What one local loss should train in the resnet family: a residual block, or each convolution as the reference does.

Not a test: it prints figures. Every list is trained with both `--local-unit` values over several seeds (the same
seeds, so the same batches); it reports the output classifier's validation and test accuracy as mean ± std over the
seeds, the mean of the best unit's test accuracy, and the wall time per run (both in one process, on one CPU, so
their ratio is what to compare across machines).

    python3 benchmarks/local_unit.py                                   # digits, ResNet-18's lists, 3 seeds
    python3 benchmarks/local_unit.py --lists 2,2,2,2 1,1,2,4 --seeds 5 --epochs 20 --json results/local_unit.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch

from lwl.models import LOCAL_UNITS, Schedule, cpu_flags, dataset_info, load_data, paper_recipe, parse_int_list, train


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    data = load_data(args.dataset, with_test=True)
    info = dataset_info(args.dataset)
    widths = parse_int_list(args.widths, "--widths")
    rows = []
    for text in args.lists:
        hierarchy = parse_int_list(text)
        for local_unit in LOCAL_UNITS:
            schedule = Schedule(
                hierarchy,
                block=args.block,
                widths=widths[: len(hierarchy)],
                num_classes=info.num_classes,
                in_channels=info.in_channels,
                input_size=info.input_size,
                local_unit=local_unit,
            )
            runs = []
            for seed in range(args.seeds):
                recipe = paper_recipe(args.dataset, "resnet", epochs=args.epochs, loss=args.loss, seed=seed)
                t0 = time.perf_counter()
                r = train(schedule, recipe, data, device="cpu", test=True)
                seconds = time.perf_counter() - t0
                best_unit = max(a for a in (r.test_unit_acc or ()) if a is not None)
                runs.append(dict(seed=seed, val=r.output_acc, test=r.test_output_acc, best_unit=best_unit, s=seconds))
                print(f"  {text} {local_unit:<5} seed {seed}: val {r.output_acc:.4f} test {r.test_output_acc:.4f} "
                      f"best unit {best_unit:.4f}, {seconds:.1f} s", file=sys.stderr)  # fmt: skip
            rows.append(
                dict(
                    hierarchy=list(hierarchy),
                    local_unit=local_unit,
                    units=schedule.units,
                    runs=runs,
                    val=_mean_std([r["val"] for r in runs]),
                    test=_mean_std([r["test"] for r in runs]),
                    best_unit=_mean_std([r["best_unit"] for r in runs]),
                    seconds=statistics.fmean(r["s"] for r in runs),
                )
            )
    return dict(
        command="python3 benchmarks/local_unit.py " + " ".join(sys.argv[1:]),
        dataset=args.dataset,
        widths=list(widths),
        block=args.block,
        loss=args.loss,
        epochs=args.epochs,
        seeds=args.seeds,
        threads=args.threads,
        cpu=platform.processor() or platform.machine(),
        cpu_flags=sorted(cpu_flags()),
        torch=torch.__version__,
        rows=rows,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lists", nargs="+", default=["2,2,2,2", "1,1,2,4", "1,1,1,1"], help="hierarchy lists")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--widths", default="16,32,64,128")
    p.add_argument("--block", default="basic", choices=["basic", "bottleneck"])
    p.add_argument("--loss", default="predsim")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)
    report = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    print(f"{report['dataset']}, widths {args.widths}, {args.block}, {args.loss}, {args.epochs} epochs, "
          f"{args.seeds} seeds, {args.threads} thread(s), torch {report['torch']}")  # fmt: skip
    header = f"{'list':<10} {'unit':<5} {'units':>5} {'val output':>13} {'test output':>13} {'best unit':>13}"
    print(f"{header} {'s/run':>6}")
    for r in report["rows"]:
        cells = [f"{100 * m:5.1f} ± {100 * s:4.1f}" for m, s in (r["val"], r["test"], r["best_unit"])]
        label = ",".join(map(str, r["hierarchy"]))
        print(f"{label:<10} {r['local_unit']:<5} {r['units']:>5} {cells[0]:>13} {cells[1]:>13} {cells[2]:>13} "
              f"{r['seconds']:>6.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
