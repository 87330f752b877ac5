"""What the tabular ground truth says: spread against seed noise, early accuracy as a pruning signal, the thesis.

Issue #6, items 2 and 3, from a table written by `tabular_table.py`:

1. Spread: is the gap between the best and the worst list well above seed noise? Per-list mean and standard
   deviation over seeds, the intraclass correlation (share of the variance that is between lists), the rank
   agreement of the seeds, and a permutation test of the best-worst gap (runs shuffled across lists within each
   seed: the gap that noise alone makes).
2. Early accuracy as a pruning signal: Spearman rank correlation, across lists, between the accuracy after each
   epoch (the output classifier's, which the pruners judge, and each unit's) and the same run's final output
   accuracy, averaged over seeds; also against the mean-over-seeds final accuracy, and whether the best list sits
   below the epoch's median (where a median pruner would stop it).
3. The paper's thesis (fewer shallow units rank higher): Spearman between the units in the shallow stages
   (the first k, k = stages // 2 unless the table says otherwise) and the final accuracy, the mean accuracy below
   and above the median shallow count, and the same for each stage and for the parameter count.

Spearman is lwl.search's (scipy.stats ranks, average ranks for ties); p-values are two-sided
permutation tests with a fixed seed.

    python3 benchmarks/tabular_analysis.py benchmarks/results/tabular_digits_b8_s4_none_w4-32.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tabular_table import by_list, check_complete, finite_or_none, load_table

from lwl.search import partial_p, partial_spearman, spearman, spearman_p

PERMUTATIONS = 10_000  # for every p-value (lwl.search's spearman_p default; partial_p: a tenth, its default)
PERM_SEED = 0
SHOW = 5  # best and worst lists printed


def seed_mean(values: Sequence[float]) -> float:
    """Mean over seeds of the finite values (a constant column gives nan); nan when none is finite."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def matrix(table: dict[str, Any]) -> tuple[list[tuple[int, ...]], list[int], dict[str, np.ndarray]]:
    """Arrays indexed [seed, list, ...]: final output acc, output acc per epoch, unit acc per epoch."""
    seeds = check_complete(table)
    runs = by_list(table)
    lists = list(runs)
    final = np.array([[runs[h][s]["output_acc"] for h in lists] for s in seeds])
    out = np.array([[[r["output_acc"] for r in runs[h][s]["history"]] for h in lists] for s in seeds])
    unit = np.array([[[r["unit_acc"] for r in runs[h][s]["history"]] for h in lists] for s in seeds])
    params = np.array([runs[h][seeds[0]]["params"] for h in lists])
    return lists, seeds, {"final": final, "output": out, "unit": unit, "params": params}


def spread(final: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    """Best-worst gap of the list means against seed noise."""
    k, n = final.shape
    means, stds = final.mean(0), final.std(0, ddof=1) if k > 1 else np.zeros(n)
    gap = float(means.max() - means.min())
    result: dict[str, Any] = {
        "seeds": k,
        "lists": n,
        "best_mean": float(means.max()),
        "worst_mean": float(means.min()),
        "gap": gap,
        "between_list_sd": float(means.std(ddof=1)) if n > 1 else 0.0,
    }
    if k < 2:
        return result
    msb = k * means.var(ddof=1)  # one-way ANOVA: lists are the groups, seeds the replicates
    msw = float(np.mean(stds**2))
    # Under "the list makes no difference" a seed's runs are exchangeable across lists: shuffle within each seed.
    null, null_var = [], []
    for _ in range(PERMUTATIONS // 10):
        m = np.array([rng.permutation(row) for row in final]).mean(0)
        null.append(m.max() - m.min())
        null_var.append(m.var())
    null_arr = np.array(null)
    pairs = [spearman(final[a], final[b]) for a, b in itertools.combinations(range(k), 2)]
    result.update(
        {
            "mean_seed_sd": float(stds.mean()),
            "rms_seed_sd": float(np.sqrt(msw)),
            "gap_over_seed_sd": gap / float(stds.mean()) if stds.mean() > 0 else float("inf"),
            "icc": float((msb - msw) / (msb + (k - 1) * msw)) if msb + (k - 1) * msw > 0 else float("nan"),
            "seed_pair_spearman": float(np.mean(pairs)),
            "null_gap_median": float(np.median(null_arr)),
            "null_gap_95": float(np.percentile(null_arr, 95)),
            "gap_p": float((1 + np.sum(null_arr >= gap - 1e-12)) / (1 + len(null_arr))),
            # the between-list variance (the one-way ANOVA's F, given the within-seed shuffle): stronger than the gap
            "between_var_p": float((1 + np.sum(np.array(null_var) >= means.var() - 1e-15)) / (1 + len(null_var))),
        }
    )
    return result


def early_signal(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Rank correlation of every epoch's accuracy with the final one, mean over seeds."""
    final, out, unit = arrays["final"], arrays["output"], arrays["unit"]
    k, n, epochs = out.shape
    truth = final.mean(0)
    best = int(np.argmax(truth))
    same = [seed_mean([spearman(out[s, :, e], final[s]) for s in range(k)]) for e in range(epochs)]
    to_truth = [seed_mean([spearman(out[s, :, e], truth) for s in range(k)]) for e in range(epochs)]
    below = [int(sum(out[s, best, e] < np.median(out[s, :, e]) for s in range(k))) for e in range(epochs)]
    units = [
        [seed_mean([spearman(unit[s, :, e, j], final[s]) for s in range(k)]) for e in range(epochs)]
        for j in range(unit.shape[3])
    ]
    return {
        "epochs": epochs,
        "output_vs_final": same,
        "output_vs_truth": to_truth,
        "best_list_below_median_seeds": below,
        "unit_vs_final": units,
    }


def thesis(
    lists: list[tuple[int, ...]], arrays: dict[str, np.ndarray], k: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Do lists with fewer shallow units rank higher? Shallow = the first k stages."""
    truth = arrays["final"].mean(0)
    shallow = np.array([sum(h[:k]) for h in lists])
    med = float(np.median(shallow))
    groups = {"below": truth[shallow < med], "at": truth[shallow == med], "above": truth[shallow > med]}
    stages = [
        {
            "stage": i + 1,
            "spearman": spearman([h[i] for h in lists], truth),
            "p": spearman_p([h[i] for h in lists], truth, rng),
        }
        for i in range(len(lists[0]))
    ]
    return {
        "shallow_stages": k,
        "spearman": spearman(shallow, truth),
        "p": spearman_p(shallow, truth, rng),
        "median_shallow": med,
        "groups": {
            g: {"lists": int(len(v)), "mean_acc": float(v.mean()) if len(v) else None} for g, v in groups.items()
        },
        "stages": stages,
        "params_spearman": spearman(arrays["params"], truth),
        "params_p": spearman_p(arrays["params"], truth, rng),
        # fewer shallow units means more deep, wide units, hence more parameters: is it more than parameters?
        "partial_given_params": partial_spearman(shallow, truth, arrays["params"]),
        "partial_given_params_p": partial_p(shallow, truth, arrays["params"], rng),
    }


def analyse(table: dict[str, Any]) -> dict[str, Any]:
    rng = np.random.default_rng(PERM_SEED)
    lists, seeds, arrays = matrix(table)
    truth, sd = arrays["final"].mean(0), arrays["final"].std(0, ddof=1) if len(seeds) > 1 else np.zeros(len(lists))
    order = np.argsort(-truth, kind="mergesort")
    ranking = [
        {
            "hierarchy": list(lists[i]),
            "mean": float(truth[i]),
            "sd": float(sd[i]),
            "per_seed": [float(v) for v in arrays["final"][:, i]],
            "params": int(arrays["params"][i]),
        }
        for i in order
    ]
    k = int(table["header"]["settings"]["shallow_stages"]) or len(lists[0]) // 2
    return {
        "seeds": seeds,
        "val_images": table["header"].get("val_images"),
        "ranking": ranking,
        "spread": spread(arrays["final"], rng),
        "early": early_signal(arrays),
        "thesis": thesis(lists, arrays, k, rng),
    }


def render(a: dict[str, Any]) -> str:
    s, e, t = a["spread"], a["early"], a["thesis"]
    lines = [
        f"{s['lists']} lists x {s['seeds']} seeds; {a['val_images']} validation images per seed "
        f"(one image = {1 / a['val_images']:.4f} accuracy)"
        if a["val_images"]
        else f"{s['lists']} lists x {s['seeds']} seeds",
        "",
        "1. Spread against seed noise",
    ]
    lines.append(
        f"  best list mean {s['best_mean']:.4f}, worst {s['worst_mean']:.4f}: gap {s['gap']:.4f}; "
        f"sd of the list means {s['between_list_sd']:.4f}"
    )
    if "mean_seed_sd" in s:
        lines += [
            f"  mean per-list seed sd {s['mean_seed_sd']:.4f} (rms {s['rms_seed_sd']:.4f}): gap = "
            f"{s['gap_over_seed_sd']:.1f} x seed sd",
            f"  gap that noise alone makes (runs shuffled across lists within each seed): median "
            f"{s['null_gap_median']:.4f}, 95th percentile {s['null_gap_95']:.4f}; p(gap) = {s['gap_p']:.4f}; "
            f"p(between-list variance) = {s['between_var_p']:.4f}",
            f"  intraclass correlation (between-list share of variance) {s['icc']:.2f}; "
            f"Spearman between seeds' rankings (mean over pairs) {s['seed_pair_spearman']:.2f}",
        ]
    lines.append(f"  best {SHOW} and worst {SHOW} lists (mean over seeds, sd, per seed, parameters):")
    shown = a["ranking"][:SHOW] + a["ranking"][-SHOW:] if len(a["ranking"]) > 2 * SHOW else a["ranking"]
    for i, r in enumerate(shown):
        rank = i + 1 if i < SHOW or len(a["ranking"]) <= 2 * SHOW else len(a["ranking"]) - len(shown) + i + 1
        lines.append(
            f"  {rank:>4}. {str(r['hierarchy']):<16} {r['mean']:.4f} +- {r['sd']:.4f}  "
            f"{' '.join(f'{v:.4f}' for v in r['per_seed'])}  {r['params']:>9,}"
        )
    lines += [
        "",
        "2. Early accuracy as a pruning signal (Spearman across lists, mean over seeds)",
        "  " + f"{'epoch':<22}" + "".join(f"{ep:>7}" for ep in range(1, e["epochs"] + 1)),
        "  " + f"{'output vs final (run)':<22}" + "".join(f"{v:>7.2f}" for v in e["output_vs_final"]),
        "  " + f"{'output vs mean final':<22}" + "".join(f"{v:>7.2f}" for v in e["output_vs_truth"]),
        "  "
        + f"{'best list < median':<22}"
        + "".join(f"{v:>5}/{len(a['seeds'])}" for v in e["best_list_below_median_seeds"]),
    ]
    for j, row in enumerate(e["unit_vs_final"]):
        lines.append("  " + f"{f'unit {j + 1} vs final (run)':<22}" + "".join(f"{v:>7.2f}" for v in row))
    lines += [
        "",
        f"3. The paper's thesis: units in the first {t['shallow_stages']} stages against the mean final accuracy",
        f"  Spearman {t['spearman']:+.2f} (permutation p {t['p']:.4f}); median shallow count {t['median_shallow']:g}",
    ]
    for g, v in t["groups"].items():
        if v["lists"]:
            lines.append(f"  shallow units {g} the median: {v['lists']:>3} lists, mean accuracy {v['mean_acc']:.4f}")
    lines.append(
        "  per stage: " + ", ".join(f"d{st['stage']} {st['spearman']:+.2f} (p {st['p']:.3f})" for st in t["stages"])
    )
    lines.append(
        f"  parameters: Spearman {t['params_spearman']:+.2f} (p {t['params_p']:.4f}); shallow units with "
        f"parameters held fixed (partial Spearman): {t['partial_given_params']:+.2f} "
        f"(p {t['partial_given_params_p']:.4f})"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("table", type=Path, help="a table written by tabular_table.py")
    p.add_argument("--json", type=Path, default=None, help="also write every figure as one JSON object here")
    args = p.parse_args(argv)
    result = analyse(load_table(args.table))
    print(render(result))
    if args.json is not None:
        result["command"] = shlex.join(
            ["python3", "benchmarks/tabular_analysis.py", *(sys.argv[1:] if argv is None else argv)]
        )
        result["table"] = str(args.table)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(finite_or_none(result), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
