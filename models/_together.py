"""Exact prefix sharing for simultaneous training: candidates that share their first units train together, each batch
flowing through a shared unit once and branching where the candidates' schedules part.

Why it is exact: a unit's update depends only on its input, its own weights and optimiser, and its own dropout
stream; its input is the detached output of the unit before it. Candidates with the same first j units therefore
compute the same thing in those units on every batch, so one copy (one module, one optimiser, one dropout stream)
can stand for all of them. The candidates form a trie of unit keys (`unit_keys`: a unit's plan, and its head's
design where the head depends on later units, as AugLocal's does); every batch visits its nodes parents first,
then each candidate's output classifier learns on its last unit's output. On the CPU every candidate ends bitwise
equal, in weights and in every progress record, to the same candidate trained alone (tests/models/test_together.py).

A candidate whose caller stops it (a pruned trial) leaves the trie; a shared unit goes on while any candidate below
it is still training.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ._data import DataSplits, check_compatible
from ._device import autocast, device_name, layout, peak_memory, prepare, resolve_device, resolve_precision
from ._errors import RecipeError
from ._plan import unit_keys
from ._recipe import Recipe
from ._records import Progress, RunResult, report
from ._schedule import Schedule
from ._state import TrainerState
from ._steps import DataStream, Learner, set_lr

# A caller per candidate: (candidate index, record) -> True to stop that candidate, or raise to stop it with a reason.
TogetherCallback = Callable[[int, Progress], Any]


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
    """The trie of candidates and the loop that trains it: `fit` mirrors `_trainer._Run._fit_simultaneous`."""

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

    def fit(
        self, callback: TogetherCallback | None, on_stop: Callable[[int, TrainerState], Any] | None = None
    ) -> list[RunResult | BaseException]:
        recipe, stream, learners = self.recipe, self.stream, self.learners
        epochs, per_epoch = recipe.epochs, stream.steps_per_epoch()
        total, step = epochs * per_epoch, 0
        active = set(range(len(learners)))
        outcome: list[RunResult | BaseException | None] = [None] * len(learners)
        fmt = learners[0].memory_format
        for epoch in range(1, epochs + 1):
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
                outs: dict[tuple[str, ...], torch.Tensor] = {}
                for n in live:
                    outs[n.key], loss = n.learner.unit_step(n.j, x if n.parent is None else outs[n.parent], y, x)
                    n.loss_sum += loss  # type: ignore[operator]
                for c in sorted(active):
                    learners[c].loss_sums[-1] += learners[c].output_step(outs[self.paths[c][-1].key], y)
                step += 1
            for n in live:
                n.epochs += 1
            accs = self._evaluate(live, active)
            for c in sorted(active):
                learner, path = learners[c], self.paths[c]
                try:
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
                if stop:
                    if on_stop is not None:
                        on_stop(c, self._state(c, epoch, step))
                    outcome[c] = self._result(c, stopped=True)
                    active.discard(c)
            if not active:
                break
        for c in active:
            outcome[c] = self._result(c, stopped=False)
        return outcome  # type: ignore[return-value]

    @torch.no_grad()
    def _evaluate(self, live: list[_Node], active: set[int]) -> dict[Any, float]:
        """Every live node's and every active candidate's validation accuracy, one host sync in all (as
        `Learner.evaluate` does per candidate; the per-node arithmetic is the same, so the numbers are too)."""
        x, y = self.stream.data.val_x, self.stream.data.val_y
        fmt = self.learners[0].memory_format
        for n in live:
            n.correct = torch.zeros((), device=self.dev)
            n.learner.net.units[n.j].eval()
        classifier_correct = {c: torch.zeros((), device=self.dev) for c in active}
        for c in active:
            self.learners[c].net.classifier.eval()
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
        n_val = max(x.shape[0], 1)
        keys: list[Any] = [n.key for n in live] + sorted(active)
        counts = torch.stack([n.correct for n in live] + [classifier_correct[c] for c in sorted(active)])  # type: ignore[arg-type]
        return dict(zip(keys, (counts / n_val).tolist()))

    def _state(self, c: int, epoch: int, step: int) -> TrainerState:
        """Candidate c's trainer state after `epoch` (`step` optimiser steps): what `train(resume=...)` continues
        bitwise, as if it had been trained alone (its shared units, optimisers and streams are its own there)."""
        learner = self.learners[c]
        nothing: list[float | None] = [None] * learner.n_units  # sequential mode's partial record; unused here
        return learner.state(
            self.stream.generator,
            {"unit": 0, "epoch": epoch, "step": step},
            epoch >= self.recipe.epochs,
            {"unit_acc": nothing, "train_loss": nothing},
            self.histories[c],
            time.perf_counter() - self.t0,
        )

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
        )


def train_together(
    schedules: Sequence[Schedule],
    recipe: Recipe,
    data: DataSplits,
    *,
    device: str | torch.device | None = "auto",
    on_progress: TogetherCallback | None = None,
    keep_models: bool = False,
    on_stop: Callable[[int, TrainerState], Any] | None = None,
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
        for learner in together.learners:
            learner.release()
        together.nodes.clear()
        if dev.type == "cuda":
            torch.cuda.empty_cache()


__all__ = ["TogetherCallback", "TogetherOutcome", "train_together"]
