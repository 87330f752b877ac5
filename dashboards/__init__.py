"""Views of a study: the self-contained HTML report (`lwl-report`) and its figures saved for optuna-dashboard.

This layer only reads the storage through lwl.search's public helpers; it never builds or trains a network.
Modules: _load (open a study, read its settings and trials, statistics -> ReportData), _rows (TrialRow, the
per-trial view of a TrialRecord), _figures (plotly figures), _render (HTML from the report.html template),
_report (which figures, write_report), _cli (the lwl-report command; commands.report_main runs it in-process).
"""

from ._figures import FIGURE_IDS
from ._load import ReportData, ReportError, find_sibling_studies, load_report_data, open_study
from ._render import global_command, header_html, render_html, table_html
from ._report import ReportResult, build_figures, save_dashboard_figures, write_report
from ._rows import TrialRow, memory_estimate

__all__ = [
    "FIGURE_IDS",
    "ReportData",
    "ReportError",
    "ReportResult",
    "TrialRow",
    "build_figures",
    "find_sibling_studies",
    "global_command",
    "header_html",
    "load_report_data",
    "memory_estimate",
    "open_study",
    "render_html",
    "save_dashboard_figures",
    "table_html",
    "write_report",
]
