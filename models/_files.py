"""Writing files so that a kill never leaves a torn one: the only file helpers models/ shares.

Every file the engine writes (configs, checkpoints, metrics, final weights, stored prefix units) goes through
`atomic_write`; `remove_stale_temporaries` clears what a write cut short by a kill left behind.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

# The temporary files `atomic_write` makes: hidden, beside their target, ending in .tmp.
TEMPORARY_GLOB = ".*.tmp"


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over `path`.

    A kill at any moment leaves either the old file or the new one, never a torn one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # "x": the umask's permissions
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files of writes a kill cut short in `folder`; the files they were for are intact."""
    for stale in folder.glob(TEMPORARY_GLOB):
        stale.unlink(missing_ok=True)


__all__ = ["TEMPORARY_GLOB", "atomic_write", "remove_stale_temporaries"]
