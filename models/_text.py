"""How every command writes counts and accuracies: one formatting, for the commands and for the report."""

from __future__ import annotations

from typing import Any


def plural(n: Any, word: str, words: str | None = None) -> str:
    """'1 epoch', '5 epochs' (`words` for an irregular plural): every count a command prints in words."""
    return f"{n} {word}" if n == 1 else f"{n} {words or word + 's'}"


def percent(value: float | None, *, width: int = 0, empty: str = "-", suffix: str = "") -> str:
    """An accuracy in [0, 1] as a percentage with one decimal (`suffix` after it), right-aligned to `width`;
    `empty` for None. The one formatting of accuracies in every command's output."""
    return (empty if value is None else f"{100 * value:.1f}{suffix}").rjust(width)


__all__ = ["percent", "plural"]
