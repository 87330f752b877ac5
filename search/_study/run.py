"""Running a study: create or load it, and the one loop every trial goes through until `--trials` (ask a group of
`--batch` candidates, a group of one by default; train it; tell each its result); one trial's own life is in
`trial`, the pruners in `_pruning.pruners`.

Over 400 lines (about 590): the stop rule that keeps `--trials` exact under any timing (waiting for other workers'
running trials, failing lost ones) sits beside the loop; the loop and the training of a group are the next thing to
move out.

The Optuna storage is the single source of truth: the count of finished trials, the lists already evaluated and the
study's settings are all read from it, so a rerun, a second worker or a second machine continue the same study.
"""

from __future__ import annotations

import contextlib
import signal
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from lwl.models import Progress, RunResult, Schedule, TrainerState, TrainingError, complexity

from .._answer.ranking import confirm_study_name
from .._errors import SpaceError, StorageError
from .._export.artifacts import ConfigArtifacts
from .._pruning.paused import Paused, PausedStore
from .._pruning.pruners import make_pruner
from .._sampling.costs import COST_NAMES, CostModel
from .._sampling.pareto import pareto_study_name, publish_pareto
from .._sampling.sampler import FeasibleSampler, SpaceExhausted, enqueue_hierarchy, remaining
from .._space.feasible import SearchSpace, paper_baselines
from .._space.settings import StudySettings, check_same_settings
from .._storage import optuna_private as private
from .._storage.attributes import (
    DERIVED_ATTR,
    FEASIBLE_ATTR,
    INTERMEDIATE_ATTR,
    OBJECTIVE_ATTR,
    SETTINGS_ATTR,
    STORAGE_ATTR,
    StudyError,
    name_metrics,
    read_settings,
    read_trial,
    write,
)
from .._storage.backends import GRACE_BEATS, mask_url, open_storage, study_exists
from .trial import FINISHED, NOT_COUNTED, Display, Objective, OutOfMemory, fail_lost_workers, running_ahead

if TYPE_CHECKING:  # torch's: imported where they train (`train_group`), as in `trial`
    from lwl.models import DataSplits, PrefixStore

Member = tuple[optuna.Trial, tuple[int, ...], Schedule, Callable[[Progress], bool]]  # a started candidate of a group


@dataclass
class SearchOutcome:
    study: optuna.Study
    storage_url: str  # masked
    finished: int  # COMPLETE + PRUNED trials in the study at the end
    ran: int  # trials this run started
    stop_reason: str
    feasible: int
    enqueued: list[tuple[int, ...]] = field(default_factory=list)
    held: tuple[int, ...] = ()  # trials still RUNNING (no heartbeat to tell whether alive) that left the count short


def prepare_study(
    settings: StudySettings,
    storage_url: str,
    study_name: str,
    *,
    sampler: str,
    pruner: str,
    seed: int,
    pruner_startup: int = 5,
    heartbeat_seconds: int = 30,
    revisit: bool = True,
    device_type: str = "cpu",
) -> optuna.Study:
    """Create or load the study, refusing other settings before anything is written.

    With `revisit`, pruned lists are trained again to the end once every list has been tried (FeasibleSampler).
    `device_type` (cpu, cuda, mps) is what this run trains on: it tells what a study made before precisions were
    a setting trained in (see `check_same_settings`).
    """
    space = settings.space
    space.check_nonempty()
    costs = CostModel.of(settings) if settings.costs else None
    storage = open_storage(storage_url, heartbeat_seconds=heartbeat_seconds)
    existed = study_exists(storage, study_name)
    refuse_foreign(storage, study_name)
    if existed:
        study = optuna.load_study(
            study_name=study_name,
            storage=storage,
            sampler=FeasibleSampler(space, sampler, seed, revisit=revisit, costs=costs),
            pruner=make_pruner(pruner, settings, pruner_startup),
        )
        if study.direction != optuna.study.StudyDirection.MAXIMIZE or len(study.directions) != 1:
            raise StorageError(
                f"study {study_name!r} exists but is not a single-objective maximisation: choose another --study-name"
            )
        check_same_settings(study_name, study.user_attrs.get(SETTINGS_ATTR), settings, device_type)
    else:
        sampler_obj = FeasibleSampler(space, sampler, seed, revisit=revisit, costs=costs)
        pruner_obj = make_pruner(pruner, settings, pruner_startup)
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            direction="maximize",
            sampler=sampler_obj,
            pruner=pruner_obj,
            load_if_exists=True,
        )
    stored = study.user_attrs.get(SETTINGS_ATTR)
    if stored is None:
        study.set_user_attr(SETTINGS_ATTR, settings.to_json())
        study.set_user_attr(FEASIBLE_ATTR, len(space))
        study.set_user_attr(OBJECTIVE_ATTR, objective_text(settings, study_name))
        study.set_user_attr(
            INTERMEDIATE_ATTR,
            "output accuracy per epoch"
            if settings.recipe.mode == "simultaneous"
            else "accuracy of the newest unit, per unit",
        )
        # Workers started at once each find no settings and write theirs; the last write stands, and whoever wrote
        # other settings than it meets them now, before anything else is written.
        check_same_settings(study_name, study.user_attrs.get(SETTINGS_ATTR), settings, device_type)
    else:  # a concurrent worker created it between our check and our create
        check_same_settings(study_name, stored, settings, device_type)
    study.set_user_attr(STORAGE_ATTR, mask_url(storage_url))
    name_metrics(study)  # optuna-dashboard shows "validation accuracy", not "Objective 0"
    return study


def objective_text(settings: StudySettings, study_name: str) -> str:
    """The study's objective in words, as optuna-dashboard shows it on the study's page."""
    text = "validation accuracy of the output classifier"
    if settings.costs:
        against = ", ".join(COST_NAMES[c] for c in settings.costs)
        text += f", traded against {against}: the front is the study {pareto_study_name(study_name)!r}"
    return text


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a worker like Ctrl-C: the running trial is failed as 'interrupted', the study stays consistent."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


LARGEST_MAX_LISTS = 20_000  # larger spaces skip the largest-network baseline (its search counts every list's size)


def largest_baseline(settings: StudySettings) -> tuple[int, ...] | None:
    """The feasible list with the most parameters (ties: more FLOPs, then the first in the space's order), or None
    where every list has the same size or the space holds more than `LARGEST_MAX_LISTS` lists.

    Enqueued beside the paper's lists: where size differs, "take the largest network" is a zero-cost rule that the
    benchmark found within noise of the best list (benchmarks/README.md, "answer_replay.py"); a search that trains
    it lets the answer's capacity trend weigh it against the lists it finds, at the cost of one trial."""
    lists = settings.space.lists() if len(settings.space) <= LARGEST_MAX_LISTS else ()
    sizes = [complexity(settings.schedule(h), settings.recipe.head) for h in lists]
    if len({c.params for c in sizes}) < 2:
        return None
    first = max(range(len(lists)), key=lambda i: (sizes[i].params, sizes[i].flops, -i))
    return lists[first]


def enqueue_lists(
    study: optuna.Study, settings: StudySettings, enqueue: Sequence[Sequence[int]] = (), paper: bool = True
) -> list[tuple[int, ...]]:
    """Enqueue the baselines (the paper's feasible schedules, then the largest network: `largest_baseline`; none
    without `paper`) and the user's lists, skipping any the study already holds. A trial's `enqueued` attribute says
    why it was queued: "paper", "largest" or "user"."""
    space = settings.space
    why: dict[tuple[int, ...], str] = {}
    if paper:
        why |= {h: "paper" for h in paper_baselines(space)}
        largest = largest_baseline(settings)
        if largest is not None:
            why.setdefault(largest, "largest")
    why |= {tuple(h): "user" for h in enqueue}
    return [h for h, reason in why.items() if enqueue_hierarchy(study, space, h, user_attrs={"enqueued": reason})]


def exhausted_reason(study: optuna.Study, space: SearchSpace) -> str:
    """Why a study stopped for want of lists, saying how many pruned lists had their second chance."""
    records = [read_trial(t) for t in study.get_trials(deepcopy=False, states=FINISHED)]
    revisits = sum(r.revisit_of is not None for r in records)
    continued = sum(r.resumed_from is not None for r in records)
    again = f", {revisits} pruned ones trained again to the end" if revisits else ""
    if continued:
        again += f" ({continued} continued from where they were paused)"
    return f"every feasible list ({len(space)}) has been evaluated{again}"


def refuse_foreign(storage: BaseStorage, study_name: str, wait: float = 10.0) -> None:
    """Refuse, before anything is written, a study of this name (or its derived NAME-pareto, NAME-confirm) that another
    program made: lwl-search never changes a study it did not create.

    A study another lwl-search worker is creating at this moment gets its settings within moments, so a study
    without settings and without trials is given `wait` seconds; one with trials but no settings is foreign at once.
    """
    for derived in (pareto_study_name(study_name), confirm_study_name(study_name)):
        if study_exists(storage, derived):
            owner = storage.get_study_user_attrs(storage.get_study_id_from_name(derived)).get(DERIVED_ATTR)
            if owner != study_name:
                raise StudyError(
                    f"study {derived!r} exists in this storage and was not derived from {study_name!r} by "
                    "lwl-search: choose another --study-name (lwl-search never changes another's study)"
                )
    if not study_exists(storage, study_name):
        return
    study_id = storage.get_study_id_from_name(study_name)
    deadline = time.monotonic() + wait
    while True:
        attrs = storage.get_study_user_attrs(study_id)
        if SETTINGS_ATTR in attrs:
            return
        if DERIVED_ATTR in attrs:
            read_settings(study_name, attrs)  # raises: it is the derived Pareto study of another
        if storage.get_all_trials(study_id, deepcopy=False) or time.monotonic() > deadline:
            raise StudyError(
                f"study {study_name!r} in this storage was not made by lwl-search (no {SETTINGS_ATTR!r} "
                "attribute): choose another --study-name (lwl-search never changes another's study)"
            )
        time.sleep(0.2)


@dataclass
class _RunState:
    """What one run of `run_search` counts: trials it ended, of which failed, and why it stopped."""

    reason: str
    ran: int = 0
    failed: int = 0  # not counting bookkeeping failures (surplus, duplicate)
    held: list[int] = field(default_factory=list)  # others' RUNNING trials the decision to stop waits on
    short: bool = False  # stopped with fewer than --trials finished because `held` may be dead (no heartbeat)
    timeout: float | None = None


def run_search(
    settings: StudySettings,
    data: DataSplits,
    study: optuna.Study,
    *,
    trials: int,
    timeout: float | None = None,
    enqueue: Sequence[Sequence[int]] = (),
    paper: bool = True,
    device: str = "auto",
    display: Display | None = None,
    on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    artifacts: ConfigArtifacts | None = None,
    prefix_store: PrefixStore | None = None,
    paused: PausedStore | None = None,
    batch: int = 1,
    on_wait: Callable[[str], None] | None = None,
) -> SearchOutcome:
    """Run trials until the study holds `trials` finished ones, the space is exhausted, or time runs out.

    When other workers' running trials would fill the count, it waits for them where heartbeats tell a dead worker
    from a live one (`on_wait` hears which trials), and otherwise stops naming them (`SearchOutcome.held`).

    With `artifacts`, every complete trial carries its exported training config as an Optuna artifact. With
    `prefix_store` (sequential mode), candidates start from the deepest frozen prefix an earlier one trained. With
    `batch` > 1 (simultaneous mode), `batch` candidates at a time train together through their shared units. With
    `paused`, a pruned candidate's training state is kept (out of its `--batch` trie too) and a revisit of its list
    continues it, alone.
    """
    space = settings.space
    enqueued = enqueue_lists(study, settings, enqueue, paper)
    objective = Objective(
        settings,
        data,
        device,
        display,
        trials_target=trials,
        artifacts=artifacts,
        prefix_store=prefix_store,
        paused=paused,
    )
    state = _RunState(reason="", timeout=timeout)
    t0 = time.monotonic()

    def left() -> float | None:
        return None if timeout is None else max(0.0, timeout - (time.monotonic() - t0))

    def finished(study: optuna.Study, trial: FrozenTrial) -> bool:
        """Bookkeeping after a trial ends; True when the search should stop (`_next_step` then says why)."""
        state.ran += 1
        if trial.state == TrialState.FAIL and read_trial(trial).fail_reason not in NOT_COUNTED:
            state.failed += 1
        if trial.state == TrialState.COMPLETE:
            publish_pareto(study)
        best = None
        try:
            best = study.best_value
        except ValueError:
            pass
        if display is not None:
            display.trial_finished(trial, best)
        if on_trial is not None:
            on_trial(study, trial)
        fail_lost_workers(study)  # before Optuna's own check at the next trial start: each gets its reason
        if state.failed > max(3, trials):
            state.reason = f"{state.failed} trials failed in this run"
            return True
        # The count is full, or would be once other workers' running trials end, or nothing is left to propose.
        return running_ahead(study) >= trials or exhausted(study, space)

    announced: tuple[int, ...] = ()
    with _sigterm_as_interrupt():
        while not state.reason:
            step = _next_step(study, space, trials, state, left())
            if step == "train":
                _train_trials(study, objective, batch, trials, left(), finished)
            elif step == "wait":
                if on_wait is not None and tuple(state.held) != announced:
                    announced = tuple(state.held)
                    on_wait(_waiting_text(study, state.held, trials))
                time.sleep(_poll_seconds(study))
    return SearchOutcome(
        study,
        mask_url(str(study.user_attrs.get(STORAGE_ATTR, ""))),
        count_finished(study),
        state.ran,
        state.reason,
        len(space),
        enqueued,
        held=tuple(state.held) if state.short else (),
    )


def exhausted(study: optuna.Study, space: SearchSpace) -> bool:
    """Nothing left to propose and nothing queued."""
    return not remaining(study, space) and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,))


def _next_step(study: optuna.Study, space: SearchSpace, trials: int, state: _RunState, left: float | None) -> str:
    """'train', 'wait', or 'stop' with `state.reason` set: the count, the stop reason and the exit status are the
    study's, whatever the timing.

    Running trials of others can fill the count, or hold the last lists: they may be alive (another worker) or
    dead (a killed one). With heartbeats (PostgreSQL, MySQL) this run waits: an alive trial ends, a dead one is
    failed after the grace period (`fail_lost_workers`) and its list queued again, which this run then trains.
    Without heartbeats (journal file, Redis) nobody can tell, so the run stops, naming the trials that hold the
    count (`state.short`, a non-zero exit).
    """
    fail_lost_workers(study)
    done = count_finished(study)
    if done >= trials:
        state.reason = (
            f"reached --trials {trials}"
            if state.ran
            else f"the study already holds {done} finished trials (--trials {trials})"
        )
        return "stop"
    held = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    used_up = exhausted(study, space)
    if not held and used_up:
        state.reason = exhausted_reason(study, space)
        return "stop"
    if left is not None and left <= 0:
        state.reason = f"--timeout {state.timeout:g}s reached"
        return "stop"
    if not held or (done + len(held) < trials and not used_up):
        return "train"
    state.held = held
    if private.heartbeat_enabled(study):
        return "wait"
    state.short = True
    state.reason = held_text(held, done, trials)
    return "stop"


def held_text(held: Sequence[int], done: int, trials: int) -> str:
    which = f"trial {held[0]} is" if len(held) == 1 else f"trials {', '.join(map(str, held))} are"
    return (
        f"{which} still RUNNING, held by another worker or one that was killed; {done} of {trials} trials "
        "finished: this storage has no heartbeat to tell, so run the same command again once they have ended, "
        "or fail a dead worker's trial by hand (README, Many workers)"
    )


def _waiting_text(study: optuna.Study, held: Sequence[int], trials: int) -> str:
    which = f"trial {held[0]}" if len(held) == 1 else f"trials {', '.join(map(str, held))}"
    interval = getattr(private.storage_of(study), "get_heartbeat_interval", lambda: None)() or 0
    return (
        f"waiting for {which} (RUNNING in another worker, or in a killed one that its heartbeat fails within "
        f"{GRACE_BEATS * interval} s) before --trials {trials} is decided"
    )


def _poll_seconds(study: optuna.Study) -> float:
    interval = getattr(private.storage_of(study), "get_heartbeat_interval", lambda: None)() or 2
    return min(2.0, max(0.2, interval / 2))


def _train_trials(
    study: optuna.Study,
    objective: Objective,
    batch: int,
    trials: int,
    timeout: float | None,
    finished: Callable[[optuna.Study, FrozenTrial], bool],
) -> None:
    """The one loop every search trial goes through: ask up to `batch` candidates (one at a time with `--batch 1`),
    train them, tell each its own result and hand it to `finished`, until `finished` says stop, the count is full
    or nothing is left to propose, or `timeout` runs out (checked before each group, as `study.optimize` does
    before each trial).

    Before each group, stale trials of killed workers are failed with their reason (`fail_lost_workers`), and
    every asked trial sends heartbeats until it is told. Every candidate reports to its own trial after every
    step, so the pruner judges the same values whether it trains alone or in a group; a pruned candidate is told
    at once (and paused, with a `PausedStore`).
    """
    space = objective.settings.space
    t0 = time.monotonic()
    with warnings.catch_warnings():  # ask/tell warn that heartbeats belong to optimize(); we send them (below)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        while timeout is None or time.monotonic() - t0 < timeout:
            fail_lost_workers(study)
            waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            k = min(batch, trials - running_ahead(study), len(remaining(study, space)) + waiting)
            if k <= 0 or _train_group_of(study, objective, k, batch > 1, finished):
                return


def _train_group_of(
    study: optuna.Study,
    objective: Objective,
    k: int,
    together: bool,
    finished: Callable[[optuna.Study, FrozenTrial], bool],
) -> bool:
    """Ask `k` trials and start each (`Objective.begin`); train them together through their shared units (a
    `--batch` group, `together`) or one by one; True when `finished` said stop.

    A trial that cannot start (a surplus, a duplicate, an infeasible list, a lost race for the last list) is
    failed with the reason `begin` recorded; a revisit that continues a paused state trains alone, at once (it
    cannot share a fresh trie's pass). Ctrl-C or an error before training fails every trial not yet told.
    """
    stop = False
    pending: list[optuna.Trial] = []  # asked, neither told nor handed on to a function that tells them
    group: list[Member] = []
    with contextlib.ExitStack() as beats:
        try:
            for _ in range(k):
                trial = study.ask()
                pending.append(trial)
                beats.enter_context(private.heartbeat(study, trial))
                try:
                    hierarchy, schedule = objective.begin(trial)
                except (TrainingError, SpaceError, SpaceExhausted):  # the reason is recorded; the study goes on
                    pending.remove(trial)
                    stop = finished(study, study.tell(trial, state=TrialState.FAIL)) or stop
                    continue
                resumed = objective.resumed(trial, hierarchy)
                if resumed is not None or not together:
                    pending.remove(trial)
                    stop = train_alone(study, objective, trial, hierarchy, schedule, finished, resumed) or stop
                    continue
                group.append(
                    (trial, hierarchy, schedule, objective.reporter(trial, pause=objective.paused is not None))
                )
        except BaseException as exc:
            for trial in pending:
                objective.failed(trial, exc)
                study.tell(trial, state=TrialState.FAIL)
            raise
        if group:
            stop = train_group(study, objective, group, finished) or stop
    return stop


def train_alone(
    study: optuna.Study,
    objective: Objective,
    trial: optuna.Trial,
    hierarchy: tuple[int, ...],
    schedule: Schedule,
    finished: Callable[[optuna.Study, FrozenTrial], bool],
    resumed: Paused | None = None,
) -> bool:
    """Train one started candidate alone (continuing `resumed`, a paused state), tell its trial the result (complete,
    pruned or failed) and hand it to `finished`; True when `finished` said stop. The caller sends its heartbeats.
    Confirmation uses it too (`confirm`)."""
    try:
        value = objective.run(trial, hierarchy, schedule, resumed)
    except optuna.TrialPruned:  # paused first where there is a store (`Objective.run`)
        return finished(study, study.tell(trial, state=TrialState.PRUNED))
    except TrainingError:  # recorded on the trial (diverged, out of memory): the study goes on
        return finished(study, study.tell(trial, state=TrialState.FAIL))
    except BaseException:  # recorded (interrupted, error): end the trial, then surface it
        study.tell(trial, state=TrialState.FAIL)
        raise
    return finished(study, study.tell(trial, value))


def train_group(
    study: optuna.Study,
    objective: Objective,
    group: list[Member],
    finished: Callable[[optuna.Study, FrozenTrial], bool],
) -> bool:
    """One pass of `train_together` over `group` (trial, list, schedule, progress hook); each result is told to its
    trial and handed to `finished`; True when `finished` said stop. The caller sends the trials' heartbeats.
    Confirmation uses it too (`confirm`)."""
    from lwl.models import train_together

    told: set[int] = set()
    stop = False
    numbers = [t.number for t, _, _, _ in group]

    def on_progress(i: int, p: Progress) -> bool:
        nonlocal stop
        trial = group[i][0]
        try:
            return group[i][3](p)  # True: pruned, to be paused (`on_stop` below)
        except optuna.TrialPruned:
            told.add(i)  # told now: the dashboard shows it, the pruner counts it
            stop = finished(study, study.tell(trial, state=TrialState.PRUNED)) or stop
            raise

    def on_stop(i: int, state: TrainerState) -> None:
        """A pruned candidate leaves the trie: keep its state for its revisit, then tell its trial."""
        nonlocal stop
        trial, hierarchy = group[i][0], group[i][1]
        if objective.paused is not None:
            objective.paused.pause(study.study_name, hierarchy, trial.number, state)
        told.add(i)
        stop = finished(study, study.tell(trial, state=TrialState.PRUNED)) or stop

    def untold() -> list[optuna.Trial]:
        return [t for i, (t, _, _, _) in enumerate(group) if i not in told]

    for trial, _, _, _ in group:
        write(trial, batch=numbers)
    try:
        outcome = objective.guarded(
            untold,
            lambda: train_together(
                [s for _, _, s, _ in group],
                objective.settings.recipe,
                objective.data,
                device=objective.device,
                on_progress=on_progress,
                on_stop=on_stop,
            ),
        )
    except OutOfMemory:  # recorded on every untold trial; the study goes on
        for trial in untold():
            stop = finished(study, study.tell(trial, state=TrialState.FAIL)) or stop
        return stop
    except BaseException:  # recorded on every untold trial (interrupted, error); end them, then surface it
        for trial in untold():
            study.tell(trial, state=TrialState.FAIL)
        raise
    for i, ((trial, hierarchy, _, _), result) in enumerate(zip(group, outcome.results)):
        if i in told:  # pruned during the pass: already finished
            continue
        write(trial, batch_unit_epochs=(outcome.unit_epochs, outcome.unit_epochs_alone))
        if isinstance(result, RunResult):
            frozen = study.tell(trial, objective.finish(trial, hierarchy, result))
        else:  # a candidate's own failure ends its trial; one that is not the candidate's is surfaced too
            objective.failed(trial, result)
            frozen = study.tell(trial, state=TrialState.FAIL)
            if not isinstance(result, TrainingError):
                raise result
        stop = finished(study, frozen) or stop
    return stop


__all__ = [
    "Display",
    "Objective",
    "SearchOutcome",
    "count_finished",
    "enqueue_lists",
    "exhausted",
    "exhausted_reason",
    "held_text",
    "largest_baseline",
    "prepare_study",
    "run_search",
    "train_alone",
    "train_group",
]
