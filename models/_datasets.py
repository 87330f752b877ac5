"""The data sets: what each one is (classes, channels, size, statistics, augmentation), before anything is loaded.

A table and its look-ups, without torch: commands that only describe a network or read a study (`lwl-inspect`,
`lwl-export`, `lwl-report`) read it; loading the images is `_data`'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ._errors import DataError

# The training augmentations a data set or a recipe may name (applied on the device, `_batches`).
AUGMENTATIONS: tuple[str, ...] = ("crop", "flip")


@dataclass(frozen=True)
class DatasetInfo:
    """What a network and a training recipe need to know about a data set, before loading it."""

    name: str
    num_classes: int
    in_channels: int
    input_size: int  # square side after preprocessing
    mean: tuple[float, ...]  # per channel, of the [0, 1]-scaled preprocessed images
    std: tuple[float, ...]
    augment: tuple[str, ...]  # default training augmentation
    crop_padding: int  # zero padding of the random crop


DATASETS: dict[str, DatasetInfo] = {
    # Digits: mean/std over all 1797 images after scaling to [0, 1] and upscaling to 16x16
    # (tests/models/test_data.py recomputes them). No augmentation: flipped digits are other digits.
    "digits": DatasetInfo("digits", 10, 1, 16, (0.3053,), (0.3189,), (), 0),
    # CIFAR: the usual per-channel statistics of the 50,000 training images.
    "cifar10": DatasetInfo(
        "cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), ("crop", "flip"), 4
    ),
    "cifar100": DatasetInfo(
        "cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), ("crop", "flip"), 4
    ),
    # The other data sets of the reference code (anokland/local-loss, train.py), at the sizes it trains them: no
    # resizing. Their means and stds are the widely published statistics of each training split, not recomputed here
    # (no copy of the data was at hand); the reference's own constants are beside each entry.
    # MNIST: 60,000 28x28 grey images; the reference's 2-pixel jitter (RandomCrop(28, padding=2)), no flip (a
    # mirrored digit is another digit or none); the reference normalises with the same (0.1307,), (0.3081,).
    "mnist": DatasetInfo("mnist", 10, 1, 28, (0.1307,), (0.3081,), ("crop",), 2),
    # Fashion-MNIST: 60,000 28x28 grey images; crop (padding 2) and horizontal flip as the reference (a mirrored
    # garment is the same garment); the reference normalises with (0.286,), (0.353,).
    "fmnist": DatasetInfo("fmnist", 10, 1, 28, (0.2860,), (0.3530,), ("crop", "flip"), 2),
    # Kuzushiji-MNIST: 60,000 28x28 grey images; no augmentation, as the reference. The reference normalises with
    # (0.1904,), (0.3475,); ours are the values most code publishes for the training images.
    "kmnist": DatasetInfo("kmnist", 10, 1, 28, (0.1918,), (0.3483,), (), 0),
    # SVHN: 32x32 colour house numbers, the 73,257 images of the 'train' split; no augmentation, as the reference
    # (no flip: mirrored digits are other digits). The reference trains on 'train' + 'extra' (604,388 images:
    # 7 GB as float32 on the device) and normalises with their statistics, (0.431, 0.430, 0.446), (0.197, 0.198,
    # 0.199); ours are the published statistics of 'train' alone.
    "svhn": DatasetInfo("svhn", 10, 3, 32, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), (), 0),
    # STL-10: the 5,000 labelled 96x96 colour images of the 'train' split (no folds, no unlabelled images), at 96x96
    # and without augmentation, as the reference, which normalises with the same statistics rounded to 3 places,
    # (0.447, 0.440, 0.407), (0.260, 0.257, 0.271).
    "stl10": DatasetInfo("stl10", 10, 3, 96, (0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713), (), 0),
}


def dataset_info(name: str) -> DatasetInfo:
    """The description of data set `name`, or a DataError listing the known names."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(f"unknown data set {name!r}: choose one of {', '.join(sorted(DATASETS))}") from None


def default_data_root() -> Path:
    """Where data sets live when no --data-root is given: $LWL_DATA, else ~/.cache/lwl/data."""
    env = os.environ.get("LWL_DATA")
    return Path(env).expanduser() if env else Path("~/.cache/lwl/data").expanduser()


__all__ = ["AUGMENTATIONS", "DATASETS", "DatasetInfo", "dataset_info", "default_data_root"]
