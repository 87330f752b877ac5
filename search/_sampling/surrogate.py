"""The `hvi` sampler's belief about lists not yet trained: a Gaussian process over hierarchy lists.

A list is a point in unit counts (d1..dn). The process has a constant mean (the observed mean), a squared-exponential
kernel of the distance in units, and per-observation noise; its length scale and noise share are chosen by the
marginal likelihood over a small grid, so nothing is tuned per data set. What it learns from:

- a complete trial: its validation accuracy;
- a pruned trial, stopped at step s: its value at s plus the mean gain from step s to the end of the complete trials
  that reached s, with the variance of those gains as extra noise (a multi-fidelity correction that needs no model of
  learning curves); a pruned trial whose step no complete trial passed through is left out;
- a list seen twice (a pruned visit, then its revisit) counts once, by its complete trial.

It is small (a Cholesky of at most a few hundred points), deterministic, and uses numpy alone, on one BLAS thread:
numpy's OpenBLAS runs its own pthreads, and waking them in a process whose training runs on PyTorch's OpenMP threads
stalled training for minutes on a 2-core machine (a trial that takes seconds did not finish its first epoch in ten
minutes; with one BLAS thread the same study took 84 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from optuna.trial import FrozenTrial, TrialState
from threadpoolctl import threadpool_limits

LENGTH_SCALES = (0.75, 1.5, 3.0, 6.0)  # in units of one stage's count
NOISE_SHARES = (0.02, 0.1, 0.3, 0.6)  # of the observed variance


@dataclass(frozen=True)
class Observations:
    """What the process is fitted on: lists, the accuracies they stand for, and extra noise variance each."""

    lists: np.ndarray  # n x stages
    values: np.ndarray  # n
    extra: np.ndarray  # n: 0 for a complete trial, the gain's variance for a pruned one


def observations(trials: Sequence[tuple[FrozenTrial, tuple[int, ...]]]) -> Observations:
    """The complete and pruned trials among (trial, list) pairs, as the module docstring says."""
    complete = {h: t for t, h in trials if t.state == TrialState.COMPLETE and t.value is not None}
    gains: dict[int, list[float]] = {}
    for t in complete.values():
        assert t.value is not None
        for step, value in t.intermediate_values.items():
            gains.setdefault(step, []).append(float(t.value) - float(value))
    rows: list[tuple[tuple[int, ...], float, float]] = [(h, float(t.value or 0.0), 0.0) for h, t in complete.items()]
    for t, h in trials:
        if t.state != TrialState.PRUNED or h in complete or not t.intermediate_values:
            continue
        step = max(t.intermediate_values)
        seen = gains.get(step)
        if not seen:
            continue
        rows.append((h, float(t.intermediate_values[step]) + float(np.mean(seen)), float(np.var(seen))))
    by_list: dict[tuple[int, ...], tuple[tuple[int, ...], float, float]] = {}
    for row in rows:  # a list pruned twice (a retried visit) keeps its later estimate
        by_list[row[0]] = row
    kept = list(by_list.values())
    if not kept:
        return Observations(np.zeros((0, 0)), np.zeros(0), np.zeros(0))
    return Observations(
        np.asarray([r[0] for r in kept], dtype=float),
        np.asarray([r[1] for r in kept], dtype=float),
        np.asarray([r[2] for r in kept], dtype=float),
    )


def _kernel(a: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
    sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
    return np.exp(-0.5 * sq / (scale * scale))


def predict(obs: Observations, lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the accuracy of each of `lists`; with fewer than two observations, the
    observed mean (or 0.5) and a wide spread."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _predict(obs, lists)


def _predict(obs: Observations, lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(lists, dtype=float)
    n = len(obs.values)
    if n < 2:
        centre = float(obs.values.mean()) if n else 0.5
        return np.full(len(x), centre), np.full(len(x), 0.25)
    mean = float(obs.values.mean())
    signal = max(float(obs.values.var()), 1e-6)
    y = obs.values - mean
    best: tuple[float, np.ndarray, np.ndarray, float] | None = None
    for scale in LENGTH_SCALES:
        k = _kernel(obs.lists, obs.lists, scale) * signal
        for share in NOISE_SHARES:
            noise = share * signal + obs.extra
            try:
                chol = np.linalg.cholesky(k + np.diag(noise) + 1e-10 * np.eye(n))
            except np.linalg.LinAlgError:
                continue
            alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y))
            evidence = -0.5 * float(y @ alpha) - float(np.log(np.diag(chol)).sum())
            if best is None or evidence > best[0]:
                best = (evidence, chol, alpha, scale)
    if best is None:
        return np.full(len(x), mean), np.full(len(x), float(np.sqrt(signal)))
    _, chol, alpha, scale = best
    cross = _kernel(x, obs.lists, scale) * signal
    mu = mean + cross @ alpha
    v = np.linalg.solve(chol, cross.T)
    var = np.maximum(signal - (v * v).sum(axis=0), 1e-12)
    return mu, np.sqrt(var)


__all__ = ["LENGTH_SCALES", "NOISE_SHARES", "Observations", "observations", "predict"]
