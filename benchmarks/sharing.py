"""What exact prefix sharing saves: the same K candidates trained one by one, and trained sharing their prefixes.

Not a test: it prints figures. Simultaneous mode: K separate `train` runs against one `train_together` pass (what
`lwl-search --batch K` runs). Sequential mode: K separate runs against the same K runs through one `PrefixStore`
(what `lwl-search --mode sequential` does by default). Both report unit-epochs trained, wall time, and whether
every candidate's final accuracies came out bitwise equal to its run alone (they must).

    python3 benchmarks/sharing.py --budget 12 --lists 8 --epochs 3          # 8 of the 20 strict budget-12 lists
    python3 benchmarks/sharing.py --budget 12 --lists 0 --epochs 3          # all of them
    python3 benchmarks/sharing.py --device cuda --dataset cifar100 --synthetic 10000 --widths 64,128,256,512
                                                                            # on a GPU, CIFAR-shaped, no download

The K lists are drawn at random (seeded) from the feasible set, as a random sampler would; a TPE study that
concentrates on one region shares more.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import replace

import torch

from lwl.models import (
    DataSplits,
    PrefixStore,
    Recipe,
    Schedule,
    dataset_info,
    load_data,
    paper_recipe,
    parse_int_list,
    resolve_device,
    train,
    train_together,
)
from lwl.search import SearchSpace


def pick_lists(space: SearchSpace, k: int, seed: int) -> list[tuple[int, ...]]:
    lists = list(space.lists())
    if k <= 0 or k >= len(lists):
        return lists
    return random.Random(seed).sample(lists, k)


def warm_up(schedules: list[Schedule], recipe: Recipe, data: DataSplits, device: str) -> None:
    """One untimed batch of the first candidate, so that one-time costs (lazy initialisation, the allocator, cuDNN
    autotuning) are not charged to whichever side is timed first: they made a 3 s run look 9x faster shared."""
    train(schedules[0], replace(recipe, epochs=1, train_limit=recipe.batch_size), data, device=device)


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    torch.set_num_threads(args.threads)
    space = SearchSpace(args.budget, args.stages)
    lists = pick_lists(space, args.lists, args.seed)
    widths = parse_int_list(args.widths, "--widths")
    device = str(resolve_device(args.device))
    if args.synthetic:
        from train_speed import synthetic_data  # CIFAR-shaped images, converted as CIFAR files are

        data = synthetic_data(dataset_info(args.dataset), args.synthetic, max(args.synthetic // 10, 1), args.seed)
    else:
        data = load_data(args.dataset)
    data = data.to(device)
    info = data.info
    schedules = [
        Schedule(
            h, widths=widths, num_classes=info.num_classes, in_channels=info.in_channels, input_size=info.input_size
        )
        for h in lists
    ]
    report: dict = {
        "lists": [list(h) for h in lists],
        "space": space.describe(),
        "feasible": len(space),
        "widths": list(widths),
        "epochs": args.epochs,
        "loss": args.loss,
        "threads": args.threads,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "argv": list(argv),
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else device,
        "data": f"synthetic {args.synthetic}" if args.synthetic else args.dataset,
    }
    if "simultaneous" in args.modes:
        recipe = paper_recipe(args.dataset, "resnet", loss=args.loss, epochs=args.epochs, train_limit=args.train_limit)
        warm_up(schedules, recipe, data, device)
        t0 = time.perf_counter()
        alone = [train(s, recipe, data, device=device) for s in schedules]
        t_alone = time.perf_counter() - t0
        t0 = time.perf_counter()
        together = train_together(schedules, recipe, data, device=device)
        t_together = time.perf_counter() - t0
        exact = all(
            a.history[-1].unit_acc == b.history[-1].unit_acc and a.output_acc == b.output_acc
            for a, b in zip(alone, together.results)
        )
        report["simultaneous"] = {
            "unit_epochs_alone": sum(r.unit_epochs for r in alone),
            "unit_epochs_shared": together.unit_epochs,
            "seconds_alone": round(t_alone, 2),
            "seconds_shared": round(t_together, 2),
            "exact": exact,
        }
    if "sequential" in args.modes:
        recipe = paper_recipe(
            args.dataset, "resnet", loss=args.loss, epochs=args.epochs, train_limit=args.train_limit, mode="sequential"
        )
        warm_up(schedules, recipe, data, device)
        t0 = time.perf_counter()
        alone = [train(s, recipe, data, device=device) for s in schedules]
        t_alone = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            store = PrefixStore(tmp)
            t0 = time.perf_counter()
            shared = [train(s, recipe, data, device=device, prefix_store=store) for s in schedules]
            t_shared = time.perf_counter() - t0
        exact = all(a.unit_acc == b.unit_acc and a.output_acc == b.output_acc for a, b in zip(alone, shared))
        units = sum(s.units for s in schedules)
        reused = sum(r.reused_units for r in shared)
        report["sequential"] = {
            "unit_epochs_alone": units * args.epochs,
            "unit_epochs_shared": (units - reused) * args.epochs,
            "units_reused": reused,
            "seconds_alone": round(t_alone, 2),
            "seconds_shared": round(t_shared, 2),
            "exact": exact,
        }
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, default=12)
    p.add_argument("--stages", type=int, default=4)
    p.add_argument("--lists", type=int, default=8, help="K candidates drawn from the feasible set (0: all)")
    p.add_argument("--seed", type=int, default=0, help="which K lists")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--widths", default="16,32,64,128")
    p.add_argument("--loss", default="pred")
    p.add_argument("--epochs", type=int, default=3, help="epochs per candidate (per unit in sequential mode)")
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu (default), cuda, cuda:1 or auto; bitwise equality ('exact') is only promised on the CPU",
    )
    p.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="with --dataset cifar10/cifar100: N CIFAR-shaped synthetic training images instead of files",
    )
    p.add_argument("--modes", nargs="+", default=["simultaneous", "sequential"], choices=["simultaneous", "sequential"])
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.synthetic and args.dataset not in ("cifar10", "cifar100"):
        p.error("--synthetic needs --dataset cifar10 or cifar100")
    report = run(args, sys.argv[1:] if argv is None else argv)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(
        f"{len(report['lists'])} of the {report['feasible']} lists of {report['space']}; {report['data']}, widths "
        f"{args.widths}, loss {args.loss}, {args.epochs} epochs, on {report['device']}, {args.threads} thread(s), "
        f"torch {report['torch']}"
    )
    print(
        f"{'mode':<13} {'unit-epochs alone':>17} {'shared':>7} {'ratio':>6} {'s alone':>8} {'s shared':>8} "
        f"{'speed-up':>8}  exact"
    )
    for mode in args.modes:
        r = report[mode]
        print(
            f"{mode:<13} {r['unit_epochs_alone']:>17} {r['unit_epochs_shared']:>7} "
            f"{r['unit_epochs_alone'] / r['unit_epochs_shared']:>5.2f}x {r['seconds_alone']:>8.1f} "
            f"{r['seconds_shared']:>8.1f} {r['seconds_alone'] / r['seconds_shared']:>7.2f}x  {r['exact']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
