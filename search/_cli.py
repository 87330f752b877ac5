"""`lwl-search`: parse flags (a YAML preset sets their defaults), validate everything, then run the study."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from lwl.models import (
    BLOCKS,
    DATASETS,
    DOWNSAMPLES,
    FAMILIES,
    LOSSES,
    MODES,
    PRESETS,
    PrefixStore,
    Progress,
    get_preset,
    load_data,
    paper_recipe,
    parse_int_list,
    resolve_device,
)
from lwl.models.cli import Parser, run_command

from ._errors import PresetError, SpaceError, StorageError, UsageError
from ._sampler import SAMPLERS, validate_enqueued
from ._settings import StudySettings
from ._space import CONSTRAINTS, SearchSpace
from ._storage import default_storage, kind_of, mask_url, storage_lost, storage_sibling
from ._artifacts import ARTIFACT_DIR_ATTR, ConfigArtifacts, dashboard_command, default_artifact_dir
from ._export import top_trials
from ._study import PRUNERS, SearchOutcome, count_finished, enqueue_lists, prepare_study, run_search

# Built-in defaults, below a YAML preset's values and the command line's flags.
DEFAULTS: dict[str, Any] = {
    "stages": 4, "constraint": "strict", "dataset": "digits", "trials": 20, "sampler": "tpe",
    "pruner": "median", "pruner_startup": 5, "seed": 0, "device": "auto", "val_fraction": 0.1, "workers": 1,
    "heartbeat": 30, "prefix_store_gb": 2.0, "batch": 1,
}
# Epochs per candidate: the search's fidelity. The exported config carries the full recipe (400 on CIFAR).
SEARCH_EPOCHS = {"digits": 5, "cifar10": 15, "cifar100": 15}


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="lwl-search",
        description="Search downsampling schedules (hierarchy lists) of a layer-wise trained CNN with Optuna.",
        epilog="Example: lwl-search --budget 16 --dataset cifar100 --data-root ~/data. A --preset YAML file sets "
               "defaults for any of these flags (same names, with _ for -); flags given here override it.",
    )
    p.add_argument("--preset", help="a study preset (studies/NAME.yaml, a path, or a packaged NAME such as "
                   f"digits-quick) or a paper network ({', '.join(PRESETS)})")
    g = p.add_argument_group("search space")
    g.add_argument("--budget", type=int, help="total units: every hierarchy list sums to this (required)")
    g.add_argument("--stages", type=int, help="stages per list (default 4)")
    g.add_argument("--shallow-stages", type=int, help="k, the number of shallow stages in Eq. 7 (default stages//2)")
    g.add_argument("--constraint", choices=CONSTRAINTS,
                   help="strict: every shallow stage smaller than every deep one (default); sum: shallow sum < deep "
                        "sum; none: any list")
    g.add_argument("--enqueue", action="append", metavar="LIST",
                   help="evaluate this list first, e.g. 1,1,2,4 (repeatable)")
    g.add_argument("--no-paper-baselines", action="store_true", default=None,
                   help="do not enqueue the paper's schedules that are feasible at this budget")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=tuple(DATASETS), help="default digits (embedded, no download)")
    g.add_argument("--data-root", help="where the data set's files are (default $LWL_DATA or ~/.cache/lwl/data)")
    g.add_argument("--download", action="store_true", default=None, help="fetch the data set if missing")
    g = p.add_argument_group("network and training (study settings, fixed for the whole study)")
    g.add_argument("--family", choices=FAMILIES, help="vgg or resnet (default resnet)")
    g.add_argument("--block", choices=BLOCKS, help="resnet block (default basic)")
    g.add_argument("--widths", help="channels per stage (default: 16,32,64,128 on digits, the family's otherwise)")
    g.add_argument("--downsample", choices=DOWNSAMPLES, help="between stages (default: the family's)")
    g.add_argument("--loss", choices=LOSSES, help="default predsim")
    g.add_argument("--mode", choices=MODES, help="default simultaneous")
    g.add_argument("--epochs", type=int, help="epochs per candidate (default 5 on digits, 15 on CIFAR)")
    g.add_argument("--batch-size", type=int, help="default: the paper's 128 (64 on digits)")
    g.add_argument("--lr", type=float, help="default: the paper's for the family and data set")
    g.add_argument("--dropout", type=float, help="default: the paper's for the family and data set")
    g.add_argument("--seed", type=int, help="seeds training and the sampler (default 0)")
    g.add_argument("--train-limit", type=int, help="train on the first N training images only (quick checks)")
    g = p.add_argument_group("study")
    g.add_argument("--trials", type=int, help="finished trials the study should hold; a rerun continues (default 20)")
    g.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    g.add_argument("--sampler", choices=SAMPLERS, help="default tpe, restricted to the feasible set")
    g.add_argument("--pruner", choices=PRUNERS, help="default median")
    g.add_argument("--pruner-startup", type=int, help="finished trials before the median pruner acts (default 5)")
    g.add_argument("--no-revisit", action="store_true", default=None,
                   help="one pass: once every list has been tried, stop (by default each pruned list is then trained "
                        "again to the end, unpruned, while --trials allows)")
    g.add_argument("--storage", help="SQLAlchemy URL, journal file (.log) or redis:// URL "
                   "(default sqlite:///studies/STUDY.db)")
    g.add_argument("--study-name", help="default DATASET-FAMILY-bBUDGET-sSTAGES")
    g.add_argument("--artifact-dir", help="where each complete trial's training config is stored as an Optuna "
                   "artifact for optuna-dashboard (default: NAME-artifacts beside a SQLite or journal file NAME.db/.log, "
                   "studies/artifacts for a server; use a shared folder for workers on several machines)")
    g.add_argument("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1 (default auto)")
    g.add_argument("--quiet", action="store_true", default=None, help="no progress display, only the summary")
    g.add_argument("--workers", type=int, help="local worker processes sharing the study (default 1; one per GPU "
                   "where there are several); SQLite is refused for more than one, the default is then a journal file")
    g.add_argument("--batch", type=int, metavar="K", help="simultaneous mode: train K candidates at a time together, "
                   "each batch flowing through the units they share once (exact: same weights and accuracies as "
                   "training alone); default 1")
    g.add_argument("--prefix-store", metavar="DIR", help="sequential mode: where frozen units are kept so that a "
                   "candidate starts from the deepest prefix an earlier one trained (exact: same weights and "
                   "accuracies as training alone); default NAME-prefixes beside a SQLite or journal file, "
                   "studies/prefixes for a server; 'off' turns sharing off")
    g.add_argument("--prefix-store-gb", type=float, help="size bound of the prefix store in GiB (default 2); the "
                   "least recently used units are evicted first")
    g.add_argument("--heartbeat", type=int, help="seconds between a worker's heartbeats on an SQL storage "
                   "(default 30); a trial silent for 3 heartbeats (a killed worker) is failed and its list retried")
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
        raise PresetError(f"--preset {name}: no such study preset or network; study presets: "
                            f"{', '.join(packaged)}; networks: {', '.join(PRESETS)}")
    if not path.is_file():
        raise PresetError(f"--preset {path}: file not found: give a path to a YAML study preset")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PresetError(f"--preset {path}: not valid YAML ({str(exc).splitlines()[0]}): fix the file") from None
    if not isinstance(values, dict):
        raise PresetError(f"--preset {path}: expected a mapping of flag names to values")
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    known = {a.dest for a in parser._actions} | {"network"}
    unknown = sorted(set(values) - known - {"description"})
    if unknown:
        raise PresetError(f"--preset {path}: unknown key(s) {', '.join(unknown)}: use lwl-search's flag names")
    values.pop("description", None)
    for key in ("widths", "enqueue"):
        if key in values and values[key] is not None:
            v = values[key]
            if key == "widths" and isinstance(v, list):
                values[key] = ",".join(map(str, v))
            if key == "enqueue":
                values[key] = [",".join(map(str, e)) if isinstance(e, list) else str(e) for e in v]
    if "network" in values:
        get_preset(values["network"])
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    first, _ = parser.parse_known_args(argv)
    extra: dict[str, Any] = {}
    if first.preset:
        extra = load_preset(first.preset, parser)
        parser.set_defaults(**{k: v for k, v in extra.items() if k != "network"})
    args = parser.parse_args(argv)
    args.network = extra.get("network")
    for key, value in DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def settings_from_args(args: argparse.Namespace) -> StudySettings:
    if args.budget is None:
        raise UsageError("--budget is required (or a --preset that sets it), e.g. --budget 16")
    space = SearchSpace(args.budget, args.stages, args.shallow_stages, args.constraint)
    family, block, widths = args.family or "resnet", args.block, args.widths
    if args.network:
        net = get_preset(args.network)
        family = args.family or net.family
        block = block or net.block
        if widths is None and len(net.widths) == space.stages:
            widths = ",".join(map(str, net.widths))
    recipe = paper_recipe(
        args.dataset, family, args.network,
        loss=args.loss, mode=args.mode, epochs=args.epochs or SEARCH_EPOCHS.get(args.dataset),
        batch_size=args.batch_size, lr=args.lr, dropout=args.dropout, seed=args.seed, val_fraction=args.val_fraction,
        train_limit=args.train_limit,
    )
    return StudySettings.create(space, recipe, family=family, block=block,
                                widths=parse_int_list(widths, "widths") if widths else None,
                                downsample=args.downsample)


def parse_search_flags(argv: Sequence[str]) -> tuple[StudySettings, argparse.Namespace]:
    """What `lwl-search ARGV` would run: the study settings and the run's options (sampler, pruner, trials, ...).

    For scripts and benchmarks that drive `prepare_study`/`run_search` themselves with the command's defaults.
    """
    args = parse_args(argv)
    return settings_from_args(args), args


def default_study_name(settings: StudySettings) -> str:
    s = settings.space
    block = f"-{settings.block}" if settings.family == "resnet" and settings.block != "basic" else ""
    return f"{settings.recipe.dataset}-{settings.family}{block}-b{s.budget}-s{s.stages}"


# --------------------------------------------------------------------------------------------- display


def _pct(v: float | None) -> str:
    return "  -  " if v is None else f"{100 * v:5.1f}"


def _describe_trial(t: FrozenTrial) -> str:
    h = t.user_attrs.get("schedule") or str(t.user_attrs.get("hierarchy", "?"))
    state = t.state.name.lower()
    value = t.value if t.state == TrialState.COMPLETE else (
        list(t.intermediate_values.values())[-1] if t.intermediate_values else None)
    extra = f" ({t.user_attrs['fail_reason']})" if t.state == TrialState.FAIL and "fail_reason" in t.user_attrs else ""
    if t.user_attrs.get("revisit_of") is not None:
        extra += f" (revisit of {t.user_attrs['revisit_of']})"
    secs = t.user_attrs.get("wall_time") or t.user_attrs.get("elapsed")
    return f"{h:<14} {state:<8}{extra} acc {_pct(value)}  {'' if secs is None else f'{secs:6.1f}s'}"


class LineDisplay:
    """One line per finished trial: for logs and pipes."""

    def __init__(self, out: Any = sys.stderr) -> None:
        self.out = out

    def trial_started(self, number: int, hierarchy: tuple[int, ...], total_steps: int) -> None:
        pass

    def progress(self, p: Progress) -> None:
        pass

    def trial_finished(self, trial: FrozenTrial, best: float | None) -> None:
        print(f"trial {trial.number:>3}  {_describe_trial(trial)}  best {_pct(best)}", file=self.out, flush=True)


class BarDisplay(LineDisplay):
    """A bar over trials and one within the running trial (epochs or units), with the best so far."""

    def __init__(self, trials: int, done: int, out: Any = sys.stderr) -> None:
        from tqdm import tqdm

        super().__init__(out)
        self._tqdm = tqdm
        self.outer = tqdm(total=trials, initial=min(done, trials), desc="trials", unit="trial", file=out,
                          position=0, dynamic_ncols=True)
        self.inner: Any = None

    def trial_started(self, number: int, hierarchy: tuple[int, ...], total_steps: int) -> None:
        label = "[" + ",".join(map(str, hierarchy)) + "]"
        if self.inner is not None:  # --batch: the candidates train together; show the newest
            self.inner.close()
        self.inner = self._tqdm(total=total_steps, desc=f"trial {number} {label}", leave=False, file=self.out,
                                position=1, dynamic_ncols=True)

    def progress(self, p: Progress) -> None:
        if self.inner is not None:
            self.inner.update(1)
            self.inner.set_postfix_str(f"acc {_pct(p.value).strip()}")

    def trial_finished(self, trial: FrozenTrial, best: float | None) -> None:
        if self.inner is not None:
            self.inner.close()
            self.inner = None
        self.outer.write(f"trial {trial.number:>3}  {_describe_trial(trial)}")
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            self.outer.update(1)
        self.outer.set_postfix_str(f"best {_pct(best).strip()}")

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
        self.outer.close()


def summary_text(study: optuna.Study, outcome_reason: str, storage_url: str, k: int = 5) -> str:
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    lines = [
        "",
        f"study {study.study_name!r}: {counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed; stopped: {outcome_reason}",
    ]
    shared = [t for t in trials if "reused_units" in t.user_attrs]
    if shared:
        units = sum(len(t.user_attrs.get("unit_acc_history", [])) for t in shared)
        reused = sum(int(t.user_attrs["reused_units"]) for t in shared)
        seconds = sum(float(t.user_attrs.get("reused_seconds", 0.0)) for t in shared)
        lines.append(f"prefix sharing: {reused} of {units} unit-trainings reused from earlier candidates "
                     f"({100 * reused / max(units, 1):.0f} %), about {seconds:.0f}s of training saved")
    batches = {tuple(t.user_attrs["batch"]): t.user_attrs["batch_unit_epochs"] for t in trials
               if "batch" in t.user_attrs and "batch_unit_epochs" in t.user_attrs}
    if batches:
        together = sum(u for u, _ in batches.values())
        alone = sum(a for _, a in batches.values())
        lines.append(f"training together (--batch): {together} unit-epochs trained where one by one would take "
                     f"{alone} ({alone / max(together, 1):.2f}x fewer), in {len(batches)} batches")
    top = top_trials(study, k)
    if top:
        lines += ["", f"  {'rank':>4}  {'hierarchy':<14} {'val acc':>7}  {'units: first -> last':<20} {'params':>9} "
                  f"{'time':>7}  paper"]
        for rank, t in enumerate(top, 1):
            units = [a for a in t.user_attrs.get("unit_acc", []) if a is not None]
            curve = f"{_pct(units[0]).strip()} -> {_pct(units[-1]).strip()}" if units else "-"
            lines.append(
                f"  {rank:>4}  {t.user_attrs.get('schedule', '?'):<14} {_pct(t.value):>7}  {curve:<20} "
                f"{t.user_attrs.get('params', 0) / 1e6:8.2f}M {t.user_attrs.get('wall_time', 0):6.1f}s  "
                f"{t.user_attrs.get('paper') or ''}"
            )
    lines += ["", "next:", f"  {dashboard_command(storage_url, study.user_attrs)}      # then open "
              "http://127.0.0.1:8080"]
    if top:
        lines.append(f"  lwl-export --storage {shlex.quote(storage_url)} --study-name {shlex.quote(study.study_name)} "
                     "--best --out configs/      # then: lwl-train --config configs/FILE.yaml")
        lines.append(f"  lwl-report --storage {shlex.quote(storage_url)} --study-name {shlex.quote(study.study_name)}")
    if "***" in storage_url:
        lines.append("  (put the password back into the URL: it is never printed)")
    return "\n".join(lines)


def _storage_for(args: argparse.Namespace, study_name: str) -> str:
    """The default is SQLite for one process; several workers need a storage that is safe for them."""
    if args.workers <= 1:
        return args.storage or default_storage(study_name)
    if args.storage is None:
        return str(Path("studies") / f"{study_name}.log")
    if kind_of(args.storage) == "rdb" and args.storage.startswith("sqlite"):
        raise StorageError(f"--workers {args.workers} with SQLite ({mask_url(args.storage)}) is not safe: leave "
                           "--storage out (a journal file is used), or give a .log path, PostgreSQL, MySQL or Redis")
    return args.storage


def _run_workers(args: argparse.Namespace, argv: Sequence[str], storage_url: str, study: optuna.Study) -> str:
    """Start --workers processes on the same study (one GPU each where there are several) and wait for them."""
    import subprocess

    import torch

    gpus = torch.cuda.device_count() if args.device in ("auto", "cuda") else 0
    procs = []
    for i in range(args.workers):
        env = dict(os.environ)
        if gpus > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
        if gpus == 0 and "OMP_NUM_THREADS" not in env:
            # CPU workers share the cores: torch's default of one thread per core each would oversubscribe them,
            # and its threads wait for each other at every operator (measured: minutes instead of seconds).
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.workers))
        procs.append(subprocess.Popen([sys.executable, "-m", "lwl.search", *argv, "--workers", "1", "--storage",
                                       storage_url, "--quiet", "--no-summary"], env=env))
    reported = -1
    try:
        while any(p.poll() is None for p in procs):
            done = count_finished(study)
            if done != reported and not args.quiet:
                print(f"lwl-search: {done}/{args.trials} finished trials ({args.workers} workers)", file=sys.stderr)
                reported = done
            time.sleep(2)
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        raise
    codes = [p.returncode for p in procs]
    if any(c not in (0, 130) for c in codes):
        return f"a worker failed (exit codes {codes})"
    return f"{args.workers} workers finished"


def _search(args: argparse.Namespace, argv: Sequence[str], settings: StudySettings, data: Any,
            enqueue: Sequence[tuple[int, ...]], study_name: str, storage_url: str, device: Any) -> int:
    """Everything that talks to the storage once the input is known to be good."""
    study = prepare_study(settings, storage_url, study_name, sampler=args.sampler, pruner=args.pruner,
                          seed=args.seed, pruner_startup=args.pruner_startup, heartbeat_seconds=args.heartbeat,
                          revisit=not args.no_revisit)
    shown_url = mask_url(storage_url)
    artifacts = ConfigArtifacts(args.artifact_dir or default_artifact_dir(storage_url))
    study.set_user_attr(ARTIFACT_DIR_ATTR, str(artifacts.directory))
    prefix_store = None
    if settings.recipe.mode == "sequential" and args.prefix_store != "off":
        prefix_store = PrefixStore(args.prefix_store or storage_sibling(storage_url, "prefixes"),
                                   max_bytes=int(args.prefix_store_gb * 1024**3))
    done = count_finished(study)
    r = settings.recipe
    if not args.quiet:
        print(f"lwl-search: study {study_name!r} in {shown_url}\n"
              f"  space: {settings.space.describe()}: {len(settings.space)} feasible lists\n"
              f"  candidates: {settings.family} {settings.block if settings.family == 'resnet' else ''} widths "
              f"{','.join(map(str, settings.widths))}, {r.loss}, {r.mode}, {r.epochs} epochs, lr {r.lr:g}, "
              f"dropout {r.dropout:g}, batch {r.batch_size}, on {device}\n"
              f"  sampler {args.sampler}, pruner {args.pruner}; the study holds {done} finished trials, "
              f"running until {args.trials}", file=sys.stderr)
    outcome: SearchOutcome | None = None
    reason = "interrupted"
    if args.workers > 1:
        enqueue_lists(study, settings.space, enqueue, not args.no_paper_baselines)
        try:
            reason = _run_workers(args, argv, storage_url, study)
            outcome = SearchOutcome(study, shown_url, count_finished(study), 0, reason, len(settings.space))
        except KeyboardInterrupt:
            print("\nlwl-search: interrupted; running trials are recorded as failed ('interrupted')",
                  file=sys.stderr)
        print(summary_text(study, reason, shown_url))
        return 0 if outcome is not None else 130
    display: Any = None
    if not args.quiet:
        display = BarDisplay(args.trials, done) if sys.stderr.isatty() else LineDisplay()
    try:
        outcome = run_search(settings, data, study, trials=args.trials, timeout=args.timeout, enqueue=enqueue,
                             paper=not args.no_paper_baselines, device=str(device), display=display,
                             artifacts=artifacts, prefix_store=prefix_store, batch=args.batch)
        reason = outcome.stop_reason
    except KeyboardInterrupt:
        print("\nlwl-search: interrupted; the running trial is recorded as failed ('interrupted')",
              file=sys.stderr)
    finally:
        if display is not None and hasattr(display, "close"):
            display.close()
    if not args.no_summary:
        print(summary_text(study, reason, shown_url))
    return 0 if outcome is not None else 130


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        args = parse_args(argv)
        if args.workers < 1:
            raise UsageError(f"--workers {args.workers}: use 1 or more")
        settings = settings_from_args(args)
        if args.batch < 1:
            raise UsageError(f"--batch {args.batch}: use 1 or more")
        if args.batch > 1 and (settings.recipe.mode != "simultaneous" or settings.recipe.loss == "global"):
            raise UsageError(f"--batch {args.batch} needs --mode simultaneous and a layer-wise --loss (pred, sim, "
                             "predsim): sequential mode shares prefixes through --prefix-store instead")
        settings.space.check_nonempty()
        enqueue = [parse_int_list(e, "--enqueue") for e in (args.enqueue or [])]
        for h in enqueue:
            validate_enqueued(settings.space, h)
        study_name = args.study_name or default_study_name(settings)
        storage_url = _storage_for(args, study_name)
        device = resolve_device(args.device)
        data = load_data(settings.recipe.dataset, data_root=args.data_root, download=bool(args.download),
                         val_fraction=settings.recipe.val_fraction, split_seed=settings.recipe.seed,
                         device=device if args.workers == 1 else "cpu")
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # our display reports failed trials
        try:
            return _search(args, argv, settings, data, enqueue, study_name, storage_url, device)
        except Exception as exc:
            lost = storage_lost(exc, storage_url)
            if lost is None:
                raise
            print(f"lwl-search: {lost}", file=sys.stderr)
            return 1

    return run_command("lwl-search", body)
