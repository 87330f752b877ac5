"""What every command shares: the flags that name a schedule, data or a recipe, and the one way a user error ends.

Public so that `lwl-search`, `lwl-export`, `lwl-report`, `lwl-train` and `lwl-inspect` (and scripts) parse and fail
the same way: a user error is one line on stderr, `PROG: error: MESSAGE`, and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ._data import DATASETS, dataset_info
from ._errors import LwlError
from ._losses import LOSSES
from ._recipe import MODES, Recipe, paper_recipe
from ._schedule import BLOCKS, DOWNSAMPLES, FAMILIES, PRESETS, Schedule, make_schedule

# The longest message a command prints for an error: a value echoed back (a preset expanded through YAML aliases,
# a pasted file) must not flood the terminal.
MAX_MESSAGE = 400


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2) like every other user error."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (see {self.prog} --help)")


# The flags that name a network and a training recipe, shared by lwl-train, lwl-inspect and lwl-search. Every one
# defaults to None (= the family's or the paper's value), so a command can layer presets under them; a command may
# reword a help text (`helps`) where its defaults differ.
NETWORK_FLAGS: dict[str, dict[str, Any]] = {
    "--family": dict(choices=FAMILIES, help="vgg: a unit is one conv; resnet: one residual block"),
    "--block": dict(choices=BLOCKS, help="residual block of the resnet family (default basic)"),
    "--widths": dict(help="channels per stage, e.g. 64,128,256,512 (default: the family's)"),
    "--downsample": dict(
        choices=DOWNSAMPLES, help="between stages (default: maxpool for vgg, strided first block for resnet)"
    ),
}
TRAINING_FLAGS: dict[str, dict[str, Any]] = {
    "--loss": dict(choices=LOSSES, help="local loss (default predsim) or global back-propagation"),
    "--mode": dict(choices=MODES, help="simultaneous (default) or sequential (greedy)"),
    "--epochs": dict(type=int, help="epochs (per unit in sequential mode)"),
    "--batch-size": dict(type=int, help="default 128"),
    "--lr": dict(type=float, help="Adam learning rate"),
    "--dropout": dict(type=float, help="dropout on what each unit passes on"),
}


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
        "--preset", dest="network_preset", metavar="NAME", help=f"a base network of the paper: {', '.join(PRESETS)}"
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
    g.add_argument("--seed", type=int, default=0, help="seeds initialisation, dropout, batch order (default 0)")
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
    )


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
        seed=args.seed,
        **extra,
    )


def percent(value: float | None, *, width: int = 0, empty: str = "-", suffix: str = "") -> str:
    """An accuracy in [0, 1] as a percentage with one decimal (`suffix` after it), right-aligned to `width`;
    `empty` for None. The one formatting of accuracies in every command's output."""
    return (empty if value is None else f"{100 * value:.1f}{suffix}").rjust(width)


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """The first line of `message`, cut to `limit` characters (an ellipsis says it was cut)."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def fail(prog: str, message: str) -> NoReturn:
    """One line on stderr and exit status 2: the contract for every user error."""
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    raise SystemExit(2)


def run_command(prog: str, body: Callable[[], int | None]) -> int:
    """Run a command body: an `LwlError` becomes one line and exit status 2, Ctrl-C exit status 130."""
    try:
        return body() or 0
    except LwlError as exc:
        fail(prog, str(exc) or type(exc).__name__)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


__all__ = [
    "MAX_MESSAGE",
    "NETWORK_FLAGS",
    "TRAINING_FLAGS",
    "add_flags",
    "Parser",
    "add_data_args",
    "add_recipe_args",
    "add_schedule_args",
    "fail",
    "one_line",
    "percent",
    "recipe_from_args",
    "run_command",
    "schedule_from_args",
]
