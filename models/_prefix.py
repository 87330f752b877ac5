"""Exact prefix sharing for greedy (sequential) training: a unit trained and frozen once serves every later candidate
whose first units are the same.

Why it is exact: in layer-wise training unit j depends only on units < j; its initialisation and dropout come from
streams seeded by (seed, position), and the batch order from a stream seeded by the seed alone. So the state after
unit j is a function of the units up to j and everything the run is given, and nothing else. The store keys each
frozen unit by exactly that: the unit keys of the prefix (`unit_keys`: stage, index, channels, stride, pool,
resolution, and a head's design where it depends on later units), the family, block and classes, the whole
recipe, a fingerprint of the data (after the split), the device type and the torch version. A candidate that
finds its first d units stored loads them, replays their progress records to its caller (a pruner sees exactly
what it would have seen), and trains from unit d+1 on. On the CPU the result is bitwise the one of training alone
(tests/models/test_prefix.py).

One file per unit (`KEY.pt`, its weights and BatchNorm statistics, its accuracy and loss, and the random streams'
states at that point), written atomically and read with `torch.load(weights_only=True)`, so several workers can
share a folder. The folder is bounded: after each write the least recently used files go until it fits.

The store is a cache: when its folder cannot be written (a full disk, a quota, a read-only file system), training
goes on without storing, and the store says so once (`warn`); what is stored stays readable.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ._data import DataSplits
from ._files import FileStore
from ._plan import unit_keys
from ._recipe import Recipe
from ._schedule import Schedule

PREFIX_FORMAT = 4  # 3: units trained with `_steps.dropped` masks and a resolved precision; 4: plans name kind, bias
DEFAULT_MAX_BYTES = 2 * 1024**3


def data_fingerprint(data: DataSplits) -> str:
    """A hash of the training and validation tensors as the trainer gets them: the split and its order included."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((data.info.name, tuple(data.train_x.shape), tuple(data.val_x.shape))).encode())
    for t in (data.train_x, data.train_y, data.val_x, data.val_y):
        h.update(t.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


class PrefixStore(FileStore):
    """A folder of frozen units, bounded to `max_bytes` (least recently used files go first)."""

    format = PREFIX_FORMAT
    what = "the prefix store"
    consequence = "candidates go on training without storing their units (free space there, or turn the store off)"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_bytes: int = DEFAULT_MAX_BYTES,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(directory, max_bytes, warn)
        self.reused_units = 0  # over every session of this store object: what a caller reports as saved
        self.reused_seconds = 0.0
        self._fingerprints: dict[int, tuple[torch.Tensor, str]] = {}  # id(train_x) -> (the tensor, its hash)

    def session(
        self, schedule: Schedule, recipe: Recipe, data: DataSplits, device: torch.device
    ) -> PrefixSession | None:
        """What one training run reads and writes; None where nothing can be shared (simultaneous or global)."""
        if recipe.mode != "sequential" or recipe.loss == "global":
            return None
        cached = self._fingerprints.get(id(data.train_x))
        if cached is None or cached[0] is not data.train_x:
            cached = (data.train_x, data_fingerprint(data))
            self._fingerprints[id(data.train_x)] = cached
        identity = repr(
            (
                PREFIX_FORMAT,
                torch.__version__,
                device.type,
                schedule.family,
                schedule.block,
                schedule.num_classes,
                sorted(recipe.to_dict().items()),
                cached[1],
            )
        )
        return PrefixSession(self, identity, unit_keys(schedule, recipe.head))


@dataclass
class PrefixSession:
    """One run's view of the store: the keys of its prefixes, and what it reused and added."""

    store: PrefixStore
    identity: str
    plans: list[str]
    reused: int = 0  # units loaded instead of trained
    reused_seconds: float = 0.0  # what training them took when they were first trained
    saved: int = 0  # units this run added to the store
    _keys: dict[int, str] = field(default_factory=dict)

    def key(self, depth: int) -> str:
        """The key of the prefix of `depth` units, i.e. of unit depth-1 given everything before it."""
        if depth not in self._keys:
            text = repr((self.identity, self.plans[:depth]))
            self._keys[depth] = hashlib.blake2b(text.encode(), digest_size=20).hexdigest()
        return self._keys[depth]

    def load(self, max_depth: int) -> list[dict[str, Any]]:
        """The stored units 1..d of the deepest prefix stored without a gap, d <= max_depth (maybe none)."""
        found: list[dict[str, Any]] = []
        for depth in range(1, max_depth + 1):
            payload = self.store.read(self.key(depth))
            if payload is None:
                break
            found.append(payload)
        self.reused = len(found)
        self.reused_seconds = float(sum(p.get("seconds", 0.0) for p in found))
        self.store.reused_units += self.reused
        self.store.reused_seconds += self.reused_seconds
        return found

    def save(
        self,
        depth: int,
        unit_state: dict[str, torch.Tensor],
        acc: float | None,
        loss: float | None,
        data_rng: torch.Tensor,
        dropout_rngs: list[torch.Tensor],
        seconds: float,
    ) -> None:
        """Store unit depth-1, frozen, with the random streams' states after it was trained: the data stream and
        the dropout streams of units 0..depth-1 (training unit j draws from stream j-1 on its input and from
        stream j on its output)."""
        key = self.key(depth)
        # Rare (a gap left by eviction or damage, or another worker was quicker): keep a readable file, replace a
        # damaged one (read removes it).
        if self.store.path(key).exists() and self.store.read(key) is not None:
            return
        written = self.store.write(
            key,
            {
                "depth": depth,
                "unit": {k: v.detach().to("cpu", copy=True) for k, v in unit_state.items()},
                "acc": acc,
                "loss": loss,
                "data_rng": data_rng.clone(),
                "dropout_rngs": [g.clone() for g in dropout_rngs],
                "seconds": float(seconds),
                "saved_at": time.time(),
            },
        )
        self.saved += written


__all__ = ["DEFAULT_MAX_BYTES", "PrefixSession", "PrefixStore", "data_fingerprint"]
