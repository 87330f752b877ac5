"""Study settings: the network a study holds (a Schedule with a placeholder list), stored as JSON and compared when a
study is resumed; settings stored before the network was one Schedule load and compare equal."""

import json

import optuna
import pytest

from lwl.search import SETTINGS_ATTR, StudySettings, parse_search_flags, prepare_study, read_settings

# The settings JSON as lwl-search stored it before `StudySettings` held a `Schedule` (commit de53bac), for the flags
# beside it (with --device cpu): a study made then must resume now.
STORED_BEFORE = [
    pytest.param(
        ("--budget", "10", "--precision", "fp32"),
        '{"block": "basic", "budget": 10, "constraint": "strict", "downsample": "conv", "family": "resnet", "recipe": {"augment": null, "aux_convs": 0, "batch_size": 64, "beta": 0.99, "dataset": "digits", "dim_in_decoder": 2048, "dropout": 0.1, "epochs": 5, "eval_batch_size": 1024, "loss": "predsim", "lr": 0.002, "lr_gamma": 0.25, "lr_milestones": [0.5, 0.75, 0.89, 0.94], "mode": "simultaneous", "precision": "fp32", "seed": 0, "train_limit": null, "val_fraction": 0.2, "weight_decay": 0.0}, "shallow_stages": 2, "stages": 4, "widths": [16, 32, 64, 128]}',  # noqa: E501
        id="default",
    ),
    pytest.param(
        (
            "--preset",
            "vgg8b",
            "--budget",
            "10",
            "--widths",
            "4:8,8:16,16,16",
            "--fc-units",
            "24",
            "--max-params",
            "2M",
            "--objectives",
            "accuracy,params",
            "--precision",
            "fp32",
            "--optimizer",
            "sgd",
            "--momentum",
            "0.9",
        ),
        '{"block": "basic", "budget": 10, "constraint": "strict", "conv_bias": true, "downsample": "maxpool", "family": "vgg", "fc_units": [24], "lead_widths": [[4], [8], [], []], "limits": {"max_params": 2000000}, "objectives": ["accuracy", "params"], "recipe": {"augment": null, "aux_convs": 0, "batch_size": 64, "beta": 0.99, "dataset": "digits", "dim_in_decoder": 2048, "dropout": 0.1, "dropout_kind": "channel", "epochs": 5, "eval_batch_size": 1024, "loss": "predsim", "lr": 0.002, "lr_gamma": 0.25, "lr_milestones": [0.5, 0.75, 0.89, 0.94], "mode": "simultaneous", "momentum": 0.9, "optimizer": "sgd", "precision": "fp32", "seed": 0, "train_limit": null, "val_fraction": 0.2, "weight_decay": 0.0, "zero_init_output": true}, "shallow_stages": 2, "stages": 4, "widths": [8, 16, 16, 16]}',  # noqa: E501
        id="vgg8b-fc-limits-objectives-options",
    ),
    pytest.param(
        (
            "--budget",
            "12",
            "--local-unit",
            "conv",
            "--block",
            "bottleneck",
            "--widths",
            "4,8,8,16",
            "--dataset",
            "stl10",
            "--precision",
            "fp32",
            "--downsample",
            "maxpool",
        ),
        '{"block": "bottleneck", "budget": 12, "constraint": "strict", "downsample": "maxpool", "family": "resnet", "local_unit": "conv", "recipe": {"augment": null, "aux_convs": 0, "batch_size": 128, "beta": 0.99, "dataset": "stl10", "dim_in_decoder": 2048, "dropout": 0.1, "epochs": 15, "eval_batch_size": 1024, "loss": "predsim", "lr": 0.0003, "lr_gamma": 0.25, "lr_milestones": [0.5, 0.75, 0.89, 0.94], "mode": "simultaneous", "precision": "fp32", "seed": 0, "train_limit": null, "val_fraction": 0.2, "weight_decay": 0.0}, "shallow_stages": 2, "stages": 4, "widths": [4, 8, 8, 16]}',  # noqa: E501
        id="resnet-conv-units-stl10",
    ),
    pytest.param(
        (
            "--budget",
            "10",
            "--family",
            "vgg",
            "--first-conv",
            "7x7s2",
            "--dataset",
            "stl10",
            "--widths",
            "4,8,8,16",
            "--precision",
            "bf16",
        ),
        '{"block": "basic", "budget": 10, "constraint": "strict", "downsample": "maxpool", "family": "vgg", "first_conv": "7x7s2", "recipe": {"augment": null, "aux_convs": 0, "batch_size": 128, "beta": 0.99, "dataset": "stl10", "dim_in_decoder": 2048, "dropout": 0.1, "epochs": 15, "eval_batch_size": 1024, "loss": "predsim", "lr": 0.0005, "lr_gamma": 0.25, "lr_milestones": [0.5, 0.75, 0.89, 0.94], "mode": "simultaneous", "precision": "bf16", "seed": 0, "train_limit": null, "val_fraction": 0.2, "weight_decay": 0.0}, "shallow_stages": 2, "stages": 4, "widths": [4, 8, 8, 16]}',  # noqa: E501
        id="vgg-7x7-stl10",
    ),
]


@pytest.mark.parametrize(("flags", "stored"), STORED_BEFORE)
def test_settings_stored_before_load_and_compare_equal(flags, stored):
    settings = parse_search_flags([*flags, "--device", "cpu"])[0]
    loaded = StudySettings.from_dict(json.loads(stored))
    assert loaded == settings
    assert loaded.to_json() == stored == settings.to_json()


@pytest.mark.parametrize(("flags", "stored"), STORED_BEFORE[:2])
def test_a_study_made_before_resumes(tmp_path, flags, stored):
    """A study whose settings attribute is the old JSON is loaded, not refused, by the same flags now."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    optuna.create_study(study_name="old", storage=url, direction="maximize").set_user_attr(SETTINGS_ATTR, stored)
    settings = parse_search_flags([*flags, "--device", "cpu"])[0]
    study = prepare_study(settings, url, "old", sampler="random", pruner="none", seed=0)
    assert study.user_attrs[SETTINGS_ATTR] == stored
    assert read_settings("old", study.user_attrs) == settings


def test_each_trial_gets_the_network_with_its_list():
    settings = parse_search_flags(["--preset", "vgg8b", "--budget", "10", "--widths", "4:8,8:16,16,16"])[0]
    assert settings.network.hierarchy == (1, 1, 1, 1)  # the placeholder
    schedule = settings.schedule([2, 2, 3, 3])
    assert schedule.hierarchy == (2, 2, 3, 3)
    assert (schedule.family, schedule.lead_widths, schedule.fc_units, schedule.conv_bias) == (
        "vgg",
        ((4,), (8,), (), ()),
        (1024,),
        True,
    )
    assert schedule.unit_widths() == ((4, 8), (8, 16), (16, 16, 16), (16, 16, 16))
    assert settings.network.hierarchy == (1, 1, 1, 1)  # unchanged: a pure function of the settings
