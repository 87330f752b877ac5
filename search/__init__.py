"""The study: feasible hierarchy lists, the sampler, the objective, storage and the `lwl-search` command."""

from ._artifacts import ConfigArtifacts, dashboard_command, default_artifact_dir
from ._export import ExportError, Selection, export_configs, top_trials, trial_config
from ._sampler import SAMPLERS, FeasibleSampler, SpaceExhausted, make_sampler, remaining, validate_enqueued
from ._settings import StudySettings, default_widths
from ._space import CONSTRAINTS, PAPER_HIERARCHIES, SearchSpace, SpaceError, paper_baselines, smallest_feasible_budget
from ._storage import StorageError, default_storage, mask_url, open_storage
from ._study import PRUNERS, Objective, SearchOutcome, count_finished, make_pruner, prepare_study, run_search

__all__ = [
    "CONSTRAINTS",
    "PAPER_HIERARCHIES",
    "PRUNERS",
    "SAMPLERS",
    "ConfigArtifacts",
    "ExportError",
    "FeasibleSampler",
    "Objective",
    "SearchOutcome",
    "SearchSpace",
    "Selection",
    "SpaceError",
    "SpaceExhausted",
    "StorageError",
    "StudySettings",
    "count_finished",
    "dashboard_command",
    "default_artifact_dir",
    "default_storage",
    "default_widths",
    "export_configs",
    "make_pruner",
    "make_sampler",
    "mask_url",
    "open_storage",
    "paper_baselines",
    "prepare_study",
    "remaining",
    "run_search",
    "smallest_feasible_budget",
    "top_trials",
    "trial_config",
    "validate_enqueued",
]
