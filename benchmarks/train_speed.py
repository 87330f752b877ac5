#!/usr/bin/env python3
"""Training throughput of the engine: layer-wise (predsim, pred) against global back-propagation.

    python3 benchmarks/train_speed.py --hierarchy 1,1,2,2 --widths 16,32,64,128 --n-images 1024
    python3 benchmarks/train_speed.py --hierarchy 2,2,2,2 --batch-size 128 --device cuda --json

Trains one network with the public engine (`lwl.models.train`) on CIFAR-shaped synthetic data: random
3x32x32 tensors and labels from a seeded generator, packed as a `DataSplits` whose `DatasetInfo` is CIFAR's
(`dataset_info("cifar10")` / `"cifar100"`), so the engine's random crop + flip runs exactly as in real
training and nothing is downloaded. Timing uses the engine's own per-epoch `Progress` records (simultaneous
mode: one per epoch, `elapsed` since training began): the warm-up epoch(s) are dropped and the rest averaged.

Every loss runs in its own child process (unless --in-process), so that a peak-memory figure, cuDNN's
autotuning cache and the allocator state of one run cannot leak into the next. On Linux the children are
forked from the parent after it has imported torch (so the import is paid once) and before it has touched
CUDA or run any parallel CPU op; elsewhere they are spawned.

Figures (see benchmarks/README.md):
  s/epoch              mean seconds per timed epoch (includes the engine's per-epoch validation pass on a
                       tiny validation split, --n-val images)
  images/s             training images per epoch / s per epoch: whole-network epochs per second x images
  unit-images/s        images per epoch x units / s per epoch: "images/s per unit-epoch", the rate at which the
                       engine does the unit-epochs the search counts as compute (`Progress.unit_epochs`)
  peak memory          CUDA: `RunResult.peak_memory` (peak allocated, data set included) and its excess over
                       what was allocated before `train()` (the data set); CPU: increase of the process's
                       peak RSS (`resource.getrusage(...).ru_maxrss`) during `train()`
  TFLOP/s achieved     3 x flops_aux per image x images/s / 1e12: forward + backward counted as 3 x forward,
                       flops_aux = `complexity(schedule, recipe.head).flops_aux` (backbone + output classifier +
                       every auxiliary head, 2 FLOPs per multiply-add)
  matmul TFLOP/s       measured rate of a square matmul on the same device (bf16 on CUDA, the dtype the engine
                       trains in under autocast; fp32 elsewhere, where the engine trains in fp32)
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
from collections.abc import Sequence
from typing import Any

PROG = "train_speed"
LAYERWISE_LOSSES = ("predsim", "pred", "sim")
CONVENTION = (
    "achieved TFLOP/s = 3 x flops_aux per image x images/s / 1e12 (forward + backward ~ 3 x forward; "
    "flops_aux: complexity(schedule, recipe.head).flops_aux, backbone + output classifier + auxiliary heads, "
    "2 FLOPs per multiply-add)"
)


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Measure the engine's training throughput, layer-wise against global back-propagation, "
        "on CIFAR-shaped synthetic data (no download).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("network")
    g.add_argument("--preset", help="a base network of the paper (resnet18, vgg11, ...); explicit flags win")
    g.add_argument("--hierarchy", help="units per stage, e.g. 1,1,2,2 (default 1,1,2,2 unless --preset)")
    g.add_argument("--family", choices=("resnet", "vgg"), help="default resnet (or the preset's)")
    g.add_argument("--block", choices=("basic", "bottleneck"), help="default basic (or the preset's)")
    g.add_argument("--widths", help="channels per stage, e.g. 64,128,256,512 (default: the family's)")
    g.add_argument("--downsample", choices=("maxpool", "avgpool", "conv"), help="default: the family's")
    g.add_argument("--classes", type=int, choices=(10, 100), default=10,
                   help="10: cifar10's DatasetInfo, 100: cifar100's")
    g = p.add_argument_group("training")
    g.add_argument("--loss", type=_losses, default=("predsim", "pred"),
                   help="comma-separated layer-wise losses to time; global back-propagation always runs too")
    g.add_argument("--batch-size", type=_positive_int, default=128)
    g.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, ...")
    g.add_argument("--steps", type=_positive_int, default=32,
                   help="batches timed after warm-up, rounded up to whole epochs (the engine reports per epoch)")
    g.add_argument("--warmup", type=_positive_int, default=1,
                   help="warm-up batches, not timed, rounded up to whole epochs (at least one epoch)")
    g.add_argument("--n-images", type=_positive_int, default=2048, help="synthetic training-set size")
    g.add_argument("--n-val", type=_positive_int, default=32,
                   help="synthetic validation-set size: the engine validates after every epoch, inside the timed "
                   "epoch, costing about n-val / (3 x images per epoch) of it; keep it tiny")
    g.add_argument("--seed", type=int, default=0, help="seeds the synthetic data and the engine")
    g.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads (default: torch's own choice, usually one per core)")
    g = p.add_argument_group("reference and output")
    g.add_argument("--matmul-size", type=_non_negative_int, default=None,
                   help="side of the square reference matmul (default 8192 on CUDA, 2048 elsewhere; 0 skips it)")
    g.add_argument("--matmul-reps", type=_positive_int, default=5, help="timed repetitions of the matmul")
    g.add_argument("--in-process", action="store_true",
                   help="run every loss in this process (faster start; CPU peak-RSS figures become n/a)")
    g.add_argument("--json", action="store_true", help="print one JSON object with every figure")
    return p


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


# ------------------------------------------------------------------------------------------------ worker side
def synthetic_data(info: Any, n_train: int, n_val: int, seed: int) -> Any:
    """CIFAR-shaped `DataSplits`: standard-normal images (the scale of normalised CIFAR) and uniform labels."""
    import torch

    from lwl.models import DataSplits

    g = torch.Generator().manual_seed(seed)
    shape = (info.in_channels, info.input_size, info.input_size)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn((n, *shape), generator=g, dtype=torch.float32)
        y = torch.randint(0, info.num_classes, (n,), generator=g, dtype=torch.int64)
        return x, y

    train_x, train_y = split(n_train)
    val_x, val_y = split(n_val)
    return DataSplits(info, train_x, train_y, val_x, val_y)


def _max_rss_bytes() -> int:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024  # bytes on macOS, KiB on Linux


def _sync(dev: Any) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def device_info(dev: Any) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"device": str(dev), "torch": torch.__version__, "python": platform.python_version(),
                            "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    if dev.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
    else:
        info["device_name"] = _cpu_name() if dev.type == "cpu" else dev.type
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def measure_matmul(dev: Any, size: int, reps: int) -> dict[str, Any]:
    """TFLOP/s of a size^3 matmul: bf16 on CUDA (what the engine's autocast runs), fp32 elsewhere."""
    import torch

    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
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
    return {"dtype": str(dtype).removeprefix("torch."), "size": size, "reps": reps,
            "tflops": flops / mean / 1e12, "tflops_best": flops / best / 1e12}


def measure(args: argparse.Namespace, loss: str, with_matmul: bool = False, isolated: bool = True) -> dict[str, Any]:
    """Train the network with `loss` for warm-up + timed epochs and return its figures (and, if asked, the
    reference matmul rate, measured after training so that it cannot disturb the run)."""
    import torch

    from lwl.models import complexity, dataset_info, make_schedule, paper_recipe, resolve_device, train

    info = dataset_info("cifar10" if args.classes == 10 else "cifar100")
    hierarchy = args.hierarchy if args.hierarchy is not None or args.preset else "1,1,2,2"
    schedule = make_schedule(preset=args.preset, hierarchy=hierarchy, family=args.family, block=args.block,
                             widths=args.widths, num_classes=info.num_classes, in_channels=info.in_channels,
                             input_size=info.input_size, downsample=args.downsample)
    plan = epoch_plan(args.n_images, args.batch_size, args.steps, args.warmup)
    epochs = plan["warmup_epochs"] + plan["timed_epochs"]
    recipe = paper_recipe(info.name, schedule.family, args.preset, loss=loss, epochs=epochs,
                          batch_size=args.batch_size, seed=args.seed)
    dev = resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    data = synthetic_data(info, args.n_images, args.n_val, args.seed).to(dev)
    cost = complexity(schedule, recipe.head)

    records: list[Any] = []
    _sync(dev)
    if dev.type == "cuda":
        before = torch.cuda.memory_allocated(dev)
    rss_before = _max_rss_bytes()
    result = train(schedule, recipe, data, device=dev, on_progress=records.append)
    rss_after = _max_rss_bytes()

    # Progress.elapsed is read after each epoch's validation, which syncs with the device: records are exact
    # epoch boundaries. Drop the warm-up epochs, average the rest.
    w = plan["warmup_epochs"]
    elapsed = [p.elapsed for p in records]
    epoch_s = [b - a for a, b in zip([0.0] + elapsed[:-1], elapsed)]
    timed_s = elapsed[-1] - elapsed[w - 1]
    timed_unit_epochs = records[-1].unit_epochs - records[w - 1].unit_epochs
    timed_epochs = len(records) - w
    s_per_epoch = timed_s / timed_epochs
    images_per_s = plan["images_per_epoch"] * timed_epochs / timed_s
    unit_images_per_s = plan["images_per_epoch"] * timed_unit_epochs / timed_s

    if dev.type == "cuda":
        peak = result.peak_memory
        train_mem = None if peak is None else peak - before
        memory_kind = "cuda peak allocated (RunResult.peak_memory)"
    elif dev.type == "cpu" and isolated:
        peak = train_mem = rss_after - rss_before
        memory_kind = "cpu peak-RSS increase during train() (ru_maxrss)"
    else:
        peak = train_mem = None
        memory_kind = "n/a (cpu, in-process)" if dev.type == "cpu" else f"n/a ({dev.type})"

    out: dict[str, Any] = {
        "loss": loss,
        "mode": "global" if loss == "global" else "layer-wise",
        "units": schedule.units,
        "epochs": epochs,
        **plan,
        "epoch_seconds": epoch_s,
        "s_per_epoch": s_per_epoch,
        "s_per_epoch_min": min(epoch_s[w:]),
        "images_per_s": images_per_s,
        "unit_images_per_s": unit_images_per_s,
        "flops": cost.flops,
        "flops_aux": cost.flops_aux,
        "params_aux": cost.params_aux,
        "achieved_tflops": 3 * cost.flops_aux * images_per_s / 1e12,
        "peak_memory": peak,
        "train_memory": train_mem,
        "memory_kind": memory_kind,
        "wall_time": result.wall_time,
        "recipe": {"lr": recipe.lr, "dropout": recipe.dropout, "augment": list(info.augment)},
        "schedule": schedule.to_dict(),
        "env": device_info(dev),
    }
    del result, data
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    if with_matmul:
        size = args.matmul_size if args.matmul_size is not None else (8192 if dev.type == "cuda" else 2048)
        out["matmul"] = measure_matmul(dev, size, args.matmul_reps) if size > 0 else None
    return out


def _child(conn: Any, args: argparse.Namespace, loss: str, with_matmul: bool) -> None:
    """Body of one child process: measure, send the figures (or the one-line error) back, exit."""
    from lwl.models import DataError, ScheduleError, TrainingError

    try:
        conn.send(("ok", measure(args, loss, with_matmul, isolated=True)))
    except (ScheduleError, DataError, TrainingError) as exc:
        conn.send(("error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
    except BaseException as exc:  # anything else: report it, then let the parent stop
        conn.send(("crash", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def warm_imports() -> None:
    """Import what every run needs once, in the parent, so that forked children do not pay for it: torch, the
    engine, and what the first `torch.optim.Adam` pulls in (torch._dynamo, about as slow as torch). Touches
    neither CUDA nor any parallel CPU kernel, so forking afterwards is safe."""
    import torch

    import lwl.models  # noqa: F401

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def run_isolated(args: argparse.Namespace, loss: str, with_matmul: bool) -> tuple[str, Any]:
    import multiprocessing as mp

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, args, loss, with_matmul), name=f"{PROG}-{loss}")
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


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f} MiB"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def summarise(runs: dict[str, dict[str, Any]], matmul: dict[str, Any] | None, args: argparse.Namespace,
              load: float | None = None) -> dict[str, Any]:
    base = runs["global"]
    ratios = {
        loss: {
            "time": _ratio(r["s_per_epoch"], base["s_per_epoch"]),
            "memory": _ratio(r["train_memory"], base["train_memory"]),
        }
        for loss, r in runs.items()
        if loss != "global"
    }
    if matmul is not None:
        for r in runs.values():
            r["utilisation"] = r["achieved_tflops"] / matmul["tflops"]
    first = next(iter(runs.values()))
    env = dict(first["env"])
    schedule = first["schedule"]
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        **env,
        "loadavg_1min_at_start": load,
        "schedule": schedule,
        "classes": args.classes,
        "data": {"kind": "synthetic", "shape": [3, 32, 32], "n_images": args.n_images, "n_val": args.n_val,
                 "dataset_info": "cifar10" if args.classes == 10 else "cifar100", "augment": first["recipe"]["augment"]},
        "batch_size": args.batch_size,
        "batches_per_epoch": first["batches_per_epoch"],
        "images_per_epoch": first["images_per_epoch"],
        "warmup_epochs": first["warmup_epochs"],
        "timed_epochs": first["timed_epochs"],
        "isolated": not args.in_process,
        "runs": {loss: {k: v for k, v in r.items() if k not in ("env", "schedule")} for loss, r in runs.items()},
        "ratios": ratios,
        "matmul": matmul,
        "convention": CONVENTION,
    }


def render(s: dict[str, Any]) -> str:
    sch = s["schedule"]
    net = f"{sch['family']} {sch['block'] + ' ' if sch['family'] == 'resnet' else ''}" \
          f"[{','.join(map(str, sch['hierarchy']))}] widths {','.join(map(str, sch['widths']))}"
    first = next(iter(s["runs"].values()))
    device = s["device_name"] if s["device"] == "cpu" else f"{s['device']} ({s['device_name']})"
    lines = [
        f"{PROG}  {s['date']}  torch {s['torch']}  python {s['python']}",
        f"device: {device}" + (f", {s['cpu_threads']} torch threads, {s['cpu_count']} CPUs, 1-min load average "
                               f"{_num(s['loadavg_1min_at_start'])} at start, {_num(s.get('loadavg_1min_at_end'))} at end"
                               if s["device"] == "cpu" else ""),
        f"network: {net}, {first['units']} units, {s['classes']} classes; synthetic 3x32x32 data, "
        f"{s['data']['n_images']} train / {s['data']['n_val']} val, augment {'+'.join(s['data']['augment']) or 'none'}",
        f"batch {s['batch_size']}: {s['batches_per_epoch']} batches = {s['images_per_epoch']} images per epoch; "
        f"{s['warmup_epochs']} warm-up epoch(s) dropped, {s['timed_epochs']} timed",
        "",
    ]
    header = (f"  {'mode / loss':<20} {'s/epoch':>8} {'images/s':>9} {'unit-img/s':>11} {'peak mem':>12} "
              f"{'train mem':>12} {'GFLOP/img':>9} {'TFLOP/s':>8}")
    if s["matmul"] is not None:
        header += f" {'of matmul':>9}"
    lines.append(header)
    for loss, r in s["runs"].items():
        label = f"{r['mode']} {loss}" if loss != "global" else "global (backprop)"
        row = (f"  {label:<20} {r['s_per_epoch']:>8.3f} {r['images_per_s']:>9.1f} {r['unit_images_per_s']:>11.1f} "
               f"{_mib(r['peak_memory']):>12} {_mib(r['train_memory']):>12} {3 * r['flops_aux'] / 1e9:>9.3f} "
               f"{r['achieved_tflops']:>8.3g}")
        if s["matmul"] is not None:
            row += f" {100 * r['utilisation']:>8.1f}%"
        lines.append(row)
    lines.append("")
    for loss, q in s["ratios"].items():
        t = "n/a" if q["time"] is None else f"{q['time']:.2f}x"
        m = "n/a" if q["memory"] is None else f"{q['memory']:.2f}x"
        lines.append(f"layer-wise {loss} / global: time per epoch {t}, training memory {m}")
    mem_kind = first["memory_kind"]
    lines.append(f"memory: {mem_kind}" + ("; train mem = peak minus what was allocated before train() "
                                          "(the data set)" if s["device"].startswith("cuda") else ""))
    lines.append("GFLOP/img = 3 x flops_aux (forward + backward ~ 3 x forward, aux heads included); "
                 "TFLOP/s = GFLOP/img x images/s / 1e3")
    if s["matmul"] is not None:
        mm = s["matmul"]
        lines.append(f"reference matmul: {mm['dtype']} {mm['size']}^3 x{mm['reps']}: {mm['tflops']:.3g} TFLOP/s "
                     f"(best rep {mm['tflops_best']:.3g})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    losses = list(args.loss) + ["global"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    warm_imports()
    runs: dict[str, dict[str, Any]] = {}
    for i, loss in enumerate(losses):
        print(f"{PROG}: timing {loss} ...", file=sys.stderr, flush=True)
        with_matmul = i == 0  # once, after the first run, in the same process
        if args.in_process:
            from lwl.models import DataError, ScheduleError, TrainingError

            try:
                status, payload = "ok", measure(args, loss, with_matmul, isolated=False)
            except (ScheduleError, DataError, TrainingError) as exc:
                status, payload = "error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        else:
            status, payload = run_isolated(args, loss, with_matmul)
        if status != "ok":
            print(f"{PROG}: error: {payload}", file=sys.stderr)
            return 2 if status == "error" else 1
        runs[loss] = payload
    matmul = runs[losses[0]].pop("matmul", None)
    summary = summarise(runs, matmul, args, load)
    summary["loadavg_1min_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    summary["argv"] = list(sys.argv[1:] if argv is None else argv)
    print(json.dumps(summary) if args.json else render(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
