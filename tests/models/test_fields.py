"""A setting declared once: every field of `Recipe` and `Schedule` takes the same values wherever it is given.

For each field, a valid value other than its default survives construction, `save_yaml` and `load_config`
unchanged; a value out of range is one error at construction naming the field, the value and what is allowed, and
the same value in a config file is the config reader's one line (`lwl-train --config`: exit 2, nothing written).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from lwl.models import (
    ConfigError,
    Recipe,
    RecipeError,
    Schedule,
    ScheduleError,
    TrainingConfig,
    dataset_info,
    load_config,
)
from lwl.models.commands import train_main

# Per Recipe field: a valid value other than the default, and what other fields it needs to be valid.
RECIPE_VALID: dict[str, tuple[Any, dict[str, Any]]] = {
    "dataset": ("cifar10", {}),
    "loss": ("pred", {}),
    "mode": ("sequential", {}),
    "epochs": (3, {}),
    "batch_size": (32, {}),
    "lr": (1e-3, {}),
    "dropout": (0.25, {}),
    "weight_decay": (5e-4, {}),
    "lr_milestones": ((0.5, 0.8), {}),
    "lr_gamma": (0.1, {}),
    "beta": (0.5, {}),
    "aux_convs": (2, {}),
    "dim_in_decoder": (512, {}),
    "augment": (("flip",), {}),
    "val_fraction": (0.0, {}),
    "seed": (2**32 - 1, {}),
    "eval_batch_size": (256, {}),
    "precision": ("fp32", {}),
    "train_limit": (100, {}),
    "optimizer": ("sgd", {}),
    "momentum": (0.9, {"optimizer": "sgd"}),
    "activation": ("relu", {}),
    "dropout_kind": ("channel", {}),
    "similarity_std": (False, {}),
    "label_smoothing": (0.1, {}),
    "zero_init_output": (True, {}),
    "cutout": (8, {}),
    "cutout_holes": (2, {}),
    "lr_milestone_epochs": ((2, 3), {}),
    "normalisation": ("reference", {"dataset": "cifar10"}),
    "aux_net": ("dgl", {"loss": "pred"}),
}

# Per Recipe field: values out of range, each refused on its own (YAML-writable: lists, not tuples).
RECIPE_BAD: dict[str, list[Any]] = {
    "dataset": ["imagenet", 3],
    "loss": ["hinge", None],
    "mode": ["greedy"],
    "epochs": [0, 2.5, True, "3"],
    "batch_size": [0, 1.5],
    "lr": [0, -1e-3, float("inf"), "fast"],
    "dropout": [1.0, -0.1],
    "weight_decay": [-1.0, float("nan")],
    "lr_milestones": [[1.5], "0.5", [0.5, None]],
    "lr_gamma": [0.0],
    "beta": [1.5, -0.5],
    "aux_convs": [-1, 33, 2.5, False],
    "dim_in_decoder": [0],
    "augment": [["rotate"], "flip"],
    "val_fraction": [0.9, -0.1, "a"],
    "seed": [-1, 2**32, 0.5],
    "eval_batch_size": [0],
    "precision": ["fp8"],
    "train_limit": [0, 2.5, -3],
    "optimizer": ["rmsprop", "Adam"],
    "momentum": [1.0, -0.1],
    "activation": ["gelu"],
    "dropout_kind": ["block"],
    "similarity_std": ["no", 0],
    "label_smoothing": [1.0],
    "zero_init_output": [1],
    "cutout": [-1, 1.5],
    "cutout_holes": [0],
    "lr_milestone_epochs": [[3, 2], [-1], [1.5], 4],
    "normalisation": ["imagenet"],
    "aux_net": ["resnet"],
}

# Per Schedule field: a valid value other than the default, and the other fields it needs (digits: 16 pixels).
SCHEDULE_VALID: dict[str, tuple[Any, dict[str, Any]]] = {
    "hierarchy": ((2, 1, 1), {}),
    "family": ("vgg", {}),
    "block": ("bottleneck", {}),
    "widths": ((8, 16, 32, 32), {}),
    "downsample": ("avgpool", {}),
    "lead_widths": (((4,), (), (), ()), {"hierarchy": (2, 1, 1, 1), "widths": (8, 16, 32, 32)}),
    "fc_units": ((32,), {"hierarchy": (1, 1, 1)}),
    "conv_bias": (True, {"family": "vgg"}),
    "local_unit": ("conv", {}),
    "first_conv": ("7x7s2", {"family": "vgg", "hierarchy": (1, 1, 1)}),
    "width_mult": (1.5, {}),
    # The data set's: a config states the data set's own (any other is refused); other values in SCHEDULE_BAD.
    "num_classes": (10, {}),
    "in_channels": (1, {}),
    "input_size": (16, {}),
}

SCHEDULE_BAD: dict[str, list[Any]] = {
    "hierarchy": [[], [1, 0], [1, 1.5], "x"],
    "family": ["mlp", 1],
    "block": ["wide"],
    "widths": [[8, 16], [8, 0, 16, 32]],
    "downsample": ["stride"],
    "lead_widths": [[[4]], [[0], [], [], []]],
    "fc_units": [[0], [-5]],
    "conv_bias": ["yes", 1],
    "local_unit": ["layer"],
    "first_conv": ["5x5"],
    "width_mult": [0, -0.5, float("nan"), "2", True],
    "num_classes": [1, True, 2.5],
    "in_channels": [0, True],
    "input_size": [0, "16"],
}

BASE = {"hierarchy": (1, 1, 1, 1), "widths": (8, 8, 8, 8)}


def _schedule(dataset: str = "digits", **fields: Any) -> Schedule:
    info = dataset_info(dataset)
    data = dict(num_classes=info.num_classes, in_channels=info.in_channels, input_size=info.input_size)
    values = {**BASE, **data, **fields}
    if "hierarchy" in fields and "widths" not in fields:
        values["widths"] = (8,) * len(values["hierarchy"])
    return Schedule(**values)


def _round_trip(tmp_path: Path, config: TrainingConfig) -> TrainingConfig:
    path = config.save_yaml(tmp_path / "config.yaml")
    return load_config(path)


def test_every_field_is_covered():
    assert set(RECIPE_VALID) == set(RECIPE_BAD) == {f.name for f in dataclasses.fields(Recipe)}
    assert set(SCHEDULE_VALID) == set(SCHEDULE_BAD) == {f.name for f in dataclasses.fields(Schedule)}


@pytest.mark.parametrize("name", sorted(RECIPE_VALID))
def test_a_valid_recipe_value_survives_save_and_load(tmp_path, name):
    value, needs = RECIPE_VALID[name]
    default = Recipe.__dataclass_fields__[name].default
    assert value != default
    recipe = Recipe(**{**needs, name: value})
    assert getattr(recipe, name) == value
    config = TrainingConfig(_schedule(recipe.dataset), recipe)
    assert _round_trip(tmp_path, config) == config


@pytest.mark.parametrize("name", sorted(SCHEDULE_VALID))
def test_a_valid_schedule_value_survives_save_and_load(tmp_path, name):
    value, needs = SCHEDULE_VALID[name]
    schedule = _schedule(**{**needs, name: value})
    assert getattr(schedule, name) == value
    config = TrainingConfig(schedule, Recipe())
    assert _round_trip(tmp_path, config) == config


def _one_line(text: str, *parts: str) -> None:
    assert "\n" not in text and all(p in text for p in parts), text


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, vs in RECIPE_BAD.items() for v in vs])
def test_a_bad_recipe_value_is_refused_alike_by_the_api_and_the_config_reader(tmp_path, name, value):
    with pytest.raises(RecipeError) as info:
        Recipe(**{name: tuple(value) if isinstance(value, list) else value})
    text = str(info.value)
    _one_line(text, name)
    if value is not None:
        assert "must" in text and ("got" in text or "given" in text), text
    path = _config_with(tmp_path, "recipe", name, value)
    with pytest.raises(ConfigError) as read:
        load_config(path)
    _one_line(str(read.value), str(path), f"recipe.{name}")


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, vs in SCHEDULE_BAD.items() for v in vs])
def test_a_bad_schedule_value_is_refused_alike_by_the_api_and_the_config_reader(tmp_path, name, value):
    fields = {name: tuple(tuple(v) if isinstance(v, list) else v for v in value) if isinstance(value, list) else value}
    with pytest.raises(ScheduleError) as info:
        _schedule(**fields)
    _one_line(str(info.value))
    path = _config_with(tmp_path, "schedule", name, value)
    with pytest.raises(ConfigError) as read:
        load_config(path)
    _one_line(str(read.value), str(path))


def _config_with(tmp_path: Path, part: str, name: str, value: Any) -> Path:
    """A valid config file with `part.name` set to `value`, as a person would edit it."""
    path = TrainingConfig(_schedule(), Recipe(epochs=1)).save_yaml(tmp_path / "edited.yaml")
    data = yaml.safe_load(path.read_text())
    data[part][name] = value
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("name", "value"),
    [("epochs", 2.5), ("aux_convs", -1), ("val_fraction", 0.9), ("train_limit", 0), ("seed", -1)],
)
def test_lwl_train_refuses_a_bad_config_value_in_one_line_and_writes_nothing(tmp_path, capsys, name, value):
    path = _config_with(tmp_path, "recipe", name, value)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        train_main(["--config", str(path), "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    _one_line(err.strip(), f"field recipe.{name}: must")
    assert not out.exists()
