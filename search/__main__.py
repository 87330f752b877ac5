"""`python -m lwl.search`: the `lwl-search` command, for when the console script is not on PATH (and for workers,
which must run under the same interpreter)."""

from ._console.lwl_search import main

raise SystemExit(main())
