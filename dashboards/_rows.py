"""The per-trial view the figures and the top table read: a `TrialRow` built from lwl.search's `TrialRecord` (the
one reader of a trial's user attributes), flattened into plain lists for plotly."""

from __future__ import annotations

from dataclasses import dataclass, field

from lwl.search import TrialRecord
from lwl.search import memory_estimate as search_memory_estimate


@dataclass
class TrialRow:
    """What the report needs of one COMPLETE or PRUNED trial (the user attrs the objective writes)."""

    number: int
    state: str  # "complete" | "pruned"
    value: float | None  # the objective (output validation accuracy); None for pruned trials
    hierarchy: tuple[int, ...]
    label: str
    params: int | None = None
    params_aux: int | None = None
    flops: int | None = None
    activations: int | None = None
    wall_time: float | None = None
    peak_memory: int | None = None
    paper: str | None = None
    enqueued: str | None = None
    device: str | None = None
    steps: list[int] = field(default_factory=list)  # intermediate values, sorted by step
    values: list[float] = field(default_factory=list)
    unit_acc: list[float | None] = field(default_factory=list)  # final per-unit accuracies

    @classmethod
    def from_record(cls, record: TrialRecord, *, wall_time: float | None = None) -> TrialRow:
        """The row of a trial record; `wall_time` stands in when the trial recorded none (e.g. its Optuna duration).
        A pruned trial's unit accuracies are the last progress record's."""
        unit_acc = record.unit_acc or (record.unit_acc_history[-1] if record.unit_acc_history else ())
        return cls(
            number=record.number,
            state=record.state,
            value=record.value,
            hierarchy=record.hierarchy,
            label=record.label,
            params=record.params,
            params_aux=record.params_aux,
            flops=record.flops,
            activations=record.activations,
            wall_time=record.wall_time if record.wall_time is not None else wall_time,
            peak_memory=record.peak_memory,
            paper=record.paper or None,
            enqueued=record.enqueued,
            device=record.device,
            steps=list(record.intermediate),
            values=list(record.intermediate.values()),
            unit_acc=[None if v is None else float(v) for v in unit_acc],
        )

    @property
    def last_value(self) -> float | None:
        """The objective for a complete trial; the last reported intermediate value for a pruned one."""
        if self.value is not None:
            return self.value
        return self.values[-1] if self.values else None


def memory_estimate(row: TrialRow, batch_size: int) -> float | None:
    """Analytic training-memory proxy, lwl-search's one rule (`lwl.search.memory_estimate`, as --max-memory
    judges): activations x batch x 4 B (fp32) + params with heads x 16 B (weights, gradients, Adam's m and v)."""
    if row.activations is None or row.params_aux is None:
        return None
    return float(search_memory_estimate(row.activations, row.params_aux, batch_size))


__all__ = ["TrialRow", "memory_estimate"]
