"""What every command shares: the flags that name a schedule, data or a recipe, and the one way a user error ends.

Public so that `lwl-search`, `lwl-export`, `lwl-report`, `lwl-train` and `lwl-inspect` (and scripts) parse and fail
the same way: a user error is one line on stderr, `PROG: error: MESSAGE`, and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ._aux import AUX_NETS
from ._datasets import DATASETS, dataset_info
from ._errors import LwlError, UsageError, interrupted
from ._fields import Range, ranges
from ._files import writable_file, writable_folder
from ._recipe import (
    ACTIVATIONS,
    DROPOUT_KINDS,
    LOSSES,
    MODES,
    NORMALISATIONS,
    OPTIMIZERS,
    PRECISIONS,
    RECIPE_RANGES,
    Recipe,
    paper_recipe,
)
from ._schedule import (
    BLOCKS,
    DOWNSAMPLES,
    FAMILIES,
    FIRST_CONVS,
    LOCAL_UNITS,
    PRESETS,
    SCHEDULE_FIELDS,
    Schedule,
    make_schedule,
)
from ._text import percent, plural

# The longest message a command prints for an error: a value echoed back (a preset expanded through YAML aliases,
# a pasted file) must not flood the terminal.
MAX_MESSAGE = 400


PACKAGE = "lwl-search"  # the distribution every command comes with


def version_text(prog: str) -> str:
    """'lwl-search 0.1.0' (another command: 'lwl-train 0.1.0 (lwl-search)'), from the installed package's metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version(PACKAGE)
    except PackageNotFoundError:  # run from a source tree that was never installed
        number = "unknown (not installed)"
    return f"{prog} {number}" + ("" if prog == PACKAGE else f" ({PACKAGE})")


class _Formatter(argparse.HelpFormatter):
    """Never breaks a line inside a hyphenated word (a flag, a file or study name stays copyable), and keeps the
    line breaks an epilog is written with: one example per line."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for line in text.splitlines():
            words = line.lstrip()
            lead = indent + line[: len(line) - len(words)]
            if words and lead != indent:  # an indented line is an example: a command is never broken
                out.extend(_example_lines(lead, words, width))
                continue
            wrap: dict[str, Any] = dict(initial_indent=lead, subsequent_indent=lead + "    ", break_on_hyphens=False)
            out.append(textwrap.fill(words, width, break_long_words=False, **wrap) if words else "")
        return "\n".join(out)


def _example_lines(lead: str, example: str, width: int) -> list[str]:
    """An epilog's example as it fits `width`: as written; else its comment ('  # ...') on a line of its own above
    the command; the command itself whole on one line, however long (it must stay copyable)."""
    if len(lead) + len(example) <= width:
        return [lead + example]
    command, _, comment = example.partition("  #")
    command, comment = command.rstrip(), comment.strip()
    if comment and len(lead) + len(command) + len(comment) + 4 <= width:  # the comment's alignment given up
        return [f"{lead}{command}  # {comment}"]
    return [*([f"{lead}# {comment}"] if comment else []), lead + command]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2) like every other user error; every command
    has --version, and its help keeps names whole and an epilog's examples one per line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=version_text(self.prog), help="print the version")

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (see {self.prog} --help)")


# The flags that name a network and a training recipe, shared by lwl-train, lwl-inspect and lwl-search. Every one
# defaults to None (= the family's or the paper's value), so a command can layer presets under them; a command may
# reword a help text (`helps`) where its defaults differ.
NETWORK_FLAGS: dict[str, dict[str, Any]] = {
    "--family": dict(choices=FAMILIES, help="vgg: a unit is one conv; resnet: one residual block"),
    "--block": dict(choices=BLOCKS, help="residual block of the resnet family (default basic)"),
    "--widths": dict(
        help="channels per stage, e.g. 64,128,256,512; a stage that widens inside itself joins its units' widths "
        "with ':', e.g. 128:256,256:512,512,512 (the reference's vgg8b; default: the family's)"
    ),
    "--fc-units": dict(
        metavar="LIST",
        help="widths of locally trained hidden FC units after the last stage, e.g. 1024 (the reference's "
        "--num-layers/--num-hidden); none: no FC unit (default: the preset's, else none)",
    ),
    "--conv-bias": dict(
        choices=("on", "off"), help="a bias in every vgg conv (default: on for the paper's VGG presets, else off)"
    ),
    "--local-unit": dict(
        choices=LOCAL_UNITS,
        help="resnet: what one local loss trains, a residual block (default) or each convolution as the "
        "reference code (the stem its own unit; the default of the paper's ResNet presets); the hierarchy counts "
        "blocks either way",
    ),
    "--first-conv": dict(
        choices=FIRST_CONVS,
        help="vgg: the first conv, 3x3 or 7x7 with stride 2 (the reference's for inputs over 64 pixels; default: "
        "7x7s2 for the paper's VGG presets on STL-10, else 3x3)",
    ),
    "--downsample": dict(
        choices=DOWNSAMPLES, help="between stages (default: maxpool for vgg, strided first block for resnet)"
    ),
    "--width-mult": dict(
        type=float,
        metavar="F",
        help="multiply every width by F, rounded to a whole number of channels, at least 1 (default 1)",
    ),
}
# The Schedule fields the network flags set (their dests), those beyond family, block, widths and downsampling
# (`network_options`); with --config the file says them all.
NETWORK_DESTS = tuple(flag[2:].replace("-", "_") for flag in NETWORK_FLAGS)
NETWORK_OPTIONS = tuple(d for d in NETWORK_DESTS if d not in ("family", "block", "widths", "downsample"))
# The numeric network flags' ranges: the Schedule field's own declaration (`SCHEDULE_FIELDS`).
NETWORK_RANGES: dict[str, Range] = {k: r for k, r in ranges(SCHEDULE_FIELDS).items() if k in NETWORK_DESTS}
TRAINING_FLAGS: dict[str, dict[str, Any]] = {
    "--loss": dict(choices=LOSSES, help="local loss (default predsim) or global back-propagation"),
    "--mode": dict(choices=MODES, help="simultaneous (default) or sequential (greedy)"),
    "--epochs": dict(type=int, help="epochs (per unit in sequential mode)"),
    "--batch-size": dict(type=int, help="images per optimiser step (default: the paper's 128, 64 on digits)"),
    "--lr": dict(type=float, help="learning rate (of Adam, or of --optimizer)"),
    "--dropout": dict(type=float, help="dropout on what each unit passes on"),
    "--precision": dict(
        choices=PRECISIONS,
        help="auto (default): bf16 autocast on CUDA and on a CPU with native bf16 (AVX512-BF16, AMX), fp32 "
        "elsewhere; fp32; bf16",
    ),
}


def epoch_list(text: str) -> tuple[int, ...]:
    """'200,300,350,375' as (200, 300, 350, 375): the argparse type of --lr-milestone-epochs."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give epochs as whole numbers separated by commas, e.g. 200,300,350,375"
        ) from None
    return values


# The options of the reference code (Noekland & Eidnes, anokland/local-loss, train.py) as recipe flags: each
# defaults to None (= Section V, what the engine did before them); `reference_options` maps them to recipe fields.
REFERENCE_FLAGS: dict[str, dict[str, Any]] = {
    "--optimizer": dict(choices=OPTIMIZERS, help="adam (default, Section V), amsgrad or sgd; the reference's --optim"),
    "--momentum": dict(
        type=float, metavar="F", help="SGD's momentum, with --optimizer sgd (default 0; the reference's --momentum)"
    ),
    "--weight-decay": dict(
        type=float,
        metavar="F",
        help="L2 weight decay, coupled as torch's (default 0, as the paper; the reference's --weight-decay)",
    ),
    "--beta": dict(
        type=float, metavar="F", help="predsim = (1 - beta) * pred + beta * sim (default 0.99; the reference's --beta)"
    ),
    "--dim-in-decoder": dict(
        type=int,
        metavar="N",
        help="pool each auxiliary classifier's input to at most N features (default 2048; the reference's "
        "--dim-in-decoder, 4096 there)",
    ),
    "--activation": dict(
        choices=ACTIVATIONS,
        help="leaky_relu (default: slope 0.01, Section V) or relu (the reference's --nonlin, relu by default there)",
    ),
    "--dropout-kind": dict(
        choices=DROPOUT_KINDS,
        help="element (default): single activations; channel: whole feature maps, as the reference's Dropout2d "
        "on convolutions (its --dropout)",
    ),
    "--no-similarity-std": dict(
        action="store_true",
        default=None,
        help="similarity matching on the flattened feature maps, not each channel's spatial std (the reference's "
        "--no-similarity-std; default: the std)",
    ),
    "--label-smoothing": dict(
        type=float, metavar="F", help="of every cross-entropy (default 0; the reference has none)"
    ),
    "--zero-init-output": dict(
        action="store_true",
        default=None,
        help="start the output classifier's weight at zero, as the reference does (default: PyTorch's init)",
    ),
    "--cutout": dict(
        type=int,
        metavar="L",
        help="Cutout: zero square holes of side L pixels in each training image (default 0: none; the reference's "
        "--cutout --length L, 16 there)",
    ),
    "--cutout-holes": dict(
        type=int, metavar="N", help="Cutout's holes per image (default 1; the reference's --n_holes)"
    ),
    "--lr-milestone-epochs": dict(
        type=epoch_list,
        metavar="LIST",
        help="decay the learning rate from these epochs on, per epoch as the reference's --lr-decay-milestones "
        "(e.g. 200,300,350,375 of 400; default: at 50/75/89/94 %% of the run, per batch)",
    ),
    "--lr-gamma": dict(
        type=float, metavar="F", help="the factor at each milestone (default 0.25; the reference's --lr-decay-fact)"
    ),
    "--normalisation": dict(
        choices=NORMALISATIONS,
        help="CIFAR's input statistics: dataset (default: the usual ones) or reference (local-loss's constants)",
    ),
    "--aux-net": dict(
        choices=AUX_NETS,
        help="each unit's auxiliary network: local-loss (default: the reference's heads, as --loss says), dgl "
        "(Belilovsky et al. 2020), infopro (Wang et al. 2021: reconstruction + classifier) or auglocal (Ma et al. "
        "2024: layers of the later units); the last three train with their own loss (--loss pred by default)",
    ),
}
REFERENCE_DESTS = tuple(flag[2:].replace("-", "_") for flag in REFERENCE_FLAGS)


def reference_options(values: argparse.Namespace | dict[str, Any]) -> dict[str, Any]:
    """The recipe fields the reference flags set (None: not given, the paper's value)."""
    items = vars(values) if isinstance(values, argparse.Namespace) else values
    out = {key: items.get(key) for key in REFERENCE_DESTS}
    out["similarity_std"] = False if out.pop("no_similarity_std") else None
    out["zero_init_output"] = True if out["zero_init_output"] else None
    epochs = out["lr_milestone_epochs"]
    if isinstance(epochs, str):
        out["lr_milestone_epochs"] = epoch_list(epochs)
    elif isinstance(epochs, (list, tuple)):
        out["lr_milestone_epochs"] = tuple(epochs)
    return out


# The ranges of the shared numeric flags (by their argparse names); a command adds its own (lwl-search: _flags).
SEED_RANGE = RECIPE_RANGES["seed"]  # numpy's and Optuna's samplers take no other seeds
# Each is the recipe field's own declaration (`RECIPE_FIELDS`): a flag accepts what `Recipe` does.
TRAINING_RANGES: dict[str, Range] = {
    name: RECIPE_RANGES[name]
    for name in (
        "epochs",
        "batch_size",
        "lr",
        "dropout",
        "seed",
        # The reference's options (REFERENCE_FLAGS).
        "momentum",
        "weight_decay",
        "beta",
        "dim_in_decoder",
        "label_smoothing",
        "cutout",
        "cutout_holes",
        "lr_gamma",
    )
}


def flag_name(key: str) -> str:
    """'--batch-size' for the argparse name 'batch_size'."""
    return "--" + key.replace("_", "-")


def check_ranges(
    values: argparse.Namespace | dict[str, Any], ranges: dict[str, Range], name: Callable[[str], str] = flag_name
) -> None:
    """Check (and normalise: 2.0 -> 2) every value in `values` that `ranges` names; None (not given) passes. The one
    check of numbers for every command, before anything is created; `name(key)` says where a value came from."""
    items = vars(values) if isinstance(values, argparse.Namespace) else values
    for key, rng in ranges.items():
        if items.get(key) is not None:
            items[key] = rng.check(name(key), items[key])


# The list-valued flags of every command, each with an example of a value: an empty value ('--widths ""') is refused
# rather than read as the default (leave the flag out for that).
# (--hierarchy is left to the schedule, which refuses an empty one as "empty hierarchy".)
LIST_FLAGS: dict[str, str] = {
    "widths": "16,32,64,128",
    "fc_units": "1024, or none",
    "objectives": "accuracy,params",
    "enqueue": "1,1,2,4",
    "lr_milestone_epochs": "200,300,350,375",
}


def refuse_empty(
    values: argparse.Namespace | dict[str, Any], name: Callable[[str], str] = flag_name, keys: Sequence[str] = ()
) -> None:
    """Refuse an empty or blank value of a list-valued flag (`LIST_FLAGS`, or `keys` of them): a UsageError naming
    the flag and an example. A repeatable flag (--enqueue) is checked value by value; None (not given) passes."""
    items = vars(values) if isinstance(values, argparse.Namespace) else values
    for key in keys or LIST_FLAGS:
        value = items.get(key)
        for one in value if isinstance(value, list) else [value]:
            if isinstance(one, str) and not one.replace(",", " ").strip():
                raise UsageError(
                    f"{name(key)} {one!r}: empty: give a list, e.g. {LIST_FLAGS[key]}, or leave the flag out for "
                    "its default"
                )


def add_flags(
    group: argparse._ArgumentGroup | argparse.ArgumentParser,
    flags: dict[str, dict[str, Any]],
    helps: dict[str, str] | None = None,
) -> None:
    """Add each of `flags` (NETWORK_FLAGS, TRAINING_FLAGS) to `group`, with the command's own help where given."""
    for flag, kwargs in flags.items():
        group.add_argument(flag, **{**kwargs, "help": (helps or {}).get(flag, kwargs["help"])})


def add_schedule_args(parser: argparse.ArgumentParser, *, hierarchy: bool = True) -> None:
    g = parser.add_argument_group("network")
    g.add_argument(
        "--preset",
        dest="network_preset",
        metavar="NAME",
        help=f"a base network of the paper as the reference code builds it, with its options: {', '.join(PRESETS)}",
    )
    if hierarchy:
        g.add_argument("--hierarchy", help="units per stage between downsamplings, e.g. 1,1,2,4")
    add_flags(g, NETWORK_FLAGS)


def add_data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="digits", help=f"one of {', '.join(DATASETS)} (default digits)")
    g.add_argument("--data-root", help="where the data set's files are (default $LWL_DATA or ~/.cache/lwl/data)")
    g.add_argument("--download", action="store_true", help="fetch the data set if it is not under --data-root")


def add_recipe_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("training (defaults: the paper's Section V for the data set)")
    add_flags(g, TRAINING_FLAGS)
    add_flags(parser.add_argument_group("the reference code's options (Noekland & Eidnes)"), REFERENCE_FLAGS)
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds initialisation, dropout, batch order and the validation split (default 0)",
    )
    g.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, ...")


def schedule_from_args(
    args: argparse.Namespace, dataset: str, hierarchy: Sequence[int] | str | None = None
) -> Schedule:
    info = dataset_info(dataset)
    return make_schedule(
        preset=args.network_preset,
        hierarchy=hierarchy if hierarchy is not None else getattr(args, "hierarchy", None),
        family=args.family,
        block=args.block,
        widths=args.widths,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        input_size=info.input_size,
        downsample=args.downsample,
        **network_options(args),
    )


def network_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `make_schedule` fields of the network flags beyond family, block, widths and downsampling (--fc-units,
    --conv-bias, --local-unit, ...; `NETWORK_OPTIONS`), None where not given; an on/off flag as True/False."""
    out = {name: getattr(args, name, None) for name in NETWORK_OPTIONS}
    for name, value in out.items():
        if NETWORK_FLAGS[flag_name(name)].get("choices") == ("on", "off") and value is not None:
            out[name] = value == "on"
    return out


def recipe_from_args(args: argparse.Namespace, family: str, **extra: Any) -> Recipe:
    return paper_recipe(
        args.dataset,
        family,
        args.network_preset,
        loss=args.loss,
        mode=args.mode,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        dropout=args.dropout,
        precision=args.precision,
        seed=args.seed,
        **reference_options(args),
        **extra,
    )


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """The first line of `message`, cut to `limit` characters (an ellipsis says it was cut)."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def fail(prog: str, message: str) -> NoReturn:
    """One line on stderr and exit status 2: the contract for every user error."""
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    raise SystemExit(2)


def _stdout_to_devnull() -> None:
    """After the reader of stdout went away: what is still to be written goes nowhere (the Python docs' recipe for
    SIGPIPE), so that the interpreter's last flush at exit does not print a BrokenPipeError."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is no file (a test's capture): nothing is pending there
        pass


def cpu_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is torch's CPU allocator failing (a RuntimeError naming DefaultCPUAllocator)."""
    return isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(exc)


def _torch_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is torch's OutOfMemoryError. A command that never imported torch cannot meet one, so torch is
    looked up, never imported here: the commands that only read or describe stay free of it."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)


def _out_of_memory(prog: str, exc: BaseException) -> int:
    what = f"{type(exc).__name__}: {one_line(str(exc), 160)}" if str(exc).strip() else type(exc).__name__
    print(f"{prog}: out of memory ({what}): use smaller --widths or --batch-size", file=sys.stderr)
    return 1


def run_command(prog: str, body: Callable[[], int | None]) -> int:
    """Run a command body (parsing included): an `LwlError` becomes one line and exit status 2, Ctrl-C exit status
    130 (also when it surfaces as the error of a cleanup it cut short), running out of memory one line and exit
    status 1, and a reader that stopped reading (`| head`) ends the command quietly with exit status 1."""
    try:
        try:
            return body() or 0
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not as a traceback when the interpreter exits
    except BrokenPipeError:
        _stdout_to_devnull()
        return 1
    except LwlError as exc:
        fail(prog, str(exc) or type(exc).__name__)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except MemoryError as exc:  # what the memory estimate before training did not foresee
        return _out_of_memory(prog, exc)
    except Exception as exc:
        # torch's OutOfMemoryError (a GPU's), and its CPU allocator's RuntimeError
        if _torch_out_of_memory(exc) or cpu_out_of_memory(exc):
            return _out_of_memory(prog, exc)
        if not interrupted(exc):
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


__all__ = [
    "MAX_MESSAGE",
    "NETWORK_DESTS",
    "NETWORK_FLAGS",
    "NETWORK_OPTIONS",
    "NETWORK_RANGES",
    "REFERENCE_DESTS",
    "REFERENCE_FLAGS",
    "SEED_RANGE",
    "TRAINING_FLAGS",
    "TRAINING_RANGES",
    "Range",
    "check_ranges",
    "LIST_FLAGS",
    "refuse_empty",
    "cpu_out_of_memory",
    "epoch_list",
    "flag_name",
    "writable_file",
    "writable_folder",
    "add_flags",
    "Parser",
    "add_data_args",
    "add_recipe_args",
    "add_schedule_args",
    "fail",
    "one_line",
    "network_options",
    "percent",
    "plural",
    "recipe_from_args",
    "reference_options",
    "run_command",
    "schedule_from_args",
]
