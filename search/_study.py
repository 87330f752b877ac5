"""Running a study: the objective that trains one candidate, and the loop that runs trials until `--trials`.

The Optuna storage is the single source of truth: the count of finished trials, the lists already evaluated and the
study's settings are all read from it, so a rerun, a second worker or a second machine continue the same study.
"""

from __future__ import annotations

import contextlib
import gc
import math
import signal
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
import torch
from optuna.pruners import BasePruner
from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled  # private; optuna is pinned
from optuna.trial import FrozenTrial, TrialState

from lwl.models import (
    DataSplits,
    PrefixStore,
    Progress,
    RunResult,
    Schedule,
    TrainingError,
    complexity,
    train,
    train_together,
)

from ._artifacts import ConfigArtifacts
from ._pareto import publish_pareto
from ._sampler import FeasibleSampler, SpaceExhausted, enqueue_hierarchy, remaining, revisit_of, trial_hierarchy
from ._settings import SETTINGS_ATTR, StudySettings, check_same_settings
from ._errors import SpaceError, StorageError
from ._space import SearchSpace, paper_baselines, paper_name
from ._storage import mask_url, open_storage, study_exists

PRUNERS = ("median", "hyperband", "sha", "wilcoxon", "none")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def median_warmup(settings: StudySettings) -> int:
    """The first step the median pruner may judge.

    Simultaneous mode: the first epoch after the first learning-rate drop. Before it, epoch accuracy ranks lists
    poorly (Spearman with the final accuracy 0.26-0.72 over epochs 1-4 of 10 on the tabular digits table, 0.86
    at epoch 6), and judging from 40 % of the epochs lost the best list for good in 6 of 20 replayed TPE studies;
    from the epoch after the drop, in none, reaching it in fewer unit-epochs than without pruning
    (benchmarks/README.md). Sequential mode (a step is a unit, each with its own schedule): 40 % of the units.
    """
    recipe = settings.recipe
    if recipe.mode == "simultaneous" and recipe.lr_milestones:
        return min(math.floor(min(recipe.lr_milestones) * recipe.epochs) + 1, recipe.epochs)
    steps = recipe.epochs if recipe.mode == "simultaneous" else settings.space.budget
    return math.ceil(0.4 * steps)


def make_pruner(name: str, settings: StudySettings, startup_trials: int = 5) -> BasePruner:
    """Pruners judge `Progress.value`: output accuracy per epoch, or the newest unit's accuracy per unit."""
    steps = settings.recipe.epochs if settings.recipe.mode == "simultaneous" else settings.space.budget
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=median_warmup(settings))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(steps, 1), reduction_factor=3)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SpaceError(f"--pruner {name}: unknown pruner; choose one of {', '.join(PRUNERS)}")


class Display(Protocol):
    """What the loop tells whoever watches; the CLI provides bars or plain lines."""

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


class Objective:
    """Trains the list the sampler chose and reports every progress record to the trial and the pruner."""

    def __init__(self, settings: StudySettings, data: DataSplits, device: str, display: Display | None = None,
                 trials_target: int | None = None, artifacts: ConfigArtifacts | None = None,
                 prefix_store: PrefixStore | None = None):
        self.settings, self.data, self.device = settings, data, device
        self.artifacts, self.prefix_store = artifacts, prefix_store
        self.display = display or _Silent()
        self.trials_target = trials_target

    def __call__(self, trial: optuna.Trial) -> float:
        hierarchy, schedule = self.begin(trial)
        report = self.reporter(trial)
        oom = None
        store = self.prefix_store if self.settings.recipe.mode == "sequential" else None
        reused = (store.reused_units, store.reused_seconds) if store is not None else (0, 0.0)
        try:
            result = train(schedule, self.settings.recipe, self.data, device=self.device, on_progress=report,
                           prefix_store=store)
        except TrainingError as exc:
            self.failed(trial, exc)
            raise
        except torch.cuda.OutOfMemoryError as exc:
            oom = " ".join(str(exc).split())[:500]
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted")
            raise
        finally:
            if store is not None:  # pruned trials reused units too
                trial.set_user_attr("reused_units", store.reused_units - reused[0])
                trial.set_user_attr("reused_seconds", round(store.reused_seconds - reused[1], 3))
        if oom is not None:
            raise self.out_of_memory([trial], oom)
        return self.finish(trial, hierarchy, result)

    def begin(self, trial: optuna.Trial) -> tuple[tuple[int, ...], Schedule]:
        """The list the sampler chose for `trial`, checked, with its costs recorded before anything trains."""
        space = self.settings.space
        if self.trials_target is not None and running_ahead(trial.study, trial.number) >= self.trials_target:
            trial.set_user_attr("fail_reason", Surplus.reason)
            raise Surplus(f"the study already has {self.trials_target} finished or running trials")
        low, high = space.param_range()
        hierarchy = tuple(trial.suggest_int(name, low, high) for name in space.param_names())
        reason = space.violation(hierarchy)
        if reason is not None:  # only an enqueued list could get here; never train it
            trial.set_user_attr("fail_reason", f"infeasible: {reason}")
            raise SpaceError(f"trial {trial.number}: list {list(hierarchy)} is not feasible: {reason}")
        schedule = self.settings.schedule(hierarchy)
        cost = complexity(schedule, self.settings.recipe.head)
        for key, value in {
            "hierarchy": list(hierarchy),
            "schedule": schedule.label(),
            "units": schedule.units,
            "conv_layers": cost.conv_layers,
            "params": cost.params,
            "params_aux": cost.params_aux,
            "flops": cost.flops,
            "activations": cost.activations,
            "paper": paper_name(hierarchy),
        }.items():
            trial.set_user_attr(key, value)
        again = revisit_of(trial.study, trial._trial_id)
        if again is not None:
            trial.set_user_attr("revisit_of", again)
        total = self.settings.recipe.epochs if self.settings.recipe.mode == "simultaneous" else schedule.units
        self.display.trial_started(trial.number, hierarchy, total)
        return hierarchy, schedule

    def reporter(self, trial: optuna.Trial) -> Callable[[Progress], None]:
        """The engine's progress hook for `trial`: every record becomes an intermediate value the pruner judges.

        A revisit of a pruned list is never pruned: it is that list's second and last chance.
        """
        prunable = revisit_of(trial.study, trial._trial_id) is None
        history: list[list[float | None]] = []
        outputs: list[float | None] = []

        def report(p: Progress) -> None:
            history.append([None if a is None else round(a, 5) for a in p.unit_acc])
            outputs.append(None if p.output_acc is None else round(p.output_acc, 5))
            trial.set_user_attr("unit_acc_history", history)
            trial.set_user_attr("output_acc_history", outputs)
            trial.set_user_attr("unit_epochs", p.unit_epochs)
            trial.set_user_attr("elapsed", round(p.elapsed, 3))
            trial.report(p.value, p.step)
            self.display.progress(p)
            if prunable and p.step < p.total_steps and trial.should_prune():  # a fully trained one is never discarded
                raise optuna.TrialPruned(f"pruned at step {p.step} with {p.value:.4f}")

        return report

    def failed(self, trial: optuna.Trial, exc: TrainingError) -> None:
        trial.set_user_attr("fail_reason", exc.reason)
        trial.set_user_attr("fail_detail", str(exc)[:500])

    def out_of_memory(self, trials: Sequence[optuna.Trial], detail: str) -> OutOfMemory:
        """Called once the except block is left, so the traceback's tensors are gone: free them, record it."""
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        for trial in trials:
            trial.set_user_attr("fail_reason", OutOfMemory.reason)
            trial.set_user_attr("fail_detail", detail)
        numbers = ", ".join(str(t.number) for t in trials)
        return OutOfMemory(f"trial {numbers}: CUDA out of memory; memory freed, the study goes on (lower "
                           "--batch-size, --widths or --batch if every list runs out)")

    def finish(self, trial: optuna.Trial, hierarchy: tuple[int, ...], result: RunResult) -> float:
        """The trial's results as user attributes (and its training config as an artifact); its objective value."""
        trial.set_user_attr("unit_acc", list(result.unit_acc))
        trial.set_user_attr("wall_time", round(result.wall_time, 3))
        trial.set_user_attr("peak_memory", result.peak_memory)
        trial.set_user_attr("device", result.device)
        assert result.output_acc is not None
        if self.artifacts is not None:
            try:
                self.artifacts.upload(trial, self.settings, hierarchy, result.output_acc)
            except OSError as exc:  # a full disk must not lose the trial's result
                trial.set_user_attr("artifact_error", f"{type(exc).__name__}: {exc}"[:300])
        return result.output_acc


@dataclass
class SearchOutcome:
    study: optuna.Study
    storage_url: str  # masked
    finished: int  # COMPLETE + PRUNED trials in the study at the end
    ran: int  # trials this run started
    stop_reason: str
    feasible: int
    enqueued: list[tuple[int, ...]] = field(default_factory=list)


def prepare_study(settings: StudySettings, storage_url: str, study_name: str, *, sampler: str, pruner: str,
                  seed: int, pruner_startup: int = 5, heartbeat_seconds: int = 30,
                  revisit: bool = True) -> optuna.Study:
    """Create or load the study, refusing other settings before anything is written.

    With `revisit`, pruned lists are trained again to the end once every list has been tried (FeasibleSampler).
    """
    space = settings.space
    space.check_nonempty()
    storage = open_storage(storage_url, heartbeat_seconds=heartbeat_seconds)
    existed = study_exists(storage, study_name)
    if existed:
        study = optuna.load_study(study_name=study_name, storage=storage,
                                  sampler=FeasibleSampler(space, sampler, seed, revisit=revisit),
                                  pruner=make_pruner(pruner, settings, pruner_startup))
        if study.direction != optuna.study.StudyDirection.MAXIMIZE or len(study.directions) != 1:
            raise StorageError(f"study {study_name!r} exists but is not a single-objective maximisation: "
                               "choose another --study-name")
        check_same_settings(study_name, study.user_attrs.get(SETTINGS_ATTR), settings)
    else:
        sampler_obj = FeasibleSampler(space, sampler, seed, revisit=revisit)
        pruner_obj = make_pruner(pruner, settings, pruner_startup)
        study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize",
                                    sampler=sampler_obj, pruner=pruner_obj, load_if_exists=True)
    stored = study.user_attrs.get(SETTINGS_ATTR)
    if stored is None:
        study.set_user_attr(SETTINGS_ATTR, settings.to_json())
        study.set_user_attr("feasible_lists", len(space))
        study.set_user_attr("objective", "validation accuracy of the output classifier")
        study.set_user_attr("intermediate_value",
                            "output accuracy per epoch" if settings.recipe.mode == "simultaneous"
                            else "accuracy of the newest unit, per unit")
    else:  # a concurrent worker created it between our check and our create
        check_same_settings(study_name, stored, settings)
    study.set_user_attr("storage", mask_url(storage_url))
    return study


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


def enqueue_lists(study: optuna.Study, space: SearchSpace, enqueue: Sequence[Sequence[int]] = (),
                  paper: bool = True) -> list[tuple[int, ...]]:
    """Enqueue the paper's feasible schedules and the user's lists, skipping any the study already holds."""
    baselines = paper_baselines(space) if paper else []
    user = [tuple(h) for h in enqueue]
    enqueued = []
    for hierarchy in dict.fromkeys([*baselines, *user]):
        attrs = {"enqueued": "user" if hierarchy in user else "paper"}
        if enqueue_hierarchy(study, space, hierarchy, user_attrs=attrs):
            enqueued.append(hierarchy)
    return enqueued


def exhausted_reason(study: optuna.Study, space: SearchSpace) -> str:
    """Why a study stopped for want of lists, saying how many pruned lists had their second chance."""
    revisits = sum(t.user_attrs.get("revisit_of") is not None for t in study.get_trials(deepcopy=False, states=FINISHED))
    again = f", {revisits} pruned ones trained again to the end" if revisits else ""
    return f"every feasible list ({len(space)}) has been evaluated{again}"


def running_ahead(study: optuna.Study, number: int | None = None) -> int:
    """Finished trials plus running ones started before trial `number` (all running ones when None)."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return sum(t.state != TrialState.RUNNING or number is None or t.number < number for t in trials)


class OutOfMemory(TrainingError):
    """The candidate did not fit on the device; its trial fails, the study goes on."""

    reason = "out of memory"


class Surplus(TrainingError):
    """Workers raced past --trials: this trial would be one too many, so it ends before training."""

    reason = "surplus"


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
    batch: int = 1,
) -> SearchOutcome:
    """Run trials until the study holds `trials` finished ones, the space is exhausted, or time runs out.

    With `artifacts`, every complete trial carries its exported training config as an Optuna artifact. With
    `prefix_store` (sequential mode), candidates start from the deepest frozen prefix an earlier one trained. With
    `batch` > 1 (simultaneous mode), `batch` candidates at a time train together through their shared units.
    """
    space = settings.space
    enqueued = enqueue_lists(study, space, enqueue, paper)
    objective = Objective(settings, data, device, display, trials_target=trials, artifacts=artifacts,
                          prefix_store=prefix_store)
    started = count_finished(study)
    state = {"ran": 0, "failed": 0, "reason": f"reached --trials {trials}"}

    def finished(study: optuna.Study, trial: FrozenTrial) -> bool:
        """Bookkeeping after a trial ends; True when the search should stop."""
        state["ran"] += 1
        if trial.state == TrialState.FAIL:
            state["failed"] += 1
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
        if running_ahead(study) >= trials:  # other workers' running trials will finish the count
            return True
        if not remaining(study, space) and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            state["reason"] = exhausted_reason(study, space)
            return True
        if state["failed"] > max(3, trials):
            state["reason"] = f"{state['failed']} trials failed in this run"
            return True
        return False

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if finished(study, trial):
            study.stop()

    if started >= trials:
        state["reason"] = f"the study already holds {started} finished trials (--trials {trials})"
    elif not remaining(study, space) and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        state["reason"] = exhausted_reason(study, space)
    else:
        t0 = time.monotonic()
        with _sigterm_as_interrupt():
            if batch > 1:
                _optimize_in_batches(study, objective, batch, trials, timeout, finished)
            else:
                study.optimize(objective, n_trials=None, timeout=timeout, callbacks=[callback],
                               catch=(TrainingError,), gc_after_trial=False, show_progress_bar=False)
        if timeout is not None and time.monotonic() - t0 >= timeout and count_finished(study) < trials:
            state["reason"] = f"--timeout {timeout:g}s reached"
    return SearchOutcome(study, mask_url(str(study.user_attrs.get("storage", ""))), count_finished(study),
                         state["ran"], state["reason"], len(space), enqueued)


def _optimize_in_batches(study: optuna.Study, objective: Objective, batch: int, trials: int, timeout: float | None,
                         finished: Callable[[optuna.Study, FrozenTrial], bool]) -> None:
    """Ask up to `batch` candidates, train them together through their shared units, tell each its own result.

    Every candidate reports to its own trial after every epoch, so the pruner judges the same values as one by one;
    a pruned candidate is told at once and its private units stop. Like `study.optimize`, stale trials of killed
    workers are failed first and every running trial sends heartbeats (Optuna 5.0's own helpers).
    """
    space = objective.settings.space
    t0 = time.monotonic()
    with warnings.catch_warnings():  # ask/tell warn that heartbeats belong to optimize(); we send them (below)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        while timeout is None or time.monotonic() - t0 < timeout:
            if is_heartbeat_enabled(study._storage):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
            waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            k = min(batch, trials - running_ahead(study), len(remaining(study, space)) + waiting)
            if k <= 0:
                return
            group: list[tuple[optuna.Trial, tuple[int, ...], Schedule, Callable[[Progress], None]]] = []
            stop = False
            for _ in range(k):
                trial = study.ask()
                try:
                    hierarchy, schedule = objective.begin(trial)
                except (TrainingError, SpaceError, SpaceExhausted) as exc:  # surplus, infeasible, or a lost race
                    if isinstance(exc, TrainingError):
                        objective.failed(trial, exc)
                    stop = finished(study, study.tell(trial, state=TrialState.FAIL)) or stop
                    continue
                group.append((trial, hierarchy, schedule, objective.reporter(trial)))
            if group:
                stop = _train_group(study, objective, group, finished) or stop
            if stop:
                return


def _train_group(study: optuna.Study, objective: Objective,
                 group: list[tuple[optuna.Trial, tuple[int, ...], Schedule, Callable[[Progress], None]]],
                 finished: Callable[[optuna.Study, FrozenTrial], bool]) -> bool:
    """One pass of `train_together` over `group`; True when the search should stop."""
    told: set[int] = set()
    stop = False
    numbers = [t.number for t, _, _, _ in group]

    def on_progress(i: int, p: Progress) -> None:
        nonlocal stop
        trial = group[i][0]
        try:
            group[i][3](p)
        except optuna.TrialPruned:
            told.add(i)  # told now: the dashboard shows it, the pruner counts it
            stop = finished(study, study.tell(trial, state=TrialState.PRUNED)) or stop
            raise

    oom = None
    with contextlib.ExitStack() as beats:
        for trial, _, _, _ in group:
            trial.set_user_attr("batch", numbers)
            beats.enter_context(get_heartbeat_thread(trial._trial_id, study._storage))
        try:
            outcome = train_together([s for _, _, s, _ in group], objective.settings.recipe, objective.data,
                                     device=objective.device, on_progress=on_progress)
        except torch.cuda.OutOfMemoryError as exc:
            oom = " ".join(str(exc).split())[:500]
        except BaseException:
            for i, (trial, _, _, _) in enumerate(group):
                if i not in told:
                    trial.set_user_attr("fail_reason", "interrupted")
                    study.tell(trial, state=TrialState.FAIL)
            raise
    if oom is not None:
        objective.out_of_memory([t for i, (t, _, _, _) in enumerate(group) if i not in told], oom)
        for i, (trial, _, _, _) in enumerate(group):
            if i not in told:
                stop = finished(study, study.tell(trial, state=TrialState.FAIL)) or stop
        return stop
    for i, ((trial, hierarchy, _, _), result) in enumerate(zip(group, outcome.results)):
        if i in told:  # pruned during the pass: already finished
            continue
        trial.set_user_attr("batch_unit_epochs", [outcome.unit_epochs, outcome.unit_epochs_alone])
        if isinstance(result, RunResult):
            frozen = study.tell(trial, objective.finish(trial, hierarchy, result))
        elif isinstance(result, TrainingError):
            objective.failed(trial, result)
            frozen = study.tell(trial, state=TrialState.FAIL)
        else:  # an error that is not the candidate's: fail it as optimize() would, then surface it
            trial.set_user_attr("fail_reason", "error")
            trial.set_user_attr("fail_detail", f"{type(result).__name__}: {result}"[:500])
            study.tell(trial, state=TrialState.FAIL)
            raise result
        stop = finished(study, frozen) or stop
    return stop


__all__ = [
    "PRUNERS",
    "Display",
    "Objective",
    "SearchOutcome",
    "count_finished",
    "enqueue_lists",
    "make_pruner",
    "median_warmup",
    "prepare_study",
    "run_search",
    "trial_hierarchy",
]
