"""Hard cost limits on the lists a study may train: parameters, FLOPs and estimated training memory.

A list's costs are known exactly before it trains (`lwl.models.complexity`, counted from the plan), so a limit is a
filter on the enumerated feasible set: the sampler never sees a list above it, the paper's lists above it are not
enqueued, and `--enqueue` of one is refused. The study stores its limits with its settings.

Training memory is estimated by one rule, the same the report's memory axis uses when no peak was measured:
4 bytes per activation element of one batch (every conv output of the backbone, fp32) plus 16 bytes per parameter
with the auxiliary heads (fp32 weights, gradients, and Adam's two moments). It is an upper-bound style estimate for
comparing lists, not a measurement: layer-wise training frees most activations unit by unit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lwl.models import Complexity

from .._errors import SpaceError

ACTIVATION_BYTES = 4  # per activation element of one batch (fp32)
PARAMETER_BYTES = 16  # per parameter with heads: weight, gradient, Adam's m and v, fp32


def memory_estimate(activations: int, params_aux: int, batch_size: int) -> int:
    """Estimated training memory in bytes (the rule in the module docstring)."""
    return ACTIVATION_BYTES * activations * batch_size + PARAMETER_BYTES * params_aux


_COUNT_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def parse_amount(text: str | int | float, flag: str, *, memory: bool = False) -> int:
    """'5M', '2.5e6', '1500000' (counts: k, M, G = 10^3, 10^6, 10^9) or for memory '2GiB', '500MB', '2G' (bytes;
    KiB/MiB/GiB are powers of 2); a whole positive number, else a one-line SpaceError naming the flag."""
    units = _BYTE_UNITS if memory else _COUNT_UNITS
    example = "2GiB or 500MB" if memory else "5M or 250k"
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in units:
        raise SpaceError(f"{flag} {text}: not an amount: write a positive number, e.g. {example}")
    value = float(match.group(1)) * units[unit]
    if not math.isfinite(value) or value < 1:
        raise SpaceError(f"{flag} {text}: out of range: use an amount of at least 1, e.g. {example}")
    return int(value)


def _count_text(n: int) -> str:
    """Exact, as the flag takes it: '5M' when a whole number of millions, else the number."""
    for size, unit in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def _bytes_text(n: int) -> str:
    """Exact, as the flag takes it: '2GiB', '500MB', else the number of bytes."""
    for size, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (10**9, "GB"), (10**6, "MB"), (10**3, "KB")):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


@dataclass(frozen=True)
class CostLimits:
    """Upper bounds on a list's costs; None: no bound."""

    max_params: int | None = None  # parameters of the network without its auxiliary heads (what is deployed)
    max_flops: int | None = None  # forward FLOPs per image, backbone and output classifier (multiply + add = 2)
    max_memory: int | None = None  # bytes of estimated training memory at the study's batch size (module docstring)

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.max_params, self.max_flops, self.max_memory))

    def to_dict(self) -> dict[str, int]:
        return {k: v for k, v in self._items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, int] | None) -> CostLimits:
        return cls(**{k: int(v) for k, v in (data or {}).items()})

    def _items(self) -> list[tuple[str, int | None]]:
        return [("max_params", self.max_params), ("max_flops", self.max_flops), ("max_memory", self.max_memory)]

    def describe(self) -> str:
        """'--max-params 5M --max-memory 2GiB'."""
        words = []
        for name, value in self._items():
            if value is not None:
                text = _bytes_text(value) if name == "max_memory" else _count_text(value)
                words.append(f"--{name.replace('_', '-')} {text}")
        return " ".join(words)

    def costs(self, cost: Complexity, batch_size: int) -> dict[str, int]:
        """The costs the limits judge, by limit name."""
        return {
            "max_params": cost.params,
            "max_flops": cost.flops,
            "max_memory": memory_estimate(cost.activations, cost.params_aux, batch_size),
        }

    def admits(self, cost: Complexity, batch_size: int) -> bool:
        values = self.costs(cost, batch_size)
        return all(limit is None or values[name] <= limit for name, limit in self._items())

    def within(
        self, lists: Sequence[tuple[int, ...]], cost_of: Callable[[tuple[int, ...]], Complexity], batch_size: int
    ) -> tuple[tuple[int, ...], ...]:
        """The lists whose costs are within every limit, in their order; a SpaceError naming the nearest list and
        the limits it would need when none is."""
        costs = {h: self.costs(cost_of(h), batch_size) for h in lists}
        kept = tuple(h for h in lists if all(v is None or costs[h][n] <= v for n, v in self._items()))
        if kept or not lists:
            return kept
        active = [(n, v) for n, v in self._items() if v is not None]
        nearest = min(lists, key=lambda h: (max(costs[h][n] / v for n, v in active), h))
        over = [f"--{n.replace('_', '-')} {costs[nearest][n]}" for n, v in active if costs[nearest][n] > v]
        raise SpaceError(
            f"no list of the space is within {self.describe()}: the nearest, "
            f"[{','.join(map(str, nearest))}], needs {' and '.join(over)}: raise the limit to that or more"
        )


__all__ = ["ACTIVATION_BYTES", "PARAMETER_BYTES", "CostLimits", "memory_estimate", "parse_amount"]
