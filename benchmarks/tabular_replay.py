"""Replays lwl-search studies against the tabular ground truth: how fast do sampler and pruner find the best list?

Issue #6, item 2. Every study is an in-memory Optuna study with the project's own sampler (`make_sampler`: the
feasible-set `tpe`, `random`, `grid`) and pruner (`make_pruner` with the table's `StudySettings`, so warm-up and
resources are the real ones for the recipe's epochs, and lwl-search's default `--pruner-startup` 5). Its
objective does what `lwl.search.Objective` does, with the table in place of training: it takes the list the
sampler proposed, reports the stored output accuracy of every epoch with `trial.report(value, step)`, asks
`trial.should_prune()` after each, and returns the final accuracy; a pruned trial has consumed (epochs run) x
(units) unit-epochs, a complete one (epochs) x (units). As in lwl-search, once every list has been proposed the
sampler revisits each pruned list once, trained to the end and never pruned; as lwl-search's paused store does, the
revisit continues where the pruned visit stopped and costs only the epochs it trains then (`--no-continue`: at full
cost, as before pruned candidates were paused); `--no-revisit` replays one pass.

Replay r (0-based) seeds the sampler with r and reads the table's runs of seed `seeds[r % len(seeds)]` for every
list, as `lwl-search --seed S` trains every list with one seed. "The best list" and "a top-3 list" are by the
table's mean over seeds (ties included: every list tied with the best, every list at or above the third-best
mean). See benchmarks/README.md for the definition of the compute saving.

    python3 benchmarks/tabular_replay.py benchmarks/results/tabular_digits_b8_s4_none_w4-32.json --replays 20
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from tabular_table import by_list, check_complete, finite_or_none, ground_truth, load_table

from lwl.search import (
    DOMINATORS,
    CostModel,
    StudySettings,
    enqueue_lists,
    make_pruner,
    make_sampler,
    revisit_of,
    stop_when_exhausted,
)

# The replay's hyper-parameters, in one place.
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
REPLAYS = 20  # studies per (sampler, pruner): the 20 seeds
PRUNER_STARTUP = 5  # lwl-search's --pruner-startup default (finished trials before the median pruner judges)
TOP = 3  # "a top-3 list"
TIE = 1e-9  # accuracies closer than this are equal (they are multiples of 1/145 averaged over seeds)


def quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """25/50/75 % by linear interpolation; misses are infinite, and a quantile that touches one is a miss."""
    v = sorted(values)
    out = []
    for f in (0.25, 0.5, 0.75):
        pos = (len(v) - 1) * f
        lo, t = int(pos), pos - int(pos)
        near = [v[lo]] if t == 0 else [v[lo], v[lo + 1]]
        miss = [x for x in near if not np.isfinite(x)]
        out.append(miss[0] if miss else v[lo] + t * (v[lo + 1] - v[lo]) if t else v[lo])
    return out[0], out[1], out[2]


def replay_study(
    runs: dict[tuple[int, ...], dict[int, dict[str, Any]]],
    settings: StudySettings,
    sampler: str,
    pruner: str,
    replay: int,
    table_seed: int,
    trials: int,
    paper: bool,
    revisit: bool = True,
    resume: bool = True,
    min_dominators: int = DOMINATORS,
) -> list[dict[str, Any]]:
    """One study against the table; returns each trial's list, state, epochs run, unit-epochs and final value.
    With `resume`, a revisit pays only for the epochs after those its pruned visit trained. With `settings.costs`
    (--objectives), every trial records its costs as lwl-search does, before its first report, and the sampler
    and the dominance pruner read them."""
    space = settings.space
    costs = CostModel.of(settings) if settings.costs else None
    # Hyperband assigns a trial's bracket from a hash of the study name and trial number: a fixed name per replay
    # keeps replays reproducible and the pruned and unpruned studies of one replay comparable.
    study = optuna.create_study(
        study_name=f"tabular-replay-{replay}",
        direction="maximize",
        sampler=make_sampler(sampler, space, replay, revisit=revisit, costs=costs),
        pruner=make_pruner(pruner, settings, PRUNER_STARTUP, min_dominators),
    )
    if paper:
        enqueue_lists(study, settings)
    low, high = space.param_range()
    log: list[dict[str, Any]] = []
    paused: dict[tuple[int, ...], int] = {}  # list -> unit-epochs its pruned visit trained

    def objective(trial: optuna.Trial) -> float:
        hierarchy = tuple(trial.suggest_int(name, low, high) for name in space.param_names())
        run = runs[hierarchy][table_seed]
        again = revisit_of(trial.study, trial)
        entry = {
            "hierarchy": hierarchy,
            "params": run["params"],
            "full_unit_epochs": run["history"][-1]["unit_epochs"],
            "pruned": False,
            "epochs": 0,
            "unit_epochs": 0,
            "value": None,
            "revisit": again is not None,
        }
        log.append(entry)
        if costs is not None:
            for name, value in zip(costs.costs, costs.of_list(hierarchy)):
                trial.set_user_attr(name, int(value))
        done = paused.pop(hierarchy, 0) if again is not None and resume else 0
        for record in run["history"]:
            entry["epochs"], entry["unit_epochs"] = record["step"], record["unit_epochs"] - done
            trial.report(record["output_acc"], record["step"])
            # lwl-search asks after every record but the last (a fully trained candidate is never discarded), and
            # never for a revisit
            if again is None and record is not run["history"][-1] and trial.should_prune():
                entry["pruned"] = True
                paused[hierarchy] = record["unit_epochs"]
                raise optuna.TrialPruned()
        entry["value"] = run["output_acc"]
        return run["output_acc"]

    study.optimize(objective, n_trials=trials, callbacks=[stop_when_exhausted(space)])
    return log


def trace(log: list[dict[str, Any]], truth: dict[tuple[int, ...], float]) -> dict[str, list[float]]:
    """Per trial: unit-epochs consumed so far, and the true (mean-over-seeds) accuracy of the list the study
    would return then (its best complete trial by the values it observed; the earliest among equals)."""
    spent, found, total, best = [], [], 0, (-1.0, None)
    for entry in log:
        total += entry["unit_epochs"]
        if entry["value"] is not None and entry["value"] > best[0] + TIE:
            best = (entry["value"], entry["hierarchy"])
        spent.append(total)
        found.append(truth[best[1]] if best[1] is not None else -1.0)
    return {"unit_epochs": spent, "found": found}


def first_complete(log: list[dict[str, Any]], targets: set[tuple[int, ...]], spent: list[float]) -> tuple[float, float]:
    """(trials, unit-epochs) until a target list was first completed; (inf, inf) if never."""
    for i, entry in enumerate(log):
        if entry["value"] is not None and entry["hierarchy"] in targets:
            return float(i + 1), float(spent[i])
    return float("inf"), float("inf")


def mean_curve(reps: list[dict[str, Any]], horizon: int) -> np.ndarray:
    """Mean over replays of the true accuracy of the returned list after u unit-epochs, u = 0..horizon (nan
    until every replay has completed a trial; after a study ended, its last value holds)."""
    curves = []
    for rep in reps:
        spent, found = np.asarray(rep["trace"]["unit_epochs"]), np.asarray(rep["trace"]["found"], dtype=float)
        idx = np.searchsorted(spent, np.arange(horizon + 1), side="right") - 1
        value = np.where(idx >= 0, found[np.maximum(idx, 0)], np.nan)
        curves.append(np.where(value < 0, np.nan, value))  # -1: nothing completed yet
    return np.mean(curves, axis=0)


def saved_at_equal_accuracy(pruned: list[dict[str, Any]], unpruned: list[dict[str, Any]]) -> dict[str, float]:
    """1 - (unit-epochs the pruned studies need until their mean returned accuracy reaches the target) /
    (the same for pruner none), target = the lower of the two final means: the accuracy both reach."""
    horizon = int(max(r["unit_epochs"] for r in pruned + unpruned))
    curve_p, curve_n = mean_curve(pruned, horizon), mean_curve(unpruned, horizon)
    target = min(curve_p[-1], curve_n[-1])
    cost_p, cost_n = (int(np.argmax(np.nan_to_num(c, nan=-1.0) >= target - TIE)) for c in (curve_p, curve_n))
    return {
        "target": float(target),
        "unit_epochs": float(cost_p),
        "unit_epochs_none": float(cost_n),
        "saved": 1 - cost_p / cost_n if cost_n else 0.0,
    }


def measure(
    log: list[dict[str, Any]],
    truth: dict[tuple[int, ...], float],
    best: set[tuple[int, ...]],
    top: set[tuple[int, ...]],
) -> dict[str, Any]:
    t = trace(log, truth)
    to_best, ue_best = first_complete(log, best, t["unit_epochs"])
    to_top, ue_top = first_complete(log, top, t["unit_epochs"])
    first_pass = [e for e in log if not e["revisit"]]
    return {
        "log": log,
        "trials": len(log),
        "pruned": sum(e["pruned"] for e in log),
        "revisits": len(log) - len(first_pass),
        "best_in_first_pass": any(e["value"] is not None and e["hierarchy"] in best for e in first_pass),
        "unit_epochs": t["unit_epochs"][-1],
        "found_acc": t["found"][-1],
        "trials_to_best": to_best,
        "unit_epochs_to_best": ue_best,
        "trials_to_top": to_top,
        "unit_epochs_to_top": ue_top,
        "trace": t,
    }


def confirm(
    log: list[dict[str, Any]],
    runs: dict[tuple[int, ...], dict[int, dict[str, Any]]],
    table_seed: int,
    seeds: Sequence[int],
    cap: int,
    lists: int,
    more: int,
) -> dict[str, Any]:
    """What `lwl-search --trials cap --confirm lists --confirm-seeds more` returns from this replay: the first `cap`
    trials (a study capped at `cap` trials makes exactly these: the sampler and pruner only see the past), then its
    top `lists` complete lists by their observed value (ties: fewer parameters, then the earlier trial) trained
    with the next `more` table seeds after the replay's, and the one with the best mean over its seeds returned.
    Costs: the trials' unit-epochs plus a full training per confirmation run."""
    taken = log[:cap]
    done = [(i, e) for i, e in enumerate(taken) if e["value"] is not None]
    ranked = sorted(done, key=lambda ie: (-ie[1]["value"], ie[1]["params"], ie[0]))
    top = [e for _, e in ranked[: lists if more else 0]] if lists else []
    order = list(seeds)
    extra = [order[(order.index(table_seed) + i) % len(order)] for i in range(1, more + 1)] if top else []
    spent = float(sum(e["unit_epochs"] for e in taken))
    if not done:
        return {"hierarchy": None, "unit_epochs": spent}
    if not top:
        return {"hierarchy": ranked[0][1]["hierarchy"], "unit_epochs": spent}

    def mean(e: dict[str, Any]) -> float:
        return float(np.mean([e["value"], *(runs[e["hierarchy"]][s]["output_acc"] for s in extra)]))

    winner = min(top, key=lambda e: (-mean(e), e["params"], top.index(e)))
    return {"hierarchy": winner["hierarchy"], "unit_epochs": spent + sum(e["full_unit_epochs"] for e in top) * more}


def confirm_grid(
    table: dict[str, Any],
    results: dict[str, dict[str, list[dict[str, Any]]]],
    caps: Sequence[int],
    plans: Sequence[tuple[int, int]],
) -> list[dict[str, Any]]:
    """Every (sampler, pruner, trial cap, confirmation plan): the share of replays whose returned list is the best
    or a top-3 list, the unit-epochs spent as a share of a full unpruned sweep, and the returned list's true
    accuracy (means over replays)."""
    seeds = check_complete(table)
    runs = by_list(table)
    truth = ground_truth(table)
    ranked = sorted(truth.values(), reverse=True)
    best = {h for h, a in truth.items() if a >= ranked[0] - TIE}
    top = {h for h, a in truth.items() if a >= ranked[min(TOP, len(ranked)) - 1] - TIE}
    sweep = float(sum(runs[h][seeds[0]]["history"][-1]["unit_epochs"] for h in runs))
    rows = []
    for sampler, per_pruner in results.items():
        for pruner, reps in per_pruner.items():
            for cap in caps:
                for lists, more in plans:
                    got = [
                        confirm(rep["log"], runs, seeds[r % len(seeds)], seeds, cap, lists, more)
                        for r, rep in enumerate(reps)
                    ]
                    rows.append(
                        {
                            "sampler": sampler,
                            "pruner": pruner,
                            "cap": cap,
                            "confirm": lists if more else 0,
                            "confirm_seeds": more if lists else 0,
                            "best": float(np.mean([g["hierarchy"] in best for g in got])),
                            "top": float(np.mean([g["hierarchy"] in top for g in got])),
                            "unit_epochs": float(np.mean([g["unit_epochs"] for g in got])) / sweep,
                            "found_acc": float(
                                np.mean([truth[g["hierarchy"]] if g["hierarchy"] else np.nan for g in got])
                            ),
                        }
                    )
    return rows


def render_grid(rows: list[dict[str, Any]], goal_top: float = 0.95, goal_cost: float = 1 / 3) -> str:
    lines = [
        f"{'sampler':<7} {'pruner':<9} {'trials':>6} {'confirm':>7} {'seeds':>5} {'best':>5} {'top-3':>6} "
        f"{'UE / sweep':>10} {'found acc':>9}  goal",
    ]
    for r in rows:
        ok = r["top"] >= goal_top and r["unit_epochs"] <= goal_cost + 1e-9
        lines.append(
            f"{r['sampler']:<7} {r['pruner']:<9} {r['cap']:>6} {r['confirm']:>7} {r['confirm_seeds']:>5} "
            f"{100 * r['best']:>4.0f}% {100 * r['top']:>5.0f}% {r['unit_epochs']:>10.2f} {r['found_acc']:>9.4f}"
            f"  {'yes' if ok else ''}"
        )
    lines.append(
        f"best / top-3: share of replays whose returned list (after confirmation) is the best / a top-{TOP} list "
        "by the table's mean over seeds; UE / sweep: unit-epochs spent, confirmation included, over a full "
        f"unpruned sweep's; goal: top-3 >= {goal_top:.0%} at UE / sweep <= {goal_cost:.2f}"
    )
    return "\n".join(lines)


def frontier(rows: list[dict[str, Any]], budgets: Sequence[float] = (1 / 3, 1 / 2, 2 / 3, 1.0)) -> list[dict[str, Any]]:
    """For each budget (UE / sweep), the grid row with the highest top-3 share within it (then best share, then
    the cheaper), grid sampler excluded (its order alone decides where it finds the best list)."""
    out = []
    for budget in budgets:
        within = [r for r in rows if r["sampler"] != "grid" and r["unit_epochs"] <= budget + 1e-9]
        if within:
            out.append({"budget": budget, **max(within, key=lambda r: (r["top"], r["best"], -r["unit_epochs"]))})
    return out


def savings(pruned: dict[str, Any], unpruned: dict[str, Any]) -> dict[str, float]:
    """One replay against pruner none with the same sampler, sampler seed and table seed: the share of unit-epochs
    saved after the same number of trials (the first pass: none has no revisits), and the difference of the true
    accuracy of the lists the two studies return at their ends."""
    n = min(len(pruned["trace"]["unit_epochs"]), len(unpruned["trace"]["unit_epochs"]))
    return {
        "same_trials": 1 - pruned["trace"]["unit_epochs"][n - 1] / unpruned["trace"]["unit_epochs"][n - 1],
        "acc_delta": pruned["found_acc"] - unpruned["found_acc"],
    }


def run_benchmark(
    table: dict[str, Any],
    samplers: Sequence[str],
    pruners: Sequence[str],
    replays: int,
    trials: int | None,
    paper: bool,
    revisit: bool = True,
    resume: bool = True,
    caps: Sequence[int] = (),
    plans: Sequence[tuple[int, int]] = (),
) -> dict[str, Any]:
    """Every (sampler, pruner, replay); per-replay figures and their summaries; with `caps` and `plans`, the
    confirmation grid (`confirm_grid`)."""
    seeds = check_complete(table)
    runs = by_list(table)
    truth = ground_truth(table)
    settings = StudySettings.from_dict(
        {**table["header"]["settings"], "recipe": {**table["header"]["settings"]["recipe"], "seed": 0}}
    )
    n_lists = len(settings.space)
    most = 2 * n_lists if revisit else n_lists  # every list once, then each pruned one once more
    trials = most if trials is None else min(trials, most)
    ranked = sorted(truth.values(), reverse=True)
    best = {h for h, a in truth.items() if a >= ranked[0] - TIE}
    top = {h for h, a in truth.items() if a >= ranked[min(TOP, len(ranked)) - 1] - TIE}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    timing: dict[str, float] = {}
    for sampler in samplers:
        for pruner in dict.fromkeys([*pruners, "none"]):  # `none` is always run: savings are measured against it
            start = time.perf_counter()
            results.setdefault(sampler, {})[pruner] = [
                measure(
                    replay_study(
                        runs, settings, sampler, pruner, r, seeds[r % len(seeds)], trials, paper, revisit, resume
                    ),
                    truth,
                    best,
                    top,
                )
                for r in range(replays)
            ]
            timing[f"{sampler}/{pruner}"] = round(time.perf_counter() - start, 2)
    rows = []
    for sampler, per_pruner in results.items():
        for pruner in pruners:
            reps = per_pruner[pruner]
            saved = [savings(p, n) for p, n in zip(reps, per_pruner["none"])] if pruner != "none" else None
            for rep, s in zip(reps, saved or [None] * len(reps)):
                rep["saved"] = s
            rows.append(summarise(sampler, pruner, reps))
            if pruner != "none":
                rows[-1]["equal_acc"] = saved_at_equal_accuracy(reps, per_pruner["none"])
    grid = confirm_grid(table, results, caps, plans) if caps and plans else []
    for per_pruner in results.values():
        for reps in per_pruner.values():
            for rep in reps:
                del rep["trace"], rep["log"]
    return {
        "confirm_grid": grid,
        "lists": n_lists,
        "seeds": seeds,
        "trial_cap": trials,
        "replays": replays,
        "paper_baselines": paper,
        "revisit": revisit,
        "resume": resume,
        "best": sorted(best),
        "top": sorted(top),
        "best_acc": ranked[0],
        "top_acc": ranked[min(TOP, n_lists) - 1],
        "pruner_startup": PRUNER_STARTUP,
        "rows": rows,
        "replay_results": results,
        "seconds": timing,
    }


def summarise(sampler: str, pruner: str, reps: list[dict[str, Any]]) -> dict[str, Any]:
    def q(key: str) -> list[float]:
        return list(quantiles([r[key] for r in reps]))

    row = {
        "sampler": sampler,
        "pruner": pruner,
        "trials_to_best": q("trials_to_best"),
        "unit_epochs_to_best": q("unit_epochs_to_best"),
        "best_reached": sum(bool(np.isfinite(r["trials_to_best"])) for r in reps),
        "best_in_first_pass": sum(r["best_in_first_pass"] for r in reps),
        "revisits": float(np.mean([r["revisits"] for r in reps])),
        "trials_to_top": q("trials_to_top"),
        "unit_epochs_to_top": q("unit_epochs_to_top"),
        "top_reached": sum(bool(np.isfinite(r["trials_to_top"])) for r in reps),
        "pruned_fraction": float(np.mean([r["pruned"] / r["trials"] for r in reps])),
        "unit_epochs": float(np.mean([r["unit_epochs"] for r in reps])),
        "found_acc": float(np.mean([r["found_acc"] for r in reps])),
        "replays": len(reps),
    }
    if reps[0]["saved"] is not None:
        row["saved_same_trials"] = list(quantiles([r["saved"]["same_trials"] for r in reps]))
        row["acc_delta"] = float(np.mean([r["saved"]["acc_delta"] for r in reps]))
    return row


def _fmt(q: Sequence[float], digits: int = 1, pct: bool = False) -> str:
    def one(v: float) -> str:
        if not np.isfinite(v):
            return "miss"
        return f"{100 * v:.0f}%" if pct else f"{v:.{digits}f}"

    return f"{one(q[1])} [{one(q[0])}-{one(q[2])}]"


def render(result: dict[str, Any]) -> str:
    n, reps = result["lists"], result["replays"]
    lines = [
        f"{n} lists, table seeds {result['seeds']}, {reps} replays per row, trial cap {result['trial_cap']}, "
        f"paper baselines enqueued: {'yes' if result['paper_baselines'] else 'no'}, pruned lists revisited: "
        f"{('yes, continued' if result.get('resume', False) else 'yes, from the start') if result['revisit'] else 'no'}"
        "; median [IQR] over replays",
        f"best list(s) {[list(h) for h in result['best']]} (mean acc {result['best_acc']:.4f}); top-{TOP}: "
        f"{[list(h) for h in result['top']]} (>= {result['top_acc']:.4f})",
        f"{'sampler':<7} {'pruner':<9} {'trials to best':>17} {'UE to best':>19} {'hit':>5} {'pass1':>5} "
        f"{'trials to top3':>17} "
        f"{'UE to top3':>19} {'hit':>5} {'pruned':>6} {'UE total':>8} {'found acc':>9} {'UE saved, same trials':>22} "
        f"{'dacc':>7} {'saved at equal acc':>18}",
    ]
    for row in result["rows"]:
        extra = ""
        if "saved_same_trials" in row:
            extra = (
                f" {_fmt(row['saved_same_trials'], pct=True):>22} {row['acc_delta']:>+7.4f} "
                f"{100 * row['equal_acc']['saved']:>11.0f}% of {row['equal_acc']['unit_epochs_none']:>4.0f}"
            )
        lines.append(
            f"{row['sampler']:<7} {row['pruner']:<9} {_fmt(row['trials_to_best']):>17} "
            f"{_fmt(row['unit_epochs_to_best'], 0):>19} {row['best_reached']:>2}/{reps:<2} "
            f"{row['best_in_first_pass']:>2}/{reps:<2} "
            f"{_fmt(row['trials_to_top']):>17} {_fmt(row['unit_epochs_to_top'], 0):>19} "
            f"{row['top_reached']:>2}/{reps:<2} {100 * row['pruned_fraction']:>5.0f}% "
            f"{row['unit_epochs']:>8.0f} "
            f"{row['found_acc']:>9.4f}{extra}"
        )
    lines.append(
        "UE = unit-epochs; hit = replays that got there within the cap (misses count as +inf in the "
        "quantiles); pass1 = replays that completed the best list before any revisit; pruned = share of trials "
        "pruned; found acc = mean-over-seeds accuracy of the list the study returns at the end; "
        "dacc = found acc minus pruner none's, paired by replay; saved at equal acc: of the unit-epochs "
        "pruner none needs until its mean (over replays) found acc reaches the lower of the two final means"
    )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("table", type=Path, help="a table written by tabular_table.py")
    p.add_argument("--replays", type=int, default=REPLAYS, help=f"studies per sampler and pruner ({REPLAYS})")
    p.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated (default tpe,random,grid)")
    p.add_argument("--pruners", default=",".join(PRUNERS), help="comma-separated (default median,hyperband,none)")
    p.add_argument(
        "--trials",
        type=int,
        default=None,
        help="trial cap per study (default: until the sampler has nothing left to propose)",
    )
    p.add_argument("--no-revisit", action="store_true", help="one pass: pruned lists are not proposed again")
    p.add_argument(
        "--no-continue",
        action="store_true",
        help="a revisit trains its list from the start (full cost), as before pruned candidates were paused",
    )
    p.add_argument(
        "--paper-baselines",
        action="store_true",
        help="enqueue the paper's feasible lists and the largest network first, as lwl-search does by default",
    )
    p.add_argument(
        "--caps",
        default="",
        help="trial caps for the confirmation grid, comma-separated, e.g. 12,20,35 (default: no grid). The grid's "
        "confirmation reads the table's other seeds, which also define its truth: an upper bound, not the answer's "
        "quality (answer_replay.py scores that on seeds the search never read)",
    )
    p.add_argument(
        "--confirm-plans",
        default="0x0,1x2,2x1,2x2,3x1,3x2,5x2",
        help="confirmation plans KxS for the grid (K top lists, S more seeds; 0x0: none)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write every figure as one JSON object here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    start = time.perf_counter()
    result = run_benchmark(
        load_table(args.table),
        args.samplers.split(","),
        args.pruners.split(","),
        args.replays,
        args.trials,
        args.paper_baselines,
        not args.no_revisit,
        not args.no_continue,
        [int(c) for c in args.caps.split(",") if c],
        [(int(k), int(n)) for k, n in (p.split("x") for p in args.confirm_plans.split(",") if p)],
    )
    result["command"] = shlex.join(
        ["python3", "benchmarks/tabular_replay.py", *(sys.argv[1:] if argv is None else argv)]
    )
    result["optuna"] = optuna.__version__
    result["table"] = str(args.table)
    print(render(result))
    if result["confirm_grid"]:
        print(render_grid(result["confirm_grid"]))
        result["frontier"] = frontier(result["confirm_grid"])
        print("the most top-3 hits within a budget of unit-epochs (UE / sweep):")
        print(render_grid(result["frontier"]).rsplit("\n", 1)[0])
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(finite_or_none(result), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
