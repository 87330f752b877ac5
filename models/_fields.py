"""The values a setting takes, declared once and checked the same by every reader of it.

A recipe or schedule field is declared by one spec in its dataclass's table (`RECIPE_FIELDS`, `SCHEDULE_FIELDS`):
the dataclass applies it at construction, the config reader (`_config`) to each field of a YAML file, the command
line and the study presets (`cli.check_ranges`) to each numeric flag. Whatever one accepts, the others accept.

A spec's `normalise(value)` returns the value as the dataclass stores it (2.0 -> 2 for a whole number, a list ->
a tuple) or raises `Invalid`, whose `reason` each reader puts in its own one line ('epochs must be at least 1, got
0'; 'FILE: field recipe.epochs: must be at least 1, got 0'; '--epochs 0: out of range: use a whole number >= 1').
Torch-free: `--help`, lwl-export and lwl-report import it.
"""

from __future__ import annotations

import math
import numbers
import operator
import reprlib
from dataclasses import dataclass
from typing import Any, Protocol

from ._errors import ScheduleError, UsageError


class Invalid(ValueError):
    """A value a spec refuses: `reason` ('must be at least 1'), the value at fault and where in it (`where`,
    '[2]' for a list's third item), for the reader to put into its own one line."""

    def __init__(self, reason: str, value: Any, where: str = "") -> None:
        super().__init__(reason)
        self.reason, self.value, self.where = reason, value, where

    def text(self, name: str) -> str:
        """'NAME[WHERE] REASON, got VALUE': the line a dataclass raises."""
        return f"{name}{self.where} {self.reason}, got {shown(self.value)}"

    def detail(self) -> str:
        """'REASON, got VALUE': what follows the field's path in a config reader's line."""
        return f"{self.reason}, got {shown(self.value)}"


def shown(value: Any) -> str:
    """A value as a message echoes it: bounded in length (a pasted file must not flood the terminal)."""
    return reprlib.repr(value)


class Spec(Protocol):
    def normalise(self, value: Any) -> Any: ...


def _number(value: float, kind: type) -> str:
    return f"{value:d}" if kind is int else f"{value:g}"


@dataclass(frozen=True)
class Range:
    """A number: `kind` int a whole number (True/False and 1.5 refused, 2.0 as YAML may write it read as 2), `kind`
    float a finite one (nan, inf refused); `low`/`high` bound it, `*_open` excluding the bound."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    hint: str = ""  # what to do instead, as a flag's message says it: "leave --timeout out for no limit"

    def reason(self) -> str:
        """What the range allows, as a field's message says it: 'must be at least 1', 'must be in [0, 1)'."""
        low, high = self.low, self.high
        if low is not None and high is not None:
            if self.kind is int and not self.low_open and not self.high_open:
                return f"must be from {_number(low, int)} to {_number(high, int)}"
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"must be in {left}{_number(low, self.kind)}, {_number(high, self.kind)}{right}"
        if low is not None:
            if self.low_open:
                return "must be positive" if low == 0 else f"must exceed {_number(low, self.kind)}"
            return f"must be at least {_number(low, self.kind)}"
        if high is not None:
            return f"must be {'below' if self.high_open else 'at most'} {_number(high, self.kind)}"
        return "must be an integer" if self.kind is int else "must be a finite number"

    def normalise(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise Invalid("must be an integer" if self.kind is int else "must be a number", value)
        number: float
        if isinstance(value, numbers.Integral):  # a numpy integer too; exact however large
            number = operator.index(value)
            if self.kind is float:
                if abs(number) > 1e308:
                    raise Invalid("must be a finite number", value)
                number = float(number)
        elif not math.isfinite(value):
            raise Invalid("must be a finite number", value)
        elif self.kind is int and not float(value).is_integer():
            raise Invalid("must be an integer", value)
        else:  # 2.0 as YAML may write a whole number
            number = int(float(value)) if self.kind is int else float(value)
        low, high = self.low, self.high
        if (low is not None and (number <= low if self.low_open else number < low)) or (
            high is not None and (number >= high if self.high_open else number > high)
        ):
            raise Invalid(self.reason(), value)
        return number

    # The command line's wording (a flag, a study preset's key): '--epochs 0: out of range: use a whole number >= 1'.
    def describe(self) -> str:
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {_number(self.low, self.kind)}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {_number(self.high, self.kind)}")
        what = "a whole number" if self.kind is int else "a number"
        return f"use {what} {' and '.join(bounds)}".rstrip() + (f", or {self.hint}" if self.hint else "")

    def check(self, name: str, value: Any) -> Any:
        """`value` in range (an int for `kind` int), or a UsageError: 'NAME VALUE: why: use ...'."""
        text = f"{name} {shown(value)}"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise UsageError(f"{text}: not a number: {self.describe()}")
        if not isinstance(value, numbers.Integral) and not math.isfinite(value):
            raise UsageError(f"{text}: not a finite number: {self.describe()}")
        if self.kind is int and not isinstance(value, numbers.Integral) and not float(value).is_integer():
            raise UsageError(f"{text}: not a whole number: {self.describe()}")
        try:
            return self.normalise(value)
        except Invalid:
            raise UsageError(f"{text}: out of range: {self.describe()}") from None


@dataclass(frozen=True)
class Choice:
    """One of a few names."""

    choices: tuple[str, ...]

    def normalise(self, value: Any) -> Any:
        if not isinstance(value, str) or value not in self.choices:
            raise Invalid(f"must be one of {', '.join(self.choices)}", value)
        return value


@dataclass(frozen=True)
class Flag:
    """True or false (not 0, 1 or 'no')."""

    def normalise(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise Invalid("must be true or false", value)
        return value


@dataclass(frozen=True)
class ListOf:
    """A list (stored as a tuple) of values of `item`; `increasing`: in non-decreasing order; `nonempty`."""

    item: Spec
    increasing: bool = False
    nonempty: bool = False

    def normalise(self, value: Any) -> Any:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise Invalid("must be a list" + (" (not empty)" if self.nonempty else ""), value)
        if self.nonempty and not value:
            raise Invalid("must be a non-empty list", list(value))
        out = []
        for i, one in enumerate(value):
            try:
                out.append(self.item.normalise(one))
            except Invalid as exc:
                raise Invalid(exc.reason, exc.value, f"[{i}]{exc.where}") from None
        if self.increasing and out != sorted(out):
            raise Invalid("must be in increasing order", list(value))
        return tuple(out)


@dataclass(frozen=True)
class Maybe:
    """None (the field's meaning for 'not set') or a value of `spec`."""

    spec: Spec

    def normalise(self, value: Any) -> Any:
        return None if value is None else self.spec.normalise(value)


def ranges(specs: dict[str, Spec]) -> dict[str, Range]:
    """The numeric fields of `specs` (a Maybe's range too: a flag's None is 'not given'), by name."""
    out = {}
    for name, spec in specs.items():
        inner = spec.spec if isinstance(spec, Maybe) else spec
        if isinstance(inner, Range):
            out[name] = inner
    return out


def apply_specs(obj: Any, specs: dict[str, Spec], error: type[Exception]) -> None:
    """Normalise every field of the frozen dataclass `obj` that `specs` names, in declaration order; the first
    refused raises `error` with 'NAME REASON, got VALUE' (and, for a ScheduleError, the field's name)."""
    for name, spec in specs.items():
        try:
            value = spec.normalise(getattr(obj, name))
        except Invalid as exc:
            if issubclass(error, ScheduleError):
                raise ScheduleError(exc.text(name), name) from None
            raise error(exc.text(name)) from None
        object.__setattr__(obj, name, value)


__all__ = ["Choice", "Flag", "Invalid", "ListOf", "Maybe", "Range", "Spec", "apply_specs", "ranges", "shown"]
