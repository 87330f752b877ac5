"""A training config: the one file that says how to train a found schedule in full, and where it came from.

`lwl-export` writes one per selected trial; `lwl-train --config` reads it. It holds the schedule, the paper's full
recipe for the data set (Section V: Adam, 400 epochs on CIFAR, step decay ×0.25 at 50/75/89/94 %) and the
provenance (study, trial, search accuracy, storage URL without its password). The YAML is validated field by
field, so a hand-edited file fails with one line that names the field, before any data is loaded.
"""

from __future__ import annotations

import math
import os
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ._datasets import DATASETS, dataset_info
from ._errors import ConfigError, DataError, RecipeError, ScheduleError
from ._fields import Invalid, ListOf, Maybe, Range, Spec
from ._files import atomic_write
from ._recipe import RECIPE_FIELDS, Recipe, paper_recipe
from ._schedule import SCHEDULE_FIELDS, Schedule
from ._secrets import mask_secrets

CONFIG_VERSION = 1
_HEADER = (
    "# lwl-search training config: a schedule with the paper's full training recipe (Ma et al. 2020, Section V).\n"
    "# Train it with: lwl-train --config {name}\n"
)


@dataclass(frozen=True)
class TrainingConfig:
    """What `lwl-train --config` trains: a schedule, its full recipe, and where the schedule came from.

    `provenance` is free-form but YAML-plain (study, trial, search_accuracy, search_epochs, storage, exported_at
    when exported); every string in it is stored with URL passwords masked. `data_root` is where the data set's
    files are, as the search was given it (`--data-root`; a relative path is read from the directory lwl-train
    runs in); None: lwl-train's default ($LWL_DATA or ~/.cache/lwl/data). `lwl-train --data-root` overrides it.
    """

    schedule: Schedule
    recipe: Recipe
    provenance: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            raise ConfigError(f"config: schedule must be a Schedule, got {type(self.schedule).__name__}")
        if not isinstance(self.recipe, Recipe):
            raise ConfigError(f"config: recipe must be a Recipe, got {type(self.recipe).__name__}")
        if not isinstance(self.provenance, Mapping):
            raise ConfigError(f"config: field provenance: must be a mapping, got {type(self.provenance).__name__}")
        _check_fits_dataset("config", self.schedule, self.recipe.dataset)
        object.__setattr__(self, "provenance", _plain_provenance("config", dict(self.provenance), "provenance"))
        if self.data_root is not None and (not isinstance(self.data_root, str) or not self.data_root.strip()):
            raise ConfigError(f"config: field data_root: must be a folder path, got {reprlib.repr(self.data_root)}")

    @property
    def dataset(self) -> str:
        return self.recipe.dataset

    @property
    def optimizer(self) -> str:
        return self.recipe.optimizer

    def with_epochs(self, epochs: int | None) -> TrainingConfig:
        """The same config trained for `epochs` (None: unchanged); what `lwl-train --epochs` does."""
        if epochs is None or epochs == self.recipe.epochs:
            return self
        try:
            return replace(self, recipe=replace(self.recipe, epochs=epochs))
        except RecipeError as exc:
            raise ConfigError(f"--epochs {epochs}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        recipe = self.recipe.to_dict()
        recipe.pop("optimizer", None)  # written second, always (adam by default, as before the reference's options)
        ordered = {"dataset": recipe.pop("dataset"), "optimizer": self.optimizer, **recipe}
        data_root = {} if self.data_root is None else {"data_root": self.data_root}
        return {
            "version": CONFIG_VERSION,
            "schedule": self.schedule.to_dict(),
            "recipe": ordered,
            **data_root,
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> TrainingConfig:
        """Validate a mapping as read from YAML; raises ConfigError('SOURCE: field a.b: ...') on the first problem."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping with schedule and recipe, got {_kind(data)}")
        _unknown(source, data, {"version", "schedule", "recipe", "data_root", "provenance"}, "")
        version = data.get("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ConfigError(
                f"{source}: field version: this lwl-train reads version {CONFIG_VERSION}, got {reprlib.repr(version)}"
            )
        for name in ("schedule", "recipe"):
            if name not in data:
                raise ConfigError(f"{source}: missing field {name}")
            if not isinstance(data[name], Mapping):
                raise ConfigError(f"{source}: field {name}: must be a mapping, got {_kind(data[name])}")
        recipe_data = data["recipe"]
        if "dataset" not in recipe_data:
            raise ConfigError(f"{source}: missing field recipe.dataset")
        dataset = _choice(source, "recipe.dataset", recipe_data["dataset"], tuple(DATASETS))
        schedule = _schedule_from(source, data["schedule"], dataset)
        recipe = _recipe_from(source, recipe_data, dataset, schedule.family)
        provenance = data.get("provenance") or {}
        if not isinstance(provenance, Mapping):
            raise ConfigError(f"{source}: field provenance: must be a mapping, got {_kind(provenance)}")
        data_root = data.get("data_root")
        if data_root is not None and (not isinstance(data_root, str) or not data_root.strip()):
            raise ConfigError(f"{source}: field data_root: must be a folder path, got {reprlib.repr(data_root)}")
        return cls(schedule, recipe, _plain_provenance(source, dict(provenance), "provenance"), data_root)

    def to_yaml(self, name: str = "FILE") -> str:
        body = yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
        return _HEADER.format(name=name) + body

    def save_yaml(self, path: str | os.PathLike[str]) -> Path:
        """Write the config atomically (a reader never sees half a file); returns the path."""
        path = Path(path)
        atomic_write(path, lambda f: f.write(self.to_yaml(str(path)).encode()))
        return path


class _Dumper(yaml.SafeDumper):
    """Block mappings with lists on one line ([1, 1, 2, 4]): the layout a person edits."""


_Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def load_config(path: str | os.PathLike[str]) -> TrainingConfig:
    """Read and validate a config written by `save_yaml` or by hand (`yaml.safe_load`: no Python objects)."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file: give the path lwl-export printed") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read it ({type(exc).__name__}: {exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({_yaml_reason(exc)}): fix the file") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read: expected a mapping with schedule and recipe") from None
    if data is None:
        raise ConfigError(f"{source}: the file is empty: expected a mapping with schedule and recipe")
    return TrainingConfig.from_dict(data, source)


# ------------------------------------------------------------------------------------------------ validation
def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), type(value).__name__)


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(problem).split())


def _unknown(source: str, data: Mapping[str, Any], known: set[str], prefix: str) -> None:
    extra = [k for k in data if k not in known]
    if extra:
        raise ConfigError(f"{source}: unknown field {prefix}{extra[0]}: allowed are {', '.join(sorted(known))}")


def _fail(source: str, path: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: field {path}: {message}")


def _int(source: str, path: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(source, path, f"must be an integer, got {reprlib.repr(value)}")
    if minimum is not None and value < minimum:
        raise _fail(source, path, f"must be at least {minimum}, got {value}")
    return value


def _choice(source: str, path: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _fail(source, path, f"must be one of {', '.join(choices)}, got {reprlib.repr(value)}")
    return value


def _int_list(source: str, path: str, value: Any, minimum: int) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(source, path, f"must be a non-empty list of integers, got {reprlib.repr(value)}")
    for i, v in enumerate(value):
        _int(source, f"{path}[{i}]", v, minimum)
    return tuple(value)


_SHAPE = ("num_classes", "in_channels", "input_size")  # the data set's: checked against it


def _schedule_from(source: str, data: Mapping[str, Any], dataset: str) -> Schedule:
    fields = set(Schedule.__dataclass_fields__)
    _unknown(source, data, fields, "schedule.")
    for name in ("hierarchy", "family"):
        if name not in data:
            raise ConfigError(f"{source}: missing field schedule.{name}")
    hierarchy = _int_list(source, "schedule.hierarchy", data["hierarchy"], 1)
    family = _checked(source, "schedule.family", SCHEDULE_FIELDS["family"], data["family"])
    values: dict[str, Any] = {"hierarchy": hierarchy, "family": family}
    if data.get("block") is not None:
        values["block"] = _checked(source, "schedule.block", SCHEDULE_FIELDS["block"], data["block"])
        if family == "vgg" and values["block"] != "basic":
            raise _fail(
                source,
                "schedule.block",
                f"{values['block']} applies to the resnet family only: use basic or leave it out for vgg",
            )
    if data.get("widths") is not None:
        widths = _int_list(source, "schedule.widths", data["widths"], 1)
        if len(widths) != len(hierarchy):
            raise _fail(source, "schedule.widths", f"needs one width per stage ({len(hierarchy)}), got {len(widths)}")
        values["widths"] = widths
    for name in [n for n in SCHEDULE_FIELDS if n not in ("family", "block", *_SHAPE)]:  # downsample, conv_bias, ...
        if data.get(name) is not None:
            values[name] = _checked(source, f"schedule.{name}", SCHEDULE_FIELDS[name], data[name])
    if data.get("lead_widths") is not None:
        lead = data["lead_widths"]
        if not isinstance(lead, (list, tuple)) or len(lead) != len(hierarchy):
            example = "e.g. [[128], [256], [], []]"
            raise _fail(source, "schedule.lead_widths", f"needs one list per stage ({len(hierarchy)}), {example}")
        values["lead_widths"] = tuple(
            _int_list(source, f"schedule.lead_widths[{i}]", t, 1) if t else () for i, t in enumerate(lead)
        )
    if data.get("fc_units") is not None:
        fc = data["fc_units"]
        values["fc_units"] = _int_list(source, "schedule.fc_units", fc, 1) if fc else ()
    info = dataset_info(dataset)
    for name, expected, what in (
        ("num_classes", info.num_classes, "classes"),
        ("in_channels", info.in_channels, "input channels"),
        ("input_size", info.input_size, "pixels a side"),
    ):
        if data.get(name) is not None:
            given = _checked(source, f"schedule.{name}", SCHEDULE_FIELDS[name], data[name])
            if given != expected:
                raise _fail(source, f"schedule.{name}", f"{dataset} has {expected} {what}, got {given}")
        values[name] = expected
    try:
        return Schedule(**values)
    except ScheduleError as exc:
        raise ConfigError(f"{source}: field schedule.{exc.field}: {exc}") from None


def _recipe_from(source: str, data: Mapping[str, Any], dataset: str, family: str) -> Recipe:
    """Validate every given field; the ones left out take the paper's value for the data set and family."""
    _unknown(source, data, set(Recipe.__dataclass_fields__), "recipe.")
    v: dict[str, Any] = {}
    for name, spec in RECIPE_FIELDS.items():
        if name not in data or name == "dataset":  # the data set: checked by the caller, paper_recipe's argument
            continue
        value = data[name]
        if value is None and not isinstance(spec, Maybe):
            raise _fail(source, f"recipe.{name}", "must be given a value (or be left out for the paper's)")
        v[name] = _checked(source, f"recipe.{name}", spec, _yaml_numbers(spec, value))
    try:
        return paper_recipe(dataset, family, **v)
    except (RecipeError, DataError) as exc:
        raise ConfigError(f"{source}: recipe: {exc}") from None


def _checked(source: str, path: str, spec: Spec, value: Any) -> Any:
    """The field's own declaration (`RECIPE_FIELDS`, `SCHEDULE_FIELDS`) applied: its value, or the one line
    'SOURCE: field PATH: REASON, got VALUE'."""
    try:
        return spec.normalise(value)
    except Invalid as exc:
        raise _fail(source, path + exc.where, exc.detail()) from None


def _yaml_numbers(spec: Spec, value: Any) -> Any:
    """A number YAML 1.1 reads as text ('3e-4': an exponent without a dot) as the number, where `spec` (or a list
    of it) takes floats; anything else unchanged, for the spec to judge."""
    inner = spec.spec if isinstance(spec, Maybe) else spec
    if isinstance(inner, ListOf) and isinstance(value, list):
        return [_yaml_numbers(inner.item, one) for one in value]
    if isinstance(inner, Range) and inner.kind is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check_fits_dataset(source: str, schedule: Schedule, dataset: str) -> None:
    try:
        info = dataset_info(dataset)
    except DataError as exc:
        raise ConfigError(f"{source}: field recipe.dataset: {exc}") from None
    for name, expected in (
        ("num_classes", info.num_classes),
        ("in_channels", info.in_channels),
        ("input_size", info.input_size),
    ):
        if getattr(schedule, name) != expected:
            raise _fail(source, f"schedule.{name}", f"{dataset} needs {expected}, got {getattr(schedule, name)}")


# Provenance is free-form, but what a config can hold is bounded: YAML aliases let a few lines name billions of
# values (the "billion laughs"), which a walk over them would never finish.
MAX_PROVENANCE_VALUES = 10_000
MAX_PROVENANCE_DEPTH = 32


def _plain_provenance(source: str, value: Any, path: str, _count: list[int] | None = None, _depth: int = 0) -> Any:
    """YAML-plain values only (so safe_load reads them back), and URL passwords masked in every string; at most
    `MAX_PROVENANCE_VALUES` values, nested at most `MAX_PROVENANCE_DEPTH` deep."""
    count = [0] if _count is None else _count
    count[0] += 1
    if count[0] > MAX_PROVENANCE_VALUES or _depth > MAX_PROVENANCE_DEPTH:
        raise _fail(
            source,
            "provenance",
            f"holds more than {MAX_PROVENANCE_VALUES:,} values or is nested more than {MAX_PROVENANCE_DEPTH} deep "
            "(YAML aliases?): keep what lwl-export wrote there",
        )
    if isinstance(value, str):
        return mask_secrets(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_plain_provenance(source, v, f"{path}[{i}]", count, _depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _fail(source, path, f"keys must be strings, got {reprlib.repr(k)}")
            out[k] = _plain_provenance(source, v, f"{path}.{k}", count, _depth + 1)
        return out
    raise _fail(source, path, f"must be plain YAML data (text, numbers, lists, mappings), got {type(value).__name__}")
