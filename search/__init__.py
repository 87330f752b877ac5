"""The study: feasible hierarchy lists, the sampler, the objective, storage and the `lwl-search` command."""

from ._artifacts import ConfigArtifacts, dashboard_command, default_artifact_dir
from ._cli import SEARCH_EPOCHS, parse_search_flags
from ._errors import ExportError, PresetError, SettingsError, SpaceError, StorageError, UsageError
from ._export import Selection, export_configs, top_trials, trial_config
from ._sampler import (
    REVISIT_ATTR,
    SAMPLERS,
    FeasibleSampler,
    SpaceExhausted,
    TPEFallbackWarning,
    make_sampler,
    remaining,
    revisit_of,
    stop_when_exhausted,
    trial_hierarchy,
    validate_enqueued,
)
from ._settings import StudySettings, default_widths
from ._space import CONSTRAINTS, PAPER_HIERARCHIES, SearchSpace, paper_baselines, smallest_feasible_budget
from ._storage import default_storage, mask_url, open_storage
from ._study import (
    PRUNERS,
    Objective,
    SearchOutcome,
    count_finished,
    enqueue_lists,
    make_pruner,
    median_warmup,
    prepare_study,
    run_search,
)

__all__ = [
    "CONSTRAINTS",
    "PAPER_HIERARCHIES",
    "PRUNERS",
    "PresetError",
    "REVISIT_ATTR",
    "SAMPLERS",
    "SEARCH_EPOCHS",
    "ConfigArtifacts",
    "ExportError",
    "FeasibleSampler",
    "Objective",
    "SearchOutcome",
    "SearchSpace",
    "Selection",
    "SettingsError",
    "SpaceError",
    "SpaceExhausted",
    "StorageError",
    "StudySettings",
    "TPEFallbackWarning",
    "UsageError",
    "count_finished",
    "dashboard_command",
    "default_artifact_dir",
    "default_storage",
    "default_widths",
    "enqueue_lists",
    "export_configs",
    "make_pruner",
    "make_sampler",
    "mask_url",
    "median_warmup",
    "open_storage",
    "paper_baselines",
    "parse_search_flags",
    "prepare_study",
    "remaining",
    "revisit_of",
    "run_search",
    "smallest_feasible_budget",
    "stop_when_exhausted",
    "top_trials",
    "trial_config",
    "trial_hierarchy",
    "validate_enqueued",
]
