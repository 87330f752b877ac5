"""Confirmation: after the search, its leading lists are trained again with further seeds, so that the answer rests
on more than one seed's luck (`_answer.ranking` reads what this writes).

Seeds are spent by racing (`lwl.search.race_round`): round r trains the lists still in contention with the seed
study seed + r + 1, as the answer computed from the rounds before it says: the K most probable best lists first,
then at most half as many each round, only lists still in the answer's set, until one list is left, no two
are, or the plan's K x S runs are spent. A study with --objectives confirms its front's lists, the most accurate
first, each with S more seeds (its answer is the front, not one list).

The runs are trials of the derived study NAME-confirm in the same storage: optuna-dashboard shows them (curves,
accuracies, each run's `seed` and the search trial it `confirms`), while the search study, its sampler's record of
taken lists and its pruner's statistics never see them. Each run trains exactly as a search trial does (the same
`Objective`, unpruned), with the recipe's seed and the validation split's seed set to the run's seed, as
`lwl-search --seed S` would train the list. A rerun of the same command trains only the runs still missing;
workers that confirm at once split the runs (a run's claim is a RUNNING trial; of two claims of one run the lower
trial number trains it).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial, TrialState

from .._answer.model import Round, race_round, round_sizes
from .._answer.ranking import confirm_study, confirm_study_name, first_complete, search_ranked, study_answer, study_seed
from .._sampling.pareto import pareto_front
from .._space.settings import StudySettings
from .._storage import optuna_private as private
from .._storage.attributes import (
    DERIVED_ATTR,
    METRIC_NAME,
    StoredTrial,
    hierarchy_of,
    name_metrics,
    read_settings,
    read_trial,
    write,
    write_failure,
)
from .run import train_alone, train_group
from .trial import LOST_WORKER, Display, Duplicate, Objective, fail_lost_workers

if TYPE_CHECKING:  # torch's: the data the runs train on
    from lwl.models import DataSplits

SEEDS = 2  # --confirm auto: every confirmed list is trained with 2 more seeds (3 in all) ...
AFFORD = 0.5  # ... and as many of the top lists as make the runs at most half of --trials ...
LISTS = 8  # ... at most 8 of them, and at least 2, else none (benchmarks/README.md, "Confirmation")
# More seeds than this per list is no plan: beyond 30 seeds a t interval is within 2 % of the normal's, and a plan of
# millions of runs used to end in a MemoryError after the search had trained (`--confirm-seeds 1000000`).
MAX_SEEDS = 100
ABOUT_ATTR = "about"  # on the confirm study: what its trials are, in words (optuna-dashboard shows it)


@dataclass(frozen=True)
class ConfirmPlan:
    """How many of the search's top lists to train again, and with how many further seeds each."""

    lists: int  # K: lists in racing's first round; 0 = no confirmation
    seeds: int  # S: the runs are at most K x S
    chosen_by_default: bool = False  # resolved from --confirm auto (the summary says so)

    @property
    def runs(self) -> int:
        return self.lists * self.seeds if self.lists else 0

    def describe(self) -> str:
        if not self.runs:
            return "off"
        return f"racing over at most {self.runs} runs, {self.lists} lists first"


def auto_plan(trials: int, seeds: int | None = None) -> ConfirmPlan:
    """--confirm auto: K = min(LISTS, AFFORD x trials / S) top lists with S more seeds each, so that confirmation
    costs at most AFFORD of what the search's --trials do; none when K < 2 (one list has nothing to be told apart
    from)."""
    s = seeds or SEEDS
    k = min(LISTS, int(AFFORD * trials) // s)
    return ConfirmPlan(k if k >= 2 else 0, s, chosen_by_default=True)


def confirm_seeds(base: int, n: int) -> tuple[int, ...]:
    """The seeds of the confirmation runs: the study's seed + 1 .. + n (wrapping below 2**32)."""
    return tuple((base + i) % 2**32 for i in range(1, n + 1))


def open_confirm_study(study: optuna.Study) -> optuna.Study:
    """Create or load NAME-confirm beside `study`, marked as derived from it."""
    name = confirm_study_name(study.study_name)
    derived = optuna.create_study(
        study_name=name,
        storage=private.storage_of(study),
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),  # never samples: each run is created with its list
        pruner=optuna.pruners.NopPruner(),  # a confirmation run is never pruned
        load_if_exists=True,
    )
    if DERIVED_ATTR not in derived.user_attrs:
        derived.set_user_attr(DERIVED_ATTR, study.study_name)
        derived.set_user_attr(
            ABOUT_ATTR,
            f"confirmation runs of the top lists of {study.study_name!r} with further seeds; each trial's user "
            "attribute 'confirms' is its list's trial number in the search study, 'seed' the seed it trained with",
        )
    name_metrics(derived, (METRIC_NAME,))
    return derived


def _held(derived: optuna.Study) -> set[tuple[int, int]]:
    """(search trial, seed) of every run complete or claimed (RUNNING). A killed worker's run that its heartbeat
    failed is retried by the storage as a WAITING copy, which nobody asks for: the run is trained again instead."""
    states = (TrialState.COMPLETE, TrialState.RUNNING)
    out = set()
    for t in derived.get_trials(deepcopy=False, states=states):
        r = read_trial(t)
        if r.confirms is not None and r.seed is not None:
            out.add((int(r.confirms), int(r.seed)))
    return out


def planned(study: optuna.Study, plan: ConfirmPlan, base_seed: int) -> list[tuple[FrozenTrial, int]]:
    """A study with --objectives: every (search trial, seed) its fixed plan asks for, by seed, then the front's
    lists first (the most accurate first), then the search's rank."""
    ranked = search_ranked(study)
    front = {t.number for t in pareto_front(study)}
    ranked = [t for t in ranked if t.number in front] + [t for t in ranked if t.number not in front]
    top = ranked[: plan.lists]
    return [(t, seed) for seed in confirm_seeds(base_seed, plan.seeds) for t in top] if plan.runs else []


def races(study: optuna.Study) -> bool:
    """Whether the study's confirmation races (one objective) rather than follows a fixed plan (a front)."""
    return not read_settings(study.study_name, study.user_attrs).costs


def _search_trials(study: optuna.Study) -> dict[tuple[int, ...], FrozenTrial]:
    """Each list's first complete search trial: the one its confirmation runs confirm."""
    return first_complete(study, read_settings(study.study_name, study.user_attrs).space.stages)


def racing_round(study: optuna.Study, plan: ConfirmPlan, index: int, base_seed: int) -> tuple[Round, int]:
    """Round `index` of racing and its seed, decided from the runs of the rounds before it only."""
    earlier = confirm_seeds(base_seed, index)
    seed = confirm_seeds(base_seed, index + 1)[-1]
    judged = study_answer(study, set(earlier))
    if judged is None:
        return Round((), "no complete trial"), seed
    return race_round(judged, index, plan.lists, plan.runs), seed


def racing_state(study: optuna.Study, plan: ConfirmPlan) -> tuple[int, str]:
    """(runs racing may still train, why it stopped): 0 and the reason once every round it decides on is held."""
    if not plan.runs:
        return 0, "off"
    base = study_seed(study) or 0
    derived = confirm_study(study)
    held = _held(derived) if derived is not None else set()
    trials = _search_trials(study)
    for index in range(len(round_sizes(plan.lists, plan.runs)) + 1):
        step, seed = racing_round(study, plan, index, base)
        if not step.lists:
            return 0, step.reason
        if any((trials[h].number, seed) not in held for h in step.lists if h in trials):
            return max(plan.runs - len(held), len(step.lists)), ""
    return 0, "its rounds are done"


def missing(study: optuna.Study, plan: ConfirmPlan) -> int:
    """How many runs the plan may still train (racing: at most; 0 when confirmation is finished)."""
    if races(study):
        return racing_state(study, plan)[0]
    wanted = planned(study, plan, study_seed(study) or 0)
    derived = confirm_study(study)
    held = _held(derived) if derived is not None else set()
    return sum((t.number, s) not in held for t, s in wanted)


@dataclass
class ConfirmOutcome:
    ran: int = 0  # runs this call completed
    failed: int = 0
    stopped: str = ""  # why it stopped before the end ("--timeout reached"), else ""
    reason: str = ""  # racing: why it ended (decided, the runs spent, ...)


def run_confirmation(
    settings: StudySettings,
    study: optuna.Study,
    plan: ConfirmPlan,
    data_for: Callable[[int], DataSplits],
    *,
    device: str = "auto",
    deadline: float | None = None,
    on_run: Callable[[FrozenTrial], None] | None = None,
    together: int | None = None,
    display: Display | None = None,
) -> ConfirmOutcome:
    """Train every run of `plan` that NAME-confirm does not hold yet; `data_for(seed)` gives the data split by
    that seed. Stops starting runs after `deadline` (time.monotonic()); `on_run` hears every finished run, `display`
    every run's start and every progress record (each epoch of a group) as the search's display does.

    Runs of one seed share their prefixes when the recipe trains together (simultaneous mode, a layer-wise loss):
    `together` None trains all of a seed's missing runs in one pass (`--batch auto`), K in groups of K, 1 alone.
    Exact: every run's weights and accuracies are those of training it alone (`train_together`).
    """
    base = settings.recipe.seed
    outcome = ConfirmOutcome()
    if not plan.runs:
        return outcome
    size = together if settings.recipe.trains_together else 1
    loaded: dict[int, DataSplits] = {}

    def data_of(seed: int) -> DataSplits:
        if seed not in loaded:
            loaded[seed] = data_for(seed)
        return loaded[seed]

    def train_seed(derived: optuna.Study, runs: list[FrozenTrial], seed: int) -> bool:
        step = len(runs) if size is None else max(1, size)
        for i in range(0, len(runs), step):
            if deadline is not None and time.monotonic() >= deadline:
                outcome.stopped = "--timeout reached"
                return False
            _run_group(settings, derived, runs[i : i + step], seed, data_of, device, on_run, outcome, display)
        return True

    with warnings.catch_warnings():  # tell() warns that heartbeats belong to optimize(); `private.heartbeat` sends them
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        if settings.costs:  # a front: its fixed plan
            wanted = planned(study, plan, base)
            if not wanted:
                return outcome
            derived = open_confirm_study(study)
            for seed in dict.fromkeys(s for _, s in wanted):
                if not train_seed(derived, [t for t, s in wanted if s == seed], seed):
                    return outcome
            return outcome
        derived = open_confirm_study(study)
        trials = _search_trials(study)
        for index in range(len(round_sizes(plan.lists, plan.runs)) + 1):
            if not _wait_for_earlier_rounds(derived, set(confirm_seeds(base, index)), deadline):
                outcome.stopped = "--timeout reached"
                return outcome
            step, seed = racing_round(study, plan, index, base)
            if not step.lists:
                outcome.reason = step.reason
                return outcome
            if not train_seed(derived, [trials[h] for h in step.lists if h in trials], seed):
                return outcome
    return outcome


def _wait_for_earlier_rounds(derived: optuna.Study, seeds: set[int], deadline: float | None) -> bool:
    """Wait until no run of `seeds` is running (another worker's round): a round is decided on whole rounds.
    False when the deadline passed first."""
    while True:
        # a killed worker's run (heartbeat storages) is failed with its reason and stops counting
        fail_lost_workers(derived, then="the run is trained again")
        running = [
            t for t in derived.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if read_trial(t).seed in seeds
        ]
        if not running:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(1.0)


def _run_group(
    settings: StudySettings,
    derived: optuna.Study,
    sources: list[FrozenTrial],
    seed: int,
    data_for: Callable[[int], DataSplits],
    device: str,
    on_run: Callable[[FrozenTrial], None] | None,
    outcome: ConfirmOutcome,
    display: Display | None = None,
) -> None:
    """Claim and train the runs of `sources` with `seed` that nobody holds: alone, or together in one pass."""
    # A killed worker's run (heartbeat storages) is failed with its reason and trained again below; a WAITING copy
    # that an earlier version's retry left is finished as failed, with its reason.
    fail_lost_workers(derived, then="the run is trained again")
    _fail_waiting(derived)
    held = _held(derived)
    sources = [t for t in sources if (t.number, seed) not in held]
    if not sources:
        return
    seeded = replace(settings, recipe=replace(settings.recipe, seed=seed))
    objective = Objective(seeded, data_for(seed), device, display)
    low, high = settings.space.param_range()
    names = settings.space.param_names()
    claims = []
    for source in sources:
        hierarchy = hierarchy_of(source, settings.space.stages)
        trial = private.running_trial(
            derived, dict(zip(names, hierarchy)), {n: IntDistribution(low, high) for n in names}
        )
        schedule = objective.describe(trial, hierarchy)
        write(trial, confirms=source.number, seed=seed)
        if _claimed_earlier(derived, trial.number, source.number, seed):
            write_failure(trial, Duplicate.reason, f"another run trains trial {source.number}'s list with seed {seed}")
            derived.tell(trial, state=TrialState.FAIL)
            continue
        claims.append((trial, hierarchy, schedule))
    for trial, hierarchy, schedule in claims:
        total = settings.recipe.epochs if settings.recipe.mode == "simultaneous" else schedule.units
        objective.display.trial_started(trial.number, hierarchy, total)

    def finished(_: optuna.Study, frozen: FrozenTrial) -> bool:
        if frozen.state == TrialState.COMPLETE:
            outcome.ran += 1
        else:
            outcome.failed += 1
        if on_run is not None:
            on_run(frozen)
        return False

    with contextlib.ExitStack() as beats:
        for trial, _, _ in claims:
            beats.enter_context(private.heartbeat(derived, trial))
        if len(claims) > 1:
            train_group(derived, objective, [(t, h, s, objective.reporter(t)) for t, h, s in claims], finished)
            return
        for trial, hierarchy, schedule in claims:
            train_alone(derived, objective, trial, hierarchy, schedule, finished)


def _fail_waiting(derived: optuna.Study) -> None:
    """Finish every WAITING confirmation run as failed: a retry copy of a lost run, which nothing ever trains (the
    run is trained again as a new trial); claimed first, so that two workers never both finish one."""
    storage = private.storage_of(derived)
    for t in derived.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        tid = private.trial_id(t)
        if not storage.set_trial_state_values(tid, state=TrialState.RUNNING):
            continue  # another worker claimed it
        write_failure(
            StoredTrial(storage, tid), LOST_WORKER, "a retry copy of a lost confirmation run: the run is trained again"
        )
        storage.set_trial_state_values(tid, state=TrialState.FAIL)


def _claimed_earlier(derived: optuna.Study, number: int, source: int, seed: int) -> bool:
    """Whether a lower-numbered run holds the same (search trial, seed): of two claims, the lower number trains."""
    states = (TrialState.COMPLETE, TrialState.RUNNING)
    for t in derived.get_trials(deepcopy=False, states=states):
        if t.number < number:
            r = read_trial(t)
            if r.confirms == source and r.seed == seed:
                return True
    return False


__all__ = [
    "AFFORD",
    "LISTS",
    "SEEDS",
    "ConfirmOutcome",
    "ConfirmPlan",
    "auto_plan",
    "confirm_seeds",
    "missing",
    "open_confirm_study",
    "planned",
    "racing_round",
    "racing_state",
    "races",
    "run_confirmation",
]
