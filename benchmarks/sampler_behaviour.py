"""How the feasible-set samplers behave on a synthetic objective (a script, not a test).

Checks the two hard guarantees on every trial -- no infeasible proposal, no repeated list -- and
measures how fast each strategy reaches the best and a top-3 list of the enumerated space. The
objective is cheap and known, so this isolates the sampler from training noise:

    score(D) = -1.0 * sum(shallow) + 0.5 * sum(deep) - 0.1 * (d_n - d_{n-1})**2 + noise * N(0, 1)

(fewer shallow units and more deep units are better, as in the paper), with the noise drawn once
per list from a per-seed table, so every seed is a different but fixed landscape.

Caveat for reading the grid row: with ``--prefer deep`` the optimum sits near the start of the
lexicographic order (small shallow values first), which flatters the grid; ``--prefer shallow``
mirrors the shallow/deep weights and puts the optimum near the end of that order.

Run with the package installed (``pip install -e .``), or with ``lwl`` on PYTHONPATH:

    python benchmarks/sampler_behaviour.py --seeds 20 --budget 16 --stages 4
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np
import optuna

from lwl.search import (
    CONSTRAINTS,
    SAMPLERS,
    SearchSpace,
    SpaceExhausted,
    make_sampler,
    stop_when_exhausted,
)


def landscape(space: SearchSpace, seed: int, noise: float, prefer: str = "deep") -> dict[tuple[int, ...], float]:
    rng = np.random.default_rng(10_000 + seed)
    k = space.k
    w_shallow, w_deep = (-1.0, 0.5) if prefer == "deep" else (0.5, -1.0)
    return {
        h: w_shallow * sum(h[:k])
        + w_deep * sum(h[k:])
        - 0.1 * (h[-1] - h[-2]) ** 2
        + noise * float(rng.standard_normal())
        for h in space.lists()
    }


def run_once(
    space: SearchSpace, strategy: str, seed: int, noise: float, n_startup: int, sweep: bool, prefer: str = "deep"
) -> dict:
    """One study: stops at the best list, or runs to exhaustion when ``sweep``."""
    table = landscape(space, seed, noise, prefer)
    ranked = sorted(table, key=table.get, reverse=True)
    best, top3 = ranked[0], set(ranked[:3])
    low, high = space.param_range()
    proposals: list[tuple[int, ...]] = []

    def objective(trial: optuna.Trial) -> float:
        hierarchy = tuple(trial.suggest_int(n, low, high) for n in space.param_names())
        proposals.append(hierarchy)
        return table.get(hierarchy, float("-inf")) if space.is_feasible(hierarchy) else -1e9

    def stop_at_best(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not sweep and proposals and proposals[-1] == best:
            study.stop()

    sampler = make_sampler(strategy, space, seed, n_startup_trials=n_startup)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    try:
        study.optimize(objective, n_trials=len(space) + 5, callbacks=[stop_at_best, stop_when_exhausted(space)])
    except SpaceExhausted:
        pass
    return {
        "infeasible": sum(not space.is_feasible(h) for h in proposals),
        "duplicates": len(proposals) - len(set(proposals)),
        "to_best": proposals.index(best) + 1 if best in proposals else None,
        "to_top3": next((i + 1 for i, h in enumerate(proposals) if h in top3), None),
        "covered": len(set(proposals)),
        "trials": len(proposals),
    }


def quartiles(values: Sequence[int]) -> str:
    q = np.percentile(values, [25, 50, 75])
    return f"{q[1]:>5.1f} [{q[0]:.0f}-{q[2]:.0f}]"


def benchmark(space: SearchSpace, seeds: int, noise: float, n_startup: int, prefer: str = "deep") -> str:
    n = len(space)
    lines = [
        f"space: {space.describe()}: {n} lists; {seeds} seeds; noise {noise}; prefer {prefer}; tpe startup {n_startup}",
        f"{'sampler':<8} {'infeasible':>10} {'duplicates':>10} {'trials to best':>18} "
        f"{'trials to top-3':>18} {'full sweep':>15} {'time':>7}",
        f"{'':<8} {'':>10} {'':>10} {'median [IQR]':>18} {'median [IQR]':>18}",
    ]
    for strategy in SAMPLERS:
        start = time.perf_counter()
        runs = [run_once(space, strategy, seed, noise, n_startup, False, prefer) for seed in range(seeds)]
        sweep = run_once(space, strategy, 0, noise, n_startup, True, prefer)
        elapsed = time.perf_counter() - start
        infeasible = sum(r["infeasible"] for r in runs) + sweep["infeasible"]
        duplicates = sum(r["duplicates"] for r in runs) + sweep["duplicates"]
        to_best = [r["to_best"] for r in runs]
        to_top3 = [r["to_top3"] for r in runs]
        full = f"{sweep['covered']}/{n} in {sweep['trials']}"
        lines.append(
            f"{strategy:<8} {infeasible:>10} {duplicates:>10} {quartiles(to_best):>18} "
            f"{quartiles(to_top3):>18} {full:>15} {elapsed:>6.1f}s"
        )
    lines.append(
        f"{'uniform':<8} {'':>10} {'':>10} {(n + 1) / 2:>18.1f} {(n + 1) / 4:>18.1f}"
        "   (expected trials without replacement)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="studies per sampler (default 20)")
    parser.add_argument("--budget", type=int, default=16, help="units in total (default 16)")
    parser.add_argument("--stages", type=int, default=4, help="stages per list (default 4)")
    parser.add_argument(
        "--constraint", action="append", choices=CONSTRAINTS, help="repeatable; default: strict and none"
    )
    parser.add_argument("--noise", type=float, default=0.3, help="per-list noise sd (default 0.3)")
    parser.add_argument(
        "--prefer",
        choices=("deep", "shallow"),
        default="deep",
        help="where the synthetic optimum lies (default deep, as in the paper)",
    )
    parser.add_argument("--n-startup", type=int, default=10, help="random trials before TPE starts (default 10)")
    args = parser.parse_args(argv)

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"optuna {optuna.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
    for constraint in args.constraint or ["strict", "none"]:
        space = SearchSpace(args.budget, args.stages, constraint=constraint)
        space.check_nonempty()
        print()
        print(benchmark(space, args.seeds, args.noise, args.n_startup, args.prefer), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
