"""A trainer state as plain data: the containers a checkpoint holds, and the checks before one is resumed.

A `TrainerState` holds only plain dicts, lists, numbers, strings and CPU tensors, so `torch.load(...,
weights_only=True)` reads it back and opening a checkpoint never runs code from the file. The trainer
(`_steps.Learner.state`) decides what goes in; this module turns records and tensors into such data and back,
and refuses a state written for another run, naming the field that differs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

from ._errors import ResumeError
from ._records import Progress

# What the checkpoint hook receives and `resume` takes: see `_steps.Learner.state` for the keys.
TrainerState = dict[str, Any]
CheckpointCallback = Callable[[TrainerState], Any]
# 2: the recipe records its resolved precision, and dropout masks are drawn as `_steps.dropped` draws them (a
# format-1 state would continue with other masks than it started with).
STATE_FORMAT = 2


def to_cpu(obj: Any) -> Any:
    """A deep copy with every tensor cloned to the CPU, containers kept (tuples stay tuples)."""
    import torch  # only a state that holds tensors comes here: loaded with them

    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return type(obj)((k, to_cpu(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def plain(value: Any) -> Any:
    """Tuples and lists compare equal after a save and load (YAML and torch.load may turn one into the other)."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def progress_to_dict(p: Progress) -> dict[str, Any]:
    d = asdict(p)
    d["unit_acc"], d["train_loss"] = list(p.unit_acc), list(p.train_loss)
    return d


def progress_from_dict(d: dict[str, Any]) -> Progress:
    return Progress(
        int(d["step"]),
        int(d["total_steps"]),
        tuple(d["unit_acc"]),
        d["output_acc"],
        tuple(d["train_loss"]),
        float(d["elapsed"]),
        int(d["unit_epochs"]),
    )


def check_resumable(state: Any, device: str, written_for: dict[str, dict[str, Any]]) -> None:
    """Refuse a state of another format, device type, schedule or recipe; `written_for` maps "schedule" and
    "recipe" to this run's `to_dict()`."""
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ResumeError(f"checkpoint format {found!r} is not {STATE_FORMAT}: it was written by another version")
    if state.get("device", device) != device:
        raise ResumeError(
            f"the checkpoint was written on {state['device']}, this run is on {device}: "
            f"resume with --device {state['device']} (the devices' random streams differ)"
        )
    for name, mine in written_for.items():
        theirs = state.get(name) or {}
        diffs = [k for k in mine if plain(mine[k]) != plain(theirs.get(k))]
        if diffs:
            k = diffs[0]
            raise ResumeError(
                f"the checkpoint was written for {name}.{k} = {plain(theirs.get(k))!r}, this run has "
                f"{plain(mine[k])!r}: resume with the same config, or start a new run in another directory"
            )


@contextlib.contextmanager
def state_must_fit() -> Iterator[None]:
    """Turn what loading a state that does not fit raises (a missing key, a wrong shape) into one ResumeError."""
    try:
        yield
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ResumeError(f"the checkpoint does not fit this run ({reason}): start a new run") from None


__all__ = [
    "STATE_FORMAT",
    "CheckpointCallback",
    "ResumeError",
    "TrainerState",
    "check_resumable",
    "plain",
    "progress_from_dict",
    "progress_to_dict",
    "state_must_fit",
    "to_cpu",
]
