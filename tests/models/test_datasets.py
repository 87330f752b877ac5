"""The reference code's other data sets (MNIST, Fashion-MNIST, KMNIST, SVHN, STL-10), read from tiny files written
in the exact format torchvision reads: MNIST-like idx files, SVHN's MATLAB files, STL-10's column-major binaries.

Offline: no test downloads. Every pixel of example k is a known function of (k, channel, row, column), so a test
can check that the layout conversions put each one where it belongs, and find each example after the split.
"""

from __future__ import annotations

import json
import struct
import urllib.error
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from lwl.models import DATASETS, DataError, dataset_info, load_data
from lwl.models.commands import train_main

N_TRAIN = 30  # 3 of each class: val_fraction 0.2 holds out one of each
N_TEST = 10


def pixel(k: np.ndarray, c: np.ndarray, r: np.ndarray, col: np.ndarray) -> np.ndarray:
    """The value written at channel c, row r, column col of example k: k itself at (0, 0, 0), and row and column
    weighted differently, so that a transposed image cannot decode right."""
    return (k + 50 * c + 3 * r + 7 * col) % 256


def images(n: int, first: int, size: int, channels: int) -> np.ndarray:
    """Examples first..first+n-1 as uint8 (N, C, H, W)."""
    k, c, r, col = np.meshgrid(
        np.arange(first, first + n), np.arange(channels), np.arange(size), np.arange(size), indexing="ij"
    )
    return pixel(k, c, r, col).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ the formats
def write_idx(root: Path, folder: str, *, size: int = 28) -> None:
    """<root>/<folder>/raw/: the four uncompressed idx files torchvision's MNIST, FashionMNIST and KMNIST read
    (big-endian magic 2051 or 2049, then the dimensions, then the bytes)."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, first, n in (("train", 0, N_TRAIN), ("t10k", N_TRAIN, N_TEST)):
        x = images(n, first, size, 1)[:, 0]
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">4i", 2051, n, size, size) + x.tobytes())
        y = (np.arange(first, first + n) % 10).astype(np.uint8)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">2i", 2049, n) + y.tobytes())


def write_svhn(root: Path) -> None:
    """<root>/train_32x32.mat and test_32x32.mat: X as (32, 32, 3, N) uint8, y as (N, 1) with 10 for the digit 0."""
    root.mkdir(parents=True, exist_ok=True)
    for split, first, n in (("train", 0, N_TRAIN), ("test", N_TRAIN, N_TEST)):
        x = images(n, first, 32, 3).transpose(2, 3, 1, 0)  # N, C, H, W -> H, W, C, N
        digit = np.arange(first, first + n) % 10
        y = np.where(digit == 0, 10, digit).astype(np.uint8)[:, None]
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})


def write_stl10(root: Path, *, labels: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """<root>/stl10_binary/: train_X.bin, test_X.bin (per image, per channel, column-major 96x96 bytes), train_y.bin
    and test_y.bin (one byte per image, classes 1..10), and unlabeled_X.bin, which torchvision's check requires."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    for split, first, n in (("train", 0, N_TRAIN), ("test", N_TRAIN, N_TEST)):
        x = images(n, first, 96, 3).transpose(0, 1, 3, 2)  # column-major: column by column
        (folder / f"{split}_X.bin").write_bytes(np.ascontiguousarray(x).tobytes())
        classes = np.arange(first, first + n) % 10
        y = labels(classes) if labels is not None else classes + 1
        (folder / f"{split}_y.bin").write_bytes(y.astype(np.uint8).tobytes())
    (folder / "unlabeled_X.bin").write_bytes(images(2, 200, 96, 3).tobytes())


WRITERS: dict[str, Callable[[Path], None]] = {
    "mnist": lambda root: write_idx(root, "MNIST"),
    "fmnist": lambda root: write_idx(root, "FashionMNIST"),
    "kmnist": lambda root: write_idx(root, "KMNIST"),
    "svhn": write_svhn,
    "stl10": write_stl10,
}
TITLES = {"mnist": "MNIST", "fmnist": "Fashion-MNIST", "kmnist": "Kuzushiji-MNIST", "svhn": "SVHN", "stl10": "STL-10"}
LOOKED_FOR = {
    "mnist": "MNIST/raw/",
    "fmnist": "FashionMNIST/raw/",
    "kmnist": "KMNIST/raw/",
    "svhn": "train_32x32.mat",
    "stl10": "stl10_binary/",
}
NAMES = list(WRITERS)


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every download torchvision tries fails like an unreachable host, and is recorded."""
    import torchvision.datasets.mnist as mnist
    import torchvision.datasets.stl10 as stl10
    import torchvision.datasets.svhn as svhn

    attempts: list[str] = []

    def refuse(url: str, *args: object, **kwargs: object) -> None:
        attempts.append(url)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(mnist, "download_and_extract_archive", refuse)
    monkeypatch.setattr(svhn, "download_url", refuse)
    monkeypatch.setattr(stl10, "download_and_extract_archive", refuse)
    return attempts


@pytest.fixture
def no_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """SVHN and STL-10 check each file's MD5 against the real data set's: here a file only has to exist."""
    import torchvision.datasets.stl10 as stl10
    import torchvision.datasets.svhn as svhn

    for module in (svhn, stl10):
        monkeypatch.setattr(module, "check_integrity", lambda path, md5=None: Path(path).is_file())


def ids_and_check_pixels(x: torch.Tensor, name: str) -> list[int]:
    """Undo the normalisation, check every pixel of every image against `pixel`, and return the examples' ids."""
    info = dataset_info(name)
    shape = (1, -1, 1, 1)
    raw = torch.round((x * torch.tensor(info.std).view(shape) + torch.tensor(info.mean).view(shape)) * 255).long()
    k = raw[:, 0, 0, 0]
    n, c, s = x.shape[0], info.in_channels, info.input_size
    grid = torch.meshgrid(k, torch.arange(c), torch.arange(s), torch.arange(s), indexing="ij")
    want = torch.from_numpy(pixel(*(g.numpy() for g in grid)))
    assert raw.shape == (n, c, s, s) and torch.equal(raw, want)
    return k.tolist()


# ------------------------------------------------------------------------------------------------ loading
@pytest.mark.usefixtures("no_md5")
@pytest.mark.parametrize("name", NAMES)
def test_files_load_split_and_normalise_with_every_pixel_in_place(
    name: str, tmp_path: Path, downloads: list[str]
) -> None:
    WRITERS[name](tmp_path)
    info = DATASETS[name]
    d = load_data(name, data_root=tmp_path, val_fraction=0.2, split_seed=3, with_test=True)
    assert d.info is info and info.num_classes == 10
    c, s = info.in_channels, info.input_size
    assert d.train_x.shape == (N_TRAIN - 10, c, s, s) and d.val_x.shape == (10, c, s, s)
    assert d.test_x is not None and d.test_y is not None and d.test_x.shape == (N_TEST, c, s, s)
    for x, y in ((d.train_x, d.train_y), (d.val_x, d.val_y), (d.test_x, d.test_y)):
        assert x.dtype == torch.float32 and x.is_contiguous() and y.dtype == torch.int64
        ids = ids_and_check_pixels(x, name)
        assert y.tolist() == [k % 10 for k in ids]  # SVHN's 10 is the digit 0, STL-10's 1..10 are classes 0..9
    train, val = ids_and_check_pixels(d.train_x, name), ids_and_check_pixels(d.val_x, name)
    assert sorted(train + val) == list(range(N_TRAIN)) and train == sorted(train)  # file order: limit keeps the first
    assert sorted(d.val_y.tolist()) == list(range(10))  # stratified: one of each class
    assert ids_and_check_pixels(d.test_x, name) == list(range(N_TRAIN, N_TRAIN + N_TEST))
    small = load_data(name, data_root=tmp_path, val_fraction=0.2, split_seed=3, limit=4)
    assert torch.equal(small.train_x, d.train_x[:4]) and torch.equal(small.val_y, d.val_y) and small.test_x is None
    assert downloads == []


def test_the_entries_follow_the_reference_code() -> None:
    """anokland/local-loss's train.py: sizes, and augmentation (crop padding 2 on MNIST, plus the flip on
    Fashion-MNIST, none on the others)."""
    sizes = {name: (DATASETS[name].in_channels, DATASETS[name].input_size) for name in NAMES}
    assert sizes == {"mnist": (1, 28), "fmnist": (1, 28), "kmnist": (1, 28), "svhn": (3, 32), "stl10": (3, 96)}
    augment = {name: (DATASETS[name].augment, DATASETS[name].crop_padding) for name in NAMES}
    assert augment == {
        "mnist": (("crop",), 2),
        "fmnist": (("crop", "flip"), 2),
        "kmnist": ((), 0),
        "svhn": ((), 0),
        "stl10": ((), 0),
    }
    for name in NAMES:
        info = DATASETS[name]
        assert len(info.mean) == len(info.std) == info.in_channels
        assert all(0 < m < 1 and 0 < s < 1 for m, s in zip(info.mean, info.std))


@pytest.mark.parametrize("name", NAMES)
def test_lwl_search_and_lwl_train_have_a_recipe_for_each(name: str) -> None:
    from lwl.models import paper_recipe
    from lwl.search import SEARCH_EPOCHS, parse_search_flags

    full = {family: paper_recipe(name, family) for family in ("vgg", "resnet")}
    assert {r.dataset for r in full.values()} == {name} and full["resnet"].lr == 3e-4
    assert full["vgg"].epochs == full["resnet"].epochs == (200 if name == "fmnist" else 400 if name == "stl10" else 100)
    settings, _ = parse_search_flags(["--dataset", name, "--budget", "8", "--device", "cpu"])
    assert settings.recipe.dataset == name and settings.recipe.epochs == SEARCH_EPOCHS[name] < full["resnet"].epochs
    assert (settings.recipe.lr, settings.recipe.dropout) == (full["resnet"].lr, full["resnet"].dropout)


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("name", NAMES)
def test_missing_files_are_one_line(name: str, tmp_path: Path, downloads: list[str], capsys) -> None:
    with pytest.raises(DataError) as info:
        load_data(name, data_root=tmp_path)
    assert str(info.value) == (
        f"{TITLES[name]} not found under {tmp_path} (looked for {LOOKED_FOR[name]}): pass --download to fetch it, "
        f"or --data-root DIR where it is"
    )
    assert downloads == [] and capsys.readouterr().out == ""
    assert list(tmp_path.iterdir()) == []  # nothing created


@pytest.mark.parametrize("name", NAMES)
def test_a_failed_download_is_one_line(name: str, tmp_path: Path, downloads: list[str], capsys) -> None:
    with pytest.raises(DataError) as info:
        load_data(name, data_root=tmp_path, download=True)
    message = str(info.value)
    assert message.startswith(f"downloading {TITLES[name]} into {tmp_path} failed (") and "\n" not in message
    assert message.endswith("check the network, or pass --data-root DIR where the files already are")
    assert "network is unreachable" in message and len(downloads) >= 1
    assert capsys.readouterr().out == ""  # torchvision's progress goes to stderr


@pytest.mark.usefixtures("no_md5")
def test_svhn_with_download_fetches_the_test_file_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SVHN keeps one file per split: the training file being there does not bring the test file along."""
    import torchvision.datasets.svhn as svhn

    asked: list[str] = []

    def fetch(url: str, root: str, filename: str, md5: str | None = None) -> None:
        asked.append(filename)
        if not (Path(root) / filename).is_file():  # torchvision's download_url skips a file that is there
            raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(svhn, "download_url", fetch)
    write_svhn(tmp_path)
    (tmp_path / "test_32x32.mat").unlink()
    with pytest.raises(DataError, match="^downloading SVHN into .* failed"):
        load_data("svhn", data_root=tmp_path, val_fraction=0.2, download=True, with_test=True)
    assert asked == ["train_32x32.mat", "test_32x32.mat"]
    with pytest.raises(DataError, match=r"^SVHN not found under .* \(looked for test_32x32.mat\)"):
        load_data("svhn", data_root=tmp_path, val_fraction=0.2, with_test=True)
    assert load_data("svhn", data_root=tmp_path, download=True, val_fraction=0.2).train_x.shape[0] == N_TRAIN - 10


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


# What damages each data set's files, and where the message says to look.
DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "mnist": (lambda root: _truncate(root / "MNIST/raw/train-images-idx3-ubyte"), "files under {root}/MNIST/raw/ are"),
    "fmnist": (
        lambda root: (root / "FashionMNIST/raw/t10k-labels-idx1-ubyte").unlink(),  # a file missing: incomplete
        "files under {root}/FashionMNIST/raw/ are",
    ),
    "kmnist": (
        lambda root: (root / "KMNIST/raw/train-labels-idx1-ubyte").write_bytes(struct.pack(">2i", 2049, 3) + b"\0\1\2"),
        "files under {root}/KMNIST/raw/ are",  # 3 labels for 30 images
    ),
    "svhn": (lambda root: _truncate(root / "train_32x32.mat"), "file {root}/train_32x32.mat is"),
    "stl10": (lambda root: _truncate(root / "stl10_binary/train_X.bin"), "files under {root}/stl10_binary/ are"),
}


@pytest.mark.usefixtures("no_md5")  # the damage itself must be noticed, not just a wrong MD5
@pytest.mark.parametrize("name", NAMES)
def test_damaged_files_are_one_line(name: str, tmp_path: Path, downloads: list[str]) -> None:
    WRITERS[name](tmp_path)
    damage, where = DAMAGE[name]
    damage(tmp_path)
    with pytest.raises(DataError) as info:
        load_data(name, data_root=tmp_path)
    # torchvision's MNIST-like sets fetch only missing files, never damaged ones: those must go first.
    fix = "delete them and pass --download" if "MNIST" in TITLES[name] else "pass --download to fetch them again"
    message = f"{TITLES[name]} {where.format(root=tmp_path)} incomplete or corrupted: {fix}, or --data-root DIR"
    assert str(info.value) == message + " where a good copy is"
    assert downloads == []


def test_download_over_damaged_mnist_files_says_to_delete_them(tmp_path: Path, downloads: list[str]) -> None:
    """A damaged file is not fetched again, so --download cannot help; a missing one is, so it is tried."""
    write_idx(tmp_path, "MNIST")
    _truncate(tmp_path / "MNIST/raw/t10k-images-idx3-ubyte")
    with pytest.raises(DataError, match=r"^MNIST files under .* are incomplete or corrupted: delete them and pass"):
        load_data("mnist", data_root=tmp_path, val_fraction=0.2, download=True, with_test=True)
    assert downloads == []
    (tmp_path / "MNIST/raw/t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DataError, match=r"^downloading MNIST into .* failed \(.*network is unreachable"):
        load_data("mnist", data_root=tmp_path, val_fraction=0.2, download=True)
    assert downloads and all(url.endswith("-ubyte.gz") for url in downloads)


@pytest.mark.parametrize("name", ["svhn", "stl10"])
def test_files_that_fail_their_md5_are_corrupted(name: str, tmp_path: Path, downloads: list[str]) -> None:
    """torchvision's own check, with the real MD5s: tiny fakes are never the real files."""
    WRITERS[name](tmp_path)
    with pytest.raises(DataError, match=f"^{TITLES[name]} file.* incomplete or corrupted: pass --download"):
        load_data(name, data_root=tmp_path)


@pytest.mark.usefixtures("no_md5")
def test_labels_outside_the_classes_are_corrupted(tmp_path: Path) -> None:
    """An STL-10 label 0 (the classes are 1..10) wraps to 255 in torchvision: refused here, not an index error later."""
    write_stl10(tmp_path, labels=lambda classes: classes)
    with pytest.raises(DataError, match="STL-10 files under .*stl10_binary/ are incomplete or corrupted"):
        load_data("stl10", data_root=tmp_path)


# ------------------------------------------------------------------------------------------------ the command
def test_lwl_train_on_mnist_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    root = tmp_path / "data"
    write_idx(root, "MNIST")
    monkeypatch.chdir(tmp_path)
    # Widths 8,16: on one CPU (AMD EPYC, torch 2.14.1, one thread, fp32) a width of 4 was seen to corrupt the heap in
    # the convolution's backward pass, with digits as well.
    argv = ["--dataset", "mnist", "--data-root", str(root), "--hierarchy", "1,1", "--widths", "8,16"]
    argv += ["--epochs", "1", "--device", "cpu", "--val-fraction", "0.2", "--test", "--json", "--out", "run"]
    assert train_main(argv) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert "on mnist" in captured.err and "the paper did not train" not in captured.err  # the paper has no MNIST
    assert out["hierarchy"] == [1, 1] and len(out["unit_acc"]) == 2 and 0.0 <= out["test_output_acc"] <= 1.0
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "dataset: mnist" in config and f"data_root: {root}" in config
    assert "lr: 0.0003" in config and "dropout: 0.2" in config  # the recipe of ('mnist', 'resnet')


@pytest.mark.usefixtures("no_md5")
def test_lwl_search_on_svhn_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    from lwl.models import load_config
    from lwl.search.commands import export_main, search_main

    root = tmp_path / "data"
    write_svhn(root)
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    argv = ["--dataset", "svhn", "--data-root", str(root), "--budget", "8", "--trials", "1", "--epochs", "1"]
    argv += ["--widths", "8,8,16,16", "--device", "cpu", "--quiet", "--pruner", "none", "--storage", storage]
    assert search_main(argv) == 0
    study = optuna.load_study(study_name="svhn-resnet-b8-s4", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    # The exported config carries the full recipe of ('svhn', 'resnet') and where the files are.
    assert export_main(["--storage", storage, "--study-name", study.study_name, "--best", "--out", "best.yaml"]) == 0
    config = load_config(tmp_path / "best.yaml")
    assert config.dataset == "svhn" and config.recipe.epochs == 100 and config.recipe.dropout == 0.3
    assert config.data_root == str(root)


@pytest.mark.parametrize(
    ("torch_version", "failure", "vision_version", "says"),
    [
        # A fresh clone given torch 2.13.0+cpu with torchvision 0.28.0 by PyTorch's CPU index: the import fails.
        ("2.13.0+cpu", RuntimeError("operator torchvision::nms does not exist"), "0.28.0", "cannot be imported"),
        # A pair that imports but was built for other releases.
        ("2.13.0+cpu", None, "0.29.1", "is not built for torch 2.13.0+cpu"),
    ],
    ids=["import fails", "other release"],
)
def test_a_mismatched_torch_and_torchvision_is_one_line_naming_both_and_the_fix(
    tmp_path, monkeypatch, capsys, torch_version, failure, vision_version, says
):
    import importlib
    import importlib.metadata

    import torchvision

    real_import = importlib.import_module

    def import_module(name, *args, **kwargs):
        if failure is not None and name.startswith("torchvision"):
            raise failure
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", import_module)
    monkeypatch.setattr(torch, "__version__", torch_version)
    monkeypatch.setattr(torchvision, "__version__", vision_version)
    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: vision_version if name == "torchvision" else real_version(name)
    )
    out = tmp_path / "run"
    argv = ["--dataset", "cifar10", "--data-root", str(tmp_path), "--hierarchy", "1,1,2,2", "--epochs", "1"]
    with pytest.raises(SystemExit) as info:
        train_main([*argv, "--device", "cpu", "--out", str(out)])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"torchvision {vision_version}" in err and f"torch {torch_version}" in err and says in err, err
    assert "pip install torch==2.14.1 torchvision==0.29.1" in err, err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []
