"""The dashboards' command as a function, for scripts and tests that run it in-process: `report_main(argv)` is
`lwl-report ARGV` and returns the exit status."""

from __future__ import annotations

from collections.abc import Sequence


def report_main(argv: Sequence[str] | None = None) -> int:
    from ._cli import main

    return main(argv)


__all__ = ["report_main"]
