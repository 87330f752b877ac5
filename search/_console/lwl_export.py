"""`lwl-export`: write training configs for a study's best, top-K, Pareto or chosen trials."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path

import optuna

from lwl.models.cli import Parser, plural, run_command, writable_file, writable_folder

from .._answer.ranking import study_answer
from .._export.configs import Selection, export_configs, write_configs
from .._storage.backends import check_study_name, default_storage, load_existing_study, mask_url, open_storage


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="lwl-export",
        description="Export the schedules a study found as training configs with the paper's full recipe "
        "(400 epochs on CIFAR), for lwl-train --config.",
        epilog="examples, after lwl-search --preset digits-quick:\n"
        "  lwl-export --study-name digits-resnet-b12-s4 --best --out configs/best.yaml\n"
        "  lwl-export --study-name digits-resnet-b12-s4 --top 3 --out configs/\n"
        "  lwl-export --storage sqlite:///studies/digits-resnet-b12-s4.db --study-name digits-resnet-b12-s4 "
        "--pareto --out configs/",
    )
    p.add_argument("--storage", help="the study's storage URL (default sqlite:///studies/STUDY.db, as lwl-search)")
    p.add_argument("--study-name", required=True, help="the study to export from")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--best", action="store_true", help="the best complete trial (default)")
    which.add_argument("--top", type=int, metavar="K", help="the K best complete trials")
    which.add_argument(
        "--pareto", action="store_true", help="every complete trial not beaten on both accuracy and parameter count"
    )
    which.add_argument("--trial", type=int, metavar="N", help="trial number N (must be complete)")
    p.add_argument(
        "--out", required=True, help="a .yaml file for one config, or a folder (files named trial-N_H1-H2-...yaml)"
    )
    return p


def selection_from_args(args: argparse.Namespace) -> Selection:
    if args.trial is not None:
        return Selection("trial", args.trial)
    if args.top is not None:
        return Selection("top", args.top)
    if args.pareto:
        return Selection("pareto")
    return Selection("best")


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        selection = selection_from_args(args)
        check_study_name(args.study_name)
        out = Path(args.out)  # usable before the storage is opened: a refusal then writes nothing anywhere
        (writable_file if out.suffix in (".yaml", ".yml") else writable_folder)(out, "--out")
        url = args.storage or default_storage(args.study_name)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = load_existing_study(open_storage(url, heartbeat=False, create=False), args.study_name)
        configs = export_configs(study, selection, storage_url=mask_url(url))
        paths = write_configs(configs, args.out)
        for config, path in zip(configs, paths):
            acc = config.provenance.get("search_accuracy")
            print(
                f"{path}  trial {config.provenance.get('trial')} {config.schedule.label()}  search accuracy "
                f"{100 * acc:.2f} %  -> {plural(config.recipe.epochs, 'epoch')}"
                if acc is not None
                else str(path)
            )
        judged = study_answer(study) if selection.kind == "best" else None
        if judged is not None:
            print(
                f"answer: {judged.set_text()}; seed sd {judged.seed_sd_text()}; expected regret of the named list "
                f"{100 * judged.expected_regret:.2f} points"
            )
        print("\nnext:")
        for path in paths:
            print(f"  lwl-train --config {shlex.quote(str(path))}")
        return 0

    return run_command("lwl-export", body)
