"""Every training run: one candidate, or several that share their first units, trained in one pass.

A single run (`train`, `_trainer`) is a group of one. Simultaneous mode trains the group as a trie: candidates
that share their first units train together, each batch flowing through a shared unit once and branching where
the candidates' schedules part; end-to-end (global) training is a group of one on the same loop. Sequential mode
(greedy, unit after unit, a group of one) shares across runs instead, through the prefix store (`_prefix`).

Why sharing is exact: a unit's update depends only on its input, its own weights and optimiser, and its own
dropout stream; its input is the detached output of the unit before it. Candidates with the same first j units
therefore compute the same thing in those units on every batch, so one copy (one module, one optimiser, one
dropout stream) can stand for all of them. The candidates form a trie of unit keys (`unit_keys`: a unit's plan,
and its head's design where the head depends on later units, as AugLocal's does); every batch visits its nodes
parents first, then each candidate's output classifier learns on its last unit's output. On the CPU every
candidate ends bitwise equal, in weights and in every progress record, to the same candidate trained alone
(tests/models/test_together.py).

Randomness is split so that a unit's training depends only on itself and the units before it: the batch order and
augmentation come from one data stream seeded by `seed` alone (shared by the group); each unit's initialisation
and the dropout on its output come from streams seeded by (seed, unit position). Nothing couples units globally
(no global grad clipping, no learning-rate schedule that depends on depth). The loops never sync with the host
inside an epoch: losses and accuracies accumulate on the device and are read once per progress record.

A candidate whose caller stops it (a pruned trial) leaves the trie, handing its `TrainerState` (plain data, `_state`)
to `on_stop`; a shared unit goes on while any candidate below it is still training. A group of one can also hand
its state to a checkpoint hook after every epoch (in sequential mode: every epoch of every unit, and after each unit
is frozen and evaluated) and continue from such a state. Everything random is in that state (the data stream's and
every dropout stream's generator state), so on the CPU a continued run ends bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

from ._data import DataSplits, check_compatible
from ._device import autocast, device_name, layout, peak_memory, prepare, resolve_device, resolve_precision
from ._errors import RecipeError
from ._plan import unit_keys
from ._recipe import Recipe
from ._records import Progress, ProgressCallback, RunResult, report
from ._resume import check_state
from ._schedule import Schedule
from ._state import TrainerState, progress_from_dict, state_must_fit, to_cpu
from ._steps import DataStream, Learner, set_lr

if TYPE_CHECKING:
    from ._prefix import PrefixSession

# A caller per candidate: (candidate index, record) -> True to stop that candidate, or raise to stop it with a reason.
TogetherCallback = Callable[[int, Progress], Any]
# What a candidate's trainer state is handed to: (candidate index, state).
StateCallback = Callable[[int, TrainerState], Any]


@dataclass
class _Node:
    """One unit of the trie: trained once for every candidate below it."""

    key: tuple[str, ...]
    j: int  # position in the network
    learner: Learner  # the candidate whose module, optimiser and dropout stream this node is
    parent: tuple[str, ...] | None
    candidates: set[int] = field(default_factory=set)
    loss_sum: torch.Tensor | None = None
    correct: torch.Tensor | None = None
    epochs: int = 0  # unit-epochs trained


@dataclass
class TogetherOutcome:
    """Every candidate's result (or what stopped it), and what sharing saved."""

    results: list[RunResult | BaseException]
    unit_epochs: int  # trained: one per node and epoch
    unit_epochs_alone: int  # what training each candidate alone for the epochs it got would have taken
    wall_time: float


class _Together:
    """A group of candidates and the loops that train it: `fit` reads top to bottom in `_fit_simultaneous` (the trie)
    or `_fit_sequential` (a group of one). Several candidates need `recipe.trains_together`; `load_state` (resume)
    and `prefix` (the prefix store, sequential mode) are for a group of one."""

    def __init__(self, schedules: Sequence[Schedule], recipe: Recipe, data: DataSplits, dev: torch.device) -> None:
        prepare(dev)
        self.recipe, self.dev = recipe, dev
        self.stream = DataStream(data, recipe, dev)  # batch order, augmentation and learning rate: the same for all
        self.learners = [Learner(s, recipe, dev) for s in schedules]
        self.histories: list[list[Progress]] = [[] for _ in schedules]
        self.nodes: dict[tuple[str, ...], _Node] = {}  # insertion order: parents before children
        self.paths: list[list[_Node]] = []
        for c, learner in enumerate(self.learners):
            plans = unit_keys(learner.schedule, recipe.head)
            path = []
            for j in range(len(plans)):
                key = tuple(plans[: j + 1])
                node = self.nodes.get(key)
                if node is None:
                    node = self.nodes[key] = _Node(
                        key, j, learner, key[:-1] if j else None, loss_sum=torch.zeros((), device=dev)
                    )
                else:  # the candidate's unit j is the shared one: same module, optimiser and dropout stream
                    learner.share(j, node.learner)
                node.candidates.add(c)
                path.append(node)
            self.paths.append(path)
        self.t0 = time.perf_counter()
        self.checkpoint: StateCallback | None = None  # called with every epoch's state (a group of one)
        self.prefix: PrefixSession | None = None  # set by train() for a fresh sequential run
        self.stopped_at_record = False  # sequential: stopped after a record of the loop (not a replay)
        # Where training stands, the same for every candidate: `unit` (sequential only), epochs done (of that unit
        # in sequential mode), optimiser steps taken (in that unit); and per candidate the sequential run's partial
        # record. Advanced by the loops, saved by `_state`, set by `load_state`.
        self.position = {"unit": 0, "epoch": 0, "step": 0}
        self.partial: list[dict[str, list[float | None]]] = [
            {"unit_acc": [None] * learner.n_units, "train_loss": [None] * learner.n_units} for learner in self.learners
        ]

    def fit(
        self, callback: TogetherCallback | None, on_stop: StateCallback | None = None
    ) -> list[RunResult | BaseException]:
        """Every candidate's result, or the exception its hook (or its divergence) stopped it with; `on_stop(i,
        state)` for each candidate whose hook returned True."""
        if self.recipe.mode == "sequential":
            hook = functools.partial(callback, 0) if callback is not None else None
            stopped = self._fit_sequential(hook)
            if stopped and on_stop is not None and self.stopped_at_record:
                on_stop(0, self._state(0))
            return [self._result(0, stopped)]
        return self._fit_simultaneous(callback, on_stop)

    # --------------------------------------------------------------------------------------- the loops
    def _fit_simultaneous(
        self, callback: TogetherCallback | None, on_stop: StateCallback | None
    ) -> list[RunResult | BaseException]:
        """Every unit (and every output classifier) updates on every batch: layer-wise through the trie's nodes, or
        (a group of one) end to end."""
        recipe, stream, learners = self.recipe, self.stream, self.learners
        epochs, per_epoch = recipe.epochs, stream.steps_per_epoch()
        total, step = epochs * per_epoch, self.position["step"]
        active = set(range(len(learners)))
        outcome: list[RunResult | BaseException | None] = [None] * len(learners)
        fmt = learners[0].memory_format
        for epoch in range(self.position["epoch"] + 1, epochs + 1):
            live = [n for n in self.nodes.values() if n.candidates & active]
            for n in live:
                n.loss_sum.zero_()  # type: ignore[union-attr]
                n.learner.net.units[n.j].train()
            for c in active:
                learners[c].loss_sums.zero_()
                learners[c].net.classifier.train()
            opts = [n.learner.opts[n.j] for n in live] + [learners[c].opts[-1] for c in sorted(active)]
            for x, y in stream.batches(stream.data.train_x):
                set_lr(opts, recipe.lr_at(step, total, per_epoch))
                x = layout(x, fmt)
                if recipe.layerwise:
                    outs: dict[tuple[str, ...], torch.Tensor] = {}
                    for n in live:
                        outs[n.key], loss = n.learner.unit_step(n.j, x if n.parent is None else outs[n.parent], y, x)
                        n.loss_sum += loss  # type: ignore[operator]
                    for c in sorted(active):
                        learners[c].loss_sums[-1] += learners[c].output_step(outs[self.paths[c][-1].key], y)
                else:  # end to end: gradients cross units, so nothing is shared (a group of one)
                    for c in sorted(active):
                        learners[c].global_step(x, y)
                step += 1
            for n in live:
                n.epochs += 1
            accs = self._evaluate(live, active)
            self.position.update(epoch=epoch, step=step)
            for c in sorted(active):
                learner, path = learners[c], self.paths[c]
                try:
                    if recipe.layerwise:
                        for j, n in enumerate(path):
                            learner.loss_sums[j] = n.loss_sum  # type: ignore[assignment]
                    losses = learner.read_losses(per_epoch, range(len(path) + 1))
                    units, out = [accs[n.key] for n in path], accs[c]
                    progress = Progress(
                        epoch, epochs, tuple(units), out, losses[:-1], time.perf_counter() - self.t0, epoch * len(path)
                    )
                    hook = functools.partial(callback, c) if callback is not None else None
                    stop = report(self.histories[c], progress, hook)
                except Exception as exc:  # noqa: BLE001 - a pruned, diverged or failed candidate leaves the trie
                    outcome[c] = exc
                    active.discard(c)
                    continue
                self._save(c)
                if stop:
                    if on_stop is not None:
                        on_stop(c, self._state(c))
                    outcome[c] = self._result(c, stopped=True)
                    active.discard(c)
            if not active:
                break
        for c in active:
            outcome[c] = self._result(c, stopped=False)
        return outcome  # type: ignore[return-value]

    def _fit_sequential(self, on_progress: ProgressCallback | None) -> bool:
        """Greedy (a group of one): train unit j to the end on the frozen prefix's output, freeze it, go on; True
        when the caller stops."""
        learner, stream, data = self.learners[0], self.stream, self.stream.data
        epochs, n_units = self.recipe.epochs, learner.n_units
        per_epoch = stream.steps_per_epoch()
        unit_acc, losses = self.partial[0]["unit_acc"], self.partial[0]["train_loss"]
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
                    self._save(0)
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
            stop = report(self.histories[0], progress, on_progress)
            self.position.update(unit=j + 1, epoch=0, step=0)
            self._save(0)
            if stop:
                self.stopped_at_record = True
                return True
        return False

    def _reuse_prefix(self, on_progress: ProgressCallback | None) -> bool:
        """Load the deepest stored prefix (never the last unit, which trains the output classifier), then replay
        its records as if its units had just been trained; True when the caller stops during the replay."""
        assert self.prefix is not None
        learner, epochs = self.learners[0], self.recipe.epochs
        n_units = learner.n_units
        unit_acc, losses = self.partial[0]["unit_acc"], self.partial[0]["train_loss"]
        payloads = self.prefix.load(n_units - 1)
        for k, payload in enumerate(payloads):
            learner.net.units[k].load_state_dict(payload["unit"])
            unit_acc[k], losses[k] = payload["acc"], payload["loss"]
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
                tuple(unit_acc[:k]) + pad,
                None,
                tuple(losses[:k]) + pad,
                time.perf_counter() - self.t0,
                k * epochs,
            )
            if report(self.histories[0], progress, on_progress):
                return True
        self._save(0)
        return False

    @torch.no_grad()
    def _evaluate(self, live: list[_Node], active: set[int]) -> dict[Any, float | None]:
        """Every live node's and every active candidate's validation accuracy (None on an empty validation set),
        one host sync in all, as `Learner.evaluate` counts per candidate; the modules are left in the modes they
        had."""
        x, y = self.stream.data.val_x, self.stream.data.val_y
        keys: list[Any] = [n.key for n in live] + sorted(active)
        if x.shape[0] == 0:  # a run without a validation split
            return dict.fromkeys(keys)
        fmt = self.learners[0].memory_format
        modules = [n.learner.net.units[n.j] for n in live] + [self.learners[c].net.classifier for c in sorted(active)]
        modes = [(m, m.training) for module in modules for m in module.modules()]
        for n in live:
            n.correct = torch.zeros((), device=self.dev)
        classifier_correct = {c: torch.zeros((), device=self.dev) for c in active}
        for module in modules:
            module.eval()
        for start in range(0, x.shape[0], self.recipe.eval_batch_size):
            xb = x[start : start + self.recipe.eval_batch_size].contiguous(memory_format=fmt)
            yb = y[start : start + self.recipe.eval_batch_size]
            hs: dict[tuple[str, ...], torch.Tensor] = {}
            with autocast(self.dev, self.learners[0].precision):
                for n in live:
                    unit = n.learner.net.units[n.j]
                    x_in = xb if n.parent is None else hs[n.parent]
                    h = unit.body(x_in)
                    n.correct += (unit.pred(h).argmax(1) == yb).sum()
                    hs[n.key] = unit.carry(x_in, h)
                for c in active:
                    h = hs[self.paths[c][-1].key]
                    classifier_correct[c] += (self.learners[c].net.classifier(h).argmax(1) == yb).sum()
        for m, mode in modes:
            m.training = mode
        counts = torch.stack([n.correct for n in live] + [classifier_correct[c] for c in sorted(active)])  # type: ignore[arg-type]
        return dict(zip(keys, (counts / x.shape[0]).tolist()))

    # --------------------------------------------------------------------------------------- states and results
    def _save(self, c: int) -> None:
        if self.checkpoint is not None:
            self.checkpoint(c, self._state(c))

    def _state(self, c: int) -> TrainerState:
        """Candidate c's trainer state where training stands: what `train(resume=...)` continues bitwise, as if it
        had been trained alone (its shared units, optimisers and streams are its own there). Copies on the CPU (one
        host sync per call, once per epoch at most), so the caller may keep it while training goes on and
        `torch.load(weights_only=True)` can read it back on any machine."""
        learner = self.learners[c]
        if self.recipe.mode == "sequential":
            complete = self.position["unit"] >= learner.n_units
        else:
            complete = self.position["epoch"] >= self.recipe.epochs
        return learner.state(
            self.stream.generator,
            self.position,
            complete,
            self.partial[c],
            self.histories[c],
            time.perf_counter() - self.t0,
        )

    def load_state(self, state: TrainerState) -> None:
        """Continue (a group of one) from `state`; refuses one written for another schedule or recipe, naming what
        differs."""
        assert len(self.learners) == 1, "only a group of one continues from a state"
        learner = self.learners[0]
        check_state(state, learner.schedule, self.recipe, self.dev)  # every part, before any is loaded
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
            self.partial[0] = {k: list(state["partial"][k]) for k in ("unit_acc", "train_loss")}
            self.histories[0] = [progress_from_dict(p) for p in state["history"]]
            self.t0 = time.perf_counter() - float(state["elapsed"])

    def _result(self, c: int, stopped: bool) -> RunResult:
        learner = self.learners[c]
        return RunResult.from_history(
            learner.schedule,
            self.recipe,
            self.histories[c],
            device=device_name(self.dev),
            wall_time=time.perf_counter() - self.t0,
            peak_memory=peak_memory(self.dev),
            stopped_early=stopped,
            model=learner.net,
            reused_units=self.prefix.reused if self.prefix is not None else 0,
            reused_seconds=self.prefix.reused_seconds if self.prefix is not None else 0.0,
        )

    def release(self) -> None:
        """Drop every tensor the group holds so a pruned or failed trial leaves the device clean."""
        for learner in self.learners:
            learner.release()
        self.nodes.clear()
        if self.dev.type == "cuda":
            torch.cuda.empty_cache()


def train_together(
    schedules: Sequence[Schedule],
    recipe: Recipe,
    data: DataSplits,
    *,
    device: str | torch.device | None = "auto",
    on_progress: TogetherCallback | None = None,
    keep_models: bool = False,
    on_stop: StateCallback | None = None,
) -> TogetherOutcome:
    """Train several candidates in one pass, sharing the units their schedules have in common (simultaneous mode,
    layer-wise losses). `on_progress(i, record)` is candidate i's hook: True stops it, an exception stops it and
    becomes its entry in the outcome (e.g. optuna.TrialPruned); the others go on. `on_stop(i, state)` receives
    the trainer state of a candidate its hook stopped with True: `train(resume=state)` continues it alone, bitwise
    as if it had been trained alone all along."""
    if not recipe.trains_together:
        raise RecipeError(
            "training candidates together needs simultaneous mode and a layer-wise loss (pred, sim "
            "or predsim): end-to-end gradients cross units, and sequential mode has its prefix store"
        )
    if not schedules:
        return TogetherOutcome([], 0, 0, 0.0)
    for s in schedules:
        check_compatible(s, data)
    dev = resolve_device(device)
    recipe = replace(recipe, precision=resolve_precision(recipe.precision, dev))  # what the results record
    together = _Together(schedules, recipe, data.to(dev), dev)
    try:
        results = together.fit(on_progress, on_stop)
        if not keep_models:
            for r in results:
                if isinstance(r, RunResult):
                    r.model = None
        alone = sum(len(r.history) * r.schedule.units for r in results if isinstance(r, RunResult))
        alone += sum(
            len(history) * learner.schedule.units
            for learner, history, r in zip(together.learners, together.histories, results)
            if not isinstance(r, RunResult)
        )
        return TogetherOutcome(
            results, sum(n.epochs for n in together.nodes.values()), alone, time.perf_counter() - together.t0
        )
    finally:
        together.release()


__all__ = ["StateCallback", "TogetherCallback", "TogetherOutcome", "train_together"]
