"""Replays multi-objective lwl-search studies against the tabular ground truth: how much of the true front's
hypervolume does a search return for the unit-epochs it spends? (Issue 15, item 3.)

Methods, each a real lwl-search sampler and pruner replayed as `tabular_replay.replay_study` does (the table in place
of training; pruned candidates paused and, once every list was tried, revisited and continued):

- dominance:  `--objectives accuracy,COST` as lwl-search runs it by default: sampler hvi, pruner dominance
              (`--dominators K` candidates of no greater cost more accurate at the same step);
- single:     lwl-search without --objectives (tpe, median on accuracy alone), its front derived afterwards;
- unpruned:   sampler hvi, no pruning;
- random:     sampler random, no pruning.

After every trial the study's front is its complete trials that no other complete trial beats on the accuracy it
observed (one table seed, as `lwl-search --seed S` sees) and every cost. Its hypervolume is computed at those lists'
true accuracies (mean over the table's seeds: what the user gets) and divided by the true front's (the front of the
table's mean accuracies). The space: log cost scaled to 0..1 over the feasible set, reference cost 1.1, accuracy
floor the worst list's true accuracy (`lwl.search.hypervolume`). A sweep is every list trained once, unpruned.

    python3 benchmarks/pareto_replay.py benchmarks/results/tabular_digits_b8_s4_none_w4-32.json --objectives \\
        accuracy,params --replays 20 --json benchmarks/results/pareto_replay_b8_params.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from tabular_replay import replay_study
from tabular_table import by_list, check_complete, finite_or_none, ground_truth, load_table

from lwl.search import (
    CostModel,
    StudySettings,
    hypervolume,
    normaliser,
    pareto_indices,
    parse_objectives,
)

# The replay's hyper-parameters, in one place.
REPLAYS = 20
METHODS = {  # name -> (sampler, pruner, searched with the costs)
    "dominance": ("hvi", "dominance", True),
    "single": ("tpe", "median", False),
    "unpruned": ("hvi", "none", True),
    "random": ("random", "none", True),
}
BUDGETS = (1 / 3, 1 / 2, 2 / 3, 1.0)  # unit-epochs as a share of a sweep's
GOAL_SHARE, GOAL_COST = 0.95, 1 / 3  # the goal: 95 % of the true front's hypervolume at a third of a sweep


def front_share(
    entries: Sequence[dict[str, Any]],
    truth: dict[tuple[int, ...], float],
    scaled: dict[tuple[int, ...], tuple[float, ...]],
    floor: float,
    best: float,
) -> float:
    """The hypervolume of the front of `entries` (by observed values) at true accuracies, over the true front's."""
    done = [(scaled[e["hierarchy"]], float(e["value"]), e["hierarchy"]) for e in entries if e["value"] is not None]
    front = observed_front(done)
    return hypervolume([(scaled[h], truth[h]) for h in set(front)], floor) / best


def share_trace(
    log: list[dict[str, Any]],
    truth: dict[tuple[int, ...], float],
    scaled: dict[tuple[int, ...], tuple[float, ...]],
    floor: float,
    best: float,
) -> tuple[list[float], list[float]]:
    """Per trial: unit-epochs spent so far, and the front's share of the true hypervolume then."""
    spent, share, total = [], [], 0.0
    for i, entry in enumerate(log):
        total += entry["unit_epochs"]
        spent.append(total)
        share.append(front_share(log[: i + 1], truth, scaled, floor, best))
    return spent, share


def share_at(spent: Sequence[float], share: Sequence[float], budget: float) -> float:
    """The share a study had returned once it had spent at most `budget` unit-epochs (0 before its first trial)."""
    i = int(np.searchsorted(np.asarray(spent), budget, side="right")) - 1
    return float(share[i]) if i >= 0 else 0.0


def observed_front(done: Sequence[tuple[tuple[float, ...], float, tuple[int, ...]]]) -> list[tuple[int, ...]]:
    """The lists of (normalised cost, accuracy, list) triples that no other beats (`lwl.search.pareto_indices`)."""
    return [done[i][2] for i in pareto_indices([(c, a) for c, a, _ in done])]


def confirmed_front(
    log: list[dict[str, Any]],
    runs: dict[tuple[int, ...], dict[int, dict[str, Any]]],
    seeds: Sequence[int],
    table_seed: int,
    scaled: dict[tuple[int, ...], tuple[float, ...]],
    cap: int,
    lists: int,
    more: int,
) -> tuple[list[tuple[int, ...]], float]:
    """What `lwl-search --objectives ... --trials cap --confirm lists --confirm-seeds more` returns: the first `cap`
    trials' front, its `lists` most accurate members trained again with the next `more` table seeds, and the front
    recomputed with their means. Returns the front and the unit-epochs spent (trials plus full confirmation runs)."""
    taken = log[:cap]
    spent = float(sum(e["unit_epochs"] for e in taken))
    done = {e["hierarchy"]: e for e in taken if e["value"] is not None}
    values = {h: float(e["value"]) for h, e in done.items()}
    front = observed_front([(scaled[h], a, h) for h, a in values.items()])
    chosen = sorted(front, key=lambda h: -values[h])[:lists] if more else []
    order = list(seeds)
    extra = [order[(order.index(table_seed) + i) % len(order)] for i in range(1, more + 1)]
    for h in chosen:
        values[h] = float(np.mean([values[h], *(runs[h][s]["output_acc"] for s in extra)]))
        spent += more * float(done[h]["full_unit_epochs"])
    return observed_front([(scaled[h], a, h) for h, a in values.items()]), spent


def run(
    table: dict[str, Any],
    objectives: tuple[str, ...],
    methods: Sequence[str],
    replays: int,
    dominators: Sequence[int],
    trials: int | None,
    caps: Sequence[int] = (),
    plans: Sequence[tuple[int, int]] = (),
) -> dict[str, Any]:
    seeds = check_complete(table)
    runs = by_list(table)
    truth = ground_truth(table)
    base = StudySettings.from_dict(
        {**table["header"]["settings"], "recipe": {**table["header"]["settings"]["recipe"], "seed": 0}}
    )
    searched = replace(base, objectives=objectives)
    model = CostModel.of(searched)
    lists = base.space.lists()
    scale = normaliser([model.of_list(h) for h in lists])
    scaled = {h: tuple(float(v) for v in scale(model.of_list(h))) for h in lists}
    floor = min(truth.values())
    true_front = [(scaled[h], a) for h, a in truth.items()]
    best_volume = hypervolume(true_front, floor)
    sweep = float(sum(runs[h][seeds[0]]["history"][-1]["unit_epochs"] for h in runs))
    cap = trials if trials is not None else 2 * len(lists)
    variants = []
    for method in methods:
        sampler, pruner, with_costs = METHODS[method]
        for k in dominators if pruner == "dominance" else (None,):
            variants.append((method if k is None else f"{method} k={k}", sampler, pruner, with_costs, k))
    rows, timing, grid_rows = [], {}, []
    for name, sampler, pruner, with_costs, k in variants:
        start = time.perf_counter()
        traces = []
        for r in range(replays):
            log = replay_study(
                runs,
                searched if with_costs else base,
                sampler,
                pruner,
                r,
                seeds[r % len(seeds)],
                cap,
                paper=True,
                min_dominators=k or 1,
            )
            traces.append(share_trace(log, truth, scaled, floor, best_volume) + (log,))
        timing[name] = round(time.perf_counter() - start, 1)
        for c in caps:
            for lists_k, more in plans:
                got = [
                    confirmed_front(log, runs, seeds, seeds[r % len(seeds)], scaled, c, lists_k, more)
                    for r, (_, _, log) in enumerate(traces)
                ]
                shares = [hypervolume([(scaled[h], truth[h]) for h in f], floor) / best_volume for f, _ in got]
                grid_rows.append(
                    {
                        "method": name,
                        "cap": c,
                        "confirm": lists_k if more else 0,
                        "confirm_seeds": more if lists_k else 0,
                        "share": float(np.mean(shares)),
                        "share_sd": float(np.std(shares, ddof=1)),
                        "goal_hits": int(sum(v >= GOAL_SHARE for v in shares)),
                        "unit_epochs": float(np.mean([u for _, u in got])) / sweep,
                    }
                )
        at = {b: [share_at(sp, sh, b * sweep) for sp, sh, _ in traces] for b in BUDGETS}
        grid = np.linspace(0, 1, 301)
        mean_curve = np.mean([[share_at(sp, sh, g * sweep) for g in grid] for sp, sh, _ in traces], axis=0)
        reach = np.flatnonzero(mean_curve >= GOAL_SHARE)
        rows.append(
            {
                "method": name,
                "sampler": sampler,
                "pruner": pruner,
                "dominators": k,
                "share_at": {f"{b:.3f}": float(np.mean(v)) for b, v in at.items()},
                "share_at_sd": {f"{b:.3f}": float(np.std(v, ddof=1)) for b, v in at.items()},
                "goal_hits": int(sum(v >= GOAL_SHARE for v in at[GOAL_COST])),
                "mean_reaches_goal_at": float(grid[reach[0]]) if reach.size else None,
                "final_share": float(np.mean([sh[-1] for _, sh, _ in traces])),
                "unit_epochs": float(np.mean([sp[-1] for sp, _, _ in traces])) / sweep,
                "trials": float(np.mean([len(log) for _, _, log in traces])),
                "pruned": float(np.mean([sum(e["pruned"] for e in log) / len(log) for _, _, log in traces])),
            }
        )
    return {
        "objectives": list(objectives),
        "lists": len(lists),
        "seeds": seeds,
        "replays": replays,
        "trial_cap": cap,
        "floor": floor,
        "true_front": sorted(
            [list(h) for h in observed_front([(scaled[h], a, h) for h, a in truth.items()])],
            key=lambda h: scaled[tuple(h)],
        ),
        "true_hypervolume": best_volume,
        "sweep_unit_epochs": sweep,
        "rows": rows,
        "confirm_grid": grid_rows,
        "seconds": timing,
    }


def render(result: dict[str, Any]) -> str:
    budgets = " ".join(f"{'@' + format(b, '.2f'):>12}" for b in BUDGETS)
    lines = [
        f"objectives {','.join(result['objectives'])}: {result['lists']} lists, table seeds {result['seeds']}, "
        f"{result['replays']} replays per row, trial cap {result['trial_cap']}; true front "
        f"{len(result['true_front'])} lists {result['true_front']}",
        f"{'method':<15} {budgets} {'95 % at':>8} {'hits@1/3':>9} {'final':>6} {'UE/sweep':>8} {'trials':>6} "
        f"{'pruned':>6}",
    ]
    for r in result["rows"]:
        cells = " ".join(
            f"{100 * r['share_at'][f'{b:.3f}']:>6.1f}±{100 * r['share_at_sd'][f'{b:.3f}']:<4.1f}" for b in BUDGETS
        )
        goal = r["mean_reaches_goal_at"]
        lines.append(
            f"{r['method']:<15} {cells} {('miss' if goal is None else f'{goal:.2f}'):>8} "
            f"{r['goal_hits']:>5}/{result['replays']:<3} {100 * r['final_share']:>5.1f}% {r['unit_epochs']:>8.2f} "
            f"{r['trials']:>6.1f} {100 * r['pruned']:>5.0f}%"
        )
    lines.append(
        "@b: mean ± sd over replays of the returned front's share of the true front's hypervolume once b of a sweep's "
        "unit-epochs are spent; 95 % at: the share of a sweep at which the mean reaches 95 %; hits@1/3: replays at "
        "95 % or more by a third of a sweep; final: at the trial cap; UE/sweep: unit-epochs spent by then"
    )
    if result["confirm_grid"]:
        lines.append(
            f"{'method':<15} {'trials':>6} {'confirm':>7} {'seeds':>5} {'share':>12} {'hits':>6} {'UE/sweep':>8}"
        )
        for g in result["confirm_grid"]:
            lines.append(
                f"{g['method']:<15} {g['cap']:>6} {g['confirm']:>7} {g['confirm_seeds']:>5} "
                f"{100 * g['share']:>6.1f}±{100 * g['share_sd']:<4.1f} {g['goal_hits']:>3}/{result['replays']:<2} "
                f"{g['unit_epochs']:>8.2f}"
            )
        lines.append(
            "the study capped at `trials`, then its front's `confirm` most accurate lists trained again with `seeds` "
            "more table seeds and the front recomputed with their means: share of the true hypervolume (mean ± sd), "
            "replays at 95 % or more, unit-epochs spent including confirmation"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("table", type=Path, help="a table written by tabular_table.py")
    p.add_argument("--objectives", default="accuracy,params", help="accuracy and costs (params, memory, flops)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated (default {','.join(METHODS)})")
    p.add_argument("--replays", type=int, default=REPLAYS, help=f"studies per method ({REPLAYS})")
    p.add_argument("--dominators", default="1,2,3", help="the dominance pruner's K values to replay (default 1,2,3)")
    p.add_argument(
        "--trials", type=int, default=None, help="trial cap (default: every list twice, the most a study does)"
    )
    p.add_argument("--caps", default="", help="trial caps for the confirmation grid, e.g. 15,25 (default: none)")
    p.add_argument("--confirm-plans", default="0x0,4x2,8x2", help="KxS plans for the grid (default 0x0,4x2,8x2)")
    p.add_argument("--json", type=Path, default=None, help="also write every figure as one JSON object here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    objectives = parse_objectives(args.objectives)
    if "time" in objectives or len(objectives) < 2:
        raise SystemExit("pareto_replay.py: give accuracy and known costs (params, memory, flops): time is measured")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    start = time.perf_counter()
    result = run(
        load_table(args.table),
        objectives,
        args.methods.split(","),
        args.replays,
        [int(k) for k in args.dominators.split(",") if k],
        args.trials,
        [int(c) for c in args.caps.split(",") if c],
        [(int(k), int(n)) for k, n in (p.split("x") for p in args.confirm_plans.split(",") if p)],
    )
    result["command"] = shlex.join(
        ["python3", "benchmarks/pareto_replay.py", *(sys.argv[1:] if argv is None else argv)]
    )
    result["table"] = str(args.table)
    result["optuna"] = optuna.__version__
    print(render(result))
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(finite_or_none(result), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
