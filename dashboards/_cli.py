"""`lwl-report`: parse flags and write one study's HTML report (logic in _report, _load, _figures, _render)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import optuna

from lwl.models.cli import Parser, run_command, writable_file
from lwl.search import StorageError, check_study_name, dashboard_command, default_storage

from ._report import write_report


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="lwl-report",
        description="Write one self-contained HTML report of an lwl-search study (opens offline), and save its "
        "figures to the study for optuna-dashboard.",
        epilog="examples, after lwl-search --preset digits-quick:\n"
        "  lwl-report --study-name digits-resnet-b12-s4            # reads sqlite:///studies/digits-resnet-b12-s4.db\n"
        "  lwl-report --storage sqlite:///studies/digits-resnet-b12-s4.db --out report.html",
    )
    p.add_argument(
        "--storage", help="the study's storage URL, as given to lwl-search (default sqlite:///studies/STUDY.db)"
    )
    p.add_argument("--study-name", help="the study (may be left out when the storage holds only one)")
    p.add_argument("--out", help="the HTML file to write (default STUDY-report.html in the current directory)")
    p.add_argument(
        "--no-dashboard",
        action="store_true",
        help="do not save the figures to the study for optuna-dashboard (the report then only reads)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # as every command: Optuna's warnings, not its news
        if args.storage is None and args.study_name is None:
            raise StorageError("give --storage URL or --study-name NAME (or both)")
        if args.study_name is not None:
            check_study_name(args.study_name)
        if args.out is not None:  # before the storage is opened: a refusal reads and writes nothing
            writable_file(args.out, "--out")
        storage = args.storage or default_storage(args.study_name)
        result = write_report(storage, args.study_name, args.out, dashboard=not args.no_dashboard)
        d = result.data
        counts = ", ".join(f"{n} {s}" for s, n in d.counts.items())
        print(f"lwl-report: study {d.study_name!r} ({counts}): wrote {result.path} with {len(result.figures)} figures")
        if result.saved:
            print(
                f"  saved {len(result.saved)} figures to the study for optuna-dashboard: "
                f"{dashboard_command(storage, d.user_attrs)}"
            )
        return 0

    return run_command("lwl-report", body)
