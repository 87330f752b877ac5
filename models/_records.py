"""What training reports: a `Progress` record after every epoch (or unit), and a `RunResult` at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._plan import Complexity, complexity
from ._recipe import Recipe
from ._schedule import Schedule

if TYPE_CHECKING:
    from ._network import LocalNet


@dataclass(frozen=True)
class Progress:
    """What the caller sees after every epoch (simultaneous) or every unit (sequential)."""

    step: int  # 1-based: epoch (simultaneous) or unit (sequential)
    total_steps: int
    unit_acc: tuple[float | None, ...]  # validation accuracy of each unit's auxiliary classifier (None: untrained)
    output_acc: float | None  # validation accuracy of the output classifier (None until it is trained)
    train_loss: tuple[float | None, ...]  # mean local loss per unit over the last epoch
    elapsed: float  # seconds since training began
    unit_epochs: int  # unit-epochs trained so far: the compute measure the search compares

    @property
    def value(self) -> float:
        """The signal a pruner judges: the output accuracy, or in sequential mode the newest unit's."""
        if self.output_acc is not None:
            return self.output_acc
        return next(a for a in reversed(self.unit_acc) if a is not None)


# The caller's hook: True stops training there; an exception (e.g. optuna.TrialPruned) stops it too.
ProgressCallback = Callable[[Progress], Any]


def report(history: list[Progress], progress: Progress, on_progress: ProgressCallback | None) -> bool:
    """Append `progress` to `history` and show it to the caller; True when the caller stops training."""
    history.append(progress)
    return bool(on_progress(progress)) if on_progress is not None else False


@dataclass
class RunResult:
    """One trained (or stopped) candidate: its last record, its whole history, its cost and what it took."""

    schedule: Schedule
    recipe: Recipe
    device: str
    unit_acc: tuple[float | None, ...]
    output_acc: float | None
    history: list[Progress]
    complexity: Complexity
    wall_time: float
    peak_memory: int | None  # bytes allocated at peak on an accelerator; None on the CPU
    stopped_early: bool = False
    test_unit_acc: tuple[float, ...] | None = None
    test_output_acc: float | None = None
    model: LocalNet | None = field(default=None, repr=False)
    reused_units: int = 0  # units loaded from a prefix store instead of trained (sequential mode)
    reused_seconds: float = 0.0  # what training those units took when they were first trained

    @classmethod
    def from_history(cls, schedule: Schedule, recipe: Recipe, history: list[Progress], **rest: Any) -> RunResult:
        """The result whose accuracies are the last record's (none without records) and whose cost is the schedule's;
        `rest` gives the other fields (device, wall_time, peak_memory, ...)."""
        last = history[-1] if history else None
        return cls(
            schedule=schedule,
            recipe=recipe,
            unit_acc=last.unit_acc if last is not None else (),
            output_acc=last.output_acc if last is not None else None,
            history=history,
            complexity=complexity(schedule, recipe.head),
            **rest,
        )

    @property
    def unit_epochs(self) -> int:
        return self.history[-1].unit_epochs if self.history else 0


__all__ = ["Progress", "ProgressCallback", "RunResult", "report"]
