"""Where training runs and what that changes: device choice, memory format, mixed precision, memory figures.

On CUDA a run uses channels-last tensors, bfloat16 autocast, cuDNN autotuning and fused Adam; on the CPU none of
them, so that CPU runs are bitwise reproducible.
"""

from __future__ import annotations

from typing import Any

import torch

from ._errors import DeviceError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """cuda, then mps, then cpu, unless the caller names one."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda asked for, but no CUDA device is visible: use --device cpu or auto")
    return dev


def device_name(dev: torch.device) -> str:
    """What a result records as its device: the GPU's model on CUDA, else the device type."""
    if dev.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return dev.type


def prepare(dev: torch.device) -> None:
    """Before a run: cuDNN autotuning on, and the peak-memory counter restarted (CUDA only)."""
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(dev)


def peak_memory(dev: torch.device) -> int | None:
    """Bytes allocated at peak since `prepare` on an accelerator; None on the CPU."""
    return torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None


def memory_format(dev: torch.device) -> torch.memory_format:
    return torch.channels_last if dev.type == "cuda" else torch.contiguous_format


def autocast(dev: torch.device) -> Any:
    """bfloat16 autocast on CUDA; a no-op elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")


def layout(x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    """The batch in memory format `fmt` with that format's own strides.

    For one-channel images (digits) the batched augmentation returns strides (HW, 1, W, 1), which count as
    contiguous, so `.contiguous()` keeps them; the CPU convolution then takes another path that was seen to
    make runs irreproducible. Checking strides is metadata only: no copy otherwise and no host sync.
    """
    x = x.contiguous(memory_format=fmt)
    if x.stride() != torch.empty(x.shape, device="meta", memory_format=fmt).stride():
        x = x.clone(memory_format=fmt)
    return x


__all__ = ["autocast", "device_name", "layout", "memory_format", "peak_memory", "prepare", "resolve_device"]
