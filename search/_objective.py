"""One trial's life, the same whether it trains alone (`study.optimize`) or in a `--batch` group: start (the list the
sampler chose, its costs recorded before anything trains), report (every progress record becomes an intermediate
value the pruner judges), finish (the results and the training config as an artifact), or fail with a reason.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from lwl.models import DataSplits, PrefixStore, Progress, RunResult, Schedule, TrainingError, complexity, train

from ._artifacts import ConfigArtifacts
from ._errors import SpaceError
from ._record import write, write_failure
from ._sampler import revisit_of
from ._settings import StudySettings
from ._space import paper_name

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


class OutOfMemory(TrainingError):
    """The candidate did not fit on the device; its trial fails, the study goes on."""

    reason = "out of memory"


class Surplus(TrainingError):
    """Workers raced past --trials: this trial would be one too many, so it ends before training."""

    reason = "surplus"


def running_ahead(study: optuna.Study, number: int | None = None) -> int:
    """Finished trials plus running ones started before trial `number` (all running ones when None)."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return sum(t.state != TrialState.RUNNING or number is None or t.number < number for t in trials)


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
    ):
        self.settings, self.data, self.device = settings, data, device
        self.artifacts, self.prefix_store = artifacts, prefix_store
        self.display = display or _Silent()
        self.trials_target = trials_target

    def __call__(self, trial: optuna.Trial) -> float:
        hierarchy, schedule = self.begin(trial)
        report = self.reporter(trial)
        store = self.prefix_store if self.settings.recipe.mode == "sequential" else None
        reused = (store.reused_units, store.reused_seconds) if store is not None else (0, 0.0)
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
                ),
            )
        finally:
            if store is not None:  # pruned trials reused units too
                write(
                    trial,
                    reused_units=store.reused_units - reused[0],
                    reused_seconds=round(store.reused_seconds - reused[1], 3),
                )
        return self.finish(trial, hierarchy, result)

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
            paper=paper_name(hierarchy),
        )
        again = revisit_of(trial.study, trial)
        if again is not None:
            write(trial, revisit_of=again)
        total = self.settings.recipe.epochs if self.settings.recipe.mode == "simultaneous" else schedule.units
        self.display.trial_started(trial.number, hierarchy, total)
        return hierarchy, schedule

    # ------------------------------------------------------------------------------------------ report
    def reporter(self, trial: optuna.Trial) -> Callable[[Progress], None]:
        """The engine's progress hook for `trial`: every record becomes an intermediate value the pruner judges.

        A revisit of a pruned list is never pruned: it is that list's second and last chance.
        """
        prunable = revisit_of(trial.study, trial) is None
        history: list[list[float | None]] = []
        outputs: list[float | None] = []

        def report(p: Progress) -> None:
            history.append([None if a is None else round(a, 5) for a in p.unit_acc])
            outputs.append(None if p.output_acc is None else round(p.output_acc, 5))
            write(
                trial,
                unit_acc_history=history,
                output_acc_history=outputs,
                unit_epochs=p.unit_epochs,
                elapsed=round(p.elapsed, 3),
            )
            trial.report(p.value, p.step)
            self.display.progress(p)
            if prunable and p.step < p.total_steps and trial.should_prune():  # a fully trained one is never discarded
                raise optuna.TrialPruned(f"pruned at step {p.step} with {p.value:.4f}")

        return report

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
        elif isinstance(exc, KeyboardInterrupt):
            write_failure(trial, "interrupted")
        else:
            write_failure(trial, "error", f"{type(exc).__name__}: {exc}")

    def guarded(self, trials: Callable[[], Sequence[optuna.Trial]], run: Callable[[], T]) -> T:
        """Run the training `run`; if it fails, record why on every trial `trials()` still holds, and raise.

        Out of device memory becomes `OutOfMemory` once the except block is left, so the traceback's tensors are
        gone before the memory is freed; the study goes on. Pruning is not a failure and passes through.
        """
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


__all__ = ["FINISHED", "Display", "Objective", "OutOfMemory", "Surplus", "running_ahead"]
