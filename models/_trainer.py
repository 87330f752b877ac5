"""The training loop of one candidate: layer-wise (simultaneous or sequential) or, for comparison, global.

Hyper-parameters live in `Recipe` (`_recipe`), whose defaults are the paper's Section V; every update is one of
`Learner`'s steps (`_steps`). The loop never syncs with the host inside an epoch: losses and accuracies
accumulate on the device and are read once per progress record.

Randomness is split so that a unit's training depends only on itself and the units before it: the batch
order and augmentation come from one data stream seeded by `seed` alone; each unit's initialisation and the
dropout on its output come from streams seeded by (seed, unit position). Nothing couples units globally (no
global grad clipping, no learning-rate schedule that depends on depth).

Checkpointing is a hook, not file I/O: `train(checkpoint=...)` hands the caller a `TrainerState` (plain dicts,
lists and CPU tensors, `_state`) at every epoch end, and `train(resume=state)` continues from one. Everything
random is in that state (the data stream's and every dropout stream's generator state), so on the CPU a resumed
run ends bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, cast

import torch

from ._data import DataSplits, check_compatible
from ._device import device_name, layout, peak_memory, prepare, resolve_device, resolve_precision
from ._errors import DataError
from ._recipe import Recipe
from ._records import Progress, ProgressCallback, RunResult, report
from ._resume import check_state
from ._schedule import Schedule
from ._state import (
    CheckpointCallback,
    TrainerState,
    progress_from_dict,
    state_must_fit,
    to_cpu,
)
from ._steps import DataStream, Learner, set_lr

if TYPE_CHECKING:
    from ._prefix import PrefixSession, PrefixStore


def train(
    schedule: Schedule,
    recipe: Recipe,
    data: DataSplits,
    *,
    device: str | torch.device | None = "auto",
    on_progress: ProgressCallback | None = None,
    test: bool = False,
    keep_model: bool = False,
    checkpoint: CheckpointCallback | None = None,
    resume: TrainerState | None = None,
    prefix_store: PrefixStore | None = None,
    on_stop: CheckpointCallback | None = None,
) -> RunResult:
    """Train `schedule` with `recipe` on `data`, reporting a `Progress` after every epoch or unit.

    `on_progress` may return True to stop training there (the result says `stopped_early`) or raise (for
    example optuna.TrialPruned); either way everything the run holds is released.

    `checkpoint` is called with a `TrainerState` after every epoch (in sequential mode: every epoch of every
    unit, and after each unit is frozen and evaluated), after `on_progress` saw that epoch's record. `resume`
    continues from such a state; the schedule and recipe must be the ones it was written with. `on_stop` is called
    once, with the state after the record on which `on_progress` returned True (not while a stored prefix is being
    replayed): what a paused candidate is continued from, without a state built every epoch.

    `prefix_store` (sequential mode): start from the deepest stored prefix of frozen units this run shares with
    earlier runs, replaying its progress records, and store every unit this run freezes (see `PrefixStore`).
    """
    check_compatible(schedule, data)
    dev = resolve_device(device)
    # `auto` becomes what runs here (fp32 or bf16): results, checkpoints and stored prefixes record that.
    recipe = replace(recipe, precision=resolve_precision(recipe.precision, dev))
    session = prefix_store.session(schedule, recipe, data, dev) if prefix_store is not None else None
    run = _Run(schedule, recipe, data.to(dev), dev)
    try:
        if resume is not None:
            run.load_state_dict(resume)
        elif session is not None:
            run.prefix = session
        run.checkpoint = checkpoint
        stopped = run.fit(on_progress)
        if stopped and on_stop is not None and run.stopped_at_record:
            on_stop(run.state_dict())
        result = RunResult.from_history(
            schedule,
            recipe,
            run.history,
            device=device_name(dev),
            wall_time=time.perf_counter() - run.t0,
            peak_memory=peak_memory(dev),
            stopped_early=stopped,
            reused_units=session.reused if session is not None else 0,
            reused_seconds=session.reused_seconds if session is not None else 0.0,
        )
        if test and not stopped:
            test_x, test_y = run.stream.data.test_x, run.stream.data.test_y
            if test_x is None or test_y is None:
                raise DataError("the test set was asked for but not loaded: load the data with with_test=True")
            units, out = run.learner.evaluate(test_x, test_y, run.learner.n_units, True)
            result.test_unit_acc, result.test_output_acc = cast(tuple[float, ...], tuple(units)), out
        if keep_model:
            result.model = run.learner.net
        return result
    finally:
        run.release()


class _Run:
    """State of one training run; exists so the loop reads top to bottom in `fit`."""

    def __init__(self, schedule: Schedule, recipe: Recipe, data: DataSplits, dev: torch.device) -> None:
        prepare(dev)
        self.schedule, self.recipe, self.dev = schedule, recipe, dev
        self.stream = DataStream(data, recipe, dev)  # batch order and augmentation
        self.learner = Learner(schedule, recipe, dev)  # the network, its optimisers and dropout streams
        n_units = self.learner.n_units
        self.history: list[Progress] = []
        self.t0 = time.perf_counter()
        self.checkpoint: CheckpointCallback | None = None
        self.prefix: PrefixSession | None = None  # set by train() for a fresh sequential run
        self.stopped_at_record = False  # the caller stopped the run after a record of the loops (not a replay)
        # Where training stands: `unit` (sequential only), epochs done (of that unit in sequential mode), optimiser
        # steps taken (in that unit), and the sequential run's partial record. Advanced by the loops, saved by
        # state_dict(), set by load_state_dict().
        self.position = {"unit": 0, "epoch": 0, "step": 0}
        self.partial_acc: list[float | None] = [None] * n_units
        self.partial_loss: list[float | None] = [None] * n_units

    # --------------------------------------------------------------------------------------- the loops
    def fit(self, on_progress: ProgressCallback | None) -> bool:
        """Train to the end or until the caller stops; True when stopped."""
        if self.recipe.mode == "sequential":
            return self._fit_sequential(on_progress)
        return self._fit_simultaneous(on_progress)

    def _fit_simultaneous(self, on_progress: ProgressCallback | None) -> bool:
        """Every unit (and the output classifier) updates on every batch."""
        learner, stream, data = self.learner, self.stream, self.stream.data
        epochs, n_units = self.recipe.epochs, learner.n_units
        per_epoch = stream.steps_per_epoch()
        total, step = epochs * per_epoch, self.position["step"]
        for epoch in range(self.position["epoch"] + 1, epochs + 1):
            learner.net.train()
            learner.loss_sums.zero_()
            for x, y in stream.batches(data.train_x):
                set_lr(learner.opts, self.recipe.lr_at(step, total, per_epoch))
                x = layout(x, learner.memory_format)
                if self.recipe.layerwise:
                    learner.layerwise_step(x, y, 0, n_units - 1, True)
                else:
                    learner.global_step(x, y)
                step += 1
            units, out = learner.evaluate(data.val_x, data.val_y, n_units, True)
            losses = learner.read_losses(per_epoch, range(n_units + 1))
            progress = Progress(
                epoch, epochs, tuple(units), out, losses[:-1], time.perf_counter() - self.t0, epoch * n_units
            )
            stop = report(self.history, progress, on_progress)
            self.position.update(epoch=epoch, step=step)
            self._save()
            if stop:
                self.stopped_at_record = True
                return True
        return False

    def _fit_sequential(self, on_progress: ProgressCallback | None) -> bool:
        """Greedy: train unit j to the end on the frozen prefix's output, freeze it, go on."""
        learner, stream, data = self.learner, self.stream, self.stream.data
        epochs, n_units = self.recipe.epochs, learner.n_units
        per_epoch = stream.steps_per_epoch()
        unit_acc, losses = self.partial_acc, self.partial_loss
        if self.prefix is not None and self.position["unit"] == 0 and self._reuse_prefix(on_progress):
            return True
        start = self.position["unit"]
        cached = not stream.varies
        feats = data.train_x  # the prefix's output on the training set, when it may be cached
        for i in range(start):  # a resumed run: freeze the finished units and rebuild the cache exactly as it was
            learner.freeze(i)
            if cached and i < n_units - 1:
                feats = learner.forward_frozen(feats, i)
        for j in range(start, n_units):
            last = j == n_units - 1
            opts = [learner.opts[j]] + ([learner.opts[-1]] if last else [])
            if self.position["epoch"] == 0:
                learner.loss_sums.zero_()
            step = self.position["step"]
            t_unit = time.perf_counter()
            for epoch in range(self.position["epoch"] + 1, epochs + 1):
                learner.net.units[j].train()
                learner.net.classifier.train()
                for x, y in stream.batches(feats, images=not (cached and j > 0)):
                    set_lr(opts, self.recipe.lr_at(step, epochs * per_epoch, per_epoch))
                    x = layout(x, learner.memory_format)
                    if not cached:
                        x = learner.frozen_prefix(x, j)
                    if j > 0:
                        x = learner.dropout(x, j - 1)
                    learner.layerwise_step(x, y, j, j, last)
                    step += 1
                if epoch < epochs:  # the unit's last epoch is saved below, once the unit is evaluated
                    self.position.update(unit=j, epoch=epoch, step=step)
                    self._save()
            learner.freeze(j)
            if cached and not last:
                feats = learner.forward_frozen(feats, j)
            units, out = learner.evaluate(data.val_x, data.val_y, j + 1, last, only=j)
            unit_acc[j] = units[j]
            read = learner.read_losses(per_epoch * epochs, [j, n_units] if last else [j])
            losses[j] = read[0]
            if self.prefix is not None and not last:  # the last unit trained the output classifier too: not shared
                self.prefix.save(
                    j + 1,
                    learner.net.units[j].state_dict(),
                    unit_acc[j],
                    losses[j],
                    stream.generator.get_state(),
                    [g.get_state() for g in learner.dropout_gens[: j + 1]],
                    time.perf_counter() - t_unit,
                )
            progress = Progress(
                j + 1,
                n_units,
                tuple(unit_acc),
                out if last else None,
                tuple(losses),
                time.perf_counter() - self.t0,
                (j + 1) * epochs,
            )
            stop = report(self.history, progress, on_progress)
            self.position.update(unit=j + 1, epoch=0, step=0)
            self._save()
            if stop:
                self.stopped_at_record = True
                return True
        return False

    def _reuse_prefix(self, on_progress: ProgressCallback | None) -> bool:
        """Load the deepest stored prefix (never the last unit, which trains the output classifier), then replay
        its records as if its units had just been trained; True when the caller stops during the replay."""
        assert self.prefix is not None
        learner, epochs = self.learner, self.recipe.epochs
        n_units = learner.n_units
        payloads = self.prefix.load(n_units - 1)
        for k, payload in enumerate(payloads):
            learner.net.units[k].load_state_dict(payload["unit"])
            self.partial_acc[k], self.partial_loss[k] = payload["acc"], payload["loss"]
        if not payloads:
            return False
        self.stream.generator.set_state(payloads[-1]["data_rng"])
        for g, state in zip(learner.dropout_gens, payloads[-1]["dropout_rngs"]):
            g.set_state(state)
        self.position.update(unit=len(payloads), epoch=0, step=0)
        for k in range(1, len(payloads) + 1):
            pad = (None,) * (n_units - k)
            progress = Progress(
                k,
                n_units,
                tuple(self.partial_acc[:k]) + pad,
                None,
                tuple(self.partial_loss[:k]) + pad,
                time.perf_counter() - self.t0,
                k * epochs,
            )
            if report(self.history, progress, on_progress):
                return True
        self._save()
        return False

    # --------------------------------------------------------------------------------------- checkpoints
    def _save(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint(self.state_dict())

    def state_dict(self) -> TrainerState:
        """Everything needed to continue bitwise: weights, optimisers, generators, counters, history.

        Copies on the CPU (one host sync per call, once per epoch at most), so the caller may keep it while
        training goes on and `torch.load(weights_only=True)` can read it back on any machine.
        """
        return self.learner.state(
            self.stream.generator,
            self.position,
            self._complete(),
            {"unit_acc": self.partial_acc, "train_loss": self.partial_loss},
            self.history,
            time.perf_counter() - self.t0,
        )

    def _complete(self) -> bool:
        if self.recipe.mode == "sequential":
            return self.position["unit"] >= self.learner.n_units
        return self.position["epoch"] >= self.recipe.epochs

    def load_state_dict(self, state: TrainerState) -> None:
        """Continue from `state`; refuses one written for another schedule or recipe, naming what differs."""
        check_state(state, self.schedule, self.recipe, self.dev)  # every part, before any is loaded
        learner = self.learner
        with state_must_fit():
            learner.net.load_state_dict(state["model"])
            if len(state["optimizers"]) != len(learner.opts):
                raise ValueError(f"{len(state['optimizers'])} optimisers saved, {len(learner.opts)} here")
            for opt, saved in zip(learner.opts, state["optimizers"]):
                opt.load_state_dict(to_cpu(saved))  # a copy: Adam would update the caller's tensors in place
            self.stream.generator.set_state(state["rng"]["data"])
            if len(state["rng"]["dropout"]) != len(learner.dropout_gens):
                raise ValueError("the number of dropout generators differs")
            for g, saved in zip(learner.dropout_gens, state["rng"]["dropout"]):
                g.set_state(saved)
            learner.loss_sums.copy_(state["loss_sums"].to(self.dev))
            self.position = {k: int(state["position"][k]) for k in ("unit", "epoch", "step")}
            self.partial_acc = list(state["partial"]["unit_acc"])
            self.partial_loss = list(state["partial"]["train_loss"])
            self.history = [progress_from_dict(p) for p in state["history"]]
            self.t0 = time.perf_counter() - float(state["elapsed"])

    def release(self) -> None:
        """Drop every tensor this run holds so a pruned or failed trial leaves the device clean."""
        self.learner.release()
        if self.dev.type == "cuda":
            torch.cuda.empty_cache()


__all__ = ["train"]
