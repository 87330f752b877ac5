"""The engine: schedules, the networks they make, and layer-wise training. Knows nothing of Optuna.

Describing a network (schedules, recipes, configs, cost counting, the data sets' and the paper's tables, the errors)
needs no torch and loads none; the names that build, load or train import it on first use (`_LAZY`)."""

import importlib
import os
from typing import TYPE_CHECKING, Any

# Before torch loads its OpenMP runtime: idle OpenMP threads sleep instead of spinning. With spinning (the default),
# two CPU trainings on 2 busy cores ran 4x slower each than alone (lwl-train on digits: 90 s against 22 s); with
# PASSIVE 35 s, and a run alone is as fast as before (21 s). An explicit setting of the user's wins; importing
# torch before lwl.models leaves torch's runtime as it is.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._aux import AUX_NETS, AuxDesign, aux_cost, aux_designs, check_aux
from ._config import TrainingConfig, load_config
from ._datasets import DATASETS, DatasetInfo, dataset_info
from ._errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DeviceError,
    Diverged,
    LwlError,
    OutputError,
    RecipeError,
    ResumeError,
    ScheduleError,
    TooLargeError,
    TrainingError,
    UsageError,
    interrupted,
)
from ._files import FileStore, writable_file, writable_folder
from ._paper import PAPER_RESULTS, PaperResult, paper_results
from ._plan import (
    Complexity,
    HeadSpec,
    StageInfo,
    UnitPlan,
    complexity,
    derive_seed,
    head_descriptions,
    unit_keys,
    unit_plan,
)
from ._recipe import (
    ACTIVATIONS,
    DROPOUT_KINDS,
    LOSSES,
    MODES,
    NORMALISATIONS,
    OPTIMIZERS,
    PAPER_MILESTONES,
    PRECISIONS,
    RECIPE_FIELDS,
    RECIPE_RANGES,
    REFERENCE_FIELDS,
    REFERENCE_NORMALISATION,
    Recipe,
    paper_recipe,
)
from ._records import Progress, RunResult
from ._schedule import (
    BLOCKS,
    DOWNSAMPLES,
    FAMILIES,
    FIRST_CONVS,
    LOCAL_UNITS,
    PRESETS,
    SCHEDULE_FIELDS,
    Preset,
    Schedule,
    extras_phrases,
    format_widths,
    get_preset,
    make_schedule,
    parse_int_list,
    parse_widths,
)
from ._secrets import has_secret, mask_secrets, mask_url
from ._state import TrainerState, check_resumable, progress_from_dict
from ._text import percent, plural

# What needs torch (building, loading, training, checkpoints) is imported on first use of one of its names, so that
# describing a network, counting its cost or reading a study never loads torch (PEP 562). Name -> its module.
_LAZY = {
    **dict.fromkeys(("RunDir", "load_checkpoint", "save_checkpoint"), "_checkpoint"),
    **dict.fromkeys(("DataSplits", "import_torchvision", "load_data", "splits_from_images"), "_data"),
    **dict.fromkeys(("check_memory", "cpu_flags", "native_bf16", "resolve_device", "resolve_precision"), "_device"),
    **dict.fromkeys(("sim_loss", "similarity_matrix"), "_losses"),
    **dict.fromkeys(("LocalNet", "build_network", "conv1x1"), "_network"),
    **dict.fromkeys(("PrefixSession", "PrefixStore", "data_fingerprint"), "_prefix"),
    "check_state": "_resume",
    **dict.fromkeys(("TogetherOutcome", "train_together"), "_together"),
    "train": "_trainer",
}

if TYPE_CHECKING:
    from ._checkpoint import RunDir, load_checkpoint, save_checkpoint
    from ._data import DataSplits, import_torchvision, load_data, splits_from_images
    from ._device import check_memory, cpu_flags, native_bf16, resolve_device, resolve_precision
    from ._losses import sim_loss, similarity_matrix
    from ._network import LocalNet, build_network, conv1x1
    from ._prefix import PrefixSession, PrefixStore, data_fingerprint
    from ._resume import check_state
    from ._together import TogetherOutcome, train_together
    from ._trainer import train


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AUX_NETS",
    "BLOCKS",
    "DATASETS",
    "DOWNSAMPLES",
    "FAMILIES",
    "FIRST_CONVS",
    "LOCAL_UNITS",
    "LOSSES",
    "MODES",
    "PAPER_MILESTONES",
    "ACTIVATIONS",
    "DROPOUT_KINDS",
    "NORMALISATIONS",
    "OPTIMIZERS",
    "RECIPE_FIELDS",
    "RECIPE_RANGES",
    "REFERENCE_FIELDS",
    "REFERENCE_NORMALISATION",
    "PAPER_RESULTS",
    "PRECISIONS",
    "PRESETS",
    "SCHEDULE_FIELDS",
    "AuxDesign",
    "CheckpointError",
    "Complexity",
    "ConfigError",
    "DataError",
    "DataSplits",
    "DatasetInfo",
    "DeviceError",
    "FileStore",
    "Diverged",
    "HeadSpec",
    "LocalNet",
    "LwlError",
    "OutputError",
    "PaperResult",
    "PrefixSession",
    "PrefixStore",
    "Preset",
    "Progress",
    "Recipe",
    "RecipeError",
    "ResumeError",
    "RunDir",
    "RunResult",
    "Schedule",
    "ScheduleError",
    "StageInfo",
    "TogetherOutcome",
    "TooLargeError",
    "TrainerState",
    "TrainingConfig",
    "TrainingError",
    "UnitPlan",
    "UsageError",
    "aux_cost",
    "aux_designs",
    "build_network",
    "check_aux",
    "conv1x1",
    "check_resumable",
    "check_state",
    "check_memory",
    "complexity",
    "cpu_flags",
    "data_fingerprint",
    "dataset_info",
    "import_torchvision",
    "derive_seed",
    "get_preset",
    "has_secret",
    "head_descriptions",
    "interrupted",
    "load_checkpoint",
    "load_config",
    "load_data",
    "extras_phrases",
    "format_widths",
    "make_schedule",
    "mask_secrets",
    "mask_url",
    "native_bf16",
    "paper_recipe",
    "paper_results",
    "parse_int_list",
    "parse_widths",
    "percent",
    "plural",
    "progress_from_dict",
    "resolve_device",
    "resolve_precision",
    "save_checkpoint",
    "sim_loss",
    "similarity_matrix",
    "splits_from_images",
    "train",
    "train_together",
    "unit_keys",
    "unit_plan",
    "writable_file",
    "writable_folder",
]
