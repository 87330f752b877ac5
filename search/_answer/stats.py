"""Small-sample statistics: for confirmation runs, the mean with its Student's t interval and the paired t-test
between two lists trained with the same seeds; for the report's thesis section and the tabular benchmarks,
Spearman's rank correlation, its partial form and their permutation p-values.

Confirmation has 2-6 seeds per list, so the normal approximation would be badly wrong: the t distribution comes
from SciPy (a dependency of scikit-learn's and a direct one of the package's). `scipy.stats` takes over half a
second to import, so each function imports it when first called: `import lwl.search` does not pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95  # the confidence of every interval the summary, the report and the export print


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with `df` (a whole number >= 1) degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if math.isnan(t):
        return math.nan
    from scipy import stats

    return float(min(1.0, 2 * stats.t.sf(abs(t), df)))


def t_quantile(level: float, df: int) -> float:
    """The t value with P(|T| <= t) = `level` (e.g. 0.95: 12.706 for df 1, 2.776 for df 4)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    from scipy import stats

    return float(stats.t.ppf((1 + level) / 2, df))


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its two-sided t interval."""

    mean: float
    low: float  # the interval's ends; equal to the mean when n == 1 (no spread to estimate)
    high: float
    n: int  # seeds
    sd: float  # sample standard deviation (0 when n == 1)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def text(self, percent: bool = True) -> str:
        """'97.4 ± 0.8 %' (n >= 2) or '97.4 %' (one seed); an interval cut at a bound (an accuracy's 100 %) shows
        its two sides, '99.0 -2.4/+1.0 %'."""
        scale, unit = (100.0, " %") if percent else (1.0, "")
        if self.n < 2:
            return f"{scale * self.mean:.1f}{unit}"
        below, above = self.mean - self.low, self.high - self.mean
        if abs(below - above) > 1e-9:
            return f"{scale * self.mean:.1f} -{scale * below:.1f}/+{scale * above:.1f}{unit}"
        return f"{scale * self.mean:.1f} ± {scale * self.half_width:.1f}{unit}"


# Where an accuracy lies: its interval is cut to these bounds (a t interval knows nothing of them: 98.0 ± 3.4 %
# would reach 101.4 %).
ACCURACY_BOUNDS = (0.0, 1.0)


def estimate(
    values: Sequence[float], level: float = LEVEL, bounds: tuple[float, float] | None = ACCURACY_BOUNDS
) -> Estimate:
    """The mean of `values` with its two-sided t interval at `level`, cut to `bounds` (accuracies in [0, 1] by
    default; None: uncut)."""
    n = len(values)
    if n == 0:
        raise ValueError("an estimate needs at least one value")
    mean = math.fsum(values) / n
    if n == 1:
        return Estimate(mean, mean, mean, 1, 0.0)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(level, n - 1) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Estimate(mean, low, high, n, sd)


@dataclass(frozen=True)
class PairedTest:
    """The paired t-test of a − b over the seeds both were trained with."""

    difference: float  # mean of a - b
    p_value: float  # two-sided; nan with fewer than 2 pairs
    pairs: int

    def text(self) -> str:
        if self.pairs < 2 or math.isnan(self.p_value):
            return f"{self.pairs} paired seed{'s' if self.pairs != 1 else ''}: too few for a test"
        return f"p = {self.p_value:.3g} (paired t-test over {self.pairs} seeds)"


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Two-sided paired t-test; identical differences give p = 0 (all positive or negative) or 1 (all zero)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples must have the same length, got {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    if n == 0:
        return PairedTest(math.nan, math.nan, 0)
    mean = math.fsum(d) / n
    if n < 2:
        return PairedTest(mean, math.nan, n)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in d) / (n - 1))
    if sd <= 1e-12 * max(1.0, abs(mean)):
        return PairedTest(mean, 1.0 if abs(mean) <= 1e-12 else 0.0, n)
    from scipy import stats

    return PairedTest(mean, float(stats.ttest_rel(a, b).pvalue), n)


# ------------------------------------------------------------------------------------------ rank correlation
def rankdata(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (scipy.stats.rankdata)."""
    from scipy import stats

    return np.asarray(stats.rankdata(np.asarray(x, dtype=float)), dtype=float)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: the Pearson correlation of the ranks; nan when either side is constant."""
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def spearman_p(x: Sequence[float], y: Sequence[float], rng: np.random.Generator, permutations: int = 10_000) -> float:
    """Two-sided permutation p-value of Spearman's rho: the share of shuffles of y at least as extreme (+1
    smoothed, so never 0); nan when rho is."""
    rho = spearman(x, y)
    if not math.isfinite(rho):
        return float("nan")
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    shuffled = np.array([rng.permutation(ry) for _ in range(permutations)])
    rhos = shuffled @ rx / (np.linalg.norm(rx) * np.linalg.norm(ry))
    return float((1 + np.sum(np.abs(rhos) >= abs(rho) - 1e-12)) / (1 + permutations))


def _partial(xy: float, xz: float, yz: float) -> float:
    """The partial correlation of x and y given z from the three pairwise correlations; nan when undefined."""
    denominator = (1 - xz**2) * (1 - yz**2)
    if not all(math.isfinite(v) for v in (xy, xz, yz)) or denominator <= 0:
        return float("nan")
    return float((xy - xz * yz) / math.sqrt(denominator))


def partial_spearman(x: Sequence[float], y: Sequence[float], z: Sequence[float]) -> float:
    """Spearman of x and y with z's ranks held fixed (the partial correlation of the ranks); nan when undefined."""
    return _partial(spearman(x, y), spearman(x, z), spearman(y, z))


def partial_p(
    x: Sequence[float], y: Sequence[float], z: Sequence[float], rng: np.random.Generator, permutations: int = 1000
) -> float:
    """Two-sided permutation p-value of the partial Spearman, shuffling y; nan when it is undefined. The ranks are
    taken once: shuffling y shuffles its ranks (ties keep their mean rank), so each shuffle costs two correlations."""
    rho = partial_spearman(x, y, z)
    if not math.isfinite(rho):
        return float("nan")
    rx, ry, rz = rankdata(x), rankdata(y), rankdata(z)
    xz = float(np.corrcoef(rx, rz)[0, 1])
    null = []
    for _ in range(permutations):
        shuffled = rng.permutation(ry)
        null.append(_partial(float(np.corrcoef(rx, shuffled)[0, 1]), xz, float(np.corrcoef(shuffled, rz)[0, 1])))
    return float((1 + np.sum(np.abs(np.array(null)) >= abs(rho) - 1e-12)) / (1 + permutations))


__all__ = [
    "LEVEL",
    "Estimate",
    "PairedTest",
    "estimate",
    "paired_t_test",
    "partial_p",
    "partial_spearman",
    "rankdata",
    "spearman",
    "spearman_p",
    "t_quantile",
    "t_two_sided_p",
]
