"""Data sets: loading one whole, split and normalised, onto the training device (what each one is: `_datasets`).

The data sets of the paper are small enough to live on the accelerator entire, so there is no DataLoader and
no per-image Python: batches are gathered from these tensors on the device (`_batches`).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ._datasets import DATASETS, DatasetInfo, dataset_info, default_data_root
from ._errors import DataError, ScheduleError
from ._schedule import Schedule

__all__ = [
    "DATASETS",
    "DataError",
    "DataSplits",
    "DatasetInfo",
    "check_compatible",
    "dataset_info",
    "default_data_root",
    "import_torchvision",
    "load_data",
    "splits_from_images",
]

_DIGITS_TEST_FRACTION = 0.2
_DIGITS_TEST_SEED = 0  # fixed: the digits test set must never move with split_seed or val_fraction


@dataclass
class DataSplits:
    """Train/validation(/test) tensors: float32 normalised NCHW images and int64 labels, on one device."""

    info: DatasetInfo
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None

    def to(self, device: str | torch.device) -> DataSplits:
        """A copy with every tensor on `device` (tensors already there are shared, not copied)."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            val_x=self.val_x.to(device),
            val_y=self.val_y.to(device),
            test_x=move(self.test_x),
            test_y=move(self.test_y),
        )


# ------------------------------------------------------------------------------------------------ loading
def load_data(
    name: str,
    *,
    data_root: str | os.PathLike[str] | None = None,
    download: bool = False,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    with_test: bool = False,
    device: str | torch.device = "cpu",
    limit: int | None = None,
) -> DataSplits:
    """Load data set `name` whole, split off a stratified validation set, normalise, and place it on `device`.

    The validation split is `val_fraction` of the training data, stratified by class and seeded by
    `split_seed`; `val_fraction` 0 holds nothing out (empty validation tensors: a full training run on every
    training image, judged on the test set). The test set (the data set's official one; for digits a fixed,
    seed-0, stratified 20%) is only loaded when `with_test`, so that model selection cannot see it by accident.
    `limit` keeps the first `limit` training examples after the split, for tiny runs.
    """
    info = dataset_info(name)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real) or not 0 <= val_fraction <= 0.5:
        raise DataError(
            f"validation fraction {val_fraction!r} is out of range: choose a value in [0, 0.5] (0: no validation split)"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1):
        raise DataError(f"limit {limit!r} is not a positive number of training examples: pass an integer >= 1")
    device = torch.device(device)
    if info.name == "digits":
        return _load_digits(info, val_fraction, split_seed, with_test, device, limit)
    return _load_files(info, data_root, download, val_fraction, split_seed, with_test, device, limit)


def _stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) indices, both sorted; round(fraction * count) of each class is held out.

    Written out rather than borrowed from scikit-learn so that the split depends on numpy's seeded
    generator alone, not on a library's version.
    """
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    classes, counts = np.unique(labels, return_counts=True)
    if fraction > 0 and counts.size and np.floor(fraction * counts.min() + 0.5) < 1:
        # A validation split without an image of some class (or without any) cannot rank lists: refused before
        # anything trains, with the smallest fraction that holds out an image of every class.
        smallest = math.ceil(0.5 / int(counts.min()) * 10**4) / 10**4
        raise DataError(
            f"validation fraction {fraction:g} (--val-fraction) holds out no image of class {classes[counts.argmin()]} "
            f"({int(counts.min())} training images of it): use --val-fraction {smallest:g} or more"
        )
    for c in classes:
        idx = np.flatnonzero(labels == c)
        k = int(np.floor(fraction * idx.size + 0.5))
        held.append(rng.permutation(idx)[:k])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    mask = np.ones(labels.size, dtype=bool)
    mask[held_idx] = False
    return np.flatnonzero(mask), held_idx


def _digits_images() -> tuple[torch.Tensor, np.ndarray]:
    """All digits as [0, 1] float32 16x16 images (before normalisation), and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    return x, np.asarray(digits.target, dtype=np.int64)


def _normalise(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """In place: (x - mean) / std per channel, x in [0, 1] float32 NCHW."""
    shape = (1, -1, 1, 1)
    mean = torch.tensor(info.mean, dtype=x.dtype, device=x.device).view(shape)
    std = torch.tensor(info.std, dtype=x.dtype, device=x.device).view(shape)
    return x.sub_(mean).div_(std)


def _load_digits(
    info: DatasetInfo, val_fraction: float, split_seed: int, with_test: bool, device: torch.device, limit: int | None
) -> DataSplits:
    x, y = _digits_images()
    rest, test_idx = _stratified_split(y, _DIGITS_TEST_FRACTION, _DIGITS_TEST_SEED)
    keep, held = _stratified_split(y[rest], val_fraction, split_seed)
    train_idx, val_idx = rest[keep][:limit], rest[held]
    x = _normalise(x, info)
    labels = torch.from_numpy(y)

    def take(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.from_numpy(idx)
        return x[i].contiguous().to(device), labels[i].to(device)

    train_x, train_y = take(train_idx)
    val_x, val_y = take(val_idx)
    test_x, test_y = take(test_idx) if with_test else (None, None)
    return DataSplits(info, train_x, train_y, val_x, val_y, test_x, test_y)


@dataclass(frozen=True)
class _Files:
    """Where a torchvision data set keeps its files under the data root, and how its class opens each split."""

    title: str  # the data set's own spelling, for messages
    cls: str  # the class in torchvision.datasets
    train: dict[str, Any]  # the class's arguments for the training split, and for the test split
    test: dict[str, Any]
    found: tuple[str, str]  # under the root, per split: what exists once the files are there (a folder ends in /)
    channels_first: bool = False  # images come as NCHW (SVHN, STL-10), else NHWC or NHW (grey)
    # --download fetches damaged files again (an MD5 check); MNIST-like sets only fetch the missing ones.
    refetches_damaged: bool = True


_TRAIN, _TEST = {"train": True}, {"train": False}
_SPLITS = {"split": "train"}, {"split": "test"}
# The layouts are torchvision's (and so where --download puts the files): MNIST-like sets as raw idx files under
# <root>/<class name>/raw/, SVHN's .mat files directly under the root, STL-10's binaries under stl10_binary/.
_FILES: dict[str, _Files] = {
    "cifar10": _Files("CIFAR-10", "CIFAR10", _TRAIN, _TEST, ("cifar-10-batches-py/",) * 2),
    "cifar100": _Files("CIFAR-100", "CIFAR100", _TRAIN, _TEST, ("cifar-100-python/",) * 2),
    "mnist": _Files("MNIST", "MNIST", _TRAIN, _TEST, ("MNIST/raw/",) * 2, refetches_damaged=False),
    "fmnist": _Files(
        "Fashion-MNIST", "FashionMNIST", _TRAIN, _TEST, ("FashionMNIST/raw/",) * 2, refetches_damaged=False
    ),
    "kmnist": _Files("Kuzushiji-MNIST", "KMNIST", _TRAIN, _TEST, ("KMNIST/raw/",) * 2, refetches_damaged=False),
    "svhn": _Files("SVHN", "SVHN", *_SPLITS, ("train_32x32.mat", "test_32x32.mat"), channels_first=True),
    # STL-10: torchvision checks the MD5 of all five files, the 2.7 GB of unlabelled images too, at each opening.
    "stl10": _Files("STL-10", "STL10", *_SPLITS, ("stl10_binary/",) * 2, channels_first=True),
}


class _BadArrays(Exception):
    """What torchvision read is not the data set's images and labels (a damaged file it did not notice)."""


def _arrays(ds: Any, files: _Files, info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    """A torchvision data set's images as uint8 NHWC (a view where possible) and labels as int64, checked."""
    images = np.asarray(ds.data)
    labels = np.asarray(ds.targets if hasattr(ds, "targets") else ds.labels).astype(np.int64, copy=False)
    if images.ndim == 3:  # grey images without a channel axis
        images = images[..., None]
    elif files.channels_first and images.ndim == 4:
        images = images.transpose(0, 2, 3, 1)
    shape = (info.input_size, info.input_size, info.in_channels)
    if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != shape or not len(images):
        raise _BadArrays(f"{images.dtype} images of shape {images.shape}, expected uint8 (N, {shape})")
    if labels.shape != (len(images),):
        raise _BadArrays(f"{labels.size} labels for {len(images)} images")
    if labels.min() < 0 or labels.max() >= info.num_classes:
        raise _BadArrays(f"labels outside 0..{info.num_classes - 1}")
    return images, labels


def _damaged(files: _Files, path: Path, found: str) -> DataError:
    what = f"files under {path}/ are" if found.endswith("/") else f"file {path} is"
    fix = "pass --download to fetch them again" if files.refetches_damaged else "delete them and pass --download"
    return DataError(f"{files.title} {what} incomplete or corrupted: {fix}, or --data-root DIR where a good copy is")


def _all_there(cls: Any, root: Path) -> bool:
    """Every raw file of an MNIST-like set is present (torchvision's download then fetches nothing)."""
    raw = root / cls.__name__ / "raw"
    return all((raw / Path(name).stem).is_file() for name, _ in cls.resources)


# The torch/torchvision pair pyproject.toml admits and the tests run on; a torchvision is built for one torch minor
# release (torchvision 0.N+15 for torch 2.N), and another torch's makes its first import fail.
TESTED_PAIR = ("2.14.1", "0.29.1")
_MINOR_OFFSET = 15


def _release(version: str) -> tuple[int, int] | None:
    """(major, minor) of '2.14.1+cpu', or None for a version of another form."""
    parts = version.split("+")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def _installed_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def import_torchvision(module: str = "torchvision.datasets") -> Any:
    """`import MODULE` (a torchvision module), or a DataError of one line naming both versions and the fix when
    torchvision is missing, fails to import (a torchvision built for another torch: "operator torchvision::nms does
    not exist"), or was built for another torch release than the one installed."""
    import importlib

    torch_version = torch.__version__
    fix = (
        f"install a matching pair, e.g. python3 -m pip install torch=={TESTED_PAIR[0]} torchvision=={TESTED_PAIR[1]} "
        "(add --index-url https://download.pytorch.org/whl/cpu for the CPU build)"
    )
    try:
        loaded = importlib.import_module(module)
    except MemoryError:
        raise
    except Exception as exc:
        vision = _installed_version("torchvision")
        why = (" ".join(str(exc).split()) or type(exc).__name__)[:120]
        raise DataError(f"torchvision {vision} cannot be imported with torch {torch_version} ({why}): {fix}") from None
    vision = str(getattr(sys.modules.get("torchvision"), "__version__", _installed_version("torchvision")))
    ours, theirs = _release(torch_version), _release(vision)
    if ours is not None and theirs is not None and (theirs[0], theirs[1] - _MINOR_OFFSET) != (ours[0] - 2, ours[1]):
        raise DataError(f"torchvision {vision} is not built for torch {torch_version}: {fix}")
    return loaded


def _open_files(info: DatasetInfo, root: Path, train: bool, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """The raw uint8 NHWC images and int64 labels of one split of a torchvision data set, with every way that
    reading (or fetching) it can fail made one line that names the fix."""
    datasets = import_torchvision("torchvision.datasets")

    files = _FILES[info.name]
    cls = getattr(datasets, files.cls)
    kwargs = files.train if train else files.test
    found = files.found[0 if train else 1]
    if download and not files.refetches_damaged:
        try:  # a damaged file there would not be fetched again: say so, not "downloading failed"
            return _arrays(cls(root=str(root), download=False, **kwargs), files, info)
        except MemoryError:
            raise
        except Exception:
            if _all_there(cls, root):
                raise _damaged(files, root / found, found) from None
    if download:
        try:
            # torchvision announces the download on stdout; keep stdout clean for machine-readable output.
            with contextlib.redirect_stdout(sys.stderr):
                return _arrays(cls(root=str(root), download=True, **kwargs), files, info)
        except MemoryError:
            raise
        except Exception as e:  # the network, a truncated archive, a full disk: all end the same way
            reason = " ".join(str(e).split()) or type(e).__name__
            raise DataError(
                f"downloading {files.title} into {root} failed ({reason}): check the network, "
                f"or pass --data-root DIR where the files already are"
            ) from None
    try:
        return _arrays(cls(root=str(root), download=False, **kwargs), files, info)
    except MemoryError:
        raise
    except Exception:  # torchvision's "not found or corrupted", or whatever a damaged file makes its reader raise
        if (root / found).exists():
            raise _damaged(files, root / found, found) from None
        raise DataError(
            f"{files.title} not found under {root} (looked for {found}): pass --download to fetch it, "
            f"or --data-root DIR where it is"
        ) from None


def _image_tensor(images: np.ndarray, idx: np.ndarray | None, info: DatasetInfo, device: torch.device) -> torch.Tensor:
    """Select, move as uint8 (4x less to copy), then convert to normalised float32 NCHW on the device."""
    x = torch.from_numpy(images)
    if idx is not None:
        x = x[torch.from_numpy(idx)]
    x = x.to(device).permute(0, 3, 1, 2).contiguous().to(torch.float32).div_(255.0)
    return _normalise(x, info)


def splits_from_images(
    info: DatasetInfo,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    device: str | torch.device = "cpu",
) -> DataSplits:
    """`DataSplits` from uint8 NHWC images (as torchvision's CIFAR data sets hold them) and integer labels,
    converted exactly as CIFAR is loaded: for synthetic or already-split CIFAR-shaped data."""
    dev = torch.device(device)
    shape = (info.input_size, info.input_size, info.in_channels)
    for name, x in (("train_x", train_x), ("val_x", val_x)):
        if x.dtype != np.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != shape:
            raise DataError(
                f"{name}: expected uint8 images of shape (N, {', '.join(map(str, shape))}) for "
                f"{info.name}, got {x.dtype} {tuple(x.shape)}"
            )

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(y, dtype=torch.int64).to(dev)

    return DataSplits(
        info,
        _image_tensor(train_x, None, info, dev),
        labels(train_y),
        _image_tensor(val_x, None, info, dev),
        labels(val_y),
    )


def _load_files(
    info: DatasetInfo,
    data_root: str | os.PathLike[str] | None,
    download: bool,
    val_fraction: float,
    split_seed: int,
    with_test: bool,
    device: torch.device,
    limit: int | None,
) -> DataSplits:
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    images, labels = _open_files(info, root, train=True, download=download)
    present = int(np.unique(labels).size)
    if present < info.num_classes:  # readable files that cannot be the data set: a few images, some classes missing
        title = _FILES[info.name].title
        raise DataError(
            f"{title} under {root} holds {labels.size} training image(s) of {present} of its {info.num_classes} "
            "classes: the files are incomplete: pass --download to fetch them again, or --data-root DIR where a "
            "good copy is"
        )
    train_idx, val_idx = _stratified_split(labels, val_fraction, split_seed)
    train_idx = train_idx[:limit]
    y = torch.from_numpy(labels)
    train_x = _image_tensor(images, train_idx, info, device)
    train_y = y[torch.from_numpy(train_idx)].to(device)
    val_x = _image_tensor(images, val_idx, info, device)
    val_y = y[torch.from_numpy(val_idx)].to(device)
    test_x = test_y = None
    if with_test:
        # With --download too: SVHN fetches each split's file on its own (the others have them both already).
        test_images, test_labels = _open_files(info, root, train=False, download=download)
        test_x = _image_tensor(test_images, None, info, device)
        test_y = torch.from_numpy(test_labels).to(device)
    if val_fraction > 0 and val_idx.size == 0:  # nothing to validate on: every accuracy would be missing
        raise DataError(
            f"a validation fraction of {val_fraction:g} holds out none of the {labels.size} training images of "
            f"{_FILES[info.name].title} under {root} (too few of each class): use a larger --val-fraction, or "
            "--data-root DIR where the whole data set is"
        )
    return DataSplits(info, train_x, train_y, val_x, val_y, test_x, test_y)


def check_compatible(schedule: Schedule, data: DataSplits) -> None:
    """Refuse to train a schedule built for another data set's classes, channels or input size."""
    info = data.info
    if (schedule.num_classes, schedule.in_channels, schedule.input_size) != (
        info.num_classes,
        info.in_channels,
        info.input_size,
    ):
        raise ScheduleError(
            f"schedule expects {schedule.in_channels}x{schedule.input_size}x{schedule.input_size} inputs with "
            f"{schedule.num_classes} classes, data set {info.name} has {info.in_channels}x{info.input_size}x"
            f"{info.input_size} with {info.num_classes}: build the schedule for the data set"
        )
