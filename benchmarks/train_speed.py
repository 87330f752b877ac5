#!/usr/bin/env python3
"""Training throughput of the engine: layer-wise (predsim, pred) against global back-propagation, and against a
plain reference written the way a user would write it.

    python3 benchmarks/train_speed.py --hierarchy 1,1,2,2 --widths 16,32,64,128 --n-images 1024
    python3 benchmarks/train_speed.py --hierarchy 2,2,2,2 --batch-size 128 --device cuda --json

Trains one network with the public engine (`lwl.models.train`) on CIFAR-shaped synthetic data: uint8 images
from a seeded generator (each class its own colour, each pixel that colour plus noise: a learnable task),
normalised exactly as the engine loads CIFAR and packed as a `DataSplits` whose `DatasetInfo` is CIFAR's
(`dataset_info("cifar10")` / `"cifar100"`), so the engine's random crop + flip runs exactly as in real
training and nothing is downloaded. Timing uses the engine's own per-epoch `Progress` records (simultaneous
mode: one per epoch, `elapsed` since training began): the warm-up epoch(s) are dropped and the rest averaged.

The reference (`--reference`, default `pred`) trains the same `LocalNet` (`build_network`, so FLOPs and
parameters are identical) on the same uint8 images the way a user following Noekland & Eidnes' code writes it:
a map-style data set with per-image torchvision transforms, a `DataLoader`, fp32, eager, one `torch.optim.Adam`
per unit and one for the output classifier, each unit on the detached (dropped-out) output of the one before.
It is timed the same way (whole epochs, warm-up dropped), and the engine / reference ratio is printed.

Every run goes in its own child process (unless --in-process), so that a peak-memory figure, cuDNN's
autotuning cache and the allocator state of one run cannot leak into the next. On Linux the children are
forked from the parent after it has imported torch (so the import is paid once) and before it has touched
CUDA or run any parallel CPU op; elsewhere they are spawned.

Figures (see benchmarks/README.md):
  s/epoch              mean seconds per timed epoch (includes the per-epoch validation pass on a tiny
                       validation split, --n-val images)
  images/s             training images per epoch / s per epoch: whole-network epochs per second x images
  unit-images/s        images per epoch x units / s per epoch: "images/s per unit-epoch", the rate at which the
                       engine does the unit-epochs the search counts as compute (`Progress.unit_epochs`)
  peak memory          CUDA: peak allocated during training (`RunResult.peak_memory` for the engine, data set
                       included) and its excess over what was allocated before (the data set); CPU: increase of
                       the process's peak RSS (`resource.getrusage(...).ru_maxrss`) during training
  TFLOP/s achieved     3 x flops_aux per image x images/s / 1e12: forward + backward counted as 3 x forward,
                       flops_aux = `complexity(schedule, recipe.head).flops_aux` (backbone + output classifier +
                       every auxiliary head, 2 FLOPs per multiply-add)
  matmul TFLOP/s       measured rate of a square matmul on the same device, in the dtype the engine's first run
                       computed in (bf16 under bf16 autocast, else fp32)
  s/candidate          extrapolated: seconds to train one candidate at the study's default fidelity
                       (`lwl-search`'s epochs per candidate on CIFAR, on CIFAR's training split less the
                       validation fraction) at the measured images/s
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

PROG = "train_speed"
LAYERWISE_LOSSES = ("predsim", "pred", "sim")
CONVENTION = (
    "achieved TFLOP/s = 3 x flops_aux per image x images/s / 1e12 (forward + backward ~ 3 x forward; "
    "flops_aux: complexity(schedule, recipe.head).flops_aux, backbone + output classifier + auxiliary heads, "
    "2 FLOPs per multiply-add)"
)
# The synthetic task: class c's images are its colour (drawn per class from COLOUR_RANGE) plus Gaussian pixel
# noise of sd PIXEL_NOISE, rounded to uint8. Learnable, so that the engine and the reference can be seen to train;
# speed does not depend on the values.
COLOUR_RANGE = (64, 192)
PIXEL_NOISE = 48.0
# "Seconds per candidate at the study's default fidelity": `lwl-search` trains a CIFAR candidate for
# SEARCH_EPOCHS[dataset] epochs on CIFAR's 50,000 training images less its validation fraction (10 %: 45,000).
CIFAR_TRAIN_IMAGES = 50_000


# ------------------------------------------------------------------------------------------------ arguments
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be at least 0")
    return value


def _losses(text: str) -> tuple[str, ...]:
    """Comma-separated layer-wise losses; 'global' is always run as the baseline, so it may be left out."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in LAYERWISE_LOSSES + ("global",)]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown loss {unknown[0]!r}: choose from {', '.join(LAYERWISE_LOSSES)} (global always runs)"
        )
    out = tuple(dict.fromkeys(n for n in names if n != "global"))
    if not out:
        raise argparse.ArgumentTypeError("give at least one layer-wise loss, e.g. predsim,pred")
    return out


def _reference_losses(text: str) -> tuple[str, ...]:
    """Comma-separated layer-wise losses the plain reference also runs; 'none' runs no reference."""
    if text.strip() == "none":
        return ()
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in LAYERWISE_LOSSES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"reference loss {unknown[0] if unknown else text!r}: choose from {', '.join(LAYERWISE_LOSSES)}, or none"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Measure the engine's training throughput, layer-wise against global back-propagation and "
        "against a plain PyTorch reference, on CIFAR-shaped synthetic data (no download).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("network")
    g.add_argument("--preset", help="a base network of the paper (resnet18, vgg11, ...); explicit flags win")
    g.add_argument("--hierarchy", help="units per stage, e.g. 1,1,2,2 (default 1,1,2,2 unless --preset)")
    g.add_argument("--family", choices=("resnet", "vgg"), help="default resnet (or the preset's)")
    g.add_argument("--block", choices=("basic", "bottleneck"), help="default basic (or the preset's)")
    g.add_argument("--widths", help="channels per stage, e.g. 64,128,256,512 (default: the family's)")
    g.add_argument("--downsample", choices=("maxpool", "avgpool", "conv"), help="default: the family's")
    g.add_argument(
        "--classes", type=int, choices=(10, 100), default=10, help="10: cifar10's DatasetInfo, 100: cifar100's"
    )
    g = p.add_argument_group("training")
    g.add_argument(
        "--loss",
        type=_losses,
        default=("predsim", "pred"),
        help="comma-separated layer-wise losses to time; global back-propagation always runs too",
    )
    g.add_argument("--batch-size", type=_positive_int, default=128)
    g.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="the engine's precision (auto: bf16 on CUDA and on a CPU with native bf16, fp32 elsewhere); the "
        "reference always trains in fp32",
    )
    g.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, ...")
    g.add_argument(
        "--layout",
        choices=("engine", "channels_last", "contiguous"),
        default="engine",
        help="the engine's memory format: its own choice (channels-last on CUDA and the CPU), or one forced for "
        "this measurement (to measure the choice); the reference is always contiguous",
    )
    g.add_argument(
        "--steps",
        type=_positive_int,
        default=32,
        help="batches timed after warm-up, rounded up to whole epochs (the engine reports per epoch)",
    )
    g.add_argument(
        "--warmup",
        type=_positive_int,
        default=1,
        help="warm-up batches, not timed, rounded up to whole epochs (at least one epoch)",
    )
    g.add_argument("--n-images", type=_positive_int, default=2048, help="synthetic training-set size")
    g.add_argument(
        "--n-val",
        type=_positive_int,
        default=32,
        help="synthetic validation-set size: the engine validates after every epoch, inside the timed "
        "epoch, costing about n-val / (3 x images per epoch) of it; keep it tiny",
    )
    g.add_argument("--seed", type=int, default=0, help="seeds the synthetic data and the engine")
    g.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch CPU threads (default: torch's own choice, usually one per core)",
    )
    g = p.add_argument_group("plain reference")
    g.add_argument(
        "--reference",
        type=_reference_losses,
        default=("pred",),
        help="comma-separated layer-wise losses (each also in --loss) to train with the plain "
        "reference too (DataLoader, per-image transforms, fp32, eager); none: no reference",
    )
    g.add_argument(
        "--ref-workers",
        type=_non_negative_int,
        default=0,
        help="the reference DataLoader's num_workers (0: load in the training process, as Noekland & "
        "Eidnes' code does)",
    )
    g = p.add_argument_group("matmul rate and output")
    g.add_argument(
        "--matmul-size",
        type=_non_negative_int,
        default=None,
        help="side of the square reference matmul (default 8192 on CUDA, 2048 elsewhere; 0 skips it)",
    )
    g.add_argument("--matmul-reps", type=_positive_int, default=5, help="timed repetitions of the matmul")
    g.add_argument(
        "--in-process",
        action="store_true",
        help="run everything in this process (faster start; CPU peak-RSS figures become n/a)",
    )
    g.add_argument("--json", action="store_true", help="print one JSON object with every figure")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The flags, with the reference's losses checked against --loss: a ratio needs the engine's run of it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    missing = [loss for loss in args.reference if loss not in args.loss]
    if missing:
        parser.error(f"--reference {missing[0]}: the engine must run it too for the ratio; add it to --loss")
    return args


def epoch_plan(n_images: int, batch_size: int, steps: int, warmup: int) -> dict[str, int]:
    """Batches and images per epoch as the engine serves them (the last partial batch is dropped), and the
    warm-up and timed epochs that cover --warmup and --steps batches."""
    batches = n_images // batch_size if n_images >= batch_size else 1
    images = batches * batch_size if n_images >= batch_size else n_images
    return {
        "batches_per_epoch": batches,
        "images_per_epoch": images,
        "warmup_epochs": max(1, math.ceil(warmup / batches)),
        "timed_epochs": max(1, math.ceil(steps / batches)),
    }


def candidate_fidelity(dataset: str, batch_size: int) -> dict[str, Any]:
    """What one `lwl-search` candidate trains on real CIFAR at the study's defaults: epochs and images per epoch
    (the engine serves whole batches only)."""
    from lwl.search import parse_search_flags

    recipe = parse_search_flags(["--dataset", dataset, "--budget", "16"])[0].recipe
    train_images = round(CIFAR_TRAIN_IMAGES * (1 - recipe.val_fraction))
    return {
        "extrapolated": True,
        "dataset": dataset,
        "epochs": recipe.epochs,
        "train_images": train_images,
        "images_per_epoch": epoch_plan(train_images, batch_size, 1, 1)["images_per_epoch"],
        "val_fraction": recipe.val_fraction,
        "rule": "s_per_candidate = epochs x images_per_epoch / measured images/s",
    }


def candidate_seconds(fidelity: dict[str, Any], images_per_s: float) -> float:
    """Extrapolated seconds to train one candidate at `fidelity` (`candidate_fidelity`) at the measured rate."""
    return fidelity["epochs"] * fidelity["images_per_epoch"] / images_per_s


# ------------------------------------------------------------------------------------------------ worker side
def synthetic_images(info: Any, n_train: int, n_val: int, seed: int) -> dict[str, np.ndarray]:
    """uint8 NHWC images (as torchvision's CIFAR data sets hold them) and int64 labels for both splits: every
    class a colour, every pixel that colour plus noise."""
    g = torch.Generator().manual_seed(seed)
    c, size = info.in_channels, info.input_size
    colours = torch.randint(*COLOUR_RANGE, (info.num_classes, c), generator=g, dtype=torch.int64).float()
    out: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("val", n_val)):
        y = torch.randint(0, info.num_classes, (n,), generator=g, dtype=torch.int64)
        noise = torch.randn((n, size, size, c), generator=g) * PIXEL_NOISE
        out[f"{split}_x"] = (colours[y].view(n, 1, 1, c) + noise).round_().clamp_(0, 255).to(torch.uint8).numpy()
        out[f"{split}_y"] = y.numpy()
    return out


def synthetic_data(info: Any, n_train: int, n_val: int, seed: int) -> Any:
    """The engine's CIFAR-shaped `DataSplits` of `synthetic_images`, converted exactly as the engine loads CIFAR
    (uint8 NHWC -> normalised float32 NCHW)."""
    from lwl.models import splits_from_images

    return splits_from_images(info, **synthetic_images(info, n_train, n_val, seed))


def _max_rss_bytes() -> int:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024  # bytes on macOS, KiB on Linux


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def device_info(dev: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(dev),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    if dev.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
    else:
        info["device_name"] = _cpu_name() if dev.type == "cpu" else dev.type
    if dev.type == "cpu":
        from lwl.models import native_bf16

        info["native_bf16"] = native_bf16()
        info["cpu_features"] = _cpu_features()
    return info


def _cpu_features() -> list[str]:
    """Which of the instruction sets that decide the CPU's bf16 and fp32 speed the CPU lists (Linux)."""
    from lwl.models import cpu_flags

    flags = cpu_flags() or set()
    return [w for w in ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2") if w in flags]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def measure_matmul(dev: torch.device, size: int, reps: int, precision: str) -> dict[str, Any]:
    """TFLOP/s of a size^3 matmul in the dtype the engine's run computed in (`precision`: bf16 or fp32)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    g = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(size, size, device=dev, dtype=dtype, generator=g)
    b = torch.randn(size, size, device=dev, dtype=dtype, generator=g)
    for _ in range(2):  # warm-up: library selection, clocks
        torch.mm(a, b)
    _sync(dev)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        _sync(dev)
        times.append(time.perf_counter() - t)
    del a, b
    best, mean = min(times), sum(times) / len(times)
    flops = 2.0 * size**3
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "size": size,
        "reps": reps,
        "tflops": flops / mean / 1e12,
        "tflops_best": flops / best / 1e12,
    }


@dataclass(frozen=True)
class Setup:
    """What the engine's run and the reference's share: the network, the recipe, the epochs and the device."""

    info: Any  # DatasetInfo
    schedule: Any  # Schedule
    recipe: Any  # Recipe
    plan: dict[str, int]
    dev: torch.device
    cost: Any  # Complexity


def setup(args: argparse.Namespace, loss: str) -> Setup:
    """The schedule, the paper's CIFAR recipe for `loss` over warm-up + timed epochs, the device and threads."""
    from lwl.models import complexity, dataset_info, make_schedule, paper_recipe, resolve_device

    info = dataset_info("cifar10" if args.classes == 10 else "cifar100")
    hierarchy = args.hierarchy if args.hierarchy is not None or args.preset else "1,1,2,2"
    schedule = make_schedule(
        preset=args.preset,
        hierarchy=hierarchy,
        family=args.family,
        block=args.block,
        widths=args.widths,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        input_size=info.input_size,
        downsample=args.downsample,
    )
    plan = epoch_plan(args.n_images, args.batch_size, args.steps, args.warmup)
    recipe = paper_recipe(
        info.name,
        schedule.family,
        args.preset,
        loss=loss,
        epochs=plan["warmup_epochs"] + plan["timed_epochs"],
        batch_size=args.batch_size,
        seed=args.seed,
        precision=args.precision,
    )
    dev = resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.layout != "engine":  # the Learner asks `memory_format(dev)` for its layout: answer for this run
        import lwl.models._steps as steps

        fmt = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
        steps.memory_format = lambda _dev: fmt  # type: ignore[assignment]
    return Setup(info, schedule, recipe, plan, dev, complexity(schedule, recipe.head))


def timing(s: Setup, elapsed: Sequence[float], unit_epochs: Sequence[int]) -> dict[str, Any]:
    """Figures from the seconds since training began at each epoch's end (after its validation, which syncs with
    the device) and the unit-epochs done by then: warm-up epochs dropped, the rest averaged."""
    w, images = s.plan["warmup_epochs"], s.plan["images_per_epoch"]
    epoch_s = [b - a for a, b in zip([0.0, *elapsed[:-1]], elapsed)]
    timed_s = elapsed[-1] - elapsed[w - 1]
    timed_epochs = len(elapsed) - w
    images_per_s = images * timed_epochs / timed_s
    return {
        "units": s.schedule.units,
        "epochs": len(elapsed),
        **s.plan,
        "epoch_seconds": list(epoch_s),
        "s_per_epoch": timed_s / timed_epochs,
        "s_per_epoch_min": min(epoch_s[w:]),
        "images_per_s": images_per_s,
        "unit_images_per_s": images * (unit_epochs[-1] - unit_epochs[w - 1]) / timed_s,
        "flops": s.cost.flops,
        "flops_aux": s.cost.flops_aux,
        "params_aux": s.cost.params_aux,
        "achieved_tflops": 3 * s.cost.flops_aux * images_per_s / 1e12,
    }


def memory(
    dev: torch.device,
    isolated: bool,
    peak_cuda: int | None,
    before_cuda: int,
    rss_before: int,
    rss_after: int,
    cuda_kind: str,
) -> dict[str, Any]:
    """Peak and training memory: CUDA peak allocated (and its excess over `before_cuda`), or on the CPU the peak-RSS
    increase, which only means something in a fresh child process."""
    if dev.type == "cuda":
        return {
            "peak_memory": peak_cuda,
            "train_memory": None if peak_cuda is None else peak_cuda - before_cuda,
            "memory_kind": cuda_kind,
        }
    if dev.type == "cpu" and isolated:
        return {
            "peak_memory": rss_after - rss_before,
            "train_memory": rss_after - rss_before,
            "memory_kind": "cpu peak-RSS increase during training (ru_maxrss)",
        }
    return {
        "peak_memory": None,
        "train_memory": None,
        "memory_kind": "n/a (cpu, in-process)" if dev.type == "cpu" else f"n/a ({dev.type})",
    }


def _common(s: Setup, loss: str, mode: str) -> dict[str, Any]:
    return {
        "loss": loss,
        "mode": mode,
        "recipe": {"lr": s.recipe.lr, "dropout": s.recipe.dropout, "augment": list(s.info.augment)},
        "schedule": s.schedule.to_dict(),
        "env": device_info(s.dev),
    }


def measure(args: argparse.Namespace, loss: str, with_matmul: bool = False, isolated: bool = True) -> dict[str, Any]:
    """Train the network with the engine and `loss` for warm-up + timed epochs and return its figures (and, if
    asked, the reference matmul rate, measured after training so that it cannot disturb the run)."""
    from lwl.models import train

    s = setup(args, loss)
    dev = s.dev
    data = synthetic_data(s.info, args.n_images, args.n_val, args.seed).to(dev)
    records: list[Any] = []
    _sync(dev)
    before = torch.cuda.memory_allocated(dev) if dev.type == "cuda" else 0
    rss_before = _max_rss_bytes()
    result = train(s.schedule, s.recipe, data, device=dev, on_progress=records.append)
    rss_after = _max_rss_bytes()

    # Progress.elapsed is read after each epoch's validation, which syncs with the device: exact epoch boundaries.
    out: dict[str, Any] = {
        **_common(s, loss, "global" if loss == "global" else "layer-wise"),
        **timing(s, [p.elapsed for p in records], [p.unit_epochs for p in records]),
        **memory(
            dev,
            isolated,
            result.peak_memory,
            before,
            rss_before,
            rss_after,
            "cuda peak allocated (RunResult.peak_memory)",
        ),
        "train_loss": [list(p.train_loss) for p in records],
        "val_acc": [p.output_acc for p in records],
        "wall_time": result.wall_time,
        "precision": result.recipe.precision,
        "layout": args.layout,
    }
    del result, data
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    if with_matmul:
        size = args.matmul_size if args.matmul_size is not None else (8192 if dev.type == "cuda" else 2048)
        out["matmul"] = measure_matmul(dev, size, args.matmul_reps, out["precision"]) if size > 0 else None
    return out


# ------------------------------------------------------------------------------------------------ the reference
class ImageArrayDataset(Dataset):
    """uint8 HWC images served one at a time as PIL images through per-image transforms, as torchvision's CIFAR10
    and CIFAR100 data sets serve them."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable[[Any], torch.Tensor]) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def reference_loss(unit: Any, h: torch.Tensor, y: torch.Tensor, loss: str, beta: float, classes: int) -> torch.Tensor:
    """Unit's local loss on its output h, as Noekland & Eidnes define it (the engine's `_unit_loss`)."""
    from lwl.models import sim_loss

    if loss == "pred":
        return F.cross_entropy(unit.pred(h), y)
    sim = sim_loss(unit.sim(h), y, classes)
    if loss == "sim":  # the classifier still learns, as a probe
        return sim + F.cross_entropy(unit.pred(h.detach()), y)
    return (1 - beta) * F.cross_entropy(unit.pred(h), y) + beta * sim


def measure_reference(args: argparse.Namespace, loss: str, isolated: bool = True) -> dict[str, Any]:
    """Train the same network on the same images the way a user writes layer-wise training: torchvision
    transforms per image, a DataLoader, fp32, eager, one Adam per unit plus one for the output classifier, each
    unit on the detached output of the one before; the paper's step decay (MultiStepLR), losses read with
    `.item()`. Timed like the engine: whole epochs, each ending with a validation pass."""
    from torchvision import transforms

    from lwl.models import build_network

    s = setup(args, loss)
    dev, recipe, info = s.dev, s.recipe, s.info
    arrays = synthetic_images(info, args.n_images, args.n_val, args.seed)
    normalize = [transforms.ToTensor(), transforms.Normalize(info.mean, info.std)]
    augment = [transforms.RandomCrop(info.input_size, padding=info.crop_padding)] if "crop" in info.augment else []
    augment += [transforms.RandomHorizontalFlip()] if "flip" in info.augment else []
    cuda = dev.type == "cuda"
    rss_before = _max_rss_bytes()
    if cuda:
        # Nothing has touched CUDA yet in a fresh child, and reset_peak_memory_stats on an explicit index (--device
        # cuda:0, cuda:1) does not initialise it: it raises "Invalid device argument 0: did you call init?".
        torch.cuda.init()
    before = torch.cuda.memory_allocated(dev) if cuda else 0
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    torch.manual_seed(args.seed)
    train_set = ImageArrayDataset(arrays["train_x"], arrays["train_y"], transforms.Compose(augment + normalize))
    loader = DataLoader(
        train_set,
        batch_size=recipe.batch_size,
        shuffle=True,
        drop_last=args.n_images >= recipe.batch_size,  # as the engine serves whole batches
        num_workers=args.ref_workers,
        pin_memory=cuda,
    )
    val_loader = DataLoader(
        ImageArrayDataset(arrays["val_x"], arrays["val_y"], transforms.Compose(normalize)),
        batch_size=recipe.eval_batch_size,
        num_workers=args.ref_workers,
        pin_memory=cuda,
    )
    net = build_network(s.schedule, recipe.head, recipe.seed).to(dev)
    unit_opts = [torch.optim.Adam(u.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay) for u in net.units]
    out_opt = torch.optim.Adam(net.classifier.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    # The paper's step decay at fractions of the run, stepped per batch (as the engine does) so short runs decay too.
    milestones = [math.floor(m * recipe.epochs * len(loader)) for m in recipe.lr_milestones]
    schedulers = [torch.optim.lr_scheduler.MultiStepLR(o, milestones, recipe.lr_gamma) for o in [*unit_opts, out_opt]]
    out_weight = 1 - recipe.beta if loss == "predsim" else 1.0  # as the engine weighs the output classifier

    t0 = time.perf_counter()
    elapsed: list[float] = []
    train_loss: list[list[float]] = []
    val_acc: list[float] = []
    for _ in range(recipe.epochs):
        net.train()
        sums = [0.0] * len(net.units)
        for x, y in loader:
            x, y = x.to(dev), y.to(dev)
            h = x
            for j, (unit, opt) in enumerate(zip(net.units, unit_opts)):
                out = unit(h)
                local = reference_loss(unit, out, y, loss, recipe.beta, info.num_classes)
                opt.zero_grad()
                local.backward()
                opt.step()
                sums[j] += local.item()
                h = F.dropout(out.detach(), recipe.dropout, training=True)
            final = out_weight * F.cross_entropy(net.classifier(h), y)
            out_opt.zero_grad()
            final.backward()
            out_opt.step()
            for scheduler in schedulers:
                scheduler.step()
        net.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += (net(x.to(dev)).argmax(1) == y.to(dev)).sum().item()
        train_loss.append([v / len(loader) for v in sums])
        val_acc.append(correct / len(val_loader.dataset))
        elapsed.append(time.perf_counter() - t0)
    rss_after = _max_rss_bytes()
    units = len(net.units)
    return {
        **_common(s, loss, "reference"),
        **timing(s, elapsed, [units * (e + 1) for e in range(len(elapsed))]),
        **memory(
            dev,
            isolated,
            torch.cuda.max_memory_allocated(dev) if cuda else None,
            before,
            rss_before,
            rss_after,
            "cuda peak allocated (torch.cuda.max_memory_allocated; the data set stays on the host)",
        ),
        "loader_batches_per_epoch": len(loader),
        "ref_workers": args.ref_workers,
        "train_loss": train_loss,
        "val_acc": val_acc,
        "wall_time": elapsed[-1],
        "precision": "fp32",
    }


# ------------------------------------------------------------------------------------------------ processes
Job = tuple[Callable[..., dict[str, Any]], tuple[Any, ...]]


def _attempt(job: Job, isolated: bool) -> tuple[str, Any]:
    """Run one measurement; a user error (a bad network, a diverged run) becomes ('error', its first line)."""
    from lwl.models import DataError, ScheduleError, TrainingError

    fn, fn_args = job
    try:
        return "ok", fn(*fn_args, isolated=isolated)
    except (ScheduleError, DataError, TrainingError) as exc:
        return "error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _child(conn: Any, job: Job) -> None:
    """Body of one child process: measure, send the figures (or the one-line error) back, exit."""
    try:
        conn.send(_attempt(job, isolated=True))
    except BaseException as exc:  # anything else: report it, then let the parent stop
        conn.send(("crash", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def warm_imports() -> None:
    """Import what every run needs once, in the parent, so that forked children do not pay for it: the engine,
    torchvision's transforms (the reference), and what the first `torch.optim.Adam` pulls in (torch._dynamo,
    about as slow as torch). Touches neither CUDA nor any parallel CPU kernel, so forking afterwards is safe."""
    import torchvision.transforms  # noqa: F401

    import lwl.models  # noqa: F401

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def run_isolated(job: Job, name: str) -> tuple[str, Any]:
    import multiprocessing as mp

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, job), name=f"{PROG}-{name}")
    proc.start()
    send.close()
    try:
        status, payload = recv.recv()
    except EOFError:  # the child died without a word: killed for memory, a segfault
        status, payload = "crash", "the child process ended without a result"
    proc.join()
    if status == "ok" and proc.exitcode not in (0, None):
        status, payload = "crash", f"the child process exited with status {proc.exitcode}"
    return status, payload


# ------------------------------------------------------------------------------------------------ report
def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f} MiB"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def summarise(
    runs: dict[str, dict[str, Any]],
    matmul: dict[str, Any] | None,
    args: argparse.Namespace,
    load: float | None = None,
    references: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    references = references or {}
    base = runs["global"]
    ratios = {
        loss: {
            "time": _ratio(r["s_per_epoch"], base["s_per_epoch"]),
            "memory": _ratio(r["train_memory"], base["train_memory"]),
        }
        for loss, r in runs.items()
        if loss != "global"
    }
    reference_ratios = {
        loss: {
            "speed": _ratio(runs[loss]["images_per_s"], r["images_per_s"]),
            "memory": _ratio(runs[loss]["train_memory"], r["train_memory"]),
        }
        for loss, r in references.items()
    }
    first = next(iter(runs.values()))
    dataset = "cifar10" if args.classes == 10 else "cifar100"
    candidate = candidate_fidelity(dataset, args.batch_size)
    for r in [*runs.values(), *references.values()]:
        r["s_per_candidate"] = candidate_seconds(candidate, r["images_per_s"])
        if matmul is not None:
            r["utilisation"] = r["achieved_tflops"] / matmul["tflops"]
    env = dict(first["env"])

    def strip(r: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in r.items() if k not in ("env", "schedule")}

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        **env,
        "loadavg_1min_at_start": load,
        "schedule": first["schedule"],
        "classes": args.classes,
        "data": {
            "kind": "synthetic",
            "shape": [3, 32, 32],
            "n_images": args.n_images,
            "n_val": args.n_val,
            "dataset_info": dataset,
            "augment": first["recipe"]["augment"],
            "images": f"uint8, class colour in [{COLOUR_RANGE[0]}, {COLOUR_RANGE[1]}) + N(0, {PIXEL_NOISE:g}) "
            "per pixel, normalised as the engine loads CIFAR",
        },
        "batch_size": args.batch_size,
        "batches_per_epoch": first["batches_per_epoch"],
        "images_per_epoch": first["images_per_epoch"],
        "warmup_epochs": first["warmup_epochs"],
        "timed_epochs": first["timed_epochs"],
        "isolated": not args.in_process,
        "runs": {loss: strip(r) for loss, r in runs.items()},
        "ratios": ratios,
        "reference": {loss: strip(r) for loss, r in references.items()},
        "reference_ratios": reference_ratios,
        "candidate": candidate,
        "matmul": matmul,
        "convention": CONVENTION,
    }


def _learning(r: dict[str, Any]) -> str:
    """Mean local loss of the units, first epoch -> last, and the last epoch's output validation accuracy."""
    first, last = (sum(v) / len(v) for v in (r["train_loss"][0], r["train_loss"][-1]))
    return f"{first:.3f} -> {last:.3f}, {_num(r['val_acc'][-1])}"


def render(s: dict[str, Any]) -> str:
    sch = s["schedule"]
    net = (
        f"{sch['family']} {sch['block'] + ' ' if sch['family'] == 'resnet' else ''}"
        f"[{','.join(map(str, sch['hierarchy']))}] widths {','.join(map(str, sch['widths']))}"
    )
    first = next(iter(s["runs"].values()))
    device = s["device_name"] if s["device"] == "cpu" else f"{s['device']} ({s['device_name']})"
    if "native_bf16" in s:
        features = ", ".join(s.get("cpu_features") or []) or "flags unknown"
        device += f" ({'native' if s['native_bf16'] else 'no native'} bf16; {features})"
    lines = [
        f"{PROG}  {s['date']}  torch {s['torch']}  python {s['python']}",
        f"device: {device}"
        + (
            f", {s['cpu_threads']} torch threads, {s['cpu_count']} CPUs, 1-min load average "
            f"{_num(s['loadavg_1min_at_start'])} at start, {_num(s.get('loadavg_1min_at_end'))} at end"
            if s["device"] == "cpu"
            else ""
        ),
        f"network: {net}, {first['units']} units, {s['classes']} classes; synthetic 3x32x32 data, "
        f"{s['data']['n_images']} train / {s['data']['n_val']} val, augment {'+'.join(s['data']['augment']) or 'none'}",
        f"batch {s['batch_size']}: {s['batches_per_epoch']} batches = {s['images_per_epoch']} images per epoch; "
        f"{s['warmup_epochs']} warm-up epoch(s) dropped, {s['timed_epochs']} timed",
        "",
    ]
    header = (
        f"  {'mode / loss / precision':<25} {'s/epoch':>8} {'images/s':>9} {'unit-img/s':>11} {'peak mem':>12} "
        f"{'train mem':>12} {'GFLOP/img':>9} {'TFLOP/s':>8}"
    )
    if s["matmul"] is not None:
        header += f" {'of matmul':>9}"
    lines.append(header + f" {'s/cand':>9}")
    rows = [
        (f"global {r['precision']}" if loss == "global" else f"layer-wise {loss} {r['precision']}", r)
        for loss, r in s["runs"].items()
    ]
    rows += [(f"reference {loss} fp32", r) for loss, r in s["reference"].items()]
    for label, r in rows:
        row = (
            f"  {label:<25} {r['s_per_epoch']:>8.3f} {r['images_per_s']:>9.1f} {r['unit_images_per_s']:>11.1f} "
            f"{_mib(r['peak_memory']):>12} {_mib(r['train_memory']):>12} {3 * r['flops_aux'] / 1e9:>9.3f} "
            f"{r['achieved_tflops']:>8.3g}"
        )
        if s["matmul"] is not None:
            row += f" {100 * r['utilisation']:>8.1f}%"
        lines.append(row + f" {r['s_per_candidate']:>9.0f}")
    lines.append("")
    for loss, q in s["ratios"].items():
        lines.append(
            f"layer-wise {loss} / global: time per epoch {_times(q['time'])}, training memory {_times(q['memory'])}"
        )
    for loss, q in s["reference_ratios"].items():
        lines.append(
            f"engine in {s['runs'][loss]['precision']} / reference in fp32 ({loss}): images/s {_times(q['speed'])}, "
            f"training memory {_times(q['memory'])}"
        )
    if s["reference"]:
        lines.append("both learn? mean local loss of the units, first epoch -> last; output val accuracy at the end:")
        for loss, r in s["reference"].items():
            lines.append(f"  {'engine ' + loss:<20} {_learning(s['runs'][loss])}")
            lines.append(f"  {'reference ' + loss:<20} {_learning(r)}")
    lines.append(
        f"memory: {first['memory_kind']}"
        + (
            "; train mem = peak minus what was allocated before training (the engine's data set)"
            if s["device"].startswith("cuda")
            else ""
        )
    )
    lines.append(
        "GFLOP/img = 3 x flops_aux (forward + backward ~ 3 x forward, aux heads included); "
        "TFLOP/s = GFLOP/img x images/s / 1e3"
    )
    c = s["candidate"]
    lines.append(
        f"s/cand (extrapolated): seconds per candidate at the study's default fidelity, {c['epochs']} epochs "
        f"(lwl-search on {c['dataset']}) x {c['images_per_epoch']:,} images ({c['train_images']:,} "
        f"training images after the {c['val_fraction']:.0%} validation split, whole batches) / images/s; "
        "training only (the timed epochs validate on --n-val images, not on the split's 5,000)"
    )
    if s["reference"]:
        lines.append(
            "reference: torchvision per-image transforms on uint8 HWC images through a DataLoader "
            f"(shuffle, {next(iter(s['reference'].values()))['ref_workers']} workers), fp32, eager, one "
            "Adam per unit + one for the output classifier"
        )
    if s["matmul"] is not None:
        mm = s["matmul"]
        lines.append(
            f"reference matmul: {mm['dtype']} {mm['size']}^3 x{mm['reps']}: {mm['tflops']:.3g} TFLOP/s "
            f"(best rep {mm['tflops_best']:.3g})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    losses = list(args.loss) + ["global"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    warm_imports()
    # The matmul runs once, after the first engine run, in the same process; the references run last.
    jobs: list[tuple[str, str, Job]] = [(loss, loss, (measure, (args, loss, i == 0))) for i, loss in enumerate(losses)]
    jobs += [(f"reference {loss}", loss, (measure_reference, (args, loss))) for loss in args.reference]
    runs: dict[str, dict[str, Any]] = {}
    references: dict[str, dict[str, Any]] = {}
    for label, loss, job in jobs:
        print(f"{PROG}: timing {label} ...", file=sys.stderr, flush=True)
        if args.in_process:
            status, payload = _attempt(job, isolated=False)
        else:
            status, payload = run_isolated(job, label.replace(" ", "-"))
        if status != "ok":
            print(f"{PROG}: error: {payload}", file=sys.stderr)
            return 2 if status == "error" else 1
        (references if label.startswith("reference") else runs)[loss] = payload
    matmul = runs[losses[0]].pop("matmul", None)
    summary = summarise(runs, matmul, args, load, references)
    summary["loadavg_1min_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    summary["argv"] = list(sys.argv[1:] if argv is None else argv)
    print(json.dumps(summary) if args.json else render(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
