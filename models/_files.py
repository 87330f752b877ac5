"""Writing files so that a kill never leaves a torn one: the only file helpers models/ shares, and the check of a
path to write before anything is written there (`writable_file`, `writable_folder`, for every command).

Every file the engine writes (configs, checkpoints, metrics, final weights, stored prefix units) goes through
`atomic_write`; `remove_stale_temporaries` clears what a write cut short by a kill left behind. `FileStore` is a
bounded folder of such files that serves as a cache (the prefix store, the search's store of paused candidates).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

from ._errors import OutputError

# The temporary files `atomic_write` makes: hidden, beside their target, ending in .tmp.
TEMPORARY_GLOB = ".*.tmp"


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over `path`.

    A kill at any moment leaves either the old file or the new one, never a torn one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # "x": the umask's permissions
    recorder: _Recording | None = None
    try:
        with open(tmp, "xb") as f:
            recorder = _Recording(f)
            write(cast(IO[bytes], recorder))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except RuntimeError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if recorder is not None and recorder.error is not None:
            # torch's zip writer turns a failed write (a full disk) into "RuntimeError: unexpected pos": the
            # OSError it met is what happened
            raise recorder.error from None
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class _Recording:
    """A file that remembers the first OSError a write met (and raises it as usual)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            if self.error is None:
                self.error = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files of writes a kill cut short in `folder`; the files they were for are intact."""
    for stale in folder.glob(TEMPORARY_GLOB):
        stale.unlink(missing_ok=True)


class FileStore:
    """A folder of `KEY.pt` payloads (`torch.save`, read with `weights_only=True`), written atomically and bounded
    to `max_bytes`: after each write the least recently used files go until it fits. A cache: when the folder
    cannot be written, nothing more is written and `warn` says so once; what is stored stays readable. Several
    processes may share a folder. A subclass names its payload format and what the warning says."""

    format = 0  # written into every payload; a payload of another format reads as missing
    what = "the store"  # the warning's subject
    consequence = "nothing more is stored"  # what happens instead, and what to do

    def __init__(
        self, directory: str | os.PathLike[str], max_bytes: int, warn: Callable[[str], None] | None = None
    ) -> None:
        self.directory = Path(directory).absolute()
        self.max_bytes = int(max_bytes)
        self.warn = warn or _warn
        self.disabled: str | None = None  # why nothing is written any more (the first OSError), else None

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.pt"

    def read(self, key: str) -> dict[str, Any] | None:
        """A stored payload, or None when it is missing, being evicted, unreadable or of another format.

        Files are written atomically, so an unreadable one is damaged for good (a full disk, a foreign file): it is
        removed, so that what is computed again takes its place.
        """
        import torch  # a store holds tensors: only training reads and writes one

        path = self.path(key)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            os.utime(path)  # recently used: evicted last
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - truncated or foreign: torch raises UnpicklingError, RuntimeError, ...
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        if not isinstance(payload, dict) or payload.get("format") != self.format or payload.get("key") != key:
            return None
        return payload

    def write(self, key: str, payload: dict[str, Any]) -> bool:
        """Store one payload; False when the folder cannot be written: from then on nothing is written, said once."""
        import torch

        if self.disabled is not None:
            return False
        try:
            atomic_write(self.path(key), lambda f: torch.save({**payload, "format": self.format, "key": key}, f))
            self.evict()
        except OSError as exc:  # ENOSPC, EDQUOT, EROFS, EACCES, ...: a cache must not stop the training
            code = errno.errorcode.get(exc.errno or 0)
            self.disabled = f"{exc.strerror or type(exc).__name__}{f' ({code})' if code else ''}"
            self.warn(f"{self.what} {self.directory} cannot be written: {self.disabled}: {self.consequence}")
            return False
        return True

    def evict(self) -> None:
        """Delete the least recently used files until the folder holds at most `max_bytes`."""
        entries = []
        try:
            with os.scandir(self.directory) as it:
                for e in it:
                    if e.name.endswith(".pt"):
                        try:
                            st = e.stat()
                        except FileNotFoundError:
                            continue
                        entries.append((st.st_mtime, st.st_size, e.path))
        except FileNotFoundError:
            return
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            total -= size

    def size(self) -> tuple[int, int]:
        """(files, bytes) in the folder."""
        files = [p for p in self.directory.glob("*.pt")] if self.directory.is_dir() else []
        return len(files), sum(p.stat().st_size for p in files if p.exists())

    def delete(self, key: str) -> None:
        with contextlib.suppress(OSError):
            self.path(key).unlink()


def writable_folder(path: str | os.PathLike[str], flag: str) -> Path:
    """Refuse, before anything is written, a folder path that cannot be made or written: a file there or above it,
    or an existing place that refuses a file (probed with a temporary file, removed at once). Makes nothing."""
    target = Path(path)
    _probe(flag, target, target)
    return target


def writable_file(path: str | os.PathLike[str], flag: str) -> Path:
    """Refuse, before anything is written, a file path that is a folder or whose folder cannot be made or written."""
    target = Path(path)
    try:
        if target.is_dir():
            raise OutputError(f"{flag} {target}: a folder is there: give a file name")
        if target.exists() and not os.access(target, os.W_OK):
            raise OutputError(f"{flag} {target}: the file is read-only: choose another name")
    except OSError as exc:
        raise OutputError(f"{flag} {target}: {exc.strerror or type(exc).__name__}: choose another name") from None
    _probe(flag, target, target.parent)
    return target


def _probe(flag: str, target: Path, folder: Path) -> None:
    """`folder` (where `target` goes) exists as a folder that takes a file, or can be made under one that does."""
    try:
        base = folder
        while not base.exists() and base != base.parent:
            base = base.parent
        if not base.is_dir():
            what = "a file is there, not a folder" if base == target else f"{base} is a file"
            raise OutputError(f"{flag} {target}: {what}: choose another path")
        fd, probe = tempfile.mkstemp(dir=base, prefix=".lwl-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputError(f"{flag} {target}: cannot write there ({reason}): choose a place you can write to") from None


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


__all__ = [
    "TEMPORARY_GLOB",
    "FileStore",
    "atomic_write",
    "remove_stale_temporaries",
    "writable_file",
    "writable_folder",
]
