"""The search's user errors, each named after what went wrong; all are `lwl.models.LwlError`, so every command
prints them as one line with exit status 2."""

from __future__ import annotations

from lwl.models import LwlError, UsageError  # UsageError: shared by every command


class SpaceError(LwlError, ValueError):
    """A search space that cannot be searched: a budget, stage count, constraint or list that admits nothing."""


class StorageError(LwlError, ValueError):
    """A storage that cannot be used; the URL is shown without its password."""


class SettingsError(LwlError, ValueError):
    """A study whose stored settings differ from this run's, or settings that cannot be combined."""


class PresetError(LwlError, ValueError):
    """A study preset file (YAML) that is missing, unreadable, or names unknown flags."""


class ExportError(LwlError, ValueError):
    """Nothing to export, or nowhere to put it; one line naming the study or trial and what to do."""


__all__ = ["ExportError", "PresetError", "SettingsError", "SpaceError", "StorageError", "UsageError"]
