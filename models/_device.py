"""Where training runs and what that changes: device choice, memory format, mixed precision, memory figures.

A run's precision is a recipe field (`PRECISIONS`): `auto` is bfloat16 autocast on CUDA and on a CPU whose
oneDNN has native bfloat16 instructions (AVX512-BF16 or AMX), fp32 elsewhere; `resolve_precision` turns it into
what a run on a device does, and that resolved value is what a result, a checkpoint and a study record. Under
bfloat16 the convolutions and linear layers run in bf16; weights, optimiser state, the losses and their sums and
the similarity matrices stay fp32. Tensors are channels-last on CUDA and on the CPU (measured faster there in both
precisions: benchmarks/README.md). On CUDA a run also uses cuDNN autotuning and fused Adam. CPU runs are bitwise
reproducible within a precision.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import torch

from ._errors import DeviceError, TooLargeError
from ._plan import MAX_UNITS, check_units, complexity
from ._recipe import PRECISIONS, Recipe

if TYPE_CHECKING:
    from ._schedule import Schedule


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """cuda, then mps, then cpu, unless the caller names one."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"--device {device}: not a device to train on: use auto, cpu, cuda, cuda:N or mps")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {device} asked for, but no CUDA device is visible: use --device cpu or auto")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceError(
                f"--device {device}: this machine has {count} CUDA device{'s' if count != 1 else ''} "
                f"(cuda:0 to cuda:{count - 1}): use one of them, cuda or auto"
            )
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("--device mps asked for, but MPS is not available here: use --device cpu or auto")
    return dev


# Training images per data set: a batch never holds more, whatever --batch-size says.
_TRAIN_IMAGES = {
    "digits": 1797,
    "cifar10": 50_000,
    "cifar100": 50_000,
    "mnist": 60_000,
    "fmnist": 60_000,
    "kmnist": 60_000,
    "svhn": 73_257,
    "stl10": 5_000,
}


def memory_of(dev: torch.device) -> int | None:
    """Bytes of memory the device has (a GPU's own; the machine's RAM for cpu and mps); None if unknown."""
    try:
        if dev.type == "cuda":
            return int(torch.cuda.get_device_properties(dev).total_memory)
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, RuntimeError, ValueError):
        return None


def memory_needed(schedule: Schedule, recipe: Recipe) -> int:
    """A lower bound on the bytes training needs: every weight (fp32), one unit's gradients and Adam moments, and
    the largest unit's activations for one batch. Absurd sizes show here before anything is allocated."""
    cost = complexity(schedule, recipe.head)
    batch = min(recipe.batch_size, recipe.train_limit or recipe.batch_size, _TRAIN_IMAGES.get(recipe.dataset, 50_000))
    return 4 * cost.params_aux + 12 * max(cost.unit_params) + 4 * batch * max(cost.unit_activations)


def check_memory(schedule: Schedule, recipe: Recipe, dev: torch.device, units: int | None = None) -> None:
    """Refuse, in one line, a network or batch that cannot fit in the device's memory (see `memory_needed`), and a
    network of more than MAX_UNITS units (`units`: what the networks to train have, default the schedule's)."""
    check_units(schedule.units if units is None else units)
    need, have = memory_needed(schedule, recipe), memory_of(dev)
    if have is not None and need > have:
        where = f"GPU {dev}" if dev.type == "cuda" else "this machine"
        raise TooLargeError(
            f"widths {','.join(map(str, schedule.widths or ()))} with batch size {recipe.batch_size} need at least "
            f"{_size(need)} to train, more than the {_size(have)} of {where}: use smaller --widths or "
            "--batch-size"
        )


def _size(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}" if n < 2**40 * 10**6 else f"{Decimal(n) / 2**40:.1e} TiB"
    return f"{n:,} bytes"


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


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively: oneDNN supports bf16 here and, where Linux lists the CPU's
    flags, the CPU has AVX512-BF16 or AMX-BF16 (oneDNN's check is about support, which it can also report where bf16
    would only be emulated; macOS and Windows list no flags, and oneDNN's answer stands there)."""
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False
    flags = cpu_flags()
    return onednn and (flags is None or bool(flags & {"avx512_bf16", "amx_bf16"}))


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags as Linux lists them in /proc/cpuinfo; None where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def resolve_precision(precision: str, dev: torch.device) -> str:
    """What a run with `precision` does on `dev`: fp32 or bf16. `auto` is bf16 on CUDA and on a CPU with native
    bf16 (`native_bf16`), fp32 elsewhere (MPS, and CPUs where bf16 would be emulated and slower than fp32)."""
    if precision not in PRECISIONS:
        raise DeviceError(f"--precision {precision}: not a precision: use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if dev.type == "cuda" or (dev.type == "cpu" and native_bf16()) else "fp32"
    if precision == "bf16" and dev.type == "mps":
        raise DeviceError("--precision bf16 is not supported on mps: use --precision fp32 or auto")
    return precision


def memory_format(dev: torch.device) -> torch.memory_format:
    """Channels-last on CUDA and on the CPU, where it measured faster in fp32 and bf16; contiguous on MPS."""
    return torch.channels_last if dev.type in ("cuda", "cpu") else torch.contiguous_format


def autocast(dev: torch.device, precision: str) -> Any:
    """bfloat16 autocast when the resolved `precision` is bf16; a no-op for fp32."""
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def layout(x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    """The batch in memory format `fmt` with that format's own strides.

    For one-channel images (digits) the batched augmentation returns strides (HW, 1, W, 1), which count as
    contiguous, so `.contiguous()` keeps them; the CPU convolution then takes another path that was seen to
    make runs irreproducible. Checking strides is metadata only: no copy otherwise and no host sync.
    """
    if x.dim() != 4:  # an FC unit's flat features: one layout only
        return x.contiguous()
    x = x.contiguous(memory_format=fmt)
    if x.stride() != torch.empty(x.shape, device="meta", memory_format=fmt).stride():
        x = x.clone(memory_format=fmt)
    return x


__all__ = [
    "MAX_UNITS",
    "autocast",
    "check_memory",
    "check_units",
    "cpu_flags",
    "device_name",
    "layout",
    "memory_format",
    "memory_needed",
    "memory_of",
    "native_bf16",
    "peak_memory",
    "prepare",
    "resolve_device",
    "resolve_precision",
]
