"""How big must the validation split be to rank lists? Tables of the same space at several validation fractions,
each run with its test accuracy (digits' fixed 20 % test split, `tabular_table.py --with-test`), compared.

For each fraction: the validation images; how often two lists tie on one seed's validation accuracy; the rank
correlation (Spearman, over lists) of one seed's validation accuracies with the lists' true quality, i.e. their
mean test accuracy over every run of every table (all fractions, all seeds: 9 runs per list with 3 tables of 3
seeds); the same against the run's own test accuracy; and the mean test accuracy, which falls as the split takes
training images away. The search ranks on one seed's validation accuracy, so the first correlation is what a
larger split buys, the last what it costs.

    python3 benchmarks/validation_split.py benchmarks/results/tabular_digits_b8_s4_none_w4-32_val0.1.json \\
        benchmarks/results/tabular_digits_b8_s4_none_w4-32_val0.2.json benchmarks/results/..._val0.3.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tabular_table import by_list, load_table

from lwl.search import spearman


def summarise(tables: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    per_table = [by_list(t) for t in tables]
    lists = sorted(set.intersection(*(set(r) for r in per_table)))
    # the seeds every list of every table has (a table still being built counts up to its last complete seed)
    common = set.intersection(*(set(runs[h]) for runs in per_table for h in lists))
    per_table = [{h: {s: runs[h][s] for s in sorted(common)} for h in lists} for runs in per_table]
    truth = {
        h: float(np.mean([run["test_output_acc"] for runs in per_table for run in runs[h].values()])) for h in lists
    }
    rows = []
    for table, runs in zip(tables, per_table):
        seeds = sorted(next(iter(runs.values())))
        val_truth, val_test, ties = [], [], []
        for s in seeds:
            val = [runs[h][s]["output_acc"] for h in lists]
            test = [runs[h][s]["test_output_acc"] for h in lists]
            val_truth.append(spearman(val, [truth[h] for h in lists]))
            val_test.append(spearman(val, test))
            ties.append(float(np.mean([a == b for a, b in itertools.combinations(val, 2)])))
        rows.append(
            {
                "val_fraction": table["header"]["settings"]["recipe"]["val_fraction"],
                "val_images": table["header"]["val_images"],
                "lists": len(lists),
                "seeds": seeds,
                "tied_pairs": float(np.mean(ties)),
                "spearman_val_truth": float(np.mean(val_truth)),
                "spearman_val_truth_per_seed": val_truth,
                "spearman_val_own_test": float(np.mean(val_test)),
                "test_acc": float(np.mean([run["test_output_acc"] for h in lists for run in runs[h].values()])),
            }
        )
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'val fraction':>12} {'images':>6} {'tied pairs':>10} {'Spearman val vs truth':>22} "
        f"{'val vs own test':>15} {'mean test acc':>13}"
    ]
    for r in rows:
        per_seed = " ".join(f"{v:+.2f}" for v in r["spearman_val_truth_per_seed"])
        lines.append(
            f"{r['val_fraction']:>12g} {r['val_images']:>6} {100 * r['tied_pairs']:>9.1f}% "
            f"{r['spearman_val_truth']:>+8.2f} ({per_seed}) {r['spearman_val_own_test']:>+15.2f} {r['test_acc']:>13.4f}"
        )
    lines.append(
        "truth: each list's mean test accuracy over every run of every table; Spearman: over the lists, per seed, "
        "mean over seeds (per seed in brackets)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tables", type=Path, nargs="+", help="tables of one space written with --with-test")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    tables = [load_table(t) for t in args.tables]
    missing = [str(t) for t, table in zip(args.tables, tables) if "test_output_acc" not in table["runs"][0]]
    if missing:
        p.error(f"{', '.join(missing)}: no test accuracies; build them with tabular_table.py --with-test")
    rows = summarise(tables)
    print(render(rows))
    if args.json is not None:
        args.json.write_text(json.dumps({"tables": [str(t) for t in args.tables], "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
