"""Exact prefix sharing for simultaneous training: candidates that share their first units train together, each batch
flowing through a shared unit once and branching where the candidates' schedules part.

Why it is exact: a unit's update depends only on its input, its own weights and optimiser, and its own dropout
stream; its input is the detached output of the unit before it. Candidates with the same first j units therefore
compute the same thing in those units on every batch, so one copy (one module, one optimiser, one dropout stream)
can stand for all of them. The candidates form a trie of unit plans; every batch visits its nodes parents first,
then each candidate's output classifier learns on its last unit's output. On the CPU every candidate ends bitwise
equal, in weights and in every progress record, to the same candidate trained alone (tests/models/test_together.py).

A candidate whose caller stops it (a pruned trial) leaves the trie; a shared unit goes on while any candidate below
it is still training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ._data import DataSplits
from ._network import complexity, unit_plan
from ._errors import RecipeError
from ._schedule import Schedule
from ._trainer import Progress, Recipe, RunResult, _device_name, _Run, check_compatible, resolve_device

# A caller per candidate: (candidate index, record) -> True to stop that candidate, or raise to stop it with a reason.
TogetherCallback = Callable[[int, Progress], Any]


@dataclass
class _Node:
    """One unit of the trie: trained once for every candidate below it."""

    key: tuple[str, ...]
    j: int  # position in the network
    run: _Run  # the run whose module, optimiser and dropout stream this node is
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
    def __init__(self, schedules: Sequence[Schedule], recipe: Recipe, data: DataSplits, dev: torch.device) -> None:
        self.recipe, self.dev = recipe, dev
        self.runs = [_Run(s, recipe, data, dev) for s in schedules]
        self.nodes: dict[tuple[str, ...], _Node] = {}  # insertion order: parents before children
        self.paths: list[list[_Node]] = []
        for c, run in enumerate(self.runs):
            plans = [repr(p) for p in unit_plan(run.schedule)]
            path = []
            for j in range(len(plans)):
                key = tuple(plans[: j + 1])
                node = self.nodes.get(key)
                if node is None:
                    node = self.nodes[key] = _Node(key, j, run, key[:-1] if j else None,
                                                   loss_sum=torch.zeros((), device=dev))
                else:  # the candidate's unit j is the shared one: same module, optimiser and dropout stream
                    run.net.units[j] = node.run.net.units[j]
                    run.opts[j] = node.run.opts[j]
                    run.dropout_gens[j] = node.run.dropout_gens[j]
                node.candidates.add(c)
                path.append(node)
            self.paths.append(path)
        self.lead = self.runs[0]  # batch order, augmentation and the learning-rate schedule are the same for all
        self.t0 = time.perf_counter()

    def fit(self, callback: TogetherCallback | None) -> list[RunResult | BaseException]:
        recipe, lead = self.recipe, self.lead
        epochs, per_epoch = recipe.epochs, lead._steps_per_epoch()
        total, step = epochs * per_epoch, 0
        active = set(range(len(self.runs)))
        outcome: list[RunResult | BaseException | None] = [None] * len(self.runs)
        for epoch in range(1, epochs + 1):
            live = [n for n in self.nodes.values() if n.candidates & active]
            for n in live:
                n.loss_sum.zero_()  # type: ignore[union-attr]
                n.run.net.units[n.j].train()
            for c in active:
                self.runs[c].loss_sums.zero_()
                self.runs[c].net.classifier.train()
            opts = [n.run.opts[n.j] for n in live] + [self.runs[c].opts[-1] for c in sorted(active)]
            for x, y in lead._batches(lead.data.train_x, lead.augment):
                lead._set_lr(opts, step, total)
                x = lead._layout(x)
                outs: dict[tuple[str, ...], torch.Tensor] = {}
                for n in live:
                    outs[n.key], loss = n.run._unit_step(n.j, x if n.parent is None else outs[n.parent], y)
                    n.loss_sum += loss  # type: ignore[operator]
                for c in sorted(active):
                    run = self.runs[c]
                    run.loss_sums[-1] += run._output_step(outs[self.paths[c][-1].key], y)
                step += 1
            for n in live:
                n.epochs += 1
            accs = self._evaluate(live, active)
            for c in sorted(active):
                run, path = self.runs[c], self.paths[c]
                try:
                    for j, n in enumerate(path):
                        run.loss_sums[j] = n.loss_sum  # type: ignore[assignment]
                    losses = run._read_losses(per_epoch, range(len(path) + 1))
                    units, out = [accs[n.key] for n in path], accs[c]
                    progress = Progress(epoch, epochs, tuple(units), out, losses[:-1],
                                        time.perf_counter() - self.t0, epoch * len(path))
                    stop = run._report(progress, (lambda p, c=c: callback(c, p)) if callback is not None else None)
                except Exception as exc:  # noqa: BLE001 - a pruned, diverged or failed candidate leaves the trie
                    outcome[c] = exc
                    active.discard(c)
                    continue
                if stop:
                    outcome[c] = self._result(c, stopped=True)
                    active.discard(c)
            if not active:
                break
        for c in active:
            outcome[c] = self._result(c, stopped=False)
        return outcome  # type: ignore[return-value]

    @torch.no_grad()
    def _evaluate(self, live: list[_Node], active: set[int]) -> dict[Any, float]:
        """Every live node's and every active candidate's validation accuracy, one host sync in all (as `_Run.evaluate`
        does per candidate; the per-node arithmetic is the same, so the numbers are too)."""
        lead = self.lead
        x, y = lead.data.val_x, lead.data.val_y
        for n in live:
            n.correct = torch.zeros((), device=self.dev)
            n.run.net.units[n.j].eval()
        classifier_correct = {c: torch.zeros((), device=self.dev) for c in active}
        for c in active:
            self.runs[c].net.classifier.eval()
        for start in range(0, x.shape[0], self.recipe.eval_batch_size):
            xb = x[start : start + self.recipe.eval_batch_size].contiguous(memory_format=lead.memory_format)
            yb = y[start : start + self.recipe.eval_batch_size]
            hs: dict[tuple[str, ...], torch.Tensor] = {}
            with lead._autocast():
                for n in live:
                    unit = n.run.net.units[n.j]
                    h = hs[n.key] = unit.body(xb if n.parent is None else hs[n.parent])
                    n.correct += (unit.pred(h).argmax(1) == yb).sum()  # type: ignore[operator]
                for c in active:
                    h = hs[self.paths[c][-1].key]
                    classifier_correct[c] += (self.runs[c].net.classifier(h).argmax(1) == yb).sum()
        n_val = max(x.shape[0], 1)
        keys: list[Any] = [n.key for n in live] + sorted(active)
        counts = torch.stack([n.correct for n in live] + [classifier_correct[c] for c in sorted(active)])  # type: ignore[misc]
        return dict(zip(keys, (counts / n_val).tolist()))

    def _result(self, c: int, stopped: bool) -> RunResult:
        run = self.runs[c]
        return RunResult(
            schedule=run.schedule, recipe=self.recipe, device=_device_name(self.dev),
            unit_acc=run.history[-1].unit_acc if run.history else (),
            output_acc=run.history[-1].output_acc if run.history else None, history=run.history,
            complexity=complexity(run.schedule, self.recipe.head), wall_time=time.perf_counter() - self.t0,
            peak_memory=torch.cuda.max_memory_allocated(self.dev) if self.dev.type == "cuda" else None,
            stopped_early=stopped, model=run.net,
        )


def train_together(
    schedules: Sequence[Schedule],
    recipe: Recipe,
    data: DataSplits,
    *,
    device: str | torch.device | None = "auto",
    on_progress: TogetherCallback | None = None,
    keep_models: bool = False,
) -> TogetherOutcome:
    """Train several candidates in one pass, sharing the units their schedules have in common (simultaneous mode,
    layer-wise losses). `on_progress(i, record)` is candidate i's hook: True stops it, an exception stops it and
    becomes its entry in the outcome (e.g. optuna.TrialPruned); the others go on."""
    if recipe.mode != "simultaneous" or recipe.loss == "global":
        raise RecipeError("training candidates together needs simultaneous mode and a layer-wise loss (pred, sim "
                            "or predsim): end-to-end gradients cross units, and sequential mode has its prefix store")
    if not schedules:
        return TogetherOutcome([], 0, 0, 0.0)
    for s in schedules:
        check_compatible(s, data)
    dev = resolve_device(device)
    together = _Together(schedules, recipe, data.to(dev), dev)
    try:
        results = together.fit(on_progress)
        if not keep_models:
            for r in results:
                if isinstance(r, RunResult):
                    r.model = None
        alone = sum(len(r.history) * r.schedule.units for r in results if isinstance(r, RunResult))
        alone += sum(len(run.history) * run.schedule.units
                     for run, r in zip(together.runs, results) if not isinstance(r, RunResult))
        return TogetherOutcome(results, sum(n.epochs for n in together.nodes.values()), alone,
                               time.perf_counter() - together.t0)
    finally:
        for run in together.runs:
            run.opts.clear()
            run.dropout_gens.clear()
        together.nodes.clear()
        if dev.type == "cuda":
            torch.cuda.empty_cache()


__all__ = ["TogetherCallback", "TogetherOutcome", "train_together"]
