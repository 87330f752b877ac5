"""Tabular ground truth: every list of a small search space trained to full fidelity on digits, several seeds.

Issue #6, item 2. Each (list, seed) is trained exactly as an `lwl-search` trial trains it (`lwl.models.train` on
the validation split, simultaneous mode, the digits recipe of `paper_recipe`), and every per-epoch progress
record is kept, so that `tabular_replay.py` can replay whole Optuna studies, pruning included, without training,
and `tabular_analysis.py` can ask whether early accuracy predicts the final one.

As in `lwl-search --seed S`, seed S seeds both the training (`Recipe.seed`) and the validation split
(`split_seed`); the test set is never loaded. The table is rewritten after every run and runs already in it are
skipped, so an interrupted build continues where it stopped (settings that differ from the stored ones are
refused). Runs go seed by seed, so a partial table holds whole seeds.

    python3 benchmarks/tabular_table.py --budget 8 --stages 4 --constraint none --seeds 0,1,2 --widths 4,8,16,32
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import torch

from lwl.models import complexity, load_data, paper_recipe, parse_int_list, train, train_together
from lwl.search import CONSTRAINTS, SearchSpace, StudySettings

RESULTS = Path(__file__).resolve().parent / "results"
# Defaults: the suggested space (4 stages, budget 8, no constraint: 35 lists) and the network and loss of
# the packaged digits-quick preset (ResNet basic blocks, widths 16-128, `pred`: at short runs predsim's output
# classifier lags its units, see studies/digits-quick.yaml); epochs come from the digits recipe (10). At these
# widths every list sits at the digits ceiling (no spread above seed noise, benchmarks/README.md), so the
# benchmark's table is built with --widths 4,8,16,32.
DEFAULTS = dict(
    budget=8,
    stages=4,
    constraint="none",
    seeds="0,1,2",
    loss="pred",
    widths="16,32,64,128",
    family="resnet",
    block="basic",
    val_fraction=0.1,
    threads=1,
    device="cpu",
)
DIGITS = 5  # decimals kept for accuracies, as the search's objective stores them


def default_path(settings: StudySettings) -> Path:
    space, w = settings.space, settings.network.widths
    return RESULTS / f"tabular_digits_b{space.budget}_s{space.stages}_{space.constraint}_w{w[0]}-{w[-1]}.json"


def build_settings(args: argparse.Namespace) -> StudySettings:
    """The `StudySettings` an `lwl-search` run with these flags would store (seed excluded: it varies per run)."""
    space = SearchSpace(args.budget, args.stages, args.shallow_stages, args.constraint)
    space.check_nonempty()
    recipe = paper_recipe(
        "digits",
        args.family,
        loss=args.loss,
        epochs=args.epochs,
        val_fraction=args.val_fraction,
        train_limit=args.train_limit,
        seed=0,
    )
    return StudySettings.create(
        space, recipe, family=args.family, block=args.block, widths=parse_int_list(args.widths, "widths")
    )


def _settings_key(settings: StudySettings) -> dict[str, Any]:
    d = settings.to_dict()
    d["recipe"] = {k: v for k, v in d["recipe"].items() if k != "seed"}
    return d


def load_table(path: str | Path) -> dict[str, Any]:
    """The table as written by this script: {"header": {...}, "runs": [...]}."""
    with open(path) as f:
        return json.load(f)


def by_list(table: dict[str, Any]) -> dict[tuple[int, ...], dict[int, dict[str, Any]]]:
    """Runs keyed by list, then by seed; lists keep the space's enumeration order."""
    out: dict[tuple[int, ...], dict[int, dict[str, Any]]] = {}
    for run in sorted(table["runs"], key=lambda r: (r["index"], r["seed"])):
        out.setdefault(tuple(run["hierarchy"]), {})[run["seed"]] = run
    return out


def table_space(table: dict[str, Any]) -> SearchSpace:
    s = table["header"]["settings"]
    return SearchSpace(s["budget"], s["stages"], s["shallow_stages"], s["constraint"])


def check_complete(table: dict[str, Any]) -> list[int]:
    """The table's seeds, once every list of its space has a run for each (replays need the whole space)."""
    seeds = sorted({r["seed"] for r in table["runs"]})
    runs = by_list(table)
    missing = [h for h in table_space(table).lists() if set(runs.get(h, {})) != set(seeds)]
    if not seeds or missing:
        raise SystemExit(
            f"the table lacks {len(missing)} list(s) for some of seeds {seeds} (first: "
            f"{list(missing[0]) if missing else None}): finish it with tabular_table.py first"
        )
    return seeds


def ground_truth(table: dict[str, Any]) -> dict[tuple[int, ...], float]:
    """Each list's final output accuracy averaged over the table's seeds: what 'the best list' means here."""
    return {
        h: sum(r["output_acc"] for r in per_seed.values()) / len(per_seed) for h, per_seed in by_list(table).items()
    }


def finite_or_none(obj: Any) -> Any:
    """JSON has no infinity: misses are written as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def write_table(path: Path, table: dict[str, Any]) -> None:
    """Atomic rewrite; one run per line keeps the file readable and diffs small."""
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = sorted(table["runs"], key=lambda r: (r["seed"], r["index"]))
    text = (
        '{"header": '
        + json.dumps(table["header"], indent=2)
        + ',\n"runs": [\n'
        + ",\n".join(json.dumps(r, separators=(",", ":")) for r in runs)
        + "\n]}\n"
    )
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _cpu_name() -> str:
    """The CPU's model name (bf16 runs differ in their last bits from one CPU to another)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")
    except OSError:
        return platform.processor() or "unknown"


def _round(a: float | None) -> float | None:
    return None if a is None else round(a, DIGITS)


def run_one(
    settings: StudySettings, hierarchy: tuple[int, ...], index: int, seed: int, data: Any, device: str
) -> dict[str, Any]:
    """Train one list with one seed; every progress record is kept (the pruners' intermediate values)."""
    recipe = replace(settings.recipe, seed=seed)
    with_test = data.test_x is not None and data.test_x.shape[0] > 0
    result = train(settings.schedule(hierarchy), recipe, data, device=device, test=with_test)
    return _record(hierarchy, index, seed, result, result.test_output_acc if with_test else None)


def _record(hierarchy: tuple[int, ...], index: int, seed: int, result: Any, test_acc: float | None) -> dict[str, Any]:
    """One run as the table stores it: final accuracies, costs and every progress record."""
    schedule = result.schedule
    cost = complexity(schedule, result.recipe.head)
    extra = {"test_output_acc": _round(test_acc)} if test_acc is not None else {}
    return {
        **extra,
        "hierarchy": list(hierarchy),
        "index": index,
        "seed": seed,
        "units": schedule.units,
        "output_acc": _round(result.output_acc),
        "unit_acc": [_round(a) for a in result.unit_acc],
        "params": cost.params,
        "params_aux": cost.params_aux,
        "flops": cost.flops,
        "unit_epochs": result.unit_epochs,
        "wall_time": round(result.wall_time, 3),
        "history": [
            {
                "step": p.step,
                "output_acc": _round(p.output_acc),
                "unit_acc": [_round(a) for a in p.unit_acc],
                "unit_epochs": p.unit_epochs,
                "elapsed": round(p.elapsed, 3),
            }
            for p in result.history
        ],
    }


@torch.no_grad()
def _test_accuracy(model: torch.nn.Module, data: Any, precision: str) -> float:
    """The output classifier's accuracy on the test split, in the precision the run trained in."""
    model.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        predicted = model(data.test_x).argmax(1)
    return float((predicted == data.test_y).float().mean())


def run_seed_together(
    settings: StudySettings, todo: list[tuple[int, tuple[int, ...]]], seed: int, data: Any, device: str
) -> list[dict[str, Any]]:
    """Train every (index, list) of one seed in one pass, sharing the units their lists have in common
    (`train_together`: each run's weights and records are those of training it alone)."""
    recipe = replace(settings.recipe, seed=seed)
    schedules = [settings.schedule(h) for _, h in todo]
    outcome = train_together(schedules, recipe, data, device=device, keep_models=True)
    with_test = data.test_x is not None and data.test_x.shape[0] > 0
    out = []
    for (index, hierarchy), result in zip(todo, outcome.results):
        if isinstance(result, BaseException):
            raise result
        test = _test_accuracy(result.model, data, result.recipe.precision) if with_test else None
        out.append(_record(hierarchy, index, seed, result, test))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, help=f"units per list (default {DEFAULTS['budget']})")
    p.add_argument("--stages", type=int, help=f"stages per list (default {DEFAULTS['stages']})")
    p.add_argument("--shallow-stages", type=int, default=None, help="k for the constraint (default stages // 2)")
    p.add_argument("--constraint", choices=CONSTRAINTS, help=f"Eq. 7 variant (default {DEFAULTS['constraint']})")
    p.add_argument("--seeds", help=f"training (and split) seeds, comma-separated (default {DEFAULTS['seeds']})")
    p.add_argument("--loss", help=f"layer-wise loss (default {DEFAULTS['loss']}, as digits-quick)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the digits recipe's, 10)")
    p.add_argument("--widths", help=f"stage widths (default {DEFAULTS['widths']})")
    p.add_argument("--family", choices=("resnet", "vgg"), help=f"network family (default {DEFAULTS['family']})")
    p.add_argument("--block", help=f"resnet block (default {DEFAULTS['block']})")
    p.add_argument(
        "--with-test",
        action="store_true",
        help="also record each run's test accuracy (digits' fixed 20 %% test split), to measure how well a "
        "validation split ranks lists; the replays never read it",
    )
    p.add_argument("--val-fraction", type=float, help=f"validation fraction (default {DEFAULTS['val_fraction']})")
    p.add_argument("--train-limit", type=int, default=None, help="train on the first N images only (smoke runs)")
    p.add_argument("--threads", type=int, help=f"torch CPU threads (default {DEFAULTS['threads']})")
    p.add_argument("--device", help=f"training device (default {DEFAULTS['device']})")
    p.add_argument(
        "--together",
        action="store_true",
        help="train all lists of a seed in one pass, sharing common units (faster; the same runs)",
    )
    p.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        metavar="TABLE",
        help="instead of training, add the runs of these tables (built with the same settings, e.g. by processes "
        "that each trained some of the seeds) to --out",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="table file (default benchmarks/results/tabular_digits_bBUDGET_sSTAGES_CONSTRAINT_wFIRST-LAST.json)",
    )
    p.set_defaults(**DEFAULTS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = build_settings(args)
    space = settings.space
    seeds = [int(s) for s in parse_int_list(args.seeds, "seeds")]
    lists = space.lists()
    path = args.out or default_path(settings)
    command = shlex.join(["python3", "benchmarks/tabular_table.py", *(sys.argv[1:] if argv is None else argv)])
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    if args.merge:
        return merge(args.merge, path, command, now)
    if path.exists():
        table = load_table(path)
        if table["header"]["settings"] != _settings_key(settings):
            print(
                f"tabular_table: {path} was built with other settings ({table['header']['settings']}): "
                "use those flags or another --out",
                file=sys.stderr,
            )
            return 2
        table["header"]["commands"].append({"command": command, "date": now, "torch": torch.__version__})
    else:
        table = {
            "header": {
                "what": "every list of the space trained to full fidelity on digits (validation split), per seed",
                "commands": [{"command": command, "date": now, "torch": torch.__version__}],
                "torch": torch.__version__,
                "optuna": optuna.__version__,
                "python": platform.python_version(),
                "device": args.device,
                "cpu": _cpu_name(),
                "threads": args.threads,
                "settings": _settings_key(settings),
                "seed_rule": "seed S seeds training (Recipe.seed) and the validation split (split_seed), as lwl-search",
                "lists": len(space),
                "space": space.describe(),
            },
            "runs": [],
        }
    done = {(tuple(r["hierarchy"]), r["seed"]) for r in table["runs"]}
    todo = [(s, i, h) for s in seeds for i, h in enumerate(lists) if (h, s) not in done]
    print(
        f"{space.describe()}: {len(space)} lists; {len(lists) * len(seeds)} runs asked, {len(todo)} to train -> {path}",
        flush=True,
    )
    t0 = time.perf_counter()
    n = 0
    for seed in dict.fromkeys(s for s, _, _ in todo):
        # runs go seed by seed: one split in memory at a time, and a partial table holds whole seeds
        data = load_data("digits", val_fraction=args.val_fraction, split_seed=seed, with_test=args.with_test)
        table["header"]["val_images"] = int(data.val_y.shape[0])
        of_seed = [(i, h) for s, i, h in todo if s == seed]
        if args.together:
            start = time.perf_counter()
            table["runs"] += run_seed_together(settings, of_seed, seed, data, args.device)
            write_table(path, table)
            n += len(of_seed)
            print(
                f"[{n}/{len(todo)}] seed {seed}: {len(of_seed)} lists together, {time.perf_counter() - start:.0f} s "
                f"(total {time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
            continue
        for index, hierarchy in of_seed:
            run = run_one(settings, hierarchy, index, seed, data, args.device)
            table["runs"].append(run)
            write_table(path, table)
            n += 1
            print(
                f"[{n}/{len(todo)}] seed {seed} {list(hierarchy)}: output acc {run['output_acc']:.4f}, "
                f"{run['wall_time']:.1f} s (total {time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    return 0


def merge(parts: Sequence[Path], path: Path, command: str, now: str) -> int:
    """Write `path` as the union of the runs of `parts` (and of `path`, if it exists), which must share their
    settings and their validation size; a (list, seed) run found twice is refused."""
    tables = [load_table(p) for p in ([path] if path.exists() else []) + list(parts)]
    first = tables[0]["header"]
    for t in tables[1:]:
        h = t["header"]
        if h["settings"] != first["settings"] or h.get("val_images") != first.get("val_images"):
            print(f"tabular_table: a table to merge was built with other settings: {h['settings']}", file=sys.stderr)
            return 2
    runs: dict[tuple[tuple[int, ...], int], dict[str, Any]] = {}
    for t in tables:
        for r in t["runs"]:
            key = (tuple(r["hierarchy"]), r["seed"])
            if key in runs:
                print(f"tabular_table: run {list(key[0])} seed {key[1]} is in two tables", file=sys.stderr)
                return 2
            runs[key] = r
    header = dict(first)
    header["commands"] = [c for t in tables for c in t["header"]["commands"]] + [
        {"command": command, "date": now, "torch": torch.__version__}
    ]
    write_table(path, {"header": header, "runs": list(runs.values())})
    print(f"{len(runs)} runs from {len(tables)} tables -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
