"""The search's answer: which lists rank first, and how sure that is.

A search trains every candidate with one seed, so its best value is partly that seed's luck. Confirmation (run by
`_study.confirm`) trains the top lists again with further seeds into the derived study NAME-confirm, in the same storage
(optuna-dashboard shows it; the search study, its sampler and its pruner never see it). Reading both:

- a *confirmed* list has its search run plus one or more confirmation runs; it is ranked by the mean over its
  seeds, with a t interval;
- confirmed lists rank above the lists the search alone ran (whose single value is not comparable to a mean that
  has regressed from its lucky first draw), which keep the search's order;
- the winner and the runner-up are compared by a paired t-test over the seeds both were trained with.

The order itself is the answer's (`study_answer`, module `_answer.model`): the complete lists by the posterior mean of a
model that shares strength across lists and reads every run, with the set that holds the best list at 95 %, the
seed sd measured in the study and the expected regret of the named list; the measured means stay beside it.
`top_trials` is the one ranking the summary, `lwl-report` and `lwl-export --best` use.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from lwl.models import complexity

from .._storage import optuna_private as private
from .._storage.attributes import DERIVED_ATTR, VALIDATION_ATTR, StudyError, hierarchy_of, read_settings, read_trial
from .._storage.backends import study_exists
from .model import Answer, Evidence, answer, extrapolate
from .stats import Estimate, PairedTest, estimate, paired_t_test

UNTRIED = 2000  # lists never trained that the answer weighs at most (evenly spaced in enumeration order)
ALPHA = 0.05  # the winner is "distinguishable" from the runner-up when the paired test's p-value is below this


def confirm_study_name(study_name: str) -> str:
    return f"{study_name}-confirm"


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]


def search_ranked(study: optuna.Study) -> list[FrozenTrial]:
    """The search study's complete trials by their value; ties go to the smaller network, then the earlier trial."""

    def rank(t: FrozenTrial) -> tuple[float, float, int]:
        params = read_trial(t).params
        return (-float(t.value or 0.0), math.inf if params is None else params, t.number)

    return sorted(complete_trials(study), key=rank)


def confirm_study(study: optuna.Study) -> optuna.Study | None:
    """The study's NAME-confirm study, if it exists and belongs to it; never creates one."""
    storage = private.storage_of(study)
    name = confirm_study_name(study.study_name)
    if not study_exists(storage, name):
        return None
    derived = optuna.load_study(study_name=name, storage=storage)
    return derived if derived.user_attrs.get(DERIVED_ATTR) == study.study_name else None


def study_seed(study: optuna.Study) -> int | None:
    """The seed the search trained every candidate with (its settings' recipe seed); None for a study without
    readable settings."""
    try:
        return read_settings(study.study_name, study.user_attrs).recipe.seed
    except StudyError:
        return None


def confirmation_runs(study: optuna.Study) -> dict[int, dict[int, float]]:
    """Search trial number -> {seed: accuracy} of its complete confirmation runs (the first run of a seed wins)."""
    derived = confirm_study(study)
    runs: dict[int, dict[int, float]] = {}
    if derived is None:
        return runs
    for t in sorted(complete_trials(derived), key=lambda t: t.number):
        r = read_trial(t)
        if r.confirms is None or r.seed is None:
            continue
        runs.setdefault(int(r.confirms), {}).setdefault(int(r.seed), float(t.value or 0.0))
    return runs


@dataclass(frozen=True)
class Confirmed:
    """A list the search ran and confirmation trained again with other seeds."""

    trial: FrozenTrial  # the search trial
    values: dict[int, float]  # seed -> validation accuracy; the search's own seed included
    estimate: Estimate  # mean over the seeds, with its interval

    @property
    def label(self) -> str:
        return read_trial(self.trial).label

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted(self.values))


@dataclass(frozen=True)
class Verdict:
    """Whether the winner is distinguishable from the runner-up over the seeds both trained with."""

    winner: Confirmed
    runner_up: Confirmed
    test: PairedTest

    @property
    def distinguishable(self) -> bool:
        return not math.isnan(self.test.p_value) and self.test.p_value < ALPHA and self.test.difference > 0

    def text(self) -> str:
        a, b = self.winner.label, self.runner_up.label
        if self.test.pairs < 2 or math.isnan(self.test.p_value):
            return f"{a} vs {b}: {self.test.text()}; train more seeds (--confirm-seeds) to tell them apart"
        if self.distinguishable:
            return f"{a} beats {b}: {self.test.text()}, below {ALPHA:g}: distinguishable"
        return (
            f"{a} is not distinguishable from {b}: {self.test.text()}, not below {ALPHA:g}; either is a sound choice "
            "(more seeds, --confirm-seeds, may tell them apart)"
        )


def confirmed(study: optuna.Study) -> list[Confirmed]:
    """The confirmed lists, best mean first (ties: the smaller network, then the earlier trial)."""
    runs = confirmation_runs(study)
    if not runs:
        return []
    seed = study_seed(study)
    out = []
    for trial in complete_trials(study):
        extra = runs.get(trial.number)
        if not extra:
            continue
        values = dict(extra)
        if seed is not None:
            values[seed] = float(trial.value or 0.0)
        out.append(Confirmed(trial, values, estimate([values[s] for s in sorted(values)])))

    def rank(c: Confirmed) -> tuple[float, float, int]:
        params = read_trial(c.trial).params
        return (-c.estimate.mean, math.inf if params is None else params, c.trial.number)

    return sorted(out, key=rank)


def verdict(ranked: Sequence[Confirmed]) -> Verdict | None:
    """The paired test of the first two confirmed lists, on the seeds both have; None with fewer than two."""
    if len(ranked) < 2:
        return None
    a, b = ranked[0], ranked[1]
    shared = sorted(set(a.values) & set(b.values))
    return Verdict(a, b, paired_t_test([a.values[s] for s in shared], [b.values[s] for s in shared]))


def first_complete(study: optuna.Study, stages: int | None) -> dict[tuple[int, ...], FrozenTrial]:
    """Each list's first complete search trial (by number): the one that stands for the list in the answer, in
    `top_trials` and as the trial its confirmation runs confirm."""
    out: dict[tuple[int, ...], FrozenTrial] = {}
    for t in sorted(complete_trials(study), key=lambda t: t.number):
        h = hierarchy_of(t, stages)
        if h:
            out.setdefault(h, t)
    return out


def study_answer(study: optuna.Study, seeds: Collection[int] | None = None) -> Answer | None:
    """The study's answer (`lwl.search.answer`) from its search trials and confirmation runs; `seeds`: only the
    confirmation runs of these seeds (racing decides a round from the rounds before it). None for a study without
    readable settings or without a complete trial."""
    try:
        settings = read_settings(study.study_name, study.user_attrs)
    except StudyError:
        return None
    stages, base = settings.space.stages, settings.recipe.seed
    first = first_complete(study, stages)
    of_number = {t.number: h for h, t in first.items()}
    if not first:
        return None
    runs: dict[tuple[int, ...], dict[int, float]] = {h: {base: float(t.value or 0.0)} for h, t in first.items()}
    for number, by_seed in confirmation_runs(study).items():
        if number not in of_number:
            continue
        h = of_number[number]
        for seed, value in by_seed.items():
            if seeds is None or seed in seeds:
                runs[h].setdefault(seed, value)
    evidence = {h: Evidence(h, v) for h, v in runs.items()}
    stopped: dict[tuple[int, ...], tuple[int, float]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
        h = hierarchy_of(t, stages)
        if h and h not in first and t.intermediate_values:
            step = max(t.intermediate_values)
            stopped[h] = (step, float(t.intermediate_values[step]))
    curves = [dict(t.intermediate_values) for t in first.values()]
    for h, guess in extrapolate(stopped, curves).items():
        evidence[h] = Evidence(h, partial=guess)
    unread = [h for h in stopped if h not in evidence]  # stopped before MIN_CURVES complete curves passed that step
    untried = [h for h in settings.space.lists() if h not in evidence and h not in stopped]
    if len(untried) > UNTRIED:
        untried = [untried[round(i * (len(untried) - 1) / (UNTRIED - 1))] for i in range(UNTRIED)]
    images = study.user_attrs.get(VALIDATION_ATTR)

    def params(h: tuple[int, ...]) -> float:  # the deployed network's size: arithmetic on its plan
        return float(complexity(settings.schedule(h), settings.recipe.head).params)

    return answer(
        list(evidence.values()),
        [*unread, *untried],
        validation_images=images if isinstance(images, int) else None,
        capacity=params,
        unread=unread,
    )


def top_trials(study: optuna.Study, k: int = 5, judged: Answer | None = None) -> list[FrozenTrial]:
    """The k first lists of the study's answer: the complete lists by the answer's posterior mean (`judged`: the
    study's answer, when the caller has it already); for a study the answer cannot read, the search's order."""
    judged = study_answer(study) if judged is None else judged
    ranked = search_ranked(study)
    if judged is None:
        return ranked[:k]
    of_list = first_complete(study, read_settings(study.study_name, study.user_attrs).space.stages)
    return [of_list[b.hierarchy] for b in judged.beliefs if b.status == "complete" and b.hierarchy in of_list][:k]


__all__ = [
    "ALPHA",
    "Confirmed",
    "Verdict",
    "complete_trials",
    "confirm_study",
    "confirm_study_name",
    "confirmation_runs",
    "confirmed",
    "first_complete",
    "search_ranked",
    "study_answer",
    "study_seed",
    "top_trials",
    "verdict",
]
