"""Training configs: a round trip keeps every field, and every bad field is refused in one line that names it."""

import pytest
import yaml

from lwl.models import (
    PAPER_RESULTS,
    ConfigError,
    Schedule,
    TrainingConfig,
    load_config,
    make_schedule,
    mask_secrets,
    paper_recipe,
    paper_results,
)


def _config(**provenance):
    schedule = Schedule((1, 1, 2, 4), widths=(4, 8, 8, 16), num_classes=10, in_channels=1, input_size=16)
    recipe = paper_recipe("digits", "resnet", epochs=3, augment=("flip",), train_limit=64)
    return TrainingConfig(schedule, recipe, {"study": "s", "trial": 3, "search_accuracy": 0.5, **provenance})


def _write(tmp_path, data, name="config.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_round_trip_through_dict_and_yaml(tmp_path):
    config = _config()
    assert TrainingConfig.from_dict(config.to_dict()) == config
    path = config.save_yaml(tmp_path / "sub" / "c.yaml")
    assert load_config(path) == config and config.dataset == "digits"
    text = path.read_text()
    assert "optimizer: adam" in text and "hierarchy: [1, 1, 2, 4]" in text and "lwl-train --config" in text
    assert [p.name for p in path.parent.iterdir()] == ["c.yaml"], "the atomic write left a temporary file"
    assert config.with_epochs(7).recipe.epochs == 7 and config.with_epochs(None) is config


def test_the_data_root_and_no_validation_split_round_trip(tmp_path):
    """What lwl-export writes for a full run: where the data is, and val_fraction 0 (train on every image)."""
    base = _config()
    config = TrainingConfig(base.schedule, paper_recipe("digits", "resnet", val_fraction=0.0), {}, "~/data")
    path = config.save_yaml(tmp_path / "c.yaml")
    data = yaml.safe_load(path.read_text())
    assert data["data_root"] == "~/data" and data["recipe"]["val_fraction"] == 0
    assert load_config(path) == config
    assert "data_root" not in base.to_dict() and load_config(base.save_yaml(tmp_path / "d.yaml")).data_root is None


def test_a_short_hand_written_config_gets_the_papers_recipe(tmp_path):
    path = _write(
        tmp_path, "schedule:\n  hierarchy: [1, 1, 2, 4]\n  family: resnet\nrecipe:\n  dataset: cifar100\n  lr: 3e-4\n"
    )
    config = load_config(path)
    assert config.recipe.epochs == 400 and config.recipe.lr == 3e-4 and config.recipe.dropout == 0.1
    assert config.recipe.batch_size == 128 and config.recipe.lr_milestones == (0.5, 0.75, 0.89, 0.94)
    assert config.schedule.num_classes == 100 and config.schedule.widths == (64, 128, 256, 512)


def test_passwords_never_reach_the_file(tmp_path):
    config = _config(storage="postgresql://me:s3cret@db:5432/lwl", note=["mysql://a:b@h/x"])
    text = config.save_yaml(tmp_path / "c.yaml").read_text()
    assert "s3cret" not in text and ":b@" not in text and "postgresql://me:***@db:5432/lwl" in text
    assert mask_secrets("redis://h:6379") == "redis://h:6379"


BASE = {
    "version": 1,
    "schedule": {"hierarchy": [1, 1, 2, 4], "family": "resnet", "widths": [4, 8, 8, 16]},
    "recipe": {"dataset": "digits", "optimizer": "adam", "lr": 0.002, "epochs": 3},
}


def _with(path, value):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("recipe.lr", -1, "field recipe.lr: must be positive, got -1"),
        ("recipe.lr", "fast", "field recipe.lr: must be a number"),
        ("recipe.epochs", 0, "field recipe.epochs: must be at least 1"),
        ("recipe.epochs", 2.5, "field recipe.epochs: must be an integer"),
        ("recipe.batch_size", True, "field recipe.batch_size: must be an integer"),
        ("recipe.dropout", 1.0, "field recipe.dropout: must be in [0, 1), got 1.0"),
        ("recipe.optimizer", "rmsprop", "field recipe.optimizer: must be one of adam, amsgrad, sgd"),
        ("recipe.loss", "hinge", "field recipe.loss: must be one of"),
        ("recipe.mode", "greedy", "field recipe.mode: must be one of"),
        ("recipe.lr_milestones", [0.5, 1.5], "field recipe.lr_milestones[1]: must be in [0, 1], got 1.5"),
        ("recipe.augment", ["rotate"], "field recipe.augment[0]: must be one of crop, flip"),
        ("recipe.val_fraction", 0.9, "field recipe.val_fraction: must be in [0, 0.5], got 0.9"),
        ("recipe.val_fraction", -0.1, "field recipe.val_fraction: must be in [0, 0.5], got -0.1"),
        ("data_root", 3, "field data_root: must be a folder path, got 3"),
        ("data_root", " ", "field data_root: must be a folder path"),
        ("recipe.train_limit", 0, "field recipe.train_limit: must be at least 1"),
        ("recipe.seed", None, "field recipe.seed: must be given a value"),
        ("recipe.dataset", "imagenet", "field recipe.dataset: must be one of"),
        ("recipe.lrr", 1, "unknown field recipe.lrr"),
        ("schedule.hierarchy", [1, 0, 2], "field schedule.hierarchy[1]: must be at least 1"),
        ("schedule.hierarchy", [], "field schedule.hierarchy: must be a non-empty list"),
        ("schedule.family", "mlp", "field schedule.family: must be one of vgg, resnet"),
        ("schedule.block", "wide", "field schedule.block: must be one of basic, bottleneck"),
        ("schedule.widths", [4, 8], "field schedule.widths: needs one width per stage (4), got 2"),
        ("schedule.num_classes", 100, "field schedule.num_classes: digits has 10 classes, got 100"),
        ("schedule.downsample", "stride", "field schedule.downsample: must be one of"),
        ("schedule.depth", 3, "unknown field schedule.depth"),
        ("version", 2, "field version: this lwl-train reads version 1, got 2"),
        ("provenance", [1], "field provenance: must be a mapping"),
        ("schedule", "1,1,2,4", "field schedule: must be a mapping"),
        ("schedule.hierarchy", KeyError, "missing field schedule.hierarchy"),
        ("schedule.family", KeyError, "missing field schedule.family"),
        ("recipe.dataset", KeyError, "missing field recipe.dataset"),
        ("recipe", KeyError, "missing field recipe"),
    ],
)
def test_every_bad_field_is_named_in_one_line(tmp_path, field, value, message):
    path = _write(tmp_path, _with(field, value))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text, text
    assert "\n" not in text


def test_a_schedule_the_input_cannot_hold_names_the_hierarchy(tmp_path):
    data = _with("schedule.hierarchy", [1] * 6)
    del data["schedule"]["widths"]
    with pytest.raises(ConfigError, match=r"field schedule.hierarchy: hierarchy \[1, 1, 1, 1, 1, 1\] needs 5"):
        load_config(_write(tmp_path, data))


def test_a_bottleneck_vgg_names_the_block(tmp_path):
    data = _with("schedule.family", "vgg")
    data["schedule"]["block"] = "bottleneck"
    with pytest.raises(ConfigError, match="field schedule.block: bottleneck applies to the resnet family only"):
        load_config(_write(tmp_path, data))


def test_global_loss_needs_simultaneous_mode(tmp_path):
    data = _with("recipe.loss", "global")
    data["recipe"]["mode"] = "sequential"
    with pytest.raises(ConfigError, match="recipe: loss .global. trains end to end: use --mode simultaneous"):
        load_config(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schedule:\n  hierarchy: [1, 1\nrecipe: {}\n", "not valid YAML (line 3"),
        ("schedule: {hierarchy: [1]}\n  recipe: x\n", "not valid YAML (line 2"),
        ("", "the file is empty"),
        ("- 1\n- 2\n", "expected a mapping with schedule and recipe, got a list"),
        ("schedule: !!python/object:os.system {}\n", "not valid YAML"),
    ],
)
def test_bad_yaml_is_one_line(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_missing_file_and_a_config_built_for_another_data_set(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="field schedule.num_classes: cifar100 needs 100, got 10"):
        TrainingConfig(Schedule((1, 1)), paper_recipe("cifar100", "resnet"))


def test_the_papers_tables_are_all_there():
    assert len(PAPER_RESULTS) == 14 + 14 + 6 + 6 + 10 + 11
    r5 = paper_results("cifar100", make_schedule(hierarchy="1,1,2,4", num_classes=100))
    assert [(r.model, r.table, r.layerwise, r.global_) for r in r5] == [("ResNet18_r5", "VI", 69.12, 72.8)]
    base = paper_results("cifar100", make_schedule(preset="resnet18", num_classes=100))
    assert sorted((r.table, r.layerwise) for r in base) == [("IV", 62.32), ("VI", 66.05)]  # the paper disagrees
    r50 = paper_results("cifar10", make_schedule(preset="resnet50"))
    assert {r.layerwise for r in r50} == {85.6} and {r.table for r in r50} == {"III", "V"}
    assert paper_results("cifar10", make_schedule(hierarchy="3,4,6,3")) == []  # basic blocks: not ResNet50
    assert paper_results("cifar10", make_schedule(preset="vgg11"))[0].global_ == 91.6
    # Table I writes VGG8b's FC unit as a fifth entry; Table II does not: both find the preset's network.
    assert [(r.table, r.hierarchy) for r in paper_results("cifar10", make_schedule(preset="vgg8b"))] == [
        ("I", (2, 2, 1, 1, 1))
    ]
    assert paper_results("cifar100", make_schedule(preset="vgg8b", num_classes=100))[0].layerwise == 73.93
    assert paper_results("cifar10", make_schedule(family="vgg", hierarchy="2,2,1,1,1")) == []
    assert paper_results("digits", make_schedule(hierarchy="1,1,2,4")) == []


def test_a_full_run_without_a_validation_split_shows_each_epochs_training_loss(tmp_path, capsys):
    """lwl-train --config of an exported config (val_fraction 0): no accuracy exists until the test at the end, so
    each epoch's line shows every unit's training loss, not a row of dashes."""
    from lwl.models.commands import train_main

    data = {**BASE, "recipe": {**BASE["recipe"], "epochs": 2, "val_fraction": 0, "train_limit": 64}}
    path = _write(tmp_path, data)
    assert train_main(["--config", str(path), "--out", str(tmp_path / "run"), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    lines = [x for x in (captured.out + captured.err).splitlines() if x.lstrip().startswith("epoch ")]
    assert len(lines) == 2, captured
    for line in lines:
        assert "train loss [" in line and "output" not in line and "  -  " not in line, line
        losses = line.split("train loss [")[1].split("]")[0].split()
        assert len(losses) == 8 and all(float(v) > 0 for v in losses), line


@pytest.mark.parametrize("precision", ["fp32", "bf16", "auto"])
def test_the_config_s_precision_is_the_one_trained(tmp_path, precision):
    """recipe.precision was once ignored (bf16 trained as auto): it is read like every other recipe field."""
    path = _write(tmp_path, {**BASE, "recipe": {**BASE["recipe"], "precision": precision}})
    assert load_config(path).recipe.precision == precision
    config = load_config(path)
    assert load_config(config.save_yaml(tmp_path / "again.yaml")).recipe.precision == precision
