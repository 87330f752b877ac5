"""The errors a user can fix, under one base that every command turns into one line and exit status 2.

Each class is named after what went wrong, not after the module that noticed it. The builtin second base
(ValueError, RuntimeError) keeps `except ValueError` callers working.
"""

from __future__ import annotations


class LwlError(Exception):
    """Something the user can fix; its first line names the problem and the fix (see `lwl.models.cli`)."""


class ScheduleError(LwlError, ValueError):
    """A hierarchy list, a network family, its widths or a network preset that cannot be built; `field` names the
    schedule field at fault (the hierarchy unless another is named)."""

    def __init__(self, message: str, field: str = "hierarchy") -> None:
        super().__init__(message)
        self.field = field


class RecipeError(LwlError, ValueError):
    """A training recipe value out of range or unknown (loss, mode, epochs, learning rate, ...)."""


class DeviceError(LwlError, ValueError):
    """A device that is not there (e.g. --device cuda on a machine without CUDA)."""


class DataError(LwlError, ValueError):
    """A data set that is unknown or missing, with what to do about it."""


class ConfigError(LwlError, ValueError):
    """A training config that cannot be used; one line naming the file and the field."""


class UsageError(LwlError, ValueError):
    """A flag value out of range or a combination of flags that does not work together (e.g. --workers 0)."""


class OutputError(LwlError, ValueError):
    """A path to write (--out, --artifact-dir, --prefix-store, a storage file) that is a file where a folder
    belongs, a folder where a file belongs, or somewhere that cannot be written; checked before anything is."""


class TooLargeError(LwlError, ValueError):
    """A network or batch whose memory (estimated before anything is allocated) exceeds the machine's."""


class TrainingError(LwlError, RuntimeError):
    """Training could not go on; `reason` is the short word stored with a failed trial."""

    reason = "error"


class Diverged(TrainingError):
    """A loss became infinite or NaN."""

    reason = "diverged"


class ResumeError(TrainingError):
    """A state that cannot be resumed here (another schedule, recipe or format); the message names the field."""

    reason = "resume"


class CheckpointError(TrainingError):
    """A checkpoint that is missing, unreadable or written for another config; one line saying what to do."""

    reason = "checkpoint"


def interrupted(exc: BaseException) -> bool:
    """Ctrl-C or SIGTERM (a KeyboardInterrupt), or an error raised while one was being handled: an interrupt that
    cut a library's cleanup short (Optuna's journal-file lock, seen in a test) surfaces as that cleanup's error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__context__
    return False


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "Diverged",
    "LwlError",
    "OutputError",
    "RecipeError",
    "ResumeError",
    "ScheduleError",
    "TooLargeError",
    "TrainingError",
    "UsageError",
    "interrupted",
]
