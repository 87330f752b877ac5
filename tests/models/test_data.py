"""Data loading, splits and batched augmentation. Offline: CIFAR is faked on disk in torchvision's format."""

from __future__ import annotations

import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

# Private on purpose: the digits fixture replaces the image loader (`_digits_images`) to trace each example through
# the split, and the batching tests check the epoch plan and the batched augmentation, which are not public.
import lwl.models._data as data_mod
from lwl.models import DATASETS, DataError, DatasetInfo, DataSplits, dataset_info, load_data, splits_from_images
from lwl.models._batches import augment_batch, iter_batches, plan_epoch

N_DIGITS = 1797
DIGIT_CLASS_COUNTS = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])


def _held(counts: np.ndarray, fraction: float) -> np.ndarray:
    return np.floor(fraction * counts + 0.5).astype(int)


def _decode(x: torch.Tensor, info: DatasetInfo, scale: float) -> list[int]:
    """Recover the example index that `_index_coded_*` wrote into every pixel."""
    raw = x[:, 0, 0, 0].cpu() * info.std[0] + info.mean[0]
    return torch.round(raw * scale).long().tolist()


@pytest.fixture
def index_coded_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real digit labels, but image i is the constant i / 2000, so splits can be checked by index."""
    real_x, real_y = data_mod._digits_images()
    fake = torch.arange(real_x.shape[0], dtype=torch.float32).view(-1, 1, 1, 1).expand_as(real_x) / 2000
    monkeypatch.setattr(data_mod, "_digits_images", lambda: (fake.clone(), real_y))


def _digit_ids(splits: DataSplits) -> tuple[list[int], list[int], list[int]]:
    info = splits.info
    test = _decode(splits.test_x, info, 2000) if splits.test_x is not None else []
    return _decode(splits.train_x, info, 2000), _decode(splits.val_x, info, 2000), test


# ------------------------------------------------------------------------------------------------ digits
def test_digits_shapes_classes_and_normalisation() -> None:
    d = load_data("digits", with_test=True)
    assert d.info is DATASETS["digits"]
    n_test = _held(DIGIT_CLASS_COUNTS, 0.2).sum()
    n_val = _held(DIGIT_CLASS_COUNTS - _held(DIGIT_CLASS_COUNTS, 0.2), 0.1).sum()
    assert d.test_x.shape == (n_test, 1, 16, 16)
    assert d.val_x.shape == (n_val, 1, 16, 16)
    assert d.train_x.shape == (N_DIGITS - n_test - n_val, 1, 16, 16)
    for x, y in [(d.train_x, d.train_y), (d.val_x, d.val_y), (d.test_x, d.test_y)]:
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.is_contiguous()
        assert x.shape[0] == y.shape[0]
        assert set(y.tolist()) == set(range(10))
    every = torch.cat([d.train_x, d.val_x, d.test_x])
    assert abs(every.mean().item()) < 1e-3 and abs(every.std().item() - 1) < 1e-3
    assert load_data("digits").test_x is None


def test_digits_constants_match_the_data() -> None:
    x, _ = data_mod._digits_images()
    info = dataset_info("digits")
    assert x.min().item() == 0.0 and x.max().item() == 1.0
    assert x.mean().item() == pytest.approx(info.mean[0], abs=5e-4)
    assert x.std().item() == pytest.approx(info.std[0], abs=5e-4)


@pytest.mark.usefixtures("index_coded_digits")
def test_digits_splits_are_disjoint_stratified_and_cover_everything() -> None:
    d = load_data("digits", with_test=True, val_fraction=0.25)
    train, val, test = _digit_ids(d)
    assert len(set(train) | set(val) | set(test)) == len(train) + len(val) + len(test) == N_DIGITS
    test_counts = np.bincount(d.test_y.numpy(), minlength=10)
    assert (test_counts == _held(DIGIT_CLASS_COUNTS, 0.2)).all()
    val_counts = np.bincount(d.val_y.numpy(), minlength=10)
    assert (val_counts == _held(DIGIT_CLASS_COUNTS - test_counts, 0.25)).all()


@pytest.mark.usefixtures("index_coded_digits")
def test_digits_test_split_ignores_split_seed_and_val_fraction() -> None:
    _, val_a, test_a = _digit_ids(load_data("digits", with_test=True, split_seed=0))
    _, val_b, test_b = _digit_ids(load_data("digits", with_test=True, split_seed=7, val_fraction=0.4))
    assert test_a == test_b
    assert val_a != val_b


@pytest.mark.usefixtures("index_coded_digits")
def test_split_is_deterministic_and_limit_keeps_the_first_examples() -> None:
    a, b = load_data("digits", split_seed=3), load_data("digits", split_seed=3)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)
    small = load_data("digits", split_seed=3, limit=50)
    assert torch.equal(small.train_x, a.train_x[:50]) and torch.equal(small.train_y, a.train_y[:50])
    assert torch.equal(small.val_x, a.val_x)


def test_to_moves_every_tensor() -> None:
    d = load_data("digits", limit=8).to("meta")
    assert d.train_x.device.type == d.val_y.device.type == "meta" and d.test_x is None


@pytest.mark.parametrize("bad", [0.51, -0.1, 1.0, float("nan")])
def test_val_fraction_out_of_range(bad: float) -> None:
    with pytest.raises(DataError, match=r"\[0, 0.5\] \(0: no validation split\)"):
        load_data("digits", val_fraction=bad)


def test_val_fraction_0_trains_on_every_training_image() -> None:
    """A full training run (lwl-train --config of an exported config): nothing held out, the test set untouched."""
    full, split = load_data("digits", val_fraction=0.0, with_test=True), load_data("digits", with_test=True)
    assert full.val_x.shape[0] == full.val_y.shape[0] == 0 and full.val_x.shape[1:] == full.train_x.shape[1:]
    assert full.train_x.shape[0] == split.train_x.shape[0] + split.val_x.shape[0]
    assert torch.equal(full.test_y, split.test_y)


def test_unknown_dataset() -> None:
    with pytest.raises(DataError) as info:
        dataset_info("imagenet")
    assert str(info.value) == (
        "unknown data set 'imagenet': choose one of cifar10, cifar100, digits, fmnist, kmnist, mnist, stl10, svhn"
    )
    with pytest.raises(DataError):
        load_data("imagenet")


# ------------------------------------------------------------------------------------------------ CIFAR
@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any download attempt fails like an unreachable host, and is recorded."""
    import torchvision.datasets.cifar as cifar

    attempts: list[str] = []

    def refuse(url: str, *args: object, **kwargs: object) -> None:
        attempts.append(url)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(cifar, "download_and_extract_archive", refuse)
    return attempts


def test_cifar_missing_files_is_one_line(tmp_path: Path, no_network: list[str], capsys) -> None:
    with pytest.raises(DataError) as info:
        load_data("cifar100", data_root=tmp_path)
    message = str(info.value)
    assert message == (
        f"CIFAR-100 not found under {tmp_path} (looked for cifar-100-python/): pass --download to fetch it, "
        f"or --data-root DIR where it is"
    )
    assert no_network == [] and capsys.readouterr().out == ""


def test_cifar_download_failure_is_one_line(tmp_path: Path, no_network: list[str], capsys) -> None:
    with pytest.raises(DataError) as info:
        load_data("cifar10", data_root=tmp_path, download=True)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"downloading CIFAR-10 into {tmp_path} failed")
    assert "--data-root" in str(info.value) and len(no_network) == 1
    assert capsys.readouterr().out == ""


def test_cifar_root_defaults_to_lwl_data(tmp_path: Path, no_network: list[str], monkeypatch) -> None:
    monkeypatch.setenv("LWL_DATA", str(tmp_path / "store"))
    with pytest.raises(DataError, match=f"not found under {tmp_path / 'store'} "):
        load_data("cifar10")


FAKE_PER_BATCH = 20


def _write_fake_cifar10(root: Path) -> None:
    """cifar-10-batches-py in torchvision's pickle format; example k of the 120 has every pixel = k."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        ids = np.arange(b * FAKE_PER_BATCH, (b + 1) * FAKE_PER_BATCH)
        batch = {
            "data": np.repeat(ids.astype(np.uint8)[:, None], 3 * 32 * 32, axis=1),
            "labels": [int(i % 10) for i in ids],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)


@pytest.fixture
def fake_cifar10(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[str]) -> Path:
    import torchvision.datasets
    import torchvision.datasets.cifar as cifar

    _write_fake_cifar10(tmp_path)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)  # batches.meta's md5
    return tmp_path


def test_fake_cifar10_is_read_from_data_root(fake_cifar10: Path) -> None:
    d = load_data("cifar10", data_root=fake_cifar10, with_test=True, split_seed=1)
    info = dataset_info("cifar10")
    n_train = 5 * FAKE_PER_BATCH
    assert d.train_x.shape == (n_train - 10, 3, 32, 32) and d.val_x.shape == (10, 3, 32, 32)
    assert d.test_x.shape == (FAKE_PER_BATCH, 3, 32, 32)
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64 and d.train_x.is_contiguous()
    assert sorted(d.val_y.tolist()) == list(range(10))  # stratified: one of each class

    def ids(x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(info.mean).view(1, 3, 1, 1)
        std = torch.tensor(info.std).view(1, 3, 1, 1)
        raw = torch.round((x * std + mean) * 255).long()
        assert (raw == raw[:, :1, :1, :1]).all()  # every channel and pixel decodes to the same id
        return raw[:, 0, 0, 0]

    train, val, test = ids(d.train_x), ids(d.val_x), ids(d.test_x)
    assert torch.equal(d.train_y, train % 10) and torch.equal(d.val_y, val % 10)
    assert sorted(train.tolist() + val.tolist()) == list(range(n_train))
    assert test.tolist() == list(range(n_train, n_train + FAKE_PER_BATCH))
    assert torch.equal(train, torch.sort(train).values)  # kept in file order, so limit is "the first k"
    again = load_data("cifar10", data_root=fake_cifar10, split_seed=1, limit=7)
    assert torch.equal(again.train_x, d.train_x[:7]) and again.test_x is None


def test_images_in_memory_convert_exactly_as_cifar_files_do(fake_cifar10: Path) -> None:
    """`splits_from_images` (synthetic benchmarks, custom CIFAR-shaped data) gives the tensors `load_data` gives."""
    import torchvision.datasets

    info = dataset_info("cifar10")
    files = torchvision.datasets.CIFAR10(str(fake_cifar10), train=True)
    images, labels = np.asarray(files.data, dtype=np.uint8), np.asarray(files.targets)
    mine = splits_from_images(info, images[:100], labels[:100], images[100:], labels[100:])
    loaded = load_data("cifar10", data_root=fake_cifar10, split_seed=1)

    def by_id(*splits: tuple[torch.Tensor, torch.Tensor]) -> dict[int, tuple[torch.Tensor, int]]:
        """Example k of the fake files has every pixel = k."""
        x, y = torch.cat([s[0] for s in splits]), torch.cat([s[1] for s in splits])
        ids = torch.round((x[:, 0, 0, 0] * info.std[0] + info.mean[0]) * 255).long()
        return {int(k): (x[j], int(y[j])) for j, k in enumerate(ids)}

    a = by_id((mine.train_x, mine.train_y), (mine.val_x, mine.val_y))
    b = by_id((loaded.train_x, loaded.train_y), (loaded.val_x, loaded.val_y))
    assert a.keys() == b.keys() and len(a) == len(images)
    assert all(torch.equal(a[k][0], b[k][0]) and a[k][1] == b[k][1] for k in a)
    assert mine.train_x.dtype == torch.float32 and mine.train_y.dtype == torch.int64
    with pytest.raises(DataError, match=r"train_x: expected uint8 images of shape \(N, 32, 32, 3\)"):
        splits_from_images(info, images[:, :16], labels, images, labels)


def test_corrupted_cifar_is_one_line(tmp_path: Path, no_network: list[str]) -> None:
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError, match="incomplete or corrupted: pass --download") as info:
        load_data("cifar10", data_root=tmp_path)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------ augmentation
def _reference(x: torch.Tensor, offsets: torch.Tensor | None, flips: torch.Tensor | None, p: int) -> torch.Tensor:
    out = []
    h, w = x.shape[-2:]
    for i, img in enumerate(x):
        if offsets is not None:
            r, c = offsets[i].tolist()
            img = F.pad(img, [p] * 4)[:, r : r + h, c : c + w]
        if flips is not None and flips[i]:
            img = img.flip(-1)
        out.append(img)
    return torch.stack(out)


@pytest.mark.parametrize("crop,flip", [(True, True), (True, False), (False, True)])
def test_augment_batch_equals_the_per_image_reference(crop: bool, flip: bool) -> None:
    g = torch.Generator().manual_seed(0)
    p, b = 3, 32
    x = torch.randn(b, 3, 7, 5, generator=g)  # not square, so rows and columns cannot be confused
    offsets = torch.randint(0, 2 * p + 1, (b, 2), generator=g) if crop else None
    flips = torch.rand(b, generator=g) < 0.5 if flip else None
    got = augment_batch(x, offsets, flips, p)
    assert got.shape == x.shape
    assert torch.equal(got, _reference(x, offsets, flips, p))
    assert augment_batch(x, None, None, p) is x


def test_plan_draws_the_permutation_first_then_crops_then_flips() -> None:
    plan = plan_epoch(50, torch.Generator().manual_seed(5), ("crop", "flip"), 4)
    g = torch.Generator().manual_seed(5)
    assert torch.equal(plan.order, torch.randperm(50, generator=g))
    assert plan.order.dtype == torch.int64
    assert torch.equal(plan.crop_offsets, torch.randint(0, 9, (50, 2), generator=g))
    assert plan.flips.dtype == torch.bool and plan.flips.shape == (50,)
    bare = plan_epoch(50, torch.Generator().manual_seed(5), (), 4)
    assert bare.crop_offsets is None and bare.flips is None and torch.equal(bare.order, plan.order)
    with pytest.raises(DataError, match="unknown augmentation 'rotate'"):
        plan_epoch(50, torch.Generator(), ("rotate",), 4)


def _epoch(seed: int, n: int, batch: int, augment: tuple[str, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x = torch.arange(n * 3 * 8 * 8, dtype=torch.float32).view(n, 3, 8, 8)
    y = torch.arange(n)
    plan = plan_epoch(n, torch.Generator().manual_seed(seed), augment, 2)
    return list(iter_batches(x, y, plan, batch, augment, 2, "cpu"))


def test_iter_batches_covers_each_example_once_and_repeats_with_the_seed() -> None:
    augment = ("crop", "flip")
    batches = _epoch(0, 64, 16, augment)
    assert len(batches) == 4 and all(xb.shape == (16, 3, 8, 8) for xb, _ in batches)
    assert sorted(torch.cat([yb for _, yb in batches]).tolist()) == list(range(64))
    again = _epoch(0, 64, 16, augment)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    other = _epoch(1, 64, 16, augment)
    assert not torch.equal(torch.cat([yb for _, yb in batches]), torch.cat([yb for _, yb in other]))


def test_iter_batches_augments_each_example_as_planned() -> None:
    n, p = 24, 2
    x = torch.randn(n, 3, 8, 8)
    y = torch.arange(n)
    plan = plan_epoch(n, torch.Generator().manual_seed(9), ("crop", "flip"), p)
    got = torch.cat([xb for xb, _ in iter_batches(x, y, plan, 8, ("crop", "flip"), p, "cpu")])
    assert torch.equal(got, _reference(x[plan.order], plan.crop_offsets, plan.flips, p))
    plain = torch.cat([xb for xb, _ in iter_batches(x, y, plan, 8, (), p, "cpu")])
    assert torch.equal(plain, x[plan.order])  # a plan with augmentation can serve plain batches


def test_iter_batches_drops_the_last_partial_batch_or_serves_one_small_batch() -> None:
    assert [yb.shape[0] for _, yb in _epoch(0, 70, 16, ())] == [16, 16, 16, 16]
    small = _epoch(0, 10, 16, ("flip",))
    assert len(small) == 1 and sorted(small[0][1].tolist()) == list(range(10))
