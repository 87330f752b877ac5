"""The search's answer, scored against seeds it never read: regret, P(best), P(top-3) and the coverage of its set.

Every replay splits the table's seeds at random: half define the truth (each list's mean over them, in correct
validation images, so that lists with equal counts tie), the other half is all the search and its confirmation
may read (the search trains every list with the first of them, confirmation takes the next ones in order). The
search is an in-memory Optuna study with lwl-search's own sampler, pruner and paper baselines enqueued
(`tabular_replay.replay_study`); a study capped at N trials is the first N trials of the longest one (the sampler
and the pruner only see the past). Its answer is computed by `lwl.search.answer` and its confirmation seeds are
spent by `lwl.search.race_round`, exactly as lwl-search does. Beside it, at the unit-epochs it spent:

- `old`: the answer before racing: the top K lists by their raw search value, S more seeds each, the best mean;
- `sweep`: every list trained once (seed of the search), the best raw value (a full single-seed sweep);
- `random`: lists in random order, unpruned, until the unit-epochs the answer spent, the best raw value;
- `largest`: the list with the most parameters (then FLOPs), at no cost;
- `topk@1`, `topk@lr`: every list trained 1 epoch (or to the first learning-rate drop), the best K of them by that
  value trained in full, K as large as the answer's unit-epochs allow (Egele et al. 2023's baseline).

And at their own cost: every list trained once and then judged by the answer's model (`sweep, then the answer's
model`), and every list trained on every seed the search may read (as many sweeps), by its best mean and by the
answer's model: what all the data outside the truth can tell.

Each configuration (pruner, trial cap, racing plan) is scored on every replay; the default and the frontier are
chosen on the even replays (lowest mean regret within a cost) and reported on the odd ones, with 95 % intervals
(Wilson for shares, t for means).

`stated` is the mean of the expected regret the answer states (`Answer.expected_regret`, against the true best),
beside the regret measured against the truth's best (a mean over held-out seeds, so its own noise adds to it).

Two coverages: the *printed set* (the model's `SET_LEVEL` set and the list it names: what lwl-search prints)
holding a list tied for the truth's best; and the *model check*: the model's 95 % set for the list whose mean
over as many held-out runs as the truth has comes out first (`Answer.p_best_measured`, with the model's own seed
sd). The truth's best is such a measured best, blurred by the truth seeds' own noise, so the check is what a
calibrated model must pass at 95 %; the printed set speaks of the true best, which a finite truth cannot show.

    python3 benchmarks/answer_replay.py benchmarks/results/tabular_digits_b8_s4_none_w4-32_val0.2.json \
        --replays 200 --json benchmarks/results/answer_replay_b8_w4-32.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from tabular_replay import replay_study
from tabular_table import by_list, load_table

from lwl.search import SET_LEVEL, Evidence, StudySettings, answer, extrapolate, race_round

# The benchmark's hyper-parameters, in one place.
SAMPLER = "tpe"  # lwl-search's default sampler
PRUNERS = ("median", "sha", "hyperband", "wilcoxon", "none")
CAPS = (1 / 4, 1 / 2)  # trial caps, as shares of the space's lists, beside lwl-search's default --trials
DEFAULT_TRIALS = 20
PLANS = ((3, 2), (5, 2))  # racing: K lists in the first round, K x S runs in all (--confirm auto's S)
BUDGETS = (1 / 3, 1 / 2, 1.0)  # frontier: the best configuration within each share of a single-seed sweep
REPLAYS = 200
TOP = 3
LEVELS = (0.95, 0.99, 0.999)  # model levels whose sets' coverage is measured (without the named list)
CHECK_LEVEL = 0.95  # the model check: how often its 95 % set for the *measured* best holds the truth's best
Z = 1.959963984540054  # the normal 97.5 % quantile


@dataclass(frozen=True)
class Split:
    """One replay's seeds: the truth's, the search's, and confirmation's in the order it takes them."""

    truth: tuple[int, ...]
    search: int
    confirm: tuple[int, ...]


def split_seeds(seeds: Sequence[int], replay: int) -> Split:
    order = [int(s) for s in np.random.default_rng(replay).permutation(list(seeds))]
    half = len(order) // 2
    return Split(tuple(order[:half]), order[half], tuple(order[half + 1 :]))


class Table:
    """The table's runs, with the truth of a split counted in correct validation images."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.header = table["header"]
        self.runs = by_list(table)
        self.lists = list(self.runs)
        complete = [set(per_seed) for per_seed in self.runs.values()]
        self.seeds = sorted(set.intersection(*complete)) if complete else []
        self.val = int(self.header["val_images"])
        first = {h: per_seed[self.seeds[0]] for h, per_seed in self.runs.items()}
        self.params = {h: r["params"] for h, r in first.items()}
        self.flops = {h: r["flops"] for h, r in first.items()}
        self.full = {h: r["history"][-1]["unit_epochs"] for h, r in first.items()}
        self.units = {h: r["units"] for h, r in first.items()}
        self.epochs = len(first[self.lists[0]]["history"])
        self.sweep = float(sum(self.full.values()))
        self.settings = StudySettings.from_dict(
            {**self.header["settings"], "recipe": {**self.header["settings"]["recipe"], "seed": 0}}
        )

    def acc(self, h: tuple[int, ...], seed: int) -> float:
        return float(self.runs[h][seed]["output_acc"])

    def count(self, h: tuple[int, ...], seed: int) -> int:
        return round(self.acc(h, seed) * self.val)

    def truth(self, seeds: Sequence[int]) -> dict[tuple[int, ...], float]:
        """Each list's mean accuracy over `seeds`, computed from whole image counts (ties stay ties)."""
        return {h: sum(self.count(h, s) for s in seeds) / (self.val * len(seeds)) for h in self.lists}

    def seed_sd(self) -> float:
        """The per-run seed sd: the pooled within-list sd over every seed of the table."""
        sq, df = 0.0, 0
        for h in self.lists:
            v = np.array([self.acc(h, s) for s in self.seeds])
            sq += float(((v - v.mean()) ** 2).sum())
            df += len(v) - 1
        return math.sqrt(sq / df)


def score(named: tuple[int, ...] | None, truth: dict[tuple[int, ...], float]) -> dict[str, float]:
    """Regret, P(best) and P(top-3) of one named list against one truth (ties: equal image counts)."""
    ranked = sorted(set(truth.values()), reverse=True)
    best = ranked[0]
    third = sorted(truth.values(), reverse=True)[min(TOP, len(truth)) - 1]
    got = truth[named] if named is not None else min(truth.values())
    return {"regret": best - got, "best": float(got >= best - 1e-12), "top": float(got >= third - 1e-12)}


def set_size(judged: Any, level: float) -> int:
    """How many lists the set at `level` would hold."""
    mass, n = 0.0, 0
    for b in sorted(judged.beliefs, key=lambda b: (-b.p_best, -b.mean, b.hierarchy)):
        if mass >= level - 1e-12:
            break
        mass += b.p_best
        n += 1
    return n


def covered(best_set: Sequence[tuple[int, ...]], truth: dict[tuple[int, ...], float]) -> float:
    best = max(truth.values())
    return float(any(truth[h] >= best - 1e-12 for h in best_set))


def _mass_until_best(ranked: Sequence[tuple[tuple[int, ...], float]], truth: dict[tuple[int, ...], float]) -> float:
    """The chance summed over `ranked` (list, chance; most probable first) up to the first list tied for the truth's
    best; 1.0 when none is there or its chance is 0."""
    best = max(truth.values())
    mass = 0.0
    for h, chance in ranked:
        mass += chance
        if truth[h] >= best - 1e-12:
            return min(mass, 1.0) if chance > 0 else 1.0
    return 1.0


def mass_to_cover(judged: Any, truth: dict[tuple[int, ...], float]) -> float:
    """The smallest level at which the answer's set (lists by their chance of being the best, most probable first)
    holds a list tied for the truth's best: the set printed at level L covers the truth exactly when this is <= L.
    1.0 (never covered at any level below 1) when no such list is among the lists the model weighs."""
    ranked = sorted(judged.beliefs, key=lambda b: (-b.p_best, -b.mean, b.hierarchy))
    return _mass_until_best([(b.hierarchy, b.p_best) for b in ranked], truth)


def mass_to_cover_measured(judged: Any, truth: dict[tuple[int, ...], float], runs: int) -> float:
    """As `mass_to_cover`, for the model's prediction of the *measured* best: each list's chance of the highest
    mean over `runs` held-out runs (`Answer.p_best_measured`, with the model's own seed sd, never the truth's). The
    truth's best is such a measured best, so this checks the model itself; the printed set speaks of the true best,
    which no finite truth shows."""
    chances = judged.p_best_measured(judged.seed_sd**2 / runs)
    return _mass_until_best([(h, chances[h]) for h in sorted(chances, key=lambda h: (-chances[h], h))], truth)


def raw_best(values: dict[tuple[int, ...], float], table: Table) -> tuple[int, ...] | None:
    """The list with the best raw value (ties: fewer parameters, then the earlier list)."""
    if not values:
        return None
    return min(values, key=lambda h: (-values[h], table.params[h], table.lists.index(h)))


def evidence_of(log: Sequence[dict[str, Any]], table: Table, seed: int) -> dict[tuple[int, ...], Evidence]:
    """What a study's trials tell `lwl.search.answer`: complete lists with their run, lists only stopped early
    with their extrapolated final value (as lwl-search reads its trials)."""
    complete = {e["hierarchy"] for e in log if e["value"] is not None}
    curves = [{p["step"]: p["output_acc"] for p in table.runs[h][seed]["history"]} for h in sorted(complete, key=str)]
    stopped = {
        e["hierarchy"]: (e["epochs"], table.runs[e["hierarchy"]][seed]["history"][e["epochs"] - 1]["output_acc"])
        for e in log
        if e["pruned"] and e["hierarchy"] not in complete
    }
    out = {h: Evidence(h, {seed: table.acc(h, seed)}) for h in complete}
    for h, guess in extrapolate(stopped, curves).items():
        out[h] = Evidence(h, partial=guess)
    return out


def run_answer(
    log: Sequence[dict[str, Any]], table: Table, split: Split, first: int, seeds: int
) -> tuple[Any, float, list[int]]:
    """lwl-search's answer on a study's trials, its confirmation runs raced over the split's confirmation seeds.
    Returns the final answer, the unit-epochs spent (search and confirmation) and the lists per round."""
    evidence = evidence_of(log, table, split.search)
    untried = [h for h in table.lists if h not in evidence]
    spent = float(sum(e["unit_epochs"] for e in log))
    rounds: list[int] = []
    current = _answer(evidence, untried, table)
    for index, seed in enumerate(split.confirm):
        step = race_round(current, index, first, first * seeds)
        if not step.lists:
            break
        for h in step.lists:
            e = evidence[h]
            evidence[h] = Evidence(h, {**e.runs, seed: table.acc(h, seed)})
            spent += table.full[h]
        rounds.append(len(step.lists))
        current = _answer(evidence, untried, table)
    return current, spent, rounds


def _answer(evidence: dict[tuple[int, ...], Evidence], untried: Sequence[tuple[int, ...]], table: Table) -> Any:
    """`lwl.search.answer` as lwl-search calls it: the validation set's size, the lists' parameter counts."""
    return answer(list(evidence.values()), untried, validation_images=table.val, capacity=table.params.__getitem__)


def run_old(log: Sequence[dict[str, Any]], table: Table, split: Split, k: int, s: int) -> tuple[Any, float]:
    """The fixed plan before racing: the top K by raw value, S more seeds each, the best mean over seeds."""
    done = {e["hierarchy"]: e["value"] for e in log if e["value"] is not None}
    top = sorted(done, key=lambda h: (-done[h], table.params[h], table.lists.index(h)))[:k]
    extra = split.confirm[:s]
    means = {h: float(np.mean([table.acc(h, split.search), *(table.acc(h, x) for x in extra)])) for h in top}
    spent = float(sum(e["unit_epochs"] for e in log)) + sum(table.full[h] for h in top) * len(extra)
    return raw_best(means, table), spent


def baselines(table: Table, split: Split, budget: float, replay: int) -> dict[str, tuple[Any, float]]:
    """The zero-cost and equal-cost baselines of one replay: {name: (named list, unit-epochs)}."""
    s0 = split.search
    out: dict[str, tuple[Any, float]] = {}
    out["sweep"] = (raw_best({h: table.acc(h, s0) for h in table.lists}, table), table.sweep)
    out["largest"] = (max(table.lists, key=lambda h: (table.params[h], table.flops[h], -table.lists.index(h))), 0.0)
    order = [table.lists[i] for i in np.random.default_rng(10_000 + replay).permutation(len(table.lists))]
    taken, spent = [], 0.0
    for h in order:
        if taken and spent + table.full[h] > budget:
            break
        taken.append(h)
        spent += table.full[h]
    out["random"] = (raw_best({h: table.acc(h, s0) for h in taken}, table), spent)
    milestone = table.settings.recipe.lr_milestones[0] if table.settings.recipe.lr_milestones else 0.5
    for name, epoch in (("topk@1", 1), ("topk@lr", max(1, round(milestone * table.epochs)))):
        early = {h: table.runs[h][s0]["history"][epoch - 1]["output_acc"] for h in table.lists}
        ranked = sorted(table.lists, key=lambda h: (-early[h], table.params[h]))
        base = float(sum(table.units[h] * epoch for h in table.lists))
        k, cost = 0, base
        for h in ranked:
            more = table.units[h] * (table.epochs - epoch)
            if k and cost + more > budget:
                break
            k, cost = k + 1, cost + more
        out[name] = (raw_best({h: table.acc(h, s0) for h in ranked[:k]}, table), cost)
    return out


def replay(table: Table, index: int, caps: Sequence[int]) -> dict[str, Any]:
    """Every configuration and baseline on replay `index`: the scores of each, and its cost."""
    split = split_seeds(table.seeds, index)
    truth = table.truth(split.truth)
    rows: dict[str, dict[str, float]] = {}
    # one table seed in the study: the runs of the search's seed
    runs = {h: {split.search: table.runs[h][split.search]} for h in table.lists}
    for pruner in PRUNERS:
        log = replay_study(runs, table.settings, SAMPLER, pruner, index, split.search, max(caps), True)
        for cap in caps:
            taken = log[:cap]
            for first, seeds in PLANS:
                final, spent, rounds = run_answer(taken, table, split, first, seeds)
                raw = raw_best(
                    {b.hierarchy: b.raw for b in final.beliefs if b.raw is not None and b.status == "complete"}, table
                )
                key = f"answer {pruner} {cap} {first}x{seeds}"
                rows[key] = {
                    **score(final.named, truth),
                    "coverage": covered(final.best_set, truth),
                    "set_size": float(len(final.best_set)),
                    "mass_to_cover": mass_to_cover(final, truth),
                    "mass_to_cover_measured": mass_to_cover_measured(final, truth, len(split.truth)),
                    **{f"set_size_{lv}": float(set_size(final, lv)) for lv in LEVELS},
                    "expected_regret": final.expected_regret,
                    "seed_sd": final.seed_sd,
                    "rounds": float(len(rounds)),
                    "cost": spent / table.sweep,
                    **{f"raw_{k}": v for k, v in score(raw, truth).items()},
                }
                old, old_spent = run_old(taken, table, split, first, seeds)
                rows[f"old {pruner} {cap} {first}x{seeds}"] = {**score(old, truth), "cost": old_spent / table.sweep}
    # every list on the search's seed only, then on every seed the search may read (as many sweeps): the raw best
    # and the answer's model on all of it (what the data outside the truth can tell at most)
    for key, seeds in (("sweep", (split.search,)), ("every seed", (split.search, *split.confirm))):
        every = {h: Evidence(h, {s: table.acc(h, s) for s in seeds}) for h in table.lists}
        if key != "sweep":
            rows[key] = {
                **score(raw_best({h: float(np.mean(list(e.runs.values()))) for h, e in every.items()}, table), truth),
                "cost": float(len(seeds)),
            }
        judged = _answer(every, [], table)
        rows[f"{key}+answer"] = {
            **score(judged.named, truth),
            "coverage": covered(judged.best_set, truth),
            "set_size": float(len(judged.best_set)),
            "mass_to_cover_measured": mass_to_cover_measured(judged, truth, len(split.truth)),
            "cost": float(len(seeds)),
        }
    return {"split": split.__dict__, "rows": rows}


def interval_share(values: Sequence[float]) -> tuple[float, float, float]:
    """The share with its Wilson 95 % interval."""
    n, p = len(values), float(np.mean(values))
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def interval_mean(values: Sequence[float]) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=float)
    half = Z * float(v.std(ddof=1)) / math.sqrt(len(v)) if len(v) > 1 else math.nan
    return float(v.mean()), float(v.mean()) - half, float(v.mean()) + half


def summarise(reps: Sequence[dict[str, Any]], key: str, sd: float) -> dict[str, Any]:
    rows = [r["rows"][key] for r in reps]
    out: dict[str, Any] = {"key": key, "replays": len(rows)}
    regret = [r["regret"] for r in rows]
    out["regret"] = interval_mean(regret)
    out["regret_sd_units"] = tuple(v / sd if sd > 0 else math.nan for v in out["regret"])
    out["best"] = interval_share([r["best"] for r in rows])
    out["top"] = interval_share([r["top"] for r in rows])
    out["cost"] = float(np.mean([r["cost"] for r in rows]))
    if "coverage" in rows[0]:
        out["coverage"] = interval_share([r["coverage"] for r in rows])
        out["set_size"] = float(np.mean([r["set_size"] for r in rows]))
    if "mass_to_cover" in rows[0]:
        out["coverage_at"] = {
            str(lv): interval_share([float(r["mass_to_cover"] <= lv + 1e-12) for r in rows]) for lv in LEVELS
        }
        out["set_size_at"] = {str(lv): float(np.mean([r[f"set_size_{lv}"] for r in rows])) for lv in LEVELS}
    if "mass_to_cover_measured" in rows[0]:
        out["coverage_measured_at"] = {
            str(lv): interval_share([float(r["mass_to_cover_measured"] <= lv + 1e-12) for r in rows]) for lv in LEVELS
        }
    if "expected_regret" in rows[0]:
        out["expected_regret"] = float(np.mean([r["expected_regret"] for r in rows]))
        out["rounds"] = float(np.mean([r["rounds"] for r in rows]))
        out["raw_regret"] = interval_mean([r["raw_regret"] for r in rows])
        out["raw_top"] = interval_share([r["raw_top"] for r in rows])
    return out


def choose(reps: Sequence[dict[str, Any]], prefix: str, budget: float) -> str | None:
    """The configuration of lowest mean regret on `reps` whose mean cost is within `budget` (ties: cheaper)."""
    keys = [k for k in reps[0]["rows"] if k.startswith(prefix)]
    within = [k for k in keys if np.mean([r["rows"][k]["cost"] for r in reps]) <= budget + 1e-9]
    if not within:
        return None
    return min(
        within,
        key=lambda k: (
            np.mean([r["rows"][k]["regret"] for r in reps]),
            np.mean([r["rows"][k]["cost"] for r in reps]),
        ),
    )


def add_baselines(table: Table, reps: list[dict[str, Any]], key: str, indices: Sequence[int]) -> None:
    """Each replay's baselines at the unit-epochs the configuration `key` spent on it."""
    for rep, index in zip(reps, indices):
        split = Split(tuple(rep["split"]["truth"]), rep["split"]["search"], tuple(rep["split"]["confirm"]))
        truth = table.truth(split.truth)
        budget = rep["rows"][key]["cost"] * table.sweep
        for name, (named, spent) in baselines(table, split, budget, index).items():
            rep["rows"][f"{name} @ {key}"] = {**score(named, truth), "cost": spent / table.sweep}


def fmt(t: Sequence[float], scale: float = 100.0, digits: int = 0) -> str:
    return f"{scale * t[0]:.{digits}f} ({scale * t[1]:.{digits}f}-{scale * t[2]:.{digits}f})"


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{result['table']}: {result['lists']} lists, {len(result['seeds'])} seeds ({result['truth_seeds']} define "
        f"each replay's truth), seed sd {100 * result['seed_sd']:.2f} points; chosen on {result['chosen_on']} "
        f"replays, reported on {result['reported_on']} (95 % intervals)",
        f"{'procedure':<44} {'cost':>5} {'regret, points':>18} {'/ sd':>5} {'stated':>6} {'P(best) %':>13} "
        f"{'P(top-3) %':>13} "
        f"{'printed set %':>14} {'set':>4} {'model check %':>14}",
    ]
    for row in result["table_rows"]:
        cov = fmt(row["coverage"]) if "coverage" in row else ""
        size = f"{row['set_size']:.1f}" if "set_size" in row else ""
        check = fmt(row["check"]) if "check" in row else ""
        stated = f"{100 * row['expected_regret']:.2f}" if "expected_regret" in row else ""
        lines.append(
            f"{row['label']:<44} {row['cost']:>5.2f} {fmt(row['regret'], 100, 2):>18} "
            f"{row['regret_sd_units'][0]:>5.2f} {stated:>6} {fmt(row['best']):>13} {fmt(row['top']):>13} {cov:>14} "
            f"{size:>4} "
            f"{check:>14}"
        )
    return "\n".join(lines)


def _replay_job(job: tuple[Path, int, list[int]]) -> dict[str, Any]:
    """One replay in a worker process (the table is read once per worker)."""
    path, index, caps = job
    global _TABLE
    if _TABLE is None or _TABLE[0] != path:
        _TABLE = (path, Table(load_table(path)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return replay(_TABLE[1], index, caps)


_TABLE: tuple[Path, Table] | None = None


def run(path: Path, replays: int, jobs: int = 1) -> dict[str, Any]:
    table = Table(load_table(path))
    if len(table.seeds) < 4:
        raise SystemExit(f"answer_replay: {path} has {len(table.seeds)} complete seeds; at least 4 are needed")
    n = len(table.lists)
    caps = sorted({max(2, round(c * n)) for c in CAPS} | {min(DEFAULT_TRIALS, 2 * n)})
    start = time.perf_counter()
    work = [(path, i, caps) for i in range(replays)]
    if jobs > 1:
        with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
            reps = list(pool.map(_replay_job, work, chunksize=4))
    else:
        reps = [_replay_job(w) for w in work]
    chooser = [reps[i] for i in range(0, replays, 2)]
    report = [reps[i] for i in range(1, replays, 2)]
    sd = table.seed_sd()
    table_rows = []
    chosen: dict[str, str | None] = {}
    costs = [float(np.mean([r["rows"][k]["cost"] for r in chooser])) for k in chooser[0]["rows"] if k[:7] == "answer "]
    # a tiny space where no configuration fits within a sweep: the frontier is the best one at any cost
    for budget in BUDGETS if min(costs) <= BUDGETS[-1] else (max(costs),):
        key = choose(chooser, "answer ", budget)
        chosen[f"{budget:.2f}"] = key
        if key is None:
            continue
        add_baselines(table, reps, key, range(replays))
        old = choose(chooser, "old ", budget)
        label = f"≤ {budget:.2f} sweep"
        row = summarise(report, key, sd)
        # coverage and set_size: the set lwl-search prints (the model's SET_LEVEL set and the named list)
        row.update(level=SET_LEVEL, check=row["coverage_measured_at"][str(CHECK_LEVEL)])
        table_rows.append({**row, "label": f"answer ({key[7:]}), {label}"})
        if old is not None:
            table_rows.append({**summarise(report, old, sd), "label": f"old top-K ({old[4:]}), {label}"})
        for name in ("random", "topk@1", "topk@lr"):
            table_rows.append({**summarise(report, f"{name} @ {key}", sd), "label": f"{name} at equal cost"})
    some = next(k for k in chosen.values() if k is not None)
    for name in ("largest", "sweep"):
        table_rows.append({**summarise(report, f"{name} @ {some}", sd), "label": name})
    all_runs = f"every list x {len(table.seeds) - len(table.seeds) // 2} seeds"  # all the search may read
    for key, label in (
        ("sweep+answer", "sweep, then the answer's model"),
        ("every seed", f"{all_runs}, the best mean"),
        ("every seed+answer", f"{all_runs}, then the answer's model"),
    ):
        row = summarise(report, key, sd)
        if "mass_to_cover_measured" in report[0]["rows"][key]:
            row.update(check=row["coverage_measured_at"][str(CHECK_LEVEL)])
        table_rows.append({**row, "label": label})
    every = {k: summarise(report, k, sd) for k in report[0]["rows"] if k.startswith("answer ")}
    chooser_every = {k: summarise(chooser, k, sd) for k in every}  # what a default is chosen on
    return {
        "table": path.name,
        "lists": n,
        "seeds": table.seeds,
        "truth_seeds": len(table.seeds) // 2,
        "seed_sd": sd,
        "replays": replays,
        "chosen_on": len(chooser),
        "reported_on": len(report),
        "caps": caps,
        "plans": PLANS,
        "pruners": PRUNERS,
        "chosen": chosen,
        "table_rows": table_rows,
        "every_answer_configuration": every,
        "every_answer_configuration_chooser": chooser_every,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("table", type=Path, help="a table written by tabular_table.py (>= 4 complete seeds)")
    p.add_argument(
        "--replays", type=int, default=REPLAYS, help=f"replays (default {REPLAYS}; half choose, half report)"
    )
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    p.add_argument("--jobs", type=int, default=1, help="replays run in this many processes (default 1)")
    args = p.parse_args(argv)
    if args.replays < 4:
        print("answer_replay: --replays must be at least 4 (half choose, half report)", file=sys.stderr)
        return 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = run(args.table, args.replays, max(1, args.jobs))
    result["command"] = shlex.join(
        ["python3", "benchmarks/answer_replay.py", *(sys.argv[1:] if argv is None else argv)]
    )
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=list) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
