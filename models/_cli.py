"""`lwl-inspect` and `lwl-train`: thin commands over the engine."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ._data import dataset_info, load_data
from ._network import complexity
from ._options import (
    add_data_args,
    add_recipe_args,
    add_schedule_args,
    recipe_from_args,
    run_command,
    schedule_from_args,
)
from ._schedule import Schedule
from ._trainer import Progress, Recipe, RunResult, train


def describe(schedule: Schedule, recipe: Recipe | None = None) -> dict[str, Any]:
    """What a schedule makes, as the JSON `lwl-inspect --json` prints and the search stores."""
    cost = complexity(schedule, recipe.head if recipe else None)
    return {
        "hierarchy": list(schedule.hierarchy),
        "family": schedule.family,
        "block": schedule.block,
        "widths": list(schedule.widths or ()),
        "downsample": schedule.downsample,
        "num_classes": schedule.num_classes,
        "input": [schedule.in_channels, schedule.input_size, schedule.input_size],
        "units": schedule.units,
        "conv_layers": cost.conv_layers,
        "params": cost.params,
        "params_aux": cost.params_aux,
        "flops": cost.flops,
        "flops_aux": cost.flops_aux,
        "activations": cost.activations,
        "stages": [{"units": s.units, "resolution": s.resolution, "width": s.width} for s in cost.stages],
    }


def _inspect_text(d: dict[str, Any], dataset: str) -> str:
    c, s, _ = d["input"]
    lines = [
        f"{d['family']} {d['block'] + ' ' if d['family'] == 'resnet' else ''}"
        f"[{','.join(map(str, d['hierarchy']))}] on {dataset} ({c}x{s}x{s}, {d['num_classes']} classes), "
        f"downsampling: {d['downsample']}",
        "",
        f"  {'stage':>5}  {'units':>5}  {'resolution':>10}  {'width':>5}",
    ]
    for i, st in enumerate(d["stages"], 1):
        lines.append(f"  {i:>5}  {st['units']:>5}  {st['resolution']:>5}x{st['resolution']:<4}  {st['width']:>5}")
    lines += [
        "",
        f"  units (locally trained)      {d['units']}",
        f"  conv layers                  {d['conv_layers']}",
        f"  parameters                   {d['params']:,}",
        f"  parameters with aux heads    {d['params_aux']:,}",
        f"  FLOPs per image (forward)    {d['flops'] / 1e9:.3f} G   (with aux heads {d['flops_aux'] / 1e9:.3f} G)",
        f"  activations per image        {d['activations']:,} elements ({d['activations'] * 4 / 2**20:.2f} MiB fp32)",
    ]
    return "\n".join(lines)


def inspect_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lwl-inspect",
        description="Print the network a schedule makes: stages, units, conv layers, parameters, FLOPs, memory.",
    )
    add_schedule_args(parser)
    parser.add_argument("--dataset", default="cifar10", help="sets classes and input size (default cifar10)")
    parser.add_argument("--loss", default="predsim", help="which auxiliary heads are counted (default predsim)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    def body() -> int:
        schedule = schedule_from_args(args, args.dataset)
        info = dataset_info(args.dataset)
        recipe = Recipe(dataset=info.name, loss=args.loss)
        d = describe(schedule, recipe)
        print(json.dumps(d) if args.json else _inspect_text(d, info.name))
        return 0

    return run_command("lwl-inspect", body)


def _fmt_acc(value: float | None) -> str:
    return "  -  " if value is None else f"{100 * value:5.1f}"


def progress_line(p: Progress, mode: str) -> str:
    what = "epoch" if mode == "simultaneous" else "unit"
    units = " ".join(_fmt_acc(a) for a in p.unit_acc)
    return f"{what} {p.step:>3}/{p.total_steps}  output {_fmt_acc(p.output_acc)}  units [{units}]  {p.elapsed:6.1f}s"


def summary(result: RunResult) -> dict[str, Any]:
    return {
        "hierarchy": list(result.schedule.hierarchy),
        "loss": result.recipe.loss,
        "mode": result.recipe.mode,
        "device": result.device,
        "output_acc": result.output_acc,
        "unit_acc": list(result.unit_acc),
        "test_output_acc": result.test_output_acc,
        "test_unit_acc": None if result.test_unit_acc is None else list(result.test_unit_acc),
        "params": result.complexity.params,
        "params_aux": result.complexity.params_aux,
        "flops": result.complexity.flops,
        "peak_memory": result.peak_memory,
        "wall_time": result.wall_time,
        "unit_epochs": result.unit_epochs,
    }


def train_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lwl-train",
        description="Train one schedule layer-wise and print per-unit validation (and test) accuracy.",
    )
    add_schedule_args(parser)
    add_data_args(parser)
    add_recipe_args(parser)
    parser.add_argument("--global", dest="also_global", action="store_true",
                        help="also train the same network end to end, for the paper's comparison")
    parser.add_argument("--test", action="store_true", help="report test-set accuracy at the end")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object at the end")
    args = parser.parse_args(argv)

    def body() -> int:
        data = load_data(args.dataset, data_root=args.data_root, download=args.download, with_test=args.test)
        schedule = schedule_from_args(args, args.dataset)
        recipe = recipe_from_args(args, schedule.family)
        runs = [recipe] + ([Recipe(**{**recipe.to_dict(), "loss": "global", "mode": "simultaneous"})]
                           if args.also_global and recipe.loss != "global" else [])
        results = []
        for r in runs:
            print(f"training {schedule.family} {schedule.label()} on {args.dataset}: loss {r.loss}, mode {r.mode}, "
                  f"{r.epochs} epochs, lr {r.lr:g}, dropout {r.dropout:g}", file=sys.stderr)
            result = train(schedule, r, data, device=args.device, test=args.test,
                           on_progress=lambda p, m=r.mode: print(progress_line(p, m), file=sys.stderr))
            results.append(result)
            acc = result.test_output_acc if args.test else result.output_acc
            split = "test" if args.test else "validation"
            print(f"{r.loss}: {split} accuracy {_fmt_acc(acc).strip()} % in {result.wall_time:.1f}s on {result.device}",
                  file=sys.stderr)
        if args.json:
            print(json.dumps([summary(r) for r in results] if len(results) > 1 else summary(results[0])))
        return 0

    return run_command("lwl-train", body)
