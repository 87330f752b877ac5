"""`train`: one candidate, layer-wise (simultaneous or sequential) or, for comparison, global.

A single run is a group of one (`_together`, which holds the only training loops: the trie of simultaneous mode, the
unit-by-unit loop of sequential mode). Hyper-parameters live in `Recipe` (`_recipe`), whose defaults are the paper's
Section V; every update is one of `Learner`'s steps (`_steps`).

Checkpointing is a hook, not file I/O: `train(checkpoint=...)` hands the caller a `TrainerState` (plain dicts,
lists and CPU tensors, `_state`) at every epoch end, and `train(resume=state)` continues from one, on the CPU
bitwise equal to an uninterrupted run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, cast

import torch

from ._data import DataSplits, check_compatible
from ._device import resolve_device, resolve_precision
from ._errors import DataError
from ._recipe import Recipe
from ._records import ProgressCallback, RunResult
from ._schedule import Schedule
from ._state import CheckpointCallback, TrainerState
from ._together import _Together

if TYPE_CHECKING:
    from ._prefix import PrefixStore


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
    run = _Together([schedule], recipe, data.to(dev), dev)
    try:
        if resume is not None:
            run.load_state(resume)
        elif session is not None:
            run.prefix = session
        if checkpoint is not None:
            run.checkpoint = lambda _, state: checkpoint(state)
        (result,) = run.fit(
            (lambda _, p: on_progress(p)) if on_progress is not None else None,
            (lambda _, state: on_stop(state)) if on_stop is not None else None,
        )
        if isinstance(result, BaseException):  # what the hook raised, or a divergence
            raise result
        if test and not result.stopped_early:
            test_x, test_y = run.stream.data.test_x, run.stream.data.test_y
            if test_x is None or test_y is None:
                raise DataError("the test set was asked for but not loaded: load the data with with_test=True")
            learner = run.learners[0]
            units, out = learner.evaluate(test_x, test_y, learner.n_units, True)
            result.test_unit_acc, result.test_output_acc = cast(tuple[float, ...], tuple(units)), out
        if not keep_model:
            result.model = None
        return result
    finally:
        run.release()


__all__ = ["train"]
