"""The study: feasible hierarchy lists, the sampler, the objective, storage and the `lwl-search` command."""

from ._sampler import SAMPLERS, FeasibleSampler, SpaceExhausted, make_sampler, remaining, validate_enqueued
from ._settings import StudySettings, default_widths
from ._space import CONSTRAINTS, PAPER_HIERARCHIES, SearchSpace, SpaceError, paper_baselines, smallest_feasible_budget
from ._storage import StorageError, default_storage, mask_url, open_storage
from ._study import PRUNERS, Objective, SearchOutcome, count_finished, make_pruner, prepare_study, run_search, top_trials

__all__ = [
    "CONSTRAINTS",
    "PAPER_HIERARCHIES",
    "PRUNERS",
    "SAMPLERS",
    "FeasibleSampler",
    "Objective",
    "SearchOutcome",
    "SearchSpace",
    "SpaceError",
    "SpaceExhausted",
    "StorageError",
    "StudySettings",
    "count_finished",
    "default_storage",
    "default_widths",
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
    "validate_enqueued",
]
