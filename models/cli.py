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
from ._schedule import BLOCKS, DOWNSAMPLES, FAMILIES, PRESETS, Schedule, make_schedule
from ._trainer import MODES, Recipe, paper_recipe

# The longest message a command prints for an error: a value echoed back (a preset expanded through YAML aliases,
# a pasted file) must not flood the terminal.
MAX_MESSAGE = 400


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2) like every other user error."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (see {self.prog} --help)")


def add_schedule_args(parser: argparse.ArgumentParser, *, hierarchy: bool = True) -> None:
    g = parser.add_argument_group("network")
    g.add_argument("--preset", dest="network_preset", metavar="NAME",
                   help=f"a base network of the paper: {', '.join(PRESETS)}")
    if hierarchy:
        g.add_argument("--hierarchy", help="units per stage between downsamplings, e.g. 1,1,2,4")
    g.add_argument("--family", choices=FAMILIES, help="vgg: a unit is one conv; resnet: one residual block")
    g.add_argument("--block", choices=BLOCKS, help="residual block of the resnet family (default basic)")
    g.add_argument("--widths", help="channels per stage, e.g. 64,128,256,512 (default: the family's)")
    g.add_argument("--downsample", choices=DOWNSAMPLES,
                   help="between stages (default: maxpool for vgg, strided first block for resnet)")


def add_data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="digits", help=f"one of {', '.join(DATASETS)} (default digits)")
    g.add_argument("--data-root", help="where the data set's files are (default $LWL_DATA or ~/.cache/lwl/data)")
    g.add_argument("--download", action="store_true", help="fetch the data set if it is not under --data-root")


def add_recipe_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("training (defaults: the paper's Section V for the data set)")
    g.add_argument("--loss", choices=LOSSES, help="local loss (default predsim) or global back-propagation")
    g.add_argument("--mode", choices=MODES, help="simultaneous (default) or sequential (greedy)")
    g.add_argument("--epochs", type=int, help="epochs (per unit in sequential mode)")
    g.add_argument("--batch-size", type=int, help="default 128")
    g.add_argument("--lr", type=float, help="Adam learning rate")
    g.add_argument("--dropout", type=float, help="dropout on what each unit passes on")
    g.add_argument("--seed", type=int, default=0, help="seeds initialisation, dropout, batch order (default 0)")
    g.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, ...")


def schedule_from_args(args: argparse.Namespace, dataset: str, hierarchy: Sequence[int] | str | None = None) -> Schedule:
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
    "Parser",
    "add_data_args",
    "add_recipe_args",
    "add_schedule_args",
    "fail",
    "one_line",
    "recipe_from_args",
    "run_command",
    "schedule_from_args",
]
