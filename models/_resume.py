"""The whole check of a trainer state before anything continues from it (or anything is written because of it).

A checkpoint or a paused candidate's state is read with `weights_only=True`, so it holds only plain data, but plain
data can still be wrong: a tensor of another shape, a string where a mapping belongs, a random stream's state of the
wrong size, a position past the last unit, a malformed record. `check_state` compares every part of it with what a
network of this schedule and recipe holds, on the CPU and without touching any run, and raises one `ResumeError`
naming the first part that does not fit. `lwl-train --resume` calls it before it writes a byte; the search calls it
before a revisit continues a paused candidate (and trains the list from the start when it does not fit); the trainer
calls it before it loads a state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from ._device import resolve_precision
from ._recipe import Recipe
from ._schedule import Schedule
from ._state import ResumeError, check_resumable, to_cpu
from ._steps import Learner

_PROGRESS_INTS = ("step", "total_steps", "unit_epochs")


def check_state(state: Any, schedule: Schedule, recipe: Recipe, device: str | torch.device) -> None:
    """Refuse (one `ResumeError`) a state that `train(schedule, recipe, resume=state, device=device)` could not
    continue exactly: another format, device type, schedule or recipe, or any part of the wrong type or shape."""
    dev = torch.device(device)
    recipe = replace(recipe, precision=resolve_precision(recipe.precision, dev))
    check_resumable(state, dev.type, {"schedule": schedule.to_dict(), "recipe": recipe.to_dict()})
    scratch = Learner(schedule, recipe, torch.device("cpu"))  # the shapes and types a state must have
    try:
        _check_parts(state, scratch, recipe, dev)
    finally:
        scratch.release()


def _fail(part: str, why: str) -> ResumeError:
    return ResumeError(f"the checkpoint's {part} {why}: it cannot be continued; start a new run")


def _mapping(state: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = state.get(key)
    if not isinstance(value, Mapping):
        raise _fail(key, f"is {type(value).__name__}, not a mapping")
    return value


def _list(value: Any, part: str, length: int | None = None) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise _fail(part, f"is {type(value).__name__}, not a list")
    if length is not None and len(value) != length:
        raise _fail(part, f"has {len(value)} entries, not {length}")
    return list(value)


def _whole(value: Any, part: str, low: int = 0, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(part, f"is {value!r}, not a whole number")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise _fail(part, f"is {value}, outside {bound}")
    return value


def _number(value: Any, part: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(part, f"is {value!r}, not a finite number")


def _tensor(value: Any, part: str, like: torch.Tensor) -> None:
    if not isinstance(value, torch.Tensor):
        raise _fail(part, f"is {type(value).__name__}, not a tensor")
    if value.shape != like.shape or value.dtype != like.dtype:
        found, wanted = f"{value.dtype} tensor of shape {list(value.shape)}", f"{like.dtype} {list(like.shape)}"
        raise _fail(part, f"is a {found}, not {wanted}")


def _generator_state(value: Any, part: str, dev: torch.device) -> None:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
        raise _fail(part, "is not a random generator's state (a byte tensor)")
    try:
        torch.Generator(device=dev).set_state(value)
    except (RuntimeError, TypeError, ValueError):
        raise _fail(part, f"is not a random generator's state on {dev.type} ({value.numel()} bytes)") from None


def _check_parts(state: Mapping[str, Any], scratch: Learner, recipe: Recipe, dev: torch.device) -> None:
    n = scratch.n_units
    if not isinstance(state.get("complete"), bool):
        raise _fail("'complete' flag", f"is {state.get('complete')!r}, not true or false")
    _number(state.get("elapsed"), "elapsed time")
    position = _mapping(state, "position")
    _whole(position.get("unit"), "position.unit", 0, n)
    _whole(position.get("epoch"), "position.epoch", 0, recipe.epochs)
    _whole(position.get("step"), "position.step")
    # the weights: every tensor of this network, of its shape and type
    model = _mapping(state, "model")
    expected = scratch.net.state_dict()
    if set(model) != set(expected):
        missing, extra = sorted(set(expected) - set(model)), sorted(set(model) - set(expected))
        raise _fail("model", f"does not hold this network's tensors (missing {missing[:3]}, unexpected {extra[:3]})")
    for key, like in expected.items():
        _tensor(model[key], f"model tensor {key!r}", like)
    # the optimisers: one per unit and one for the output, each loadable and its moments of its parameters' shapes
    saved_opts = _list(state.get("optimizers"), "optimizers", len(scratch.opts))
    for i, (opt, saved) in enumerate(zip(scratch.opts, saved_opts)):
        part = f"optimiser {i}"
        if not isinstance(saved, Mapping) or not isinstance(saved.get("state"), Mapping):
            raise _fail(part, "is not an optimiser's state (a mapping with 'state' and 'param_groups')")
        groups = _list(saved.get("param_groups"), f"{part} param_groups", len(opt.param_groups))
        for fresh, group in zip(opt.param_groups, groups):
            if not isinstance(group, Mapping):
                raise _fail(part, "has a parameter group that is not a mapping")
            for key, value in fresh.items():
                if key == "params":
                    continue
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    _number(group.get(key), f"{part} setting {key!r}")
                elif isinstance(value, bool) and not isinstance(group.get(key), bool):
                    raise _fail(part, f"setting {key!r} is {group.get(key)!r}, not true or false")
        # loaded into the CPU scratch optimiser: without CUDA's fused flag, which only the device's optimiser takes
        plain_groups = [{k: v for k, v in g.items() if k != "fused"} for g in groups]
        try:
            opt.load_state_dict(to_cpu({"state": saved["state"], "param_groups": plain_groups}))
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise _fail(part, f"does not fit ({' '.join(str(exc).split())[:120]})") from None
        for param, moments in opt.state.items():
            for key, value in moments.items():
                if value is None:  # SGD's momentum buffer without momentum
                    continue
                if not isinstance(value, torch.Tensor):
                    _number(value, f"{part} {key!r}")
                elif value.ndim > 0 and value.shape != param.shape:
                    raise _fail(part, f"{key!r} has shape {list(value.shape)}, its parameter {list(param.shape)}")
                elif not value.is_floating_point():
                    raise _fail(part, f"{key!r} is a {value.dtype} tensor")
    # every random stream
    rng = _mapping(state, "rng")
    _generator_state(rng.get("data"), "data random stream", torch.device("cpu"))
    for j, saved_rng in enumerate(_list(rng.get("dropout"), "dropout random streams", n)):
        _generator_state(saved_rng, f"dropout random stream {j}", dev)
    _tensor(state.get("loss_sums"), "loss sums", scratch.loss_sums)
    # the records so far
    partial = _mapping(state, "partial")
    for key in ("unit_acc", "train_loss"):
        for j, value in enumerate(_list(partial.get(key), f"partial.{key}", n)):
            _number(value, f"partial.{key}[{j}]", optional=True)
    for i, record in enumerate(_list(state.get("history"), "history")):
        part = f"history record {i}"
        if not isinstance(record, Mapping):
            raise _fail(part, f"is {type(record).__name__}, not a mapping")
        for key in _PROGRESS_INTS:
            _whole(record.get(key), f"{part} {key}")
        _number(record.get("elapsed"), f"{part} elapsed")
        _number(record.get("output_acc"), f"{part} output_acc", optional=True)
        for key in ("unit_acc", "train_loss"):
            for j, value in enumerate(_list(record.get(key), f"{part} {key}", n)):
                _number(value, f"{part} {key}[{j}]", optional=True)


__all__ = ["check_state"]
