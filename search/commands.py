"""The search package's commands as functions, for scripts and tests that run them in-process:
`search_main(argv)` is `lwl-search ARGV`, `export_main(argv)` is `lwl-export ARGV`; each returns the exit status.

Separate from `lwl.search` itself, so that importing the library never imports the command-line layer.
"""

from __future__ import annotations

from collections.abc import Sequence


def search_main(argv: Sequence[str] | None = None) -> int:
    from ._console.lwl_search import main

    return main(argv)


def export_main(argv: Sequence[str] | None = None) -> int:
    from ._console.lwl_export import main

    return main(argv)


__all__ = ["export_main", "search_main"]
