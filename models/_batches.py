"""One epoch of batches: the epoch's random draws, made on the CPU, and batches gathered and augmented on the device.

Each epoch is drawn up front on the CPU (`plan_epoch`: the order, the crop offsets, the flips, Cutout's holes), so
the batch order
and the augmentation depend on the seed alone and never on the device; batches are then gathered and augmented on
the device (`iter_batches`, `augment_batch`) with no Python per image and no host synchronisation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._datasets import AUGMENTATIONS
from ._errors import DataError


def augment_batch(
    x: torch.Tensor, crop_offsets: torch.Tensor | None, flips: torch.Tensor | None, padding: int
) -> torch.Tensor:
    """Random crop of the zero-padded images and horizontal flip, for a whole batch in one gather.

    `crop_offsets` (B, 2) int64 holds (row, col) offsets in [0, 2 * padding] into the padded image; `flips`
    (B,) bool. Equal, image by image, to `F.pad(img, [padding] * 4)[:, r:r + H, c:c + W]`, then `.flip(-1)`
    where flipped. The flip is folded into the column index, so there is one pad and one gather, and no
    Python per image or host synchronisation.
    """
    if crop_offsets is None and flips is None:
        return x
    if x.dim() != 4:
        raise ValueError(f"augment_batch needs NCHW images, got shape {tuple(x.shape)}")
    b, _, h, w = x.shape
    dev = x.device
    rows_base = torch.arange(h, device=dev)
    cols_base = torch.arange(w, device=dev)
    if crop_offsets is not None:
        if crop_offsets.shape != (b, 2):
            raise ValueError(f"crop_offsets must have shape ({b}, 2), got {tuple(crop_offsets.shape)}")
        src = F.pad(x, [padding] * 4) if padding > 0 else x
        offsets = crop_offsets.to(device=dev, dtype=torch.long)
        rows = offsets[:, 0:1] + rows_base  # (B, H)
        col0 = offsets[:, 1:2]  # (B, 1)
    else:
        src = x
        rows = rows_base.expand(b, h)
        col0 = torch.zeros(b, 1, dtype=torch.long, device=dev)
    if flips is not None:
        if flips.shape != (b,):
            raise ValueError(f"flips must have shape ({b},), got {tuple(flips.shape)}")
        cols_seq = torch.where(flips.to(dev).view(b, 1), cols_base.flip(0), cols_base)  # (B, W)
    else:
        cols_seq = cols_base.expand(b, w)
    cols = col0 + cols_seq
    batch = torch.arange(b, device=dev).view(b, 1, 1)
    # Advanced indices split by the channel slice put their broadcast dims first: (B, H, W, C).
    out = src[batch, :, rows.view(b, h, 1), cols.view(b, 1, w)]
    return out.permute(0, 3, 1, 2)


def cutout_mask(centers: torch.Tensor, length: int, height: int, width: int) -> torch.Tensor:
    """Where Cutout zeroes a batch: (B, 1, H, W) bool, True inside any hole.

    `centers` (B, holes, 2) int64 holds each hole's (row, col) centre in [0, H) x [0, W); a hole covers rows
    [row - length // 2, row + length // 2) and the same columns, clipped to the image, as DeVries & Taylor's Cutout
    in the reference (a square of side 2 * (length // 2) when it lies inside the image).
    """
    half = length // 2
    dev = centers.device
    rows = torch.arange(height, device=dev).view(1, 1, height)
    cols = torch.arange(width, device=dev).view(1, 1, width)
    r, c = centers[..., 0:1], centers[..., 1:2]  # (B, holes, 1)
    in_rows = (rows >= r - half) & (rows < r + half)  # (B, holes, H)
    in_cols = (cols >= c - half) & (cols < c + half)  # (B, holes, W)
    return (in_rows.unsqueeze(-1) & in_cols.unsqueeze(-2)).any(dim=1, keepdim=True)


@dataclass(frozen=True)
class EpochPlan:
    """Everything random about one epoch, drawn on the CPU from one generator so it never depends on the
    network or the device. `crop_offsets[i]` and `flips[i]` apply to the i-th example served, `order[i]`."""

    order: torch.Tensor  # permutation of range(n), int64
    crop_offsets: torch.Tensor | None  # (n, 2) int64 in [0, 2 * padding], or None without "crop"
    flips: torch.Tensor | None  # (n,) bool, or None without "flip"
    holes: torch.Tensor | None = None  # (n, holes, 2) int64 Cutout centres (row, col), or None without Cutout


def _check_augment(augment: tuple[str, ...] | list[str]) -> None:
    unknown = [a for a in augment if a not in AUGMENTATIONS]
    if unknown:
        raise DataError(f"unknown augmentation {unknown[0]!r}: choose from {', '.join(AUGMENTATIONS)}")


def plan_epoch(
    n: int,
    generator: torch.Generator,
    augment: tuple[str, ...],
    padding: int,
    *,
    cutout: tuple[int, int] | None = None,
    size: tuple[int, int] | None = None,
) -> EpochPlan:
    """Draw, in this fixed order, the permutation, the crop offsets, the flips and (`cutout` = (side, holes), on
    images of `size` (H, W)) Cutout's hole centres of one epoch of n examples.

    The order matters: a run with the same seed and augmentation sees the same epochs on any device; without
    Cutout nothing more is drawn than before it existed.
    """
    _check_augment(augment)
    if generator.device.type != "cpu":
        raise ValueError("plan_epoch needs a CPU generator, so that the epoch does not depend on the device")
    order = torch.randperm(n, generator=generator, dtype=torch.int64)
    crop = None
    if "crop" in augment:
        crop = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, dtype=torch.int64)
    flips = None
    if "flip" in augment:
        flips = torch.randint(0, 2, (n,), generator=generator, dtype=torch.int64).bool()
    holes = None
    if cutout is not None:
        if size is None:
            raise ValueError("plan_epoch needs the image size for Cutout")
        k = cutout[1]
        rows = torch.randint(0, size[0], (n, k), generator=generator, dtype=torch.int64)
        cols = torch.randint(0, size[1], (n, k), generator=generator, dtype=torch.int64)
        holes = torch.stack((rows, cols), dim=-1)
    return EpochPlan(order, crop, flips, holes)


def iter_batches(
    splits_x: torch.Tensor,
    splits_y: torch.Tensor,
    plan: EpochPlan,
    batch_size: int,
    augment: tuple[str, ...],
    padding: int,
    device: str | torch.device,
    *,
    cutout: tuple[int, int] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x, y) batches in plan order, augmented on the device, then (`cutout` = (side, holes)) with the plan's
    Cutout holes set to 0 (the data set's mean: the images are normalised), as the reference cuts out last.

    Drops the last partial batch when n >= batch_size (equal batch sizes keep per-batch statistics and
    step counts predictable); with fewer than batch_size examples, yields one batch of all n. The plan is
    copied to the device once; there is no `.item()` or other host synchronisation per batch.
    """
    _check_augment(augment)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = splits_x.shape[0]
    if plan.order.shape != (n,):
        raise ValueError(f"the plan is for {plan.order.shape[0]} examples, the data has {n}")
    use_crop, use_flip = "crop" in augment, "flip" in augment
    if (use_crop and plan.crop_offsets is None) or (use_flip and plan.flips is None):
        raise ValueError(f"the plan was drawn without the augmentation {augment!r} asks for")
    dev = torch.device(device)
    x, y = splits_x.to(dev), splits_y.to(dev)
    order = plan.order.to(dev, non_blocking=True)
    crop = plan.crop_offsets.to(dev, non_blocking=True) if use_crop and plan.crop_offsets is not None else None
    flips = plan.flips.to(dev, non_blocking=True) if use_flip and plan.flips is not None else None
    if cutout is not None and plan.holes is None:
        raise ValueError("the plan was drawn without the Cutout holes the batches ask for")
    holes = plan.holes.to(dev, non_blocking=True) if cutout is not None and plan.holes is not None else None

    if n >= batch_size:
        bounds = [(s, s + batch_size) for s in range(0, n - batch_size + 1, batch_size)]
    else:
        bounds = [(0, n)] if n > 0 else []
    for start, stop in bounds:
        idx = order[start:stop]
        xb, yb = x[idx], y[idx]
        if crop is not None or flips is not None:
            xb = augment_batch(
                xb,
                None if crop is None else crop[start:stop],
                None if flips is None else flips[start:stop],
                padding,
            )
        if holes is not None and cutout is not None:
            xb = xb.masked_fill(cutout_mask(holes[start:stop], cutout[0], xb.shape[-2], xb.shape[-1]), 0.0)
        yield xb, yb


__all__ = ["AUGMENTATIONS", "EpochPlan", "augment_batch", "cutout_mask", "iter_batches", "plan_epoch"]
