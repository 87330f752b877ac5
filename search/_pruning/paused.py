"""Pruned means paused: a pruned candidate's whole training state, kept so that a revisit continues it.

When the pruner stops a candidate, the engine's trainer state at that step (weights, optimisers, every random
stream, the position and the records so far: `lwl.models.TrainerState`) goes into a bounded folder beside the
study, one file per (study, list). A later trial of the same list (a revisit, see `FeasibleSampler`) resumes
from it instead of starting again; because the engine's resume is bitwise, the revisit ends exactly where the
list would have ended had it never been pruned (tests/search/test_paused.py), and it costs only the epochs it
still has to train.

The folder is a cache (`lwl.models._files.FileStore`): when a state is missing (evicted, damaged, or the folder
could not be written), the revisit trains the list from the start, as before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lwl.models import FileStore, TrainerState

PAUSED_FORMAT = 1
DEFAULT_MAX_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Paused:
    """A paused candidate as a revisit finds it."""

    state: TrainerState  # what `lwl.models.train(resume=...)` continues from
    trial: int  # the pruned trial that trained it so far
    step: int  # the last step (epoch, or unit in sequential mode) it trained
    unit_epochs: int  # the unit-epochs it had trained: what the revisit does not pay again


class PausedStore(FileStore):
    """Paused candidates of one study's storage, bounded to `max_bytes` (least recently used go first)."""

    format = PAUSED_FORMAT
    what = "the store of paused candidates"
    consequence = (
        "pruned candidates are not kept, and a revisit trains its list from the start (free space there, or turn "
        "the store off)"
    )

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(directory, max_bytes)

    @staticmethod
    def key(study_name: str, hierarchy: Sequence[int]) -> str:
        text = repr((study_name, tuple(int(d) for d in hierarchy)))
        return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()

    def pause(self, study_name: str, hierarchy: Sequence[int], trial: int, state: TrainerState) -> bool:
        """Keep `state`, the candidate `trial` trained up to its last record; False if it could not be written."""
        history = state.get("history") or []
        last = history[-1] if history else {}
        payload: dict[str, Any] = {
            "state": state,
            "trial": int(trial),
            "step": int(last.get("step", 0)),
            "unit_epochs": int(last.get("unit_epochs", 0)),
        }
        return self.write(self.key(study_name, hierarchy), payload)

    def find(self, study_name: str, hierarchy: Sequence[int]) -> Paused | None:
        """The paused state of the list, if one is kept (and readable)."""
        key = self.key(study_name, hierarchy)
        payload = self.read(key)
        if payload is None:
            return None
        numbers: list[Any] = [payload.get(k) for k in ("trial", "step", "unit_epochs")]
        if not isinstance(payload.get("state"), dict) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers
        ):
            self.delete(key)
            self.warn(
                f"the paused state of {list(hierarchy)} in {self.directory} is damaged: discarded; its revisit "
                "trains the list from the start"
            )
            return None
        return Paused(payload["state"], *numbers)

    def forget(self, study_name: str, hierarchy: Sequence[int]) -> None:
        """The list trained to its end: its paused state serves nothing any more."""
        self.delete(self.key(study_name, hierarchy))


__all__ = ["DEFAULT_MAX_BYTES", "Paused", "PausedStore"]
