"""`lwl-search`'s flags: the parser, YAML study presets that set its defaults, and the settings they make."""

from __future__ import annotations

import argparse
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lwl.models import (
    DATASETS,
    PRESETS,
    RECIPE_RANGES,
    dataset_info,
    format_widths,
    get_preset,
    paper_recipe,
)
from lwl.models.cli import (
    NETWORK_FLAGS,
    NETWORK_RANGES,
    REFERENCE_FLAGS,
    TRAINING_FLAGS,
    TRAINING_RANGES,
    Parser,
    Range,
    add_flags,
    check_ranges,
    flag_name,
    network_options,
    reference_options,
    refuse_empty,
)

from .._answer.model import round_sizes
from .._errors import PresetError, UsageError
from .._pruning.pruners import PRUNERS
from .._sampling.costs import ACCURACY, parse_objectives
from .._sampling.sampler import SAMPLERS
from .._space.feasible import CONSTRAINTS, SearchSpace
from .._space.limits import ACTIVATION_BYTES, PARAMETER_BYTES, CostLimits, parse_amount
from .._space.settings import DEFAULTS, SEARCH_EPOCHS, StudySettings
from .._study.confirm import AFFORD, LISTS, MAX_SEEDS, SEEDS, ConfirmPlan, auto_plan

# The shared training flags' ranges (lwl.models.cli), checked for lwl-search's command line and presets alike.
RANGES: dict[str, Range] = {**TRAINING_RANGES, **NETWORK_RANGES}


@dataclass(frozen=True)
class Option:
    """A numeric flag of lwl-search's own, declared once: the value's type and bounds (`spec`, the models' `Range`),
    the words it takes beside a number ('auto', 'off'), its default (None: none, or one worked out later) and its
    help ('{default}' in it is the default). The parser's flag and a study preset's key are read by `read` alike."""

    spec: Range
    help: str
    default: Any = None
    words: tuple[str, ...] = ()
    metavar: str | None = None
    group: str = "study"

    def read(self, name: str, value: Any) -> Any:
        """`value` (text from the command line, a number or text from a preset) as the number it names, or one of
        `words`; else a UsageError 'NAME VALUE: why: use ...', the same wherever the value came from."""
        if isinstance(value, str):
            text = value.strip()
            if text.lower() in self.words:
                return text.lower()
            try:
                value = float(text) if self.spec.kind is float else int(text)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    raise UsageError(f"{name} {text}: not a number: {self.spec.describe()}") from None
        elif self.spec.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # a preset's 0 reads as the flag's '0' does: 0.0
        return self.spec.check(name, value)


# lwl-search's own numeric flags (their YAML keys the same names with _): each one's spec, default and help.
OPTIONS: dict[str, Option] = {
    "budget": Option(Range(int, 1), "total units: every hierarchy list sums to this (required)", group="search space"),
    "stages": Option(Range(int, 1), "stages per list (default {default})", default=4, group="search space"),
    "shallow_stages": Option(
        Range(int, 0), "k, the number of shallow stages in Eq. 7 (default stages//2)", group="search space"
    ),
    # The recipe's range without 0: a search needs a validation split to rank on.
    "val_fraction": Option(
        replace(RECIPE_RANGES["val_fraction"], low_open=True),
        "the share of the training images held out, stratified, to rank the lists on (default {default}: on digits "
        "it ranks lists as their test accuracy does at 0.80 against 0.69 for 0.1, with half the ties; "
        "benchmarks/README.md, 'Validation split'); a study keeps the split it was made with (0.1 before "
        "2026-12-01: rerun such a study with --val-fraction 0.1)",
        default=0.2,  # measured: benchmarks/README.md, "Validation split"
        metavar="F",
        group="data",
    ),
    "train_limit": Option(
        RECIPE_RANGES["train_limit"], "train on the first N training images only (quick checks)", group="network"
    ),
    "trials": Option(
        Range(int, 1), "finished trials the study should hold; a rerun continues (default {default})", default=20
    ),
    "timeout": Option(
        Range(float, 0, low_open=True, hint="leave --timeout out for no limit"),
        "stop starting trials after this many seconds",
    ),
    "pruner_startup": Option(
        Range(int, 0), "finished trials before the median pruner acts (default {default})", default=5
    ),
    "confirm": Option(
        Range(int, 0, hint="auto or off"),
        "after the search, spend up to K x S runs (S: --confirm-seeds) on more seeds by racing: the K most "
        "probable best lists get one more seed each, then at most half as many each round, only those still in "
        "the answer's set, until one is left or the rounds are done (a study with --objectives: its front's "
        "first K lists with S more seeds each); the runs go to the study NAME-confirm in the same storage. auto "
        f"(default): K = --trials x {AFFORD:g} / S, at most {LISTS}, so that confirmation costs at most "
        f"{100 * AFFORD:.0f} %% of the search; off when that is below 2; off or 0: none",
        words=("auto", "off"),
        metavar="K|auto|off",
    ),
    "confirm_seeds": Option(
        Range(int, 1, 2**32 - 1),  # the study's seed + 1 .. + S: at most every other seed
        f"confirmation runs per first-round list: K x S runs at most (default {{default}}, at most {MAX_SEEDS})",
        default=SEEDS,
        metavar="S",
    ),
    "workers": Option(
        Range(int, 1),
        "local worker processes sharing the study (default {default}; one per GPU where there are several); SQLite "
        "is refused for more than one, the default is then a journal file",
        default=1,
    ),
    "batch": Option(
        Range(int, 1, hint="auto"),
        "K = candidates (trials) trained together, not images: in simultaneous mode K candidates at a time "
        "share one pass of every image batch through the units they have in common (exact: same weights and "
        "accuracies as training alone). auto (default): the search trains one candidate at a time and the "
        "confirmation runs of one seed train together (no trade-off there: nothing is pruned or sampled "
        "between them); 1: everything one at a time. Images per optimiser step are --batch-size",
        words=("auto",),
        metavar="K|auto",
    ),
    "prefix_store_gb": Option(
        Range(float, 0, low_open=True, hint="--prefix-store off to keep no units"),
        "size bound of the prefix store in GiB (default {default:g}); the least recently used units are evicted first",
        default=2.0,
    ),
    "paused_store_gb": Option(
        Range(float, 0, low_open=True, hint="--paused-store off to keep no paused candidates"),
        "size bound of the paused store in GiB (default {default:g}); the least recently used states are evicted first",
        default=2.0,
    ),
    "heartbeat": Option(
        Range(int, 1),
        "seconds between a worker's heartbeats on an SQL storage (default {default}); a trial silent for 3 "
        "heartbeats (a killed worker) is failed and its list retried",
        default=30,
    ),
}


def _add_options(group: argparse._ArgumentGroup, name: str, *keys: str) -> None:
    """The `OPTIONS` of group `name` (those of `keys`, in that order, where given): text, read by `Option.read`."""
    for key in keys or [k for k, o in OPTIONS.items() if o.group == name]:
        option = OPTIONS[key]
        metavar = option.metavar or ("F" if option.spec.kind is float else "N")
        group.add_argument(flag_name(key), metavar=metavar, help=option.help.format(default=option.default))


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="lwl-search",
        description="Search downsampling schedules (hierarchy lists) of a layer-wise trained CNN with Optuna.",
        epilog="examples:\n"
        "  lwl-search --preset digits-quick\n"
        "  lwl-search --budget 10 --trials 6 --epochs 2                  # digits: embedded, no download\n"
        "  lwl-search --preset cifar100-resnet-b16 --data-root ~/data --download      # a GPU is advised\n"
        "The packaged presets are digits-quick, cifar100-resnet-b16 and cifar10-vgg-b10; a --preset YAML file sets "
        "defaults for any of these flags (same names, with _ for -), and flags given here override it.",
    )
    p.add_argument(
        "--preset",
        help="a study preset (studies/NAME.yaml, a path, or a packaged NAME such as "
        f"digits-quick) or a paper network ({', '.join(PRESETS)})",
    )
    g = p.add_argument_group("search space")
    _add_options(g, "search space")
    g.add_argument(
        "--constraint",
        choices=CONSTRAINTS,
        help="strict: every shallow stage smaller than every deep one (default); sum: shallow sum < deep "
        "sum; none: any list",
    )
    g.add_argument(
        "--max-params",
        metavar="N",
        help="train only lists whose network (without auxiliary heads) has at most N parameters, e.g. 5M, 250k",
    )
    g.add_argument("--max-flops", metavar="N", help="train only lists of at most N forward FLOPs per image, e.g. 1.5G")
    g.add_argument(
        "--max-memory",
        metavar="BYTES",
        help="train only lists whose estimated training memory at --batch-size is at most this, e.g. 2GiB, 500MB: "
        f"{ACTIVATION_BYTES} B per activation element of a batch + {PARAMETER_BYTES} B per parameter with heads "
        "(weights, gradients, Adam's moments; fp32)",
    )
    g.add_argument(
        "--enqueue", action="append", metavar="LIST", help="evaluate this list first, e.g. 1,1,2,4 (repeatable)"
    )
    g.add_argument(
        "--no-paper-baselines",
        action="store_true",
        default=None,
        help="do not enqueue the paper's schedules that are feasible at this budget, nor the largest network",
    )
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=tuple(DATASETS), help="default digits (embedded, no download)")
    g.add_argument("--data-root", help="where the data set's files are (default $LWL_DATA or ~/.cache/lwl/data)")
    g.add_argument("--download", action="store_true", default=None, help="fetch the data set if missing")
    _add_options(g, "data")
    g = p.add_argument_group("network and training (study settings, fixed for the whole study)")
    add_flags(
        g,
        NETWORK_FLAGS,
        {
            "--family": "vgg or resnet (default resnet)",
            "--block": "resnet block (default basic)",
            "--widths": "channels per stage (default: 16,32,64,128 on digits, the family's otherwise)",
            "--downsample": "between stages (default: the family's)",
        },
    )
    add_flags(
        g,
        TRAINING_FLAGS,
        {
            "--loss": "default predsim",
            "--mode": "default simultaneous",
            "--epochs": "epochs per candidate (default 5; 8 on fmnist; 15 on cifar10, cifar100, stl10)",
            "--batch-size": "images per optimiser step (default: the paper's 128, 64 on digits); not --batch",
            "--lr": "default: the paper's for the family and data set",
            "--dropout": "default: the paper's for the family and data set",
            "--precision": "auto (default): bf16 autocast on CUDA and on a CPU with native bf16 (AVX512-BF16, "
            "AMX), fp32 elsewhere; a study keeps the precision it was made with",
        },
    )
    # The reference code's options (Noekland & Eidnes): study settings too, the paper's Section V by default.
    add_flags(p.add_argument_group("the reference code's options (study settings, default Section V)"), REFERENCE_FLAGS)
    g.add_argument("--seed", type=int, help="seeds training and the sampler (default 0)")
    _add_options(g, "network")
    g = p.add_argument_group("study")
    _add_options(g, "study", "trials", "timeout")
    g.add_argument(
        "--objectives",
        metavar="LIST",
        help="accuracy, then the costs to trade it against: any of params, memory, flops, time, e.g. "
        "accuracy,params (default accuracy alone; a study setting). With costs the search aims at the front: "
        "sampler hvi and pruner dominance by default, the front in the study NAME-pareto",
    )
    g.add_argument(
        "--sampler",
        choices=SAMPLERS,
        help="restricted to the feasible set: default tpe, or with --objectives costs hvi (expected hypervolume "
        "improvement of every remaining list, a Gaussian process believing the accuracies)",
    )
    g.add_argument(
        "--pruner",
        choices=PRUNERS,
        help="default median, or with --objectives costs dominance (a candidate stops only when enough finished "
        "ones of no greater cost were more accurate at the same step)",
    )
    _add_options(g, "study", "pruner_startup")
    g.add_argument(
        "--no-revisit",
        action="store_true",
        default=None,
        help="one pass: once every list has been tried, stop (by default each pruned list is then trained "
        "again to the end, unpruned, while --trials allows)",
    )
    _add_options(g, "study", "confirm", "confirm_seeds")
    g.add_argument(
        "--storage", help="SQLAlchemy URL, journal file (.log) or redis:// URL (default sqlite:///studies/STUDY.db)"
    )
    g.add_argument("--study-name", help="default DATASET-FAMILY-bBUDGET-sSTAGES")
    g.add_argument(
        "--artifact-dir",
        help="where each complete trial's training config is stored as an Optuna "
        "artifact for optuna-dashboard (default: NAME-artifacts beside a SQLite or journal file NAME.db/.log, "
        "studies/artifacts for a server; use a shared folder for workers on several machines)",
    )
    g.add_argument("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1 (default auto)")
    g.add_argument("--quiet", action="store_true", default=None, help="no progress display, only the summary")
    _add_options(g, "study", "workers", "batch")
    g.add_argument(
        "--prefix-store",
        metavar="DIR",
        help="sequential mode: where frozen units are kept so that a "
        "candidate starts from the deepest prefix an earlier one trained (exact: same weights and "
        "accuracies as training alone); default NAME-prefixes beside a SQLite or journal file, "
        "studies/prefixes for a server; 'off' turns sharing off",
    )
    _add_options(g, "study", "prefix_store_gb")
    g.add_argument(
        "--paused-store",
        metavar="DIR",
        help="where a pruned candidate's training state is kept, so that a revisit of its list continues it "
        "(exact: the result of never having been pruned) instead of starting again; default NAME-paused beside a "
        "SQLite or journal file, studies/paused for a server; 'off' keeps none",
    )
    _add_options(g, "study", "paused_store_gb", "heartbeat")
    g.add_argument("--no-summary", action="store_true", default=None, help=argparse.SUPPRESS)
    return p


def _find_yaml(name: str) -> Path | None:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    packaged = resources.files("lwl.studies").joinpath(f"{name}.yaml")
    return Path(str(packaged)) if packaged.is_file() else None


def load_preset(name: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """A study preset's values as parser defaults; a network preset name becomes {'network': name}."""
    path = _find_yaml(name)
    if path is None:
        if name.lower() in PRESETS:
            return {"network": name.lower()}
        packaged = sorted(p.name[:-5] for p in resources.files("lwl.studies").iterdir() if p.name.endswith(".yaml"))
        raise PresetError(
            f"--preset {name}: no such study preset or network; study presets: "
            f"{', '.join(packaged)}; networks: {', '.join(PRESETS)}"
        )
    if not path.is_file():
        raise PresetError(f"--preset {path}: file not found: give a path to a YAML study preset")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise PresetError(f"--preset {path}: cannot read it ({reason}): give a YAML study preset") from None
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PresetError(f"--preset {path}: not valid YAML ({str(exc).splitlines()[0]}): fix the file") from None
    except RecursionError:
        raise PresetError(f"--preset {path}: nested too deeply to read: a preset maps flag names to values") from None
    if not isinstance(values, dict):
        raise PresetError(f"--preset {path}: expected a mapping of flag names to values")
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "version", "preset")}
    unknown = sorted(set(values) - set(actions) - {"network", "description"})
    if unknown:
        raise PresetError(f"--preset {path}: unknown key(s) {', '.join(unknown)}: use lwl-search's flag names")
    values.pop("description", None)
    values = {k: _preset_value(path, k, v, actions.get(k)) for k, v in values.items()}
    if values.get("network") is not None:
        get_preset(values["network"])
    return values


def _whole_numbers(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(type(v) is int for v in value)


def _preset_value(path: Path, key: str, value: Any, action: argparse.Action | None) -> Any:
    """A preset's value in the form its flag takes, or a PresetError naming the key and the form. Numbers are left
    to `OPTIONS` and `RANGES` (checked with the flags' values in `parse_args`); text for a number is converted by the
    flag."""
    where = f"--preset {path}: {key} {reprlib.repr(value)}"
    if value is None or key in OPTIONS:  # read by `Option.read` as the flag's text is
        return value
    if key == "widths":
        if isinstance(value, str) or _whole_numbers(value):
            return value if isinstance(value, str) else ",".join(map(str, value))
        raise PresetError(f"{where}: give a list of whole numbers, one per stage, e.g. [16, 32, 64, 128]")
    if key == "fc_units":
        if isinstance(value, str) or _whole_numbers(value) or value == []:
            return value if isinstance(value, str) else ",".join(map(str, value)) or "none"
        raise PresetError(f"{where}: give a list of whole numbers, e.g. [1024], or none")
    # YAML reads on/off as true/false: for an on/off flag (--conv-bias) that is what was meant.
    if isinstance(value, bool) and action is not None and action.choices == ("on", "off"):
        return "on" if value else "off"
    if key == "objectives" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if key == "enqueue":
        items = [value] if isinstance(value, str) or _whole_numbers(value) else value
        if isinstance(items, list) and all(isinstance(e, str) or _whole_numbers(e) for e in items):
            return [e if isinstance(e, str) else ",".join(map(str, e)) for e in items]
        raise PresetError(f"{where}: give hierarchy lists, e.g. [[1, 1, 2, 4], [1, 2, 2, 3]]")
    if action is None or (action.type is None and action.nargs != 0):  # text: a name, a path, a URL, a choice
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise PresetError(f"{where}: give text (a name, a path or a URL)")
        value = str(value)
        if action is not None and action.choices is not None and value not in action.choices:
            raise PresetError(f"{where}: choose one of {', '.join(map(str, action.choices))}")
        return value
    if action.nargs == 0 and not isinstance(value, bool):  # an on/off flag
        raise PresetError(f"{where}: give true or false")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    first, _ = parser.parse_known_args(argv)
    extra: dict[str, Any] = {}
    if first.preset:
        extra = load_preset(first.preset, parser)
        parser.set_defaults(**{k: v for k, v in extra.items() if k != "network"})
    args = parser.parse_args(argv)
    args.network = extra.get("network")

    def origin(key: str) -> str:  # where a value came from, for its message
        return flag_name(key) if getattr(first, key, None) is not None else f"--preset {first.preset}: {key}"

    for key, option in OPTIONS.items():  # lwl-search's own numbers, from a flag or a preset alike
        if getattr(args, key) is not None:
            setattr(args, key, option.read(origin(key), getattr(args, key)))
    args.batch_auto = args.batch in (None, "auto")
    if args.batch_auto:  # the search trains one candidate at a time; confirmation runs of a seed together
        args.batch = 1
    check_ranges(args, RANGES, origin)
    refuse_empty(args, origin)
    for key in ("max_params", "max_flops", "max_memory"):  # amounts with units: 5M, 2GiB
        if getattr(args, key) is not None:
            setattr(args, key, parse_amount(getattr(args, key), origin(key), memory=key == "max_memory"))
    args.objectives = parse_objectives(args.objectives or ACCURACY, origin("objectives"))
    if len(args.objectives) > 1:
        # The front is the goal: the sampler and pruner that aim at it, unless chosen on the command line or by a
        # preset that names the objectives itself (a single-objective preset's tpe and median give way).
        on_command_line = getattr(first, "objectives", None) is not None
        for key, aimed in (("sampler", "hvi"), ("pruner", "dominance")):
            if getattr(first, key, None) is None and (on_command_line or getattr(args, key) is None):
                setattr(args, key, aimed)
    elif args.pruner == "dominance":
        raise UsageError(
            f"{origin('pruner')} dominance judges accuracy at no greater cost: give the costs with --objectives, "
            "e.g. --objectives accuracy,params, or choose another pruner"
        )
    for key, value in {**DEFAULTS, **{k: o.default for k, o in OPTIONS.items() if o.default is not None}}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def confirm_plan(args: argparse.Namespace) -> ConfirmPlan:
    """--confirm K|auto|off and --confirm-seeds S as a plan (auto: `auto_plan` for --trials); a plan of more than
    `MAX_SEEDS` seeds per list is refused with its size, before anything is made; the seeds it trains with, the
    study's --seed + 1 .. + (its rounds), must all be seeds (at most 2**32 - 1), never wrapping onto the search's."""
    plan = _confirm_plan(args)
    seed = int(getattr(args, "seed", None) or 0)
    last = max(plan.seeds, len(round_sizes(plan.lists, plan.runs)))
    if plan.runs and seed + last > 2**32 - 1:
        raise UsageError(
            f"--confirm-seeds {plan.seeds} with --seed {seed}: the confirmation seeds {seed + 1}..{seed + last} "
            f"pass the largest seed, {2**32 - 1}: lower --seed or --confirm-seeds, or --confirm off"
        )
    return plan


def _confirm_plan(args: argparse.Namespace) -> ConfirmPlan:
    text = str(args.confirm if args.confirm is not None else "auto")  # a number or a word: `OPTIONS` read it
    if text == "auto":
        plan = auto_plan(args.trials, seeds=args.confirm_seeds)
    else:
        plan = ConfirmPlan(0 if text == "off" else int(text), args.confirm_seeds or SEEDS)
    if plan.seeds > MAX_SEEDS and text not in ("off", "0"):  # no confirmation asked for: its seeds do not matter
        size = (
            f"a plan of {plan.lists:,} list{'s' if plan.lists != 1 else ''} x {plan.seeds:,} seeds is "
            f"{plan.runs:,} training runs"
            if plan.lists
            else f"{plan.seeds:,} training runs for each confirmed list"
        )
        raise UsageError(
            f"--confirm-seeds {plan.seeds}: {size}; at most {MAX_SEEDS} seeds per list can be confirmed: "
            f"lower --confirm-seeds (default {SEEDS})"
        )
    return plan


def settings_from_args(args: argparse.Namespace) -> StudySettings:
    from lwl.models import resolve_device, resolve_precision  # torch's: a search about to train resolves its device

    if args.budget is None:
        raise UsageError("--budget is required (or a --preset that sets it), e.g. --budget 16")
    space = SearchSpace(args.budget, args.stages, args.shallow_stages, args.constraint)
    family, block, widths = args.family or "resnet", args.block, args.widths
    network = network_options(args)
    if args.network:
        net = get_preset(args.network)
        family = args.family or net.family
        block = block or net.block
        if widths is None and len(net.widths) == space.stages:
            widths = format_widths(net.widths, net.lead_widths)
        if family == net.family:
            own = net.network_fields(dataset_info(args.dataset).input_size)
            network = {k: own.get(k) if v is None else v for k, v in network.items()}
    recipe = paper_recipe(
        args.dataset,
        family,
        args.network,
        loss=args.loss,
        mode=args.mode,
        epochs=args.epochs if args.epochs is not None else SEARCH_EPOCHS.get(args.dataset),
        batch_size=args.batch_size,
        lr=args.lr,
        dropout=args.dropout,
        # auto is resolved here, on the device this run trains on, so that the study stores what its trials do
        # and a worker whose auto would mean another precision is refused (a study never mixes precisions).
        precision=resolve_precision(args.precision or "auto", resolve_device(args.device)),
        seed=args.seed,
        val_fraction=args.val_fraction,
        train_limit=args.train_limit,
        **reference_options(args),
    )
    limits = CostLimits(max_params=args.max_params, max_flops=args.max_flops, max_memory=args.max_memory)
    return StudySettings.create(
        space,
        recipe,
        family=family,
        block=block,
        widths=widths or None,
        downsample=args.downsample,
        limits=limits,
        objectives=args.objectives,
        **network,
    )


def parse_search_flags(argv: Sequence[str]) -> tuple[StudySettings, argparse.Namespace]:
    """What `lwl-search ARGV` would run: the study settings and the run's options (sampler, pruner, trials, ...).

    For scripts and benchmarks that drive `prepare_study`/`run_search` themselves with the command's defaults.
    """
    args = parse_args(argv)
    return settings_from_args(args), args


def default_study_name(settings: StudySettings) -> str:
    s, net = settings.space, settings.network
    block = f"-{net.block}" if net.family == "resnet" and net.block != "basic" else ""
    return f"{settings.recipe.dataset}-{net.family}{block}-b{s.budget}-s{s.stages}"
