"""One trial's life, the same whether it trains alone or in a `--batch` group (`run`'s one loop asks, trains and
tells every trial): start (the list the sampler chose, its costs recorded before anything trains), report (every
progress record becomes an intermediate value the pruner judges), finish (the results and the training config as
an artifact), or fail with a reason.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

import optuna
from optuna.trial import FrozenTrial, TrialState

from lwl.models import (
    Progress,
    ResumeError,
    RunResult,
    Schedule,
    TrainerState,
    TrainingError,
    complexity,
    interrupted,
    progress_from_dict,
)

from .._errors import SpaceError
from .._export.artifacts import ConfigArtifacts
from .._pruning.paused import Paused, PausedStore
from .._sampling.sampler import revisit_of, trial_hierarchy
from .._space.feasible import SearchSpace, paper_name
from .._space.limits import memory_estimate
from .._space.settings import StudySettings
from .._storage import optuna_private as private
from .._storage.attributes import StoredTrial, write, write_failure
from .._storage.backends import GRACE_BEATS

# Training needs torch, reading or describing a study does not: the engine's training names (lwl.models.train,
# check_state, resolve_device) and torch are imported where a trial trains, so that `import lwl.search` and every
# command's --help start without torch.
if TYPE_CHECKING:
    from lwl.models import DataSplits, PrefixStore

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
T = TypeVar("T")


class Display(Protocol):
    """What the loop tells whoever watches; the command provides bars or plain lines."""

    def trial_started(self, number: int, hierarchy: tuple[int, ...], total_steps: int) -> None: ...
    def progress(self, p: Progress) -> None: ...
    def trial_finished(self, trial: FrozenTrial, best: float | None) -> None: ...


class _Silent:
    def trial_started(self, number: int, hierarchy: tuple[int, ...], total_steps: int) -> None:
        pass

    def progress(self, p: Progress) -> None:
        pass

    def trial_finished(self, trial: FrozenTrial, best: float | None) -> None:
        pass


def _other_version(exc: ResumeError) -> bool:
    """A state written by another engine version or on another device type: not damage, just not continuable."""
    text = str(exc)
    return text.startswith("checkpoint format") or text.startswith("the checkpoint was written on")


def _cause(exc: ResumeError) -> str:
    text = str(exc).removeprefix("the checkpoint's ")
    return text.split(": it cannot be continued")[0][:160]


class OutOfMemory(TrainingError):
    """The candidate did not fit on the device; its trial fails, the study goes on."""

    reason = "out of memory"


class Surplus(TrainingError):
    """Workers raced past --trials: this trial would be one too many, so it ends before training."""

    reason = "surplus"


class Duplicate(TrainingError):
    """An enqueued (or retried) list that an earlier trial already holds: workers that start at once each enqueue
    the paper's lists, so the later copy ends before training. It does not count toward --trials."""

    reason = "duplicate"


LOST_WORKER = "lost worker"  # the reason of a trial failed by its heartbeat
NOT_COUNTED = (Surplus.reason, Duplicate.reason)  # failures that are bookkeeping, not a candidate's fault
_HOLDER_WAIT_S = 5.0


def _queued(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> bool:
    """Whether the trial came from the queue (an enqueued list, or Optuna's retry of a lost one), not the sampler."""
    attrs = private.system_attrs(study, trial)
    return "fixed_params" in attrs or "failed_trial" in attrs


def earlier_holder(
    study: optuna.Study, trial: optuna.Trial, hierarchy: tuple[int, ...], space: SearchSpace
) -> int | None:
    """The number of a lower-numbered trial that holds `hierarchy` (finished, running or queued), for a queued
    trial; None when the list is this trial's to train.

    The lower number wins, as in the sampler's contest (`FeasibleSampler._wins_contest`), so of two copies exactly
    one trains. A lower-numbered trial still choosing its list (RUNNING, no parameters yet) has not settled: it
    either takes the list (it never saw this trial) or moves on, so it is given a moment to decide.
    """
    if not _queued(study, trial):
        return None
    revisit = revisit_of(study, trial) is not None  # a revisit's list is held by its pruned trial, by design
    holding = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING) + (() if revisit else (TrialState.PRUNED,))
    names = space.param_names()
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        holders = [
            t
            for t in private.all_trials(study)
            if t.number < trial.number and t.state in holding and trial_hierarchy(t, space) == hierarchy
        ]
        if not holders:
            return None
        settled = [t for t in holders if t.state != TrialState.RUNNING or all(n in t.params for n in names)]
        if settled or time.monotonic() > deadline:
            return (settled or holders)[0].number
        time.sleep(0.05)


def fail_lost_workers(study: optuna.Study, then: str = "the list is queued again") -> list[int]:
    """Fail the trials of workers that stopped sending heartbeats, each with its reason, and retry their lists.

    Optuna fails a stale trial at the next trial start without a word; a finished trial refuses user attributes,
    so the reason is written first, while the trial is still RUNNING, then Optuna's own check fails it and its
    retry callback queues the list again (`_storage.RetryLostTrial`, which drops the reason from the copy). Returns
    the numbers of the trials it found. Nothing happens on a storage without heartbeats.
    """
    stale = private.stale_trial_ids(study)
    if not stale:
        return []
    storage = private.storage_of(study)
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)() or 0
    numbers = []
    for tid in stale:
        try:
            numbers.append(storage.get_trial(tid).number)
            write_failure(
                StoredTrial(storage, tid),
                LOST_WORKER,
                f"no heartbeat for more than {GRACE_BEATS * interval} s: its worker was killed or cut off; {then}",
            )
        except (optuna.exceptions.UpdateFinishedTrialError, KeyError):  # another worker failed it first
            continue
    private.fail_stale_trials(study)
    return numbers


def running_ahead(study: optuna.Study, number: int | None = None) -> int:
    """Finished trials plus running ones started before trial `number` (all running ones when None)."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return sum(t.state != TrialState.RUNNING or number is None or t.number < number for t in trials)


class Reporter:
    """One trial's progress hook (see `Objective.reporter`)."""

    def __init__(
        self, objective: Objective, trial: optuna.Trial, prunable: bool, pause: bool, resumed: Paused | None
    ) -> None:
        self.objective, self.trial, self.prunable = objective, trial, prunable
        self.pause = pause and prunable  # a revisit is never pruned, so never paused
        self.pruned: str | None = None  # why the candidate was stopped, when the pruner stopped it
        self.history: list[list[float | None]] = []
        self.outputs: list[float | None] = []
        self.skipped = 0  # unit-epochs trained before the resume: not this trial's work
        if resumed is not None:
            records = [progress_from_dict(d) for d in resumed.state.get("history", [])]
            self.skipped = records[-1].unit_epochs if records else 0
            for p in records:
                self._record(p)

    def _record(self, p: Progress) -> None:
        self.history.append([None if a is None else round(a, 5) for a in p.unit_acc])
        self.outputs.append(None if p.output_acc is None else round(p.output_acc, 5))
        write(
            self.trial,
            unit_acc_history=self.history,
            output_acc_history=self.outputs,
            unit_epochs=p.unit_epochs - self.skipped,
            elapsed=round(p.elapsed, 3),
        )
        self.trial.report(p.value, p.step)

    def __call__(self, p: Progress) -> bool:
        self._record(p)
        self.objective.display.progress(p)
        # A fully trained candidate is never discarded.
        if self.prunable and p.step < p.total_steps and self.trial.should_prune():
            message = f"pruned at step {p.step} with {p.value:.4f}"
            if not self.pause:
                raise optuna.TrialPruned(message)
            self.pruned = message
            return True
        return False


class Objective:
    """Trains the list the sampler chose and reports every progress record to the trial and the pruner."""

    def __init__(
        self,
        settings: StudySettings,
        data: DataSplits,
        device: str,
        display: Display | None = None,
        trials_target: int | None = None,
        artifacts: ConfigArtifacts | None = None,
        prefix_store: PrefixStore | None = None,
        paused: PausedStore | None = None,
    ):
        self.settings, self.data, self.device = settings, data, device
        self.artifacts, self.prefix_store, self.paused = artifacts, prefix_store, paused
        self.display = display or _Silent()
        self.trials_target = trials_target

    def run(self, trial: optuna.Trial, hierarchy: tuple[int, ...], schedule: Schedule, resumed: Paused | None) -> float:
        """Train one started candidate alone (continuing `resumed`), pausing it if it is pruned; its value."""
        from lwl.models import train

        report = self.reporter(trial, pause=self.paused is not None, resumed=resumed)
        store = self.prefix_store if self.settings.recipe.mode == "sequential" else None
        reused = (store.reused_units, store.reused_seconds) if store is not None else (0, 0.0)
        latest: list[TrainerState] = []  # the state a pruned candidate stopped with: what it pauses with

        def keep(state: TrainerState) -> None:
            latest[:] = [state]

        try:
            result = self.guarded(
                lambda: [trial],
                lambda: train(
                    schedule,
                    self.settings.recipe,
                    self.data,
                    device=self.device,
                    on_progress=report,
                    prefix_store=store,
                    on_stop=keep if report.pause else None,
                    resume=resumed.state if resumed is not None else None,
                ),
            )
        finally:
            if store is not None:  # pruned trials reused units too
                write(
                    trial,
                    reused_units=store.reused_units - reused[0],
                    reused_seconds=round(store.reused_seconds - reused[1], 3),
                )
        if report.pruned is not None:
            if self.paused is not None and latest:
                self.paused.pause(trial.study.study_name, hierarchy, trial.number, latest[0])
            raise optuna.TrialPruned(report.pruned)
        if self.paused is not None:
            self.paused.forget(trial.study.study_name, hierarchy)
        return self.finish(trial, hierarchy, result)

    def resumed(self, trial: optuna.Trial, hierarchy: tuple[int, ...]) -> Paused | None:
        """For a revisit of a pruned list: the state it was paused with, if kept; recorded on the trial."""
        if self.paused is None or revisit_of(trial.study, trial) is None:
            return None
        found = self.paused.find(trial.study.study_name, hierarchy)
        if found is None:
            return None
        from lwl.models import check_state, resolve_device

        schedule, recipe = self.settings.schedule(hierarchy), self.settings.recipe
        try:  # every part of it (`check_state`): a state that cannot be continued is discarded, the list retrained
            check_state(found.state, schedule, recipe, resolve_device(self.device))
        except ResumeError as exc:
            self.paused.forget(trial.study.study_name, hierarchy)
            if not _other_version(exc):  # another engine version or device type: the README's quiet restart
                self.paused.warn(
                    f"the paused state of {list(hierarchy)} cannot be continued ({_cause(exc)}): discarded; trial "
                    f"{trial.number} trains the list from the start"
                )
            return None
        write(trial, resumed_from=found.trial, resumed_step=found.step)
        return found

    # ------------------------------------------------------------------------------------------ start
    def begin(self, trial: optuna.Trial) -> tuple[tuple[int, ...], Schedule]:
        """The list the sampler chose for `trial`, checked, with its costs recorded before anything trains."""
        space = self.settings.space
        if self.trials_target is not None and running_ahead(trial.study, trial.number) >= self.trials_target:
            write_failure(trial, Surplus.reason)
            raise Surplus(f"the study already has {self.trials_target} finished or running trials")
        low, high = space.param_range()
        hierarchy = tuple(trial.suggest_int(name, low, high) for name in space.param_names())
        reason = space.violation(hierarchy)
        if reason is not None:  # only an enqueued list could get here; never train it
            write_failure(trial, f"infeasible: {reason}")
            raise SpaceError(f"trial {trial.number}: list {list(hierarchy)} is not feasible: {reason}")
        holder = earlier_holder(trial.study, trial, hierarchy, space)
        if holder is not None:
            write_failure(trial, Duplicate.reason, f"trial {holder} holds the list {list(hierarchy)}")
            raise Duplicate(f"trial {trial.number}: list {list(hierarchy)} is already held by trial {holder}")
        schedule = self.describe(trial, hierarchy)
        again = revisit_of(trial.study, trial)
        if again is not None:
            write(trial, revisit_of=again)
        total = self.settings.recipe.epochs if self.settings.recipe.mode == "simultaneous" else schedule.units
        self.display.trial_started(trial.number, hierarchy, total)
        return hierarchy, schedule

    def describe(self, trial: optuna.Trial, hierarchy: tuple[int, ...]) -> Schedule:
        """Record the list and its costs (known before anything trains) on `trial`; its schedule."""
        schedule = self.settings.schedule(hierarchy)
        cost = complexity(schedule, self.settings.recipe.head)
        write(
            trial,
            hierarchy=hierarchy,
            schedule=schedule.label(),
            units=schedule.units,
            conv_layers=cost.conv_layers,
            params=cost.params,
            params_aux=cost.params_aux,
            flops=cost.flops,
            activations=cost.activations,
            memory=memory_estimate(cost.activations, cost.params_aux, self.settings.recipe.batch_size),
            paper=paper_name(hierarchy),
            precision=self.settings.recipe.precision,
        )
        return schedule

    # ------------------------------------------------------------------------------------------ report
    def reporter(self, trial: optuna.Trial, *, pause: bool = False, resumed: Paused | None = None) -> Reporter:
        """The engine's progress hook for `trial`: every record becomes an intermediate value the pruner judges.

        A revisit of a pruned list is never pruned: it is that list's second and last chance. With `pause`, a
        pruned candidate is stopped (the hook returns True, and `Reporter.pruned` says why) so that the caller can
        keep its state; otherwise the hook raises optuna.TrialPruned. A `resumed` run's earlier records are
        written first, so that its trial holds the whole curve; `unit_epochs` counts only what it trains itself.
        """
        return Reporter(self, trial, revisit_of(trial.study, trial) is None, pause, resumed)

    # ------------------------------------------------------------------------------------------ finish or fail
    def finish(self, trial: optuna.Trial, hierarchy: tuple[int, ...], result: RunResult) -> float:
        """The trial's results as user attributes (and its training config as an artifact); its objective value."""
        write(
            trial,
            unit_acc=result.unit_acc,
            wall_time=round(result.wall_time, 3),
            peak_memory=result.peak_memory,
            device=result.device,
        )
        assert result.output_acc is not None
        if self.artifacts is not None:
            try:
                self.artifacts.upload(trial, self.settings, hierarchy, result.output_acc)
            except OSError as exc:  # a full disk must not lose the trial's result
                write(trial, artifact_error=f"{type(exc).__name__}: {exc}"[:300])
        return result.output_acc

    def failed(self, trial: optuna.Trial, exc: BaseException) -> None:
        """Record why `trial` failed: a TrainingError's own reason, 'interrupted' for Ctrl-C/SIGTERM, else 'error'."""
        if isinstance(exc, TrainingError):
            write_failure(trial, exc.reason, str(exc))
        elif interrupted(exc):
            write_failure(trial, "interrupted")
        else:
            write_failure(trial, "error", f"{type(exc).__name__}: {exc}")

    def guarded(self, trials: Callable[[], Sequence[optuna.Trial]], run: Callable[[], T]) -> T:
        """Run the training `run`; if it fails, record why on every trial `trials()` still holds, and raise.

        Out of device memory becomes `OutOfMemory` once the except block is left, so the traceback's tensors are
        gone before the memory is freed; the study goes on. Pruning is not a failure and passes through.
        """
        import torch

        oom = None
        try:
            return run()
        except optuna.TrialPruned:
            raise
        except torch.cuda.OutOfMemoryError as exc:
            oom = " ".join(str(exc).split())[:500]
        except BaseException as exc:
            for trial in trials():
                self.failed(trial, exc)
            raise
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        held = list(trials())
        error = OutOfMemory(
            f"trial {', '.join(str(t.number) for t in held)}: CUDA out of memory; memory freed, the "
            "study goes on (lower --batch-size, --widths or --batch if every list runs out)"
        )
        for trial in held:
            write_failure(trial, OutOfMemory.reason, oom)
        raise error


__all__ = [
    "FINISHED",
    "LOST_WORKER",
    "NOT_COUNTED",
    "Display",
    "Duplicate",
    "Objective",
    "OutOfMemory",
    "Surplus",
    "earlier_holder",
    "fail_lost_workers",
    "running_ahead",
]
