"""`lwl-search`: parse and check every flag, then run the study (thin: the work is in the modules it calls)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import optuna

from lwl.models import interrupted, parse_int_list
from lwl.models.cli import plural, run_command, writable_folder

from .._answer.ranking import confirm_study_name
from .._errors import UsageError
from .._export.artifacts import ConfigArtifacts, default_artifact_dir
from .._pruning.paused import PausedStore
from .._sampling.costs import check_costs_vary
from .._sampling.pareto import pareto_study_name
from .._sampling.sampler import validate_enqueued
from .._space.settings import StudySettings
from .._storage.attributes import ARTIFACT_DIR_ATTR, DATA_ROOT_ATTR, VALIDATION_ATTR
from .._storage.backends import (
    check_new_storage,
    check_study_name,
    mask_url,
    quiet_heartbeat_errors,
    storage_lost,
    storage_sibling,
    value_refused,
)
from .._study.confirm import ConfirmPlan, missing, run_confirmation
from .._study.run import SearchOutcome, count_finished, enqueue_lists, prepare_study, run_search
from .display import BarDisplay, ConfirmDisplay, LineDisplay, summary_text
from .flags import confirm_plan, default_study_name, parse_args, settings_from_args
from .workers import HELD_EXIT, run_workers, storage_for


def _search(
    args: argparse.Namespace,
    argv: Sequence[str],
    settings: StudySettings,
    data: Any,
    enqueue: Sequence[tuple[int, ...]],
    study_name: str,
    storage_url: str,
    device: Any,
    plan: ConfirmPlan,
) -> int:
    """Everything that talks to the storage once the input is known to be good."""
    from lwl.models import PrefixStore

    study = prepare_study(
        settings,
        storage_url,
        study_name,
        sampler=args.sampler,
        pruner=args.pruner,
        seed=args.seed,
        pruner_startup=args.pruner_startup,
        heartbeat_seconds=args.heartbeat,
        revisit=not args.no_revisit,
        device_type=device.type,
    )
    shown_url = mask_url(storage_url)
    artifacts = ConfigArtifacts(args.artifact_dir or default_artifact_dir(storage_url))
    study.set_user_attr(ARTIFACT_DIR_ATTR, str(artifacts.directory))
    study.set_user_attr(VALIDATION_ATTR, int(data.val_x.shape[0]))  # the same for every run: split by the settings
    if args.data_root:  # as given: exported configs carry it to lwl-train (the default is not recorded)
        study.set_user_attr(DATA_ROOT_ATTR, args.data_root)
    prefix_store = None
    if settings.recipe.mode == "sequential" and args.prefix_store != "off":
        prefix_store = PrefixStore(
            args.prefix_store or storage_sibling(storage_url, "prefixes"), max_bytes=int(args.prefix_store_gb * 1024**3)
        )
    paused = None
    if args.paused_store != "off":
        paused = PausedStore(
            args.paused_store or storage_sibling(storage_url, "paused"), max_bytes=int(args.paused_store_gb * 1024**3)
        )
    done = count_finished(study)
    r = settings.recipe
    if not args.quiet:
        print(
            f"lwl-search: study {study_name!r} in {shown_url}\n"
            f"  space: {settings.space.describe()}: {plural(len(settings.space), 'feasible list')}\n"
            f"  candidates: {settings.network_text()}, {r.loss}, {r.mode}, {plural(r.epochs, 'epoch')}, lr {r.lr:g}, "
            f"dropout {r.dropout:g}, batch {r.batch_size}, on {device} in {r.precision}{settings.options_text()}\n"
            + (
                f"  objectives: accuracy against {', '.join(settings.costs)} (the front: study "
                f"{pareto_study_name(study_name)!r})\n"
                if settings.costs
                else ""
            )
            + f"  sampler {args.sampler}, pruner {args.pruner}; the study holds {plural(done, 'finished trial')}, "
            f"running until {args.trials}",
            file=sys.stderr,
        )
    started = time.monotonic()
    outcome: SearchOutcome | None = None
    reason = "interrupted"
    if args.workers > 1:
        enqueue_lists(study, settings, enqueue, not args.no_paper_baselines)
        status = 130  # SIGINT and SIGTERM alike: every worker's running trial is failed as 'interrupted'
        try:
            reason, status = run_workers(args, argv, storage_url, study, settings.space)
            outcome = SearchOutcome(study, shown_url, count_finished(study), 0, reason, len(settings.space))
        except KeyboardInterrupt:
            print("\nlwl-search: interrupted; running trials are recorded as failed ('interrupted')", file=sys.stderr)
        if outcome is not None and status == 0 and not _confirm(args, settings, study, plan, device, started):
            status = 130
        print(summary_text(study, reason, shown_url, plan=plan))
        return status
    display: Any = None
    if not args.quiet:
        display = BarDisplay(args.trials, done) if sys.stderr.isatty() else LineDisplay()
    try:
        outcome = run_search(
            settings,
            data,
            study,
            trials=args.trials,
            timeout=args.timeout,
            enqueue=enqueue,
            paper=not args.no_paper_baselines,
            device=str(device),
            display=display,
            artifacts=artifacts,
            prefix_store=prefix_store,
            paused=paused,
            batch=args.batch,
            on_wait=None if args.quiet else lambda text: print(f"lwl-search: {text}", file=sys.stderr),
        )
        reason = outcome.stop_reason
    except KeyboardInterrupt:
        if not (args.quiet and args.no_summary):  # a --workers parent speaks for its workers
            print("\nlwl-search: interrupted; the running trial is recorded as failed ('interrupted')", file=sys.stderr)
    finally:
        if display is not None and hasattr(display, "close"):
            display.close()
    if outcome is not None and not outcome.held and "failed in this run" not in reason:
        if not _confirm(args, settings, study, plan, device, started):
            outcome = None
    if not args.no_summary:
        ran = outcome.ran if outcome is not None else None
        print(summary_text(study, reason, shown_url, trials_target=args.trials, ran=ran, plan=plan))
    if outcome is None:
        return 130
    return HELD_EXIT if outcome.held else 0  # short of --trials: others' trials may be dead (no heartbeat to tell)


def _confirm(
    args: argparse.Namespace,
    settings: StudySettings,
    study: optuna.Study,
    plan: ConfirmPlan,
    device: Any,
    started: float,
) -> bool:
    """Run the plan's missing confirmation runs, a line each; False when interrupted."""
    if not plan.runs or args.no_summary:  # --no-summary: a worker of `--workers N`, whose parent confirms
        return True

    def data_for(seed: int) -> Any:
        from lwl.models import load_data

        r = settings.recipe
        return load_data(
            r.dataset, data_root=args.data_root, val_fraction=r.val_fraction, split_seed=seed, device=device
        )

    todo = missing(study, plan)
    if not todo:
        return True
    deadline = None if args.timeout is None else started + args.timeout
    if deadline is not None and time.monotonic() >= deadline:
        if not args.quiet:
            print(
                f"lwl-search: --timeout reached before confirmation: the same command trains its {todo} runs",
                file=sys.stderr,
            )
        return True
    if not args.quiet:
        what = (
            f"the front's first {plural(plan.lists, 'list')} with {plural(plan.seeds, 'more seed')} each: "
            f"{plural(todo, 'run')}"
            if settings.costs
            else f"by racing: up to {plural(todo, 'run')}, the {plan.lists} most probable best lists first, then "
            "the ones still in contention"
        )
        print(
            f"lwl-search: confirming {what} into study {confirm_study_name(study.study_name)!r}",
            file=sys.stderr,
        )
    display = None
    if not args.quiet:
        step = "epoch" if settings.recipe.mode == "simultaneous" else "unit"
        display = ConfirmDisplay(todo, bar=sys.stderr.isatty(), step=step)
    try:
        outcome = run_confirmation(
            settings,
            study,
            plan,
            data_for,
            device=str(device),
            deadline=deadline,
            on_run=None if display is None else display.trial_finished,
            together=None if args.batch_auto else args.batch,
            display=display,
        )
    except KeyboardInterrupt:
        print("\nlwl-search: interrupted; the running confirmation run is recorded as failed", file=sys.stderr)
        return False
    finally:
        if display is not None:
            display.close()
    if outcome.stopped and not args.quiet:
        print(
            f"lwl-search: confirmation stopped ({outcome.stopped}): the same command trains the rest", file=sys.stderr
        )
    return True


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        # Every check of the input, before anything is created (no database, no folder): flags and preset values
        # against their ranges (parse_args), the space, the storage, the folders, the device, the memory.
        args = parse_args(argv)
        settings = settings_from_args(args)
        plan = confirm_plan(args)
        if args.batch > 1 and not settings.recipe.trains_together:
            raise UsageError(
                f"--batch {args.batch} needs --mode simultaneous and a layer-wise --loss (pred, sim, "
                "predsim): sequential mode shares prefixes through --prefix-store instead"
            )
        settings.space.check_searchable()
        check_costs_vary(settings)
        enqueue = [parse_int_list(e, "--enqueue") for e in (args.enqueue or [])]
        for h in enqueue:
            validate_enqueued(settings.space, h)
        study_name = default_study_name(settings) if args.study_name is None else check_study_name(args.study_name)
        storage_url = storage_for(args, study_name)
        check_new_storage(storage_url)
        writable_folder(args.artifact_dir or default_artifact_dir(storage_url), "--artifact-dir")
        if settings.recipe.mode == "sequential" and args.prefix_store != "off":
            writable_folder(args.prefix_store or storage_sibling(storage_url, "prefixes"), "--prefix-store")
        if args.paused_store != "off":
            writable_folder(args.paused_store or storage_sibling(storage_url, "paused"), "--paused-store")
        # The engine's device, memory and data need torch: imported once the input is known to be good (so that
        # --help and a refused flag never load it).
        from lwl.models import check_memory, load_data, resolve_device

        device = resolve_device(args.device)
        # The smallest network of the space (one unit per stage) must fit; every candidate has --budget units.
        check_memory(settings.schedule((1,) * settings.space.stages), settings.recipe, device, settings.space.budget)
        data = load_data(
            settings.recipe.dataset,
            data_root=args.data_root,
            download=bool(args.download),
            val_fraction=settings.recipe.val_fraction,
            split_seed=settings.recipe.seed,
            device=device if args.workers == 1 else "cpu",
        )
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # our display reports failed trials
        try:
            with quiet_heartbeat_errors():
                return _search(args, argv, settings, data, enqueue, study_name, storage_url, device, plan)
        except Exception as exc:
            if interrupted(exc):  # Ctrl-C cut a storage write short: an interrupt, not a lost storage
                raise
            refused = value_refused(exc, study_name)
            if refused is not None:
                raise refused from None
            lost = storage_lost(exc, storage_url)
            if lost is None:
                raise
            print(f"lwl-search: {lost}", file=sys.stderr)
            return 1

    return run_command("lwl-search", body)
