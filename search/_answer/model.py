"""The search's answer, with a confidence the benchmark verifies: shrunk estimates, a set, racing over seeds.

One run of a list is one draw of a noisy quantity: its accuracy over the seed of its initialisation and of its
validation split (digits: a seed sd of ~1.4 points, about the binomial sd of the validation set, and twice the gap
between good lists). Ranking lists by the raw value of one run crowns the luckiest draw, so the answer is read from a
model of every list's *true* accuracy (its mean over infinitely many seeds) instead:

- **Evidence.** Each list the search touched: the final accuracies of its full runs by seed (the search's run and
  its confirmation runs), or, for a list only ever stopped early, its final value as predicted from the value at
  the step it stopped by a line fitted over the complete runs' curves, with that prediction's variance added to
  its noise (`extrapolate`: early values that say little about the end predict little, so a list stopped on an
  uninformative start is not ruled out; adding the mean later gain instead, with the gains' small spread, made the
  set miss a stopped list that was truly best in 4 of 16 replays of the benchmark with SHA).
- **Seed sd.** Measured, not assumed: the noise level of highest marginal likelihood of every run, which reads the
  spread of repeated runs of one list (a confirmation gives those) and the scatter of single runs about the
  model, never below the binomial sd of the validation set (the split changes with the seed; single runs alone
  cannot tell noise from true differences); the answer says how many repeated-run degrees of freedom stand
  behind it.
- **Shrinkage.** A Gaussian process over lists (unit counts d1..dn; a trend in the log of the list's size where
  sizes differ, and a squared-exponential kernel, its length scale and amplitude chosen by the marginal likelihood
  over a small grid) gives every list's posterior mean and the posterior covariance of all of them; the grid points
  the data cannot tell apart are averaged by their likelihood, not one trusted. A lucky single run is pulled
  towards its neighbours; a list with many seeds keeps its mean.
- **The set.** Joint posterior draws give each list's probability of being the best; the set is the smallest group
  of lists, most probable first, whose probabilities sum to `SET_LEVEL`, and the named list (below) if it is not
  among them (where every trained list is at chance, lists never completed can fill the level alone). Lists the
  search never completed are in it when the model cannot rule them out. The *named* list is the complete list
  with the highest posterior mean, and its expected regret is the mean over the draws of (the best list's
  accuracy - its accuracy).
- **Racing** (`race_round`): confirmation spends its seeds in rounds. Round 1 trains the K most probable complete
  lists with one more seed; every later round keeps at most half as many (at least 2), only lists still in the
  set, and stops when the set holds one complete list (decided), when fewer than two complete lists remain in it
  (the rest is the model's doubt about lists never completed), or when the runs are spent.

Whether the printed set holds the best list as often as it says is measured on the tabular benchmark with seeds the
search never read (benchmarks/answer_replay.py; benchmarks/README.md, "The answer").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from .._sampling.surrogate import _kernel  # the hvi sampler's squared-exponential kernel over unit counts

# The printed set is the model's SET_LEVEL set and the named list. On the tabular benchmark with held-out truth
# seeds (benchmarks/README.md, "answer_replay.py"; four tables, 200 replays each), such sets held the truth's best
# list in SET_COVERAGE of the reported replays, by configuration (pruner, trials, racing plan) and table; the model's
# 95 % sets for the *measured* best (the model check) in 83-100 %. The truth itself is a mean over 5 held-out seeds,
# so part of the shortfall from 99 % is the truth's own noise; the text says what was measured, not the model's level.
SET_LEVEL = 0.99
SET_COVERAGE = "87-100%"

DRAWS = 4000  # joint posterior draws for P(best) and the expected regret (fixed seed: the answer is deterministic)
UNTRIED = 50  # lists never trained that enter the set's draws: the ones with the highest upper bound
LENGTH_SCALES = (1.0, 2.5, 6.0)  # in units of one stage's count
AMPLITUDES = (0.5, 2.0)  # prior variance of the true accuracies, in multiples of their observed spread
OWN_SHARES = (0.0, 0.5)  # the share of the prior variance that is each list's own
KEEP = 20.0  # grid points within this factor of the best marginal likelihood enter the answer, by their weight
NOISE_SHARES = (0.1, 0.5, 1.5)  # seed variance, in multiples of the observed spread (no repeated runs)
MIN_CURVES = 3  # complete curves through a step before a list stopped there is extrapolated

Hierarchy = tuple[int, ...]


@dataclass(frozen=True)
class Evidence:
    """What the study knows of one list."""

    hierarchy: Hierarchy
    runs: Mapping[int, float] = field(default_factory=dict)  # seed -> final accuracy of a full run
    partial: tuple[float, float] | None = None  # stopped early, never complete: (predicted final, its variance)


@dataclass(frozen=True)
class Belief:
    """The model's view of one list's true accuracy (its mean over seeds)."""

    hierarchy: Hierarchy
    runs: int  # full runs (seeds) behind it; 0 for a list stopped early or never trained
    raw: float | None  # the mean of its full runs, as measured
    mean: float  # posterior mean
    sd: float  # posterior sd
    p_best: float  # posterior probability that it is the best list
    status: str  # "complete", "stopped early", "stopped too early" (to read: weighed as untrained) or "not trained"


@dataclass(frozen=True)
class Answer:
    """The study's answer: lists by posterior mean, the named list, the set, the seed sd and the expected regret."""

    beliefs: tuple[Belief, ...]  # best posterior mean first
    named: Hierarchy | None  # the complete list with the highest posterior mean
    best_set: tuple[Hierarchy, ...]  # the best list is among these with probability >= level
    level: float
    seed_sd: float  # per-run sd of a list's accuracy over seeds, as the model estimates it
    seed_df: int  # degrees of freedom of repeated runs behind it (0: from the spread of single runs alone)
    expected_regret: float  # E[best list's true accuracy - the named list's]
    # the joint posterior the figures above were drawn from: the lists it covers (the beliefs' lists), their mean
    # vector and covariance matrix (not compared: a view of the same answer)
    joint: tuple[tuple[Hierarchy, ...], np.ndarray, np.ndarray] | None = field(default=None, compare=False, repr=False)

    def belief(self, hierarchy: Hierarchy) -> Belief | None:
        return next((b for b in self.beliefs if b.hierarchy == hierarchy), None)

    @property
    def decided(self) -> bool:
        return len(self.best_set) == 1

    def p_best_measured(self, variance: float, draws: int = DRAWS, seed: int = 1) -> dict[Hierarchy, float]:
        """Each list's chance of having the highest *measured* mean when every list is measured again with this
        much noise (e.g. the seed variance over the number of runs): the model's prediction for a check that scores
        the answer against held-out runs, whose best is the true best blurred by those runs' own noise. The
        printed set speaks of the true best; this is how a benchmark verifies the model that made it."""
        if self.joint is None:
            return {b.hierarchy: b.p_best for b in self.beliefs}
        lists, mean, cov = self.joint
        sample = _draws(mean, cov, draws, seed)
        sample += math.sqrt(max(variance, 0.0)) * np.random.default_rng(seed + 1).standard_normal(sample.shape)
        return {h: float(w) for h, w in zip(lists, _wins(sample))}

    def seed_sd_text(self) -> str:
        how = (
            f"from {self.seed_df} degrees of freedom of repeated runs and the spread of the lists' means"
            if self.seed_df
            else "from the spread of single runs alone: no list has two seeds yet"
        )
        return f"{100 * self.seed_sd:.2f} points per run ({how})"

    def set_text(self, most: int = 8) -> str:
        """The set in words; past `most` lists, the trained ones first and a count of the rest."""

        def one(h: Hierarchy) -> str:
            b = self.belief(h)
            tail = "" if b is None or b.status == "complete" else f" ({b.status})"
            return "[" + ",".join(map(str, h)) + "]" + tail

        measured = (
            f"such sets held the best list in {SET_COVERAGE} of the benchmark's held-out replays"
            if self.level == SET_LEVEL
            else f"the benchmark measured the coverage of the {SET_LEVEL:.0%} set only"
        )
        alone = "" if self.seed_df else "; with no list run twice the seed sd is a guess and the set may be too small"
        chance = f"(the model's {self.level:.0%} set: {measured}{alone})"
        if len(self.best_set) <= most:
            return f"the best list is among {', '.join(one(h) for h in self.best_set)} {chance}"
        trained = [h for h in self.best_set if (b := self.belief(h)) is not None and b.status == "complete"]
        more = " and more" if len(trained) > most else ""
        other = len(self.best_set) - len(trained)
        return (
            f"the best list is among {len(self.best_set)} lists {chance}: {len(trained)} trained ("
            + ", ".join(one(h) for h in trained[:most])
            + f"{more}) and {other} the search did not complete (it has not ruled them out)"
        )


def within_squares(evidence: Sequence[Evidence]) -> tuple[float, int]:
    """The sum of squares of repeated runs about their list's mean, and its degrees of freedom."""
    squares, df = 0.0, 0
    for e in evidence:
        values = list(e.runs.values())
        if len(values) >= 2:
            mean = math.fsum(values) / len(values)
            squares += math.fsum((v - mean) ** 2 for v in values)
            df += len(values) - 1
    return squares, df


def extrapolate(
    stopped: Mapping[Hierarchy, tuple[int, float]], curves: Sequence[Mapping[int, float]]
) -> dict[Hierarchy, tuple[float, float]]:
    """(final accuracy, its variance) of lists stopped at (step, value), read from the complete runs' curves
    (`curves`: step -> value, the last step the final value) by a straight line from the value at that step to the
    final one, fitted over the complete curves through that step.

    The line's slope is kept >= 0 (a better start never predicts a worse end) and its variance is the prediction
    variance of the fit: the scatter of the complete finals about the line, never below the finals' own variance
    (three curves cannot claim a tight line; a conservative floor, measured on the benchmark to keep the set's
    coverage where a pooled estimate lost some), times the usual leverage (1 + 1/n + the squared distance from the
    curves' mean value over their spread). Early steps, where a value says little about the end, give a flat line:
    the list is neither ruled in nor out by its start. A list stopped at a step fewer than MIN_CURVES complete
    curves passed through is left out (the answer weighs it as a list never trained)."""
    pairs: dict[int, list[tuple[float, float]]] = {}
    for curve in curves:
        if curve:
            final = curve[max(curve)]
            for step, value in curve.items():
                pairs.setdefault(step, []).append((value, final))
    out = {}
    for h, (step, value) in stopped.items():
        seen = pairs.get(step, [])
        if len(seen) < MIN_CURVES:
            continue
        x = np.asarray([v for v, _ in seen])
        y = np.asarray([f for _, f in seen])
        n, dx = len(seen), x - x.mean()
        sxx = float(dx @ dx)
        slope = max(0.0, float(dx @ (y - y.mean())) / sxx) if sxx > 1e-12 else 0.0
        fitted = y.mean() + slope * dx
        scatter = max(float(((y - fitted) ** 2).sum()) / (n - 2), float(y.var(ddof=1)))
        leverage = 1 + 1 / n + ((value - x.mean()) ** 2 / sxx if sxx > 1e-12 else 0.0)
        out[h] = (min(1.0, float(y.mean() + slope * (value - x.mean()))), scatter * leverage)
    return out


@dataclass(frozen=True)
class _Fit:
    amplitude: float  # prior variance of the true accuracies about the trend
    scale: float
    noise: float  # per-run seed variance
    own: float = 0.0  # the share of that variance that is each list's own, shared with no neighbour

    def cov(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Prior covariance of the true accuracies of lists `a` and `b`: smooth over unit counts, plus a part of
        each list's own (lists differ in ways no distance in unit counts predicts)."""
        same = (np.abs(a[:, None, :] - b[None, :, :]).sum(axis=2) == 0).astype(float)
        return self.amplitude * ((1 - self.own) * _kernel(a, b, self.scale) + self.own * same)


class _Posterior:
    """The process given the data and its hyper-parameters: a trend (a constant, or a constant and a slope in the
    capacity covariate, with a flat prior: Rasmussen & Williams 2006, section 2.7) plus a squared-exponential
    process over unit counts."""

    def __init__(self, x: np.ndarray, basis: np.ndarray, y: np.ndarray, noise: np.ndarray, fit: _Fit) -> None:
        self.x, self.basis, self.fit = x, basis, fit
        k = fit.cov(x, x) + np.diag(noise) + 1e-12 * np.eye(len(y))
        try:
            self.chol = np.linalg.cholesky(k)
        except np.linalg.LinAlgError:
            self.chol = np.linalg.cholesky(k + 1e-9 * np.eye(len(y)))
        hk = self._solve(basis)  # K^-1 H
        self.a = basis.T @ hk  # H' K^-1 H
        self.beta = np.linalg.solve(self.a, hk.T @ y)
        self.resid = y - basis @ self.beta
        self.alpha = self._solve(self.resid)

    def _solve(self, b: np.ndarray) -> np.ndarray:
        return np.linalg.solve(self.chol.T, np.linalg.solve(self.chol, b))

    def log_evidence(self) -> float:
        """The restricted marginal likelihood (the trend integrated out), up to a constant."""
        _, logdet_a = np.linalg.slogdet(self.a)
        return -0.5 * float(self.resid @ self.alpha) - float(np.log(np.diag(self.chol)).sum()) - 0.5 * float(logdet_a)

    def predict(self, q: np.ndarray, basis_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cross = self.fit.cov(q, self.x)  # m x n
        mean = basis_q @ self.beta + cross @ self.alpha
        v = np.linalg.solve(self.chol, cross.T)
        r = basis_q.T - self.basis.T @ self._solve(cross.T)  # p x m
        cov = self.fit.cov(q, q) - v.T @ v + r.T @ np.linalg.solve(self.a, r)
        return mean, cov


def _fit(
    x: np.ndarray,
    basis: np.ndarray,
    y: np.ndarray,
    counts: np.ndarray,
    extra: np.ndarray,
    within: tuple[float, int],
    floor: float,
) -> list[tuple[float, _Posterior]]:
    """The posteriors of every grid point of hyper-parameters whose restricted marginal likelihood of every run
    (the lists' means under the process, and the spread of repeated runs about their list's mean: `within`, its
    sum of squares and degrees of freedom) is within a factor `KEEP` of the best, with their weights (a uniform
    prior over the grid: the answer averages over what the data cannot decide instead of trusting one point).
    The seed variance is never below `floor`."""
    spread = max(float(y.var()), 1e-8)
    squares, df = within
    noises = {share * spread for share in NOISE_SHARES}
    if df:
        noises |= {f * max(squares / df, 1e-8) for f in (0.7, 1.0, 1.4)}
    if floor > 0:
        noises = {n for n in noises if n >= floor} | {f * floor for f in (1.0, 1.5, 2.5)}
    scored: list[tuple[float, _Posterior]] = []
    for scale in LENGTH_SCALES:
        for amp in AMPLITUDES:
            for own in OWN_SHARES:
                for nv in sorted(noises):
                    try:
                        post = _Posterior(x, basis, y, nv / counts + extra, _Fit(amp * spread, scale, nv, own))
                    except np.linalg.LinAlgError:
                        continue
                    scored.append((post.log_evidence() - 0.5 * squares / nv - 0.5 * df * math.log(nv), post))
    if not scored:
        return [(1.0, _Posterior(x, basis, y, spread / counts + extra, _Fit(spread, LENGTH_SCALES[-1], spread)))]
    top = max(e for e, _ in scored)
    kept = [(math.exp(e - top), p) for e, p in scored if e - top >= -math.log(KEEP)]
    total = sum(w for w, _ in kept)
    return [(w / total, p) for w, p in sorted(kept, key=lambda wp: -wp[0])]


def _mixture(
    posteriors: Sequence[tuple[float, _Posterior]], q: np.ndarray, basis_q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the weighted mixture of the posteriors at `q` (moments matched)."""
    mean = np.zeros(len(q))
    second = np.zeros((len(q), len(q)))
    for w, post in posteriors:
        mu, cov = post.predict(q, basis_q)
        mean += w * mu
        second += w * (cov + np.outer(mu, mu))
    return mean, second - np.outer(mean, mean)


def _wins(sample: np.ndarray) -> np.ndarray:
    """Each column's share of the rows (draws) in which it is the largest."""
    return np.bincount(np.argmax(sample, axis=1), minlength=sample.shape[1]) / sample.shape[0]


def _draws(mean: np.ndarray, cov: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n joint draws (n x lists) of a Gaussian whose covariance may be singular."""
    values, vectors = np.linalg.eigh((cov + cov.T) / 2)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    return mean + z @ root.T


def answer(
    evidence: Sequence[Evidence],
    untried: Sequence[Hierarchy] = (),
    *,
    validation_images: int | None = None,
    capacity: Callable[[Hierarchy], float] | None = None,
    level: float = SET_LEVEL,
    draws: int = DRAWS,
    seed: int = 0,
    unread: Collection[Hierarchy] = (),
) -> Answer:
    """The answer from what is known of each list (`evidence`) and the feasible lists never trained (`untried`).

    `unread`: lists among `untried` that the search stopped at a step too early for `extrapolate` to read (fewer
    than MIN_CURVES complete curves through it). The model weighs them as never trained; their status says what
    happened ("stopped too early").

    `validation_images`: the size of the validation split the accuracies are measured on. A run's accuracy varies
    over seeds at least by the binomial sd of that many images (the split is drawn anew with each seed), which
    bounds the seed sd from below: without repeated runs, single runs alone cannot tell seed noise from true
    differences between lists, and a model left free would believe them all.

    `capacity`: a list's size (e.g. its parameter count). Its logarithm enters the model's trend with a slope the
    data decide (none where every list has the same size), so that strength is shared along size as well as along
    unit counts: where accuracy follows capacity, the model learns it from the lists trained; where it does not,
    the slope stays near zero."""
    with threadpool_limits(limits=1, user_api="blas"):  # see _surrogate: numpy's BLAS threads stall training
        return _answer(evidence, untried, validation_images, capacity, level, draws, seed, frozenset(unread))


def binomial_variance(accuracy: float, images: int | None) -> float:
    """The variance of an accuracy measured on `images` images: p (1 - p) / n (0 when unknown)."""
    if not images or images <= 0:
        return 0.0
    p = min(max(accuracy, 0.0), 1.0)
    return p * (1 - p) / images


def _basis(lists: Sequence[Hierarchy], capacity: Callable[[Hierarchy], float] | None, known: int) -> np.ndarray:
    """The trend's columns for `lists`: a constant, and the standardised log capacity where it varies among the
    first `known` lists (those with evidence)."""
    ones = np.ones((len(lists), 1))
    if capacity is None or known < 3:
        return ones
    z = np.log(np.asarray([max(float(capacity(h)), 1e-12) for h in lists]))
    sd = float(z[:known].std())
    if sd < 1e-9:
        return ones
    return np.column_stack([ones, (z - float(z[:known].mean())) / sd])


def _answer(
    evidence: Sequence[Evidence],
    untried: Sequence[Hierarchy],
    images: int | None,
    capacity: Callable[[Hierarchy], float] | None,
    level: float,
    draws: int,
    seed: int,
    unread: frozenset[Hierarchy] = frozenset(),
) -> Answer:
    known = [e for e in evidence if e.runs or e.partial is not None]
    if not known:
        return Answer((), None, (), level, math.nan, 0, math.nan)
    seen = {e.hierarchy for e in known}
    pool = [h for h in dict.fromkeys(untried) if h not in seen]
    every = [e.hierarchy for e in known] + pool
    basis_all = _basis(every, capacity, len(known))
    x = np.asarray([e.hierarchy for e in known], dtype=float)
    counts = np.asarray([max(len(e.runs), 1) for e in known], dtype=float)
    y = np.asarray([np.mean(list(e.runs.values())) if e.runs else e.partial[0] for e in known])  # type: ignore[index]
    extra = np.asarray([0.0 if e.runs else e.partial[1] for e in known])  # type: ignore[index]
    squares, df = within_squares(known)
    floor = binomial_variance(float(y.mean()), images)
    if len(known) == 1:
        nv = max(squares / df if df else 0.0, floor)
        posteriors = [(1.0, _Posterior(x, np.ones((1, 1)), y, np.asarray([nv + 1e-12]), _Fit(0.0, 1.0, nv)))]
        basis_all = np.ones((len(every), 1))
    else:
        basis = basis_all[: len(known)]
        if basis.shape[1] > len(known) - 1:
            basis_all = basis_all[:, :1]
            basis = basis_all[: len(known)]
        posteriors = _fit(x, basis, y, counts, extra, (squares, df), floor)
    if pool:  # the untried lists worth drawing: the highest posterior upper bounds
        mu_u, cov_u = _mixture(posteriors, np.asarray(pool, dtype=float), basis_all[len(known) :])
        upper = mu_u + 2 * np.sqrt(np.clip(np.diag(cov_u), 0.0, None))
        keep = sorted(np.argsort(-upper, kind="stable")[:UNTRIED])
        pool = [pool[i] for i in keep]
        basis_all = np.vstack([basis_all[: len(known)], basis_all[len(known) :][keep]])
    lists = [e.hierarchy for e in known] + pool
    mu, cov = _mixture(posteriors, np.asarray(lists, dtype=float), basis_all)
    sample = _draws(mu, cov, draws, seed)
    winners = _wins(sample)
    sd_post = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    status = ["complete" if e.runs else "stopped early" for e in known]
    status += ["stopped too early" if h in unread else "not trained" for h in pool]
    raws = [float(np.mean(list(e.runs.values()))) if e.runs else None for e in known] + [None] * len(pool)
    runs = [len(e.runs) for e in known] + [0] * len(pool)
    beliefs = [
        Belief(h, runs[i], raws[i], float(mu[i]), float(sd_post[i]), float(winners[i]), status[i])
        for i, h in enumerate(lists)
    ]
    order = sorted(range(len(lists)), key=lambda i: (-mu[i], -runs[i], lists[i]))
    complete = [i for i in order if status[i] == "complete"]
    named_i = complete[0] if complete else None
    best_set, mass = [], 0.0
    for i in sorted(range(len(lists)), key=lambda i: (-winners[i], -mu[i], lists[i])):
        if mass >= level - 1e-12:
            break
        best_set.append(lists[i])
        mass += float(winners[i])
    if named_i is not None and lists[named_i] not in best_set:  # the list the answer names is always in its set
        best_set.append(lists[named_i])
    regret = float(np.mean(sample.max(axis=1) - sample[:, named_i])) if named_i is not None else math.nan
    return Answer(
        tuple(beliefs[i] for i in order),
        lists[named_i] if named_i is not None else None,
        tuple(best_set),
        level,
        math.sqrt(sum(w * p.fit.noise for w, p in posteriors)),
        df,
        regret,
        (tuple(lists), mu, cov),
    )


@dataclass(frozen=True)
class Round:
    """One round of racing: the lists to train with one more seed, or why racing stops."""

    lists: tuple[Hierarchy, ...]  # empty: stop
    reason: str = ""  # why it stops ("" while it goes on)


def round_sizes(first: int, runs: int) -> list[int]:
    """The most lists each round may train: `first`, then half as many (at least 2) each round, while `runs` last
    (a round of fewer than 2 lists compares nothing and is not run)."""
    sizes, n, left = [], first, runs
    while min(n, left) >= 2:
        sizes.append(min(n, left))
        left -= sizes[-1]
        n = max(2, math.ceil(n / 2))
    return sizes


def race_round(current: Answer, index: int, first: int, runs: int) -> Round:
    """Round `index` (0-based) of racing with at most `first` lists in the first round and `runs` runs in all,
    decided from `current`, the answer on every run of the rounds before it."""
    sizes = round_sizes(first, runs)
    if index >= len(sizes):
        return Round((), f"its rounds are done: {sum(sizes)} runs of the {runs} allowed (a round needs 2 lists)")
    complete = [b for b in current.beliefs if b.status == "complete"]
    by_chance = sorted(complete, key=lambda b: (-b.p_best, -b.mean, b.hierarchy))
    if index == 0:
        chosen = by_chance[: sizes[0]]
        return Round(tuple(b.hierarchy for b in chosen)) if len(chosen) >= 2 else Round((), "fewer than 2 lists")
    in_set = [b for b in by_chance if b.hierarchy in current.best_set]
    if current.decided and in_set:
        return Round((), f"decided: the model's {current.level:.0%} set holds {in_set[0].hierarchy} alone")
    if len(in_set) < 2:
        return Round(
            (),
            "no two trained lists are left in the set (what remains is doubt about lists the search did not "
            "complete; a longer search, not more seeds, would settle it)",
        )
    return Round(tuple(b.hierarchy for b in in_set[: sizes[index]]))


__all__ = [
    "DRAWS",
    "SET_LEVEL",
    "Answer",
    "Belief",
    "Evidence",
    "Round",
    "answer",
    "binomial_variance",
    "extrapolate",
    "within_squares",
    "race_round",
    "round_sizes",
]
