"""Views of a study: the self-contained HTML report (`lwl-report`) and its figures saved for optuna-dashboard.

This layer only reads the storage through lwl.search's helpers; it never builds or trains a network.
"""

from ._figures import FIGURE_IDS, TrialRow, memory_estimate
from ._report import (
    ReportData,
    ReportError,
    ReportResult,
    build_figures,
    find_sibling_studies,
    header_html,
    load_report_data,
    open_study,
    render_html,
    save_dashboard_figures,
    write_report,
)

__all__ = [
    "FIGURE_IDS",
    "ReportData",
    "ReportError",
    "ReportResult",
    "TrialRow",
    "build_figures",
    "find_sibling_studies",
    "header_html",
    "load_report_data",
    "memory_estimate",
    "open_study",
    "render_html",
    "save_dashboard_figures",
    "write_report",
]
