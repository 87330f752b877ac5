"""The study: feasible hierarchy lists, the sampler, the objective, storage and the `lwl-search` command.

Importing it loads neither torch (the engine imports it where a trial trains) nor the commands (`_console`: only
its `display`, the answer's words): the command's flags (`parse_search_flags`) load on first use (PEP 562)."""

from typing import TYPE_CHECKING, Any

from ._answer.model import SET_LEVEL, Answer, Belief, Evidence, Round, answer, extrapolate, race_round, round_sizes
from ._answer.ranking import (
    Confirmed,
    Verdict,
    confirm_study,
    confirm_study_name,
    confirmed,
    study_answer,
    top_trials,
    verdict,
)
from ._answer.stats import (
    Estimate,
    PairedTest,
    estimate,
    paired_t_test,
    partial_p,
    partial_spearman,
    rankdata,
    spearman,
    spearman_p,
)
from ._console.display import answer_lines, interval_text
from ._errors import ExportError, PresetError, SettingsError, SpaceError, StorageError, UsageError
from ._export.artifacts import ConfigArtifacts, dashboard_command, default_artifact_dir
from ._export.configs import Selection, export_configs, trial_config
from ._pruning.dominance import DOMINATORS, DominancePruner
from ._pruning.paused import Paused, PausedStore
from ._pruning.pruners import PRUNERS, make_pruner, median_warmup
from ._sampling.costs import COSTS, CostModel, front_costs, hypervolume, normaliser, parse_objectives
from ._sampling.pareto import pareto_front, pareto_indices, pareto_study_name
from ._sampling.sampler import (
    REVISIT_ATTR,
    SAMPLERS,
    FeasibleSampler,
    SpaceExhausted,
    make_sampler,
    remaining,
    revisit_of,
    stop_when_exhausted,
    trial_hierarchy,
    validate_enqueued,
)
from ._space.feasible import (
    CONSTRAINTS,
    MAX_LISTS,
    PAPER_HIERARCHIES,
    SearchSpace,
    paper_baselines,
    smallest_feasible_budget,
)
from ._space.limits import CostLimits, memory_estimate, parse_amount
from ._space.settings import SEARCH_EPOCHS, StudySettings, default_widths
from ._storage.attributes import (
    ARTIFACT_DIR_ATTR,
    DERIVED_ATTR,
    FEASIBLE_ATTR,
    INTERMEDIATE_ATTR,
    OBJECTIVE_ATTR,
    SETTINGS_ATTR,
    STATE_NAMES,
    STORAGE_ATTR,
    VALIDATION_ATTR,
    StudyError,
    TrialRecord,
    hierarchy_of,
    read_settings,
    read_trial,
)
from ._storage.backends import (
    check_study_name,
    default_storage,
    load_existing_study,
    mask_url,
    open_storage,
    require_existing,
)
from ._storage.optuna_private import OptunaVersionError
from ._study.confirm import ConfirmOutcome, ConfirmPlan, auto_plan, confirm_seeds, run_confirmation
from ._study.run import (
    Objective,
    SearchOutcome,
    count_finished,
    enqueue_lists,
    largest_baseline,
    prepare_study,
    run_search,
)

if TYPE_CHECKING:
    from ._console.flags import parse_search_flags


def __getattr__(name: str) -> Any:
    if name == "parse_search_flags":  # lwl-search's flags: the command layer, loaded only when a script asks for it
        from ._console.flags import parse_search_flags

        return parse_search_flags
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"parse_search_flags"})


__all__ = [
    "SET_LEVEL",
    "study_answer",
    "answer_lines",
    "interval_text",
    "Answer",
    "Belief",
    "Evidence",
    "Round",
    "answer",
    "extrapolate",
    "race_round",
    "round_sizes",
    "COSTS",
    "DOMINATORS",
    "CostModel",
    "DominancePruner",
    "front_costs",
    "hypervolume",
    "normaliser",
    "parse_objectives",
    "partial_p",
    "partial_spearman",
    "rankdata",
    "spearman",
    "spearman_p",
    "CostLimits",
    "memory_estimate",
    "parse_amount",
    "ConfirmOutcome",
    "ConfirmPlan",
    "Confirmed",
    "Estimate",
    "PairedTest",
    "Verdict",
    "auto_plan",
    "confirm_seeds",
    "confirm_study",
    "confirm_study_name",
    "confirmed",
    "estimate",
    "paired_t_test",
    "run_confirmation",
    "verdict",
    "CONSTRAINTS",
    "MAX_LISTS",
    "PAPER_HIERARCHIES",
    "PRUNERS",
    "REVISIT_ATTR",
    "SAMPLERS",
    "ARTIFACT_DIR_ATTR",
    "DERIVED_ATTR",
    "FEASIBLE_ATTR",
    "INTERMEDIATE_ATTR",
    "OBJECTIVE_ATTR",
    "SEARCH_EPOCHS",
    "SETTINGS_ATTR",
    "STATE_NAMES",
    "STORAGE_ATTR",
    "VALIDATION_ATTR",
    "ConfigArtifacts",
    "ExportError",
    "FeasibleSampler",
    "Objective",
    "OptunaVersionError",
    "Paused",
    "PausedStore",
    "PresetError",
    "SearchOutcome",
    "SearchSpace",
    "Selection",
    "SettingsError",
    "SpaceError",
    "SpaceExhausted",
    "StorageError",
    "StudyError",
    "StudySettings",
    "TrialRecord",
    "UsageError",
    "check_study_name",
    "count_finished",
    "dashboard_command",
    "default_artifact_dir",
    "default_storage",
    "default_widths",
    "enqueue_lists",
    "export_configs",
    "hierarchy_of",
    "largest_baseline",
    "load_existing_study",
    "make_pruner",
    "make_sampler",
    "mask_url",
    "median_warmup",
    "open_storage",
    "paper_baselines",
    "pareto_front",
    "pareto_indices",
    "pareto_study_name",
    "parse_search_flags",
    "prepare_study",
    "read_settings",
    "read_trial",
    "remaining",
    "require_existing",
    "revisit_of",
    "run_search",
    "smallest_feasible_budget",
    "stop_when_exhausted",
    "top_trials",
    "trial_config",
    "trial_hierarchy",
    "validate_enqueued",
]
