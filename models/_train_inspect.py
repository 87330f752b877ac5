"""`lwl-inspect` and `lwl-train`: thin commands over the engine.

Over 400 lines (about 570) because lwl-train's one training path (a config, read from a file or translated from the
flags; with a run folder or none), resume and its checks of every input before anything is written live here;
splitting lwl-train from lwl-inspect is the next step if it grows.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._aux import AUX_NETS
from ._config import ConfigError, TrainingConfig, load_config
from ._datasets import DATASETS, dataset_info
from ._errors import CheckpointError, DataError
from ._paper import PAPER_RESULTS, paper_results
from ._plan import check_units, complexity, head_descriptions
from ._recipe import RECIPE_RANGES, REFERENCE_FIELDS, Recipe
from ._records import Progress, RunResult
from ._schedule import EXTRA_FIELDS, Schedule, extras_phrases
from ._state import TrainerState
from .cli import (
    NETWORK_DESTS,
    NETWORK_RANGES,
    REFERENCE_DESTS,
    TRAINING_RANGES,
    Parser,
    add_data_args,
    add_recipe_args,
    add_schedule_args,
    check_ranges,
    percent,
    plural,
    recipe_from_args,
    refuse_empty,
    run_command,
    schedule_from_args,
    writable_folder,
)

# lwl-inspect counts, never trains: the modules that need torch (data, devices, checkpoints, the trainer) are imported
# where lwl-train uses them, so that `lwl-inspect` and every `--help` start without it.
if TYPE_CHECKING:
    from ._checkpoint import RunDir


def describe(schedule: Schedule, recipe: Recipe | None = None) -> dict[str, Any]:
    """What a schedule makes, as the JSON `lwl-inspect --json` prints and the search stores."""
    head = recipe.head if recipe else None
    cost = complexity(schedule, head)
    heads = head_descriptions(schedule, head)
    network = {name: getattr(schedule, name) for name in EXTRA_FIELDS if name != "lead_widths"}
    network = {name: list(v) if isinstance(v, tuple) else v for name, v in network.items()}
    return {
        "hierarchy": list(schedule.hierarchy),
        "family": schedule.family,
        "block": schedule.block,
        "widths": list(schedule.widths or ()),
        "unit_widths": [list(w) for w in schedule.unit_widths()],
        **network,  # fc_units, conv_bias, local_unit, first_conv, ...: every field beyond the widths
        "fc_input": schedule.fc_input if schedule.fc_units else None,
        "downsample": schedule.downsample,
        "num_classes": schedule.num_classes,
        "input": [schedule.in_channels, schedule.input_size, schedule.input_size],
        "units": schedule.units,
        "conv_layers": cost.conv_layers,
        "params": cost.params,
        "params_aux": cost.params_aux,
        "flops": cost.flops,
        "flops_aux": cost.flops_aux,
        "activations": cost.activations,
        "stages": [{"units": s.units, "resolution": s.resolution, "width": s.width} for s in cost.stages],
        "aux_net": head.kind if head else "local-loss",
        "unit_heads": [
            {"unit": j + 1, "head": text, "params": p, "flops": f}
            for j, (text, p, f) in enumerate(zip(heads, cost.unit_head_params, cost.unit_head_flops))
        ],
    }


def _units_text(d: dict[str, Any]) -> str:
    """How the locally trained units come about: '7 (6 conv, 1 FC)', '17 (the stem and 2 per block's convs)'."""
    blocks, fc = sum(d["hierarchy"]), len(d["fc_units"])
    if d["local_unit"] == "conv":
        per = 3 if d["block"] == "bottleneck" else 2
        what = f"one per convolution: the stem, {per} per block"
    else:
        what = f"{blocks} {'conv' if d['family'] == 'vgg' else 'residual block'}{'s' if blocks != 1 else ''}"
    return f"{d['units']}   ({what}{f', {fc} FC' if fc else ''})"


def _inspect_text(d: dict[str, Any], dataset: str) -> str:
    c, s, _ = d["input"]
    phrases = extras_phrases(d)
    fc = f" + {phrases.pop('fc_units')}" if "fc_units" in phrases else ""
    options = "".join(f", {p}" for p in phrases.values())
    lines = [
        f"{d['family']} {d['block'] + ' ' if d['family'] == 'resnet' else ''}"
        f"[{','.join(map(str, d['hierarchy']))}]{fc} on {dataset} ({c}x{s}x{s}, {d['num_classes']} classes), "
        f"downsampling: {d['downsample']}{options}",
        "",
        f"  {'stage':>5}  {'units':>5}  {'resolution':>10}  widths",
    ]
    for i, (st, widths) in enumerate(zip(d["stages"], d["unit_widths"]), 1):
        shown = ",".join(map(str, widths)) if len(set(widths)) > 1 else str(widths[0])
        if d["block"] == "bottleneck" and d["family"] == "resnet":
            shown += f" (out {st['width']})"
        lines.append(f"  {i:>5}  {st['units']:>5}  {st['resolution']:>5}x{st['resolution']:<4}  {shown}")
    if d["fc_units"]:
        fc_in = f"flat {d['fc_input']:,}"
        lines.append(f"  {'FC':>5}  {len(d['fc_units']):>5}  {fc_in:>10}  {','.join(map(str, d['fc_units']))}")
    lines += [
        "",
        f"  units (locally trained)      {_units_text(d)}",
        f"  conv layers                  {d['conv_layers']}",
        f"  parameters                   {d['params']:,}",
        f"  parameters with aux heads    {d['params_aux']:,}",
        f"  FLOPs per image (forward)    {d['flops'] / 1e9:.3f} G   (with aux heads {d['flops_aux'] / 1e9:.3f} G)",
        f"  activations per image        {d['activations']:,} elements ({d['activations'] * 4 / 2**20:.2f} MiB fp32)",
        "",
        f"  auxiliary network per unit ({d['aux_net']}): parameters, FLOPs per image, layers",
    ]
    for h in d["unit_heads"]:
        lines.append(f"  {h['unit']:>5}  {h['params']:>11,}  {h['flops'] / 1e6:>9.3f} M  {h['head']}")
    return "\n".join(lines)


def inspect_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="lwl-inspect",
        description="Print the network a schedule makes: stages, units, conv layers, parameters, FLOPs, memory.",
        epilog="examples:\n  lwl-inspect --hierarchy 1,1,2,4\n"
        "  lwl-inspect --preset resnet50 --dataset cifar10 --json\n"
        "  lwl-inspect --preset vgg8b --dataset cifar10 --widths 64:128,256:512,512,512 --fc-units 512",
    )
    add_schedule_args(parser)
    parser.add_argument(
        "--dataset",
        default="digits",
        help=f"sets classes and input size: one of {', '.join(DATASETS)} (default digits, as every command)",
    )
    parser.add_argument(
        "--loss",
        choices=("predsim", "pred", "sim", "global"),
        help="which local-loss heads are counted (default predsim; pred with --aux-net other than local-loss)",
    )
    parser.add_argument(
        "--aux-net",
        choices=AUX_NETS,
        default="local-loss",
        help="each unit's auxiliary network: local-loss (default), dgl, infopro or auglocal (see lwl-train --help)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")

    def body() -> int:
        args = parser.parse_args(argv)
        check_ranges(args, NETWORK_RANGES)
        refuse_empty(args)
        schedule = schedule_from_args(args, args.dataset)
        check_units(schedule.units)
        info = dataset_info(args.dataset)
        loss = args.loss or ("predsim" if args.aux_net == "local-loss" else "pred")
        recipe = Recipe(dataset=info.name, loss=loss, aux_net=args.aux_net)
        d = describe(schedule, recipe)
        print(json.dumps(d) if args.json else _inspect_text(d, info.name))
        return 0

    return run_command("lwl-inspect", body)


def _fmt_acc(value: float | None) -> str:
    return percent(value, width=5, empty="  -  ")


def progress_line(p: Progress, mode: str) -> str:
    """One epoch's (or unit's) line: validation accuracies, or without a validation split (a full run, judged on
    the test set at the end) the mean training loss of every unit, which is all an epoch then tells."""
    what = "epoch" if mode == "simultaneous" else "unit"
    head = f"{what} {p.step:>3}/{p.total_steps}"
    if p.output_acc is None and all(a is None for a in p.unit_acc):
        losses = " ".join("  -  " if v is None else f"{v:5.3f}" for v in p.train_loss)
        return f"{head}  train loss [{losses}]  {p.elapsed:6.1f}s"
    units = " ".join(_fmt_acc(a) for a in p.unit_acc)
    return f"{head}  output {_fmt_acc(p.output_acc)}  units [{units}]  {p.elapsed:6.1f}s"


def summary(result: RunResult) -> dict[str, Any]:
    return {
        "hierarchy": list(result.schedule.hierarchy),
        "loss": result.recipe.loss,
        "mode": result.recipe.mode,
        "device": result.device,
        "precision": result.recipe.precision,
        "output_acc": result.output_acc,
        "unit_acc": list(result.unit_acc),
        "test_output_acc": result.test_output_acc,
        "test_unit_acc": None if result.test_unit_acc is None else list(result.test_unit_acc),
        "params": result.complexity.params,
        "params_aux": result.complexity.params_aux,
        "flops": result.complexity.flops,
        "peak_memory": result.peak_memory,
        "wall_time": result.wall_time,
        "unit_epochs": result.unit_epochs,
    }


# Flags that describe the network or the recipe: with --config the file says all of that.
_CONFIG_CONFLICTS = (
    "network_preset",
    "hierarchy",
    *NETWORK_DESTS,
    "dataset",
    "loss",
    "mode",
    "batch_size",
    "lr",
    "dropout",
    "seed",
    *REFERENCE_DESTS,
)


def train_main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="lwl-train",
        description="Train one schedule layer-wise and print per-unit validation (and test) accuracy. With --config "
        "(from lwl-export) it trains the paper's full recipe into --out, checkpointing every epoch.",
        epilog="examples:\n"
        "  lwl-train --hierarchy 1,1,2,2 --test                           # digits: embedded, no download\n"
        "  lwl-train --config configs/best.yaml                           # after the two lines below\n"
        "  lwl-train --config configs/best.yaml --resume                  # after a crash or kill\n"
        "where configs/best.yaml comes from:\n"
        "  lwl-search --preset digits-quick\n"
        "  lwl-export --study-name digits-resnet-b12-s4 --best --out configs/best.yaml",
    )
    add_schedule_args(parser)
    add_data_args(parser)
    add_recipe_args(parser)
    parser.add_argument(
        "--global",
        dest="also_global",
        action="store_true",
        help="also train the same network end to end, for the paper's comparison (into OUT/global)",
    )
    parser.add_argument(
        "--test", action="store_true", help="report test-set accuracy at the end (always with --config)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object at the end")
    parser.add_argument(
        "--val-fraction",
        type=float,
        metavar="F",
        help="hold out F (0-0.5) of the training images, stratified, for per-epoch validation accuracy (default "
        "0.1; with --config the config's: 0 in an exported one, i.e. train on every training image and report "
        "test accuracy)",
    )
    g = parser.add_argument_group("config, checkpoints and resume")
    g.add_argument(
        "--config",
        help="a training config (lwl-export writes them): schedule, full recipe and data root; "
        "only --epochs, --val-fraction, --device, --precision, --data-root, --download apply on top of it",
    )
    g.add_argument(
        "--out",
        help="run folder: config.yaml, checkpoint.pt (every epoch), metrics.csv/json, model.pt "
        "(default with --config: runs/CONFIG-NAME; without: nothing is written)",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint, losing at most the epoch in progress",
    )

    def body() -> int:
        args = parser.parse_args(argv)
        check_ranges(args, {**TRAINING_RANGES, **NETWORK_RANGES, "val_fraction": RECIPE_RANGES["val_fraction"]})
        refuse_empty(args)
        if args.config is None and args.out is None and args.resume:
            raise CheckpointError("--resume needs the run folder: pass --out DIR (or --config FILE)")
        return _train(parser, args)

    return run_command("lwl-train", body)


def _config_from_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[TrainingConfig, Path | None, bool]:
    """What to train, where to (None: nothing is written) and whether on the test set too: the config file with
    the flags that apply on top of it, or the flags translated into a config."""
    if args.config is None:
        schedule = schedule_from_args(args, args.dataset)
        recipe = recipe_from_args(args, schedule.family, val_fraction=args.val_fraction)
        config = TrainingConfig(schedule, recipe, {"source": "lwl-train flags"}, args.data_root)
        return config, None if args.out is None else Path(args.out), args.test
    given = [
        f"--{name.replace('network_preset', 'preset').replace('_', '-')}"
        for name in _CONFIG_CONFLICTS
        if getattr(args, name) != parser.get_default(name)
    ]
    if given:
        raise ConfigError(
            f"{given[0]} cannot be combined with --config: edit the config file instead (only "
            "--epochs, --val-fraction, --device, --precision, --data-root, --download apply on top of it)"
        )
    config = load_config(args.config).with_epochs(args.epochs)
    if args.val_fraction is not None:
        config = replace(config, recipe=replace(config.recipe, val_fraction=args.val_fraction))
    if args.precision is not None:
        config = replace(config, recipe=replace(config.recipe, precision=args.precision))
    return config, Path(args.out) if args.out is not None else Path("runs") / Path(args.config).stem, True


def _train(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Train a config (and with --global the same schedule end to end). With a run folder: the config, a checkpoint
    every epoch, metrics, resume and a final summary against the paper; without one (flags alone): lines on stderr,
    nothing written."""
    from ._checkpoint import RunDir
    from ._data import load_data
    from ._device import check_memory, resolve_device

    config, out, test = _config_from_args(parser, args)
    _check_measured(config.recipe, test)
    configs = [config]
    if args.also_global and config.recipe.loss != "global":
        glob = replace(config.recipe, loss="global", mode="simultaneous")
        configs.append(
            TrainingConfig(config.schedule, glob, {**config.provenance, "comparison": "global"}, config.data_root)
        )
    device = resolve_device(args.device)
    for c in configs:
        check_memory(c.schedule, c.recipe, device)

    def load() -> Any:
        return load_data(
            config.dataset,
            data_root=args.data_root or config.data_root,  # the flag, else where the search found the files
            download=args.download,
            val_fraction=config.recipe.val_fraction,
            split_seed=config.recipe.seed,
            with_test=test,
        )

    if out is None:  # nothing is written; an interrupt or a failure ends the command as any other's
        data = load()
        results = [_train_one(c, None, None, data, device, test) for c in configs]
        _flags_summary(config, results, args.json)
        return 0
    writable_folder(out, "--out")
    dirs = [RunDir(d, c, device=str(device)) for c, d in zip(configs, (out, out / "global"))]
    # Every precondition before any data is loaded or anything is written.
    if args.resume:  # the main run must have a checkpoint (load_checkpoint says so); the global comparison may not
        states: list[TrainerState | None] = [dirs[0].resume_state(device)]
        states += [rd.resume_state(device) if rd.has_checkpoint() else None for rd in dirs[1:]]
    else:
        for rd in dirs:
            rd.refuse_overwrite()
        states = [None] * len(dirs)
    data = load()
    results = []
    again = f"lwl-train {'--config ' + str(args.config) if args.config else '...'} --out {out} --resume"
    try:
        for rd, state in zip(dirs, states):
            results.append(_train_one(rd.config, rd, state, data, device, test))
    except KeyboardInterrupt:
        print(f"lwl-train: interrupted; continue with: {again}", file=sys.stderr)
        return 130
    except OSError as exc:  # a full or read-only output disk: files are replaced atomically, the last ones stand
        code = errno.errorcode.get(exc.errno or 0)
        why = f"{exc.strerror or type(exc).__name__}{f' ({code})' if code else ''}"
        if rd.has_checkpoint():
            then = f"its last checkpoint {rd.checkpoint_path} is intact: free space, then continue with: {again}"
        else:
            then = "no checkpoint was written yet: free space, then start again"
        print(f"lwl-train: cannot write into {rd.path}: {why}; {then}", file=sys.stderr)
        return 1
    text = run_summary(results, dirs)
    if args.json:
        print(text, file=sys.stderr)
        docs = [{**summary(r), "out": str(rd.path), "paper": _paper_rows(rd.config)} for r, rd in zip(results, dirs)]
        print(json.dumps(docs if len(docs) > 1 else docs[0]))
    else:
        print(text)
    return 0


def _flags_summary(config: TrainingConfig, results: Sequence[RunResult], as_json: bool) -> None:
    """After a run without a folder: the paper's numbers for the list, and with --json the results on stdout."""
    for row in paper_results(config.dataset, config.schedule):
        print(
            f"paper: {row.label()} {config.schedule.label()}: layer-wise {row.layerwise:.2f} %, global "
            f"{row.global_:.2f} % (test, 400 epochs)",
            file=sys.stderr,
        )
    if as_json:
        print(json.dumps([summary(r) for r in results] if len(results) > 1 else summary(results[0])))


def _train_one(
    c: TrainingConfig, rd: RunDir | None, state: TrainerState | None, data: Any, device: Any, test: bool
) -> RunResult:
    """Train one config; into its run folder `rd` (checkpoints, metrics, a progress bar on a terminal), or, with
    none, with a plain line per epoch or unit and the result's line on stderr."""
    from ._trainer import train

    r = c.recipe
    what = "epoch" if r.mode == "simultaneous" else "unit"
    total = r.epochs if r.mode == "simultaneous" else c.schedule.units
    if rd is None:
        done, into, batch = 0, "", ""
    else:
        if state is None:
            rd.start()
        else:
            rd.begin_resume()
        done, into, batch = len(rd.records), f" into {rd.path}", f", batch {r.batch_size}"
    print(
        f"training {c.schedule.summary()} on {c.dataset}{into}: loss {r.loss}, mode {r.mode}, {_epochs(r.epochs)}, "
        f"lr {r.lr:g}, dropout {r.dropout:g}{batch}, {_split(r)}"
        + _options(r)
        + (f"; resuming after {what} {done}/{total}" if state is not None else ""),
        file=sys.stderr,
    )
    bar = _Progress(total, done, r.mode, bars=rd is not None)

    def on_progress(p: Progress) -> None:
        if rd is not None:
            rd.record(p)
        bar.update(p)

    try:
        result = train(
            c.schedule,
            r,
            data,
            device=device,
            test=test,
            keep_model=rd is not None,
            on_progress=on_progress,
            checkpoint=None if rd is None else rd.checkpoint,
            resume=state,
        )
    finally:
        bar.close()
    if rd is not None:
        rd.finish(result)
        return result
    acc = result.test_output_acc if test else result.output_acc
    print(
        f"{r.loss}: {'test' if test else 'validation'} accuracy {_fmt_acc(acc).strip()} % in "
        f"{result.wall_time:.1f}s on {result.device} in {result.recipe.precision}",
        file=sys.stderr,
    )
    return result


class _Progress:
    """A tqdm bar on a terminal (with `bars`); plain lines (one per epoch or unit) in logs and pipes."""

    def __init__(self, total: int, done: int, mode: str, bars: bool = True) -> None:
        self.mode = mode
        self.bar: Any = None
        if bars and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=done,
                desc="epochs" if mode == "simultaneous" else "units",
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def update(self, p: Progress) -> None:
        if self.bar is None:
            print(progress_line(p, self.mode), file=sys.stderr, flush=True)
            return
        self.bar.update(1)
        newest = next((a for a in reversed(p.unit_acc) if a is not None), None)
        shown = p.output_acc if p.output_acc is not None else newest
        self.bar.set_postfix_str("no validation split" if shown is None else f"val {_fmt_acc(shown).strip()} %")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _epochs(n: Any) -> str:
    return plural(n, "epoch")


def _split(recipe: Recipe) -> str:
    """What the run trains on and judges with, in words."""
    if recipe.val_fraction == 0:
        return "no validation split (every training image; test accuracy at the end)"
    return f"validation split {recipe.val_fraction:g} of the training images"


def _options(recipe: Recipe) -> str:
    """'; optimizer sgd, momentum 0.9' for the reference's options that differ from Section V ('' for none)."""
    data = recipe.to_dict()
    given = [f"{name} {data[name]}" for name in REFERENCE_FIELDS if name in data]
    return f"; {', '.join(given)}" if given else ""


def _check_measured(recipe: Recipe, test: bool) -> None:
    """A run without a validation split and without the test set would report no accuracy at all."""
    if recipe.val_fraction == 0 and not test:
        raise DataError("--val-fraction 0 leaves no validation split: add --test to report test accuracy")


def _paper_rows(config: TrainingConfig) -> list[dict[str, Any]]:
    return [
        {"model": row.model, "table": row.table, "layerwise": row.layerwise, "global": row.global_}
        for row in paper_results(config.dataset, config.schedule)
    ]


def run_summary(results: Sequence[RunResult], dirs: Sequence[RunDir]) -> str:
    """Per-unit and output test accuracy of each run, each beside the paper's when the paper trained this list."""
    config = dirs[0].config
    s = config.schedule
    rows = paper_results(config.dataset, s)
    lines = ["", f"{s.summary()} on {config.dataset}"]
    for result, rd in zip(results, dirs):
        r = result.recipe
        test = result.test_output_acc is not None
        split = "test" if test else "validation"
        units = result.test_unit_acc if test else result.unit_acc
        paper = "; ".join(
            f"{row.global_ if r.loss == 'global' else row.layerwise:.2f} % ({row.model}, Table {row.table})"
            for row in rows
        )
        out_acc = result.test_output_acc if test else result.output_acc
        lines += [
            f"  {r.loss} ({r.mode}, {_epochs(r.epochs)}, {result.wall_time:.0f}s of training on {result.device} "
            f"in {r.precision}) -> {rd.path}",
            f"    {split} accuracy per unit  " + " ".join(_fmt_acc(a).strip() for a in (units or ())),
            f"    output {split} accuracy  {'-' if out_acc is None else f'{100 * out_acc:.2f}'} %"
            + (
                f"   (validation {_fmt_acc(result.output_acc).strip()} %)"
                if result.output_acc is not None
                else f"   ({_split(r)})"
            )
            + (f"   paper: {paper}" if paper else ""),
        ]
    if rows:
        lines.append("  (the paper's numbers are test accuracy after 400 epochs, Tables I-VI)")
    elif any(r.dataset == config.dataset for r in PAPER_RESULTS):  # the paper trained only on CIFAR
        lines.append("  the paper did not train this list (Tables I-VI)")
    prov = config.provenance
    if "search_accuracy" in prov:
        lines.append(
            f"  search: study {prov.get('study')!r} trial {prov.get('trial')}, validation accuracy "
            f"{_fmt_acc(prov['search_accuracy']).strip()} % after {_epochs(prov.get('search_epochs'))}"
        )
    return "\n".join(lines)
