"""The engine's commands as functions, for scripts and tests that run them in-process: `train_main(argv)` is
`lwl-train ARGV`, `inspect_main(argv)` is `lwl-inspect ARGV`; each returns the exit status."""

from __future__ import annotations

from collections.abc import Sequence


def train_main(argv: Sequence[str] | None = None) -> int:
    from ._train_inspect import train_main as main

    return main(argv)


def inspect_main(argv: Sequence[str] | None = None) -> int:
    from ._train_inspect import inspect_main as main

    return main(argv)


__all__ = ["inspect_main", "train_main"]
