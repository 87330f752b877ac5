"""Study settings: the network a study holds (a Schedule with a placeholder list), stored as JSON and compared when a
study is resumed; settings stored before the network was one Schedule load and compare equal."""

import json

import optuna
import pytest

from lwl.search import SETTINGS_ATTR, StudySettings, parse_search_flags, prepare_study, read_settings
from lwl.search.commands import search_main as main_search

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


def _inspect(capsys, *flags):
    from lwl.models.commands import inspect_main

    assert inspect_main([*flags, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "network",
    [
        ("--family", "resnet", "--widths", "4,8,8,16"),
        ("--family", "vgg", "--widths", "4:8,8:16,16,16", "--fc-units", "24"),
    ],
    ids=["resnet", "vgg-lead-widths-fc"],
)
def test_width_mult_scales_every_width_and_the_counts(capsys, network):
    """--width-mult 2 doubles every conv width: about 4x the parameters (a conv's weights grow with in x out)."""
    flags = ("--hierarchy", "1,1,2,2", *network)
    one, two = _inspect(capsys, *flags), _inspect(capsys, *flags, "--width-mult", "2")
    assert two["width_mult"] == 2.0 and one["width_mult"] == 1.0
    assert two["widths"] == one["widths"]  # the widths given; the network's are scaled
    assert two["unit_widths"] == [[2 * w for w in stage] for stage in one["unit_widths"]]
    assert 3.5 < two["params"] / one["params"] < 4.1
    assert two["flops"] > 3.5 * one["flops"]
    half = _inspect(capsys, *flags, "--width-mult", "0.3")  # rounded half up, at least 1 channel
    assert half["unit_widths"] == [[max(1, int(w * 0.3 + 0.5)) for w in stage] for stage in one["unit_widths"]]
    assert half["unit_widths"][-1][-1] == 5  # 16 x 0.3 = 4.8


def test_width_mult_out_of_range_is_refused_by_every_reader(tmp_path, capsys):
    from lwl.models import load_config
    from lwl.models.commands import inspect_main

    with pytest.raises(SystemExit) as info:
        inspect_main(["--hierarchy", "1,1", "--width-mult", "0"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == "lwl-inspect: error: --width-mult 0.0: out of range: use a number > 0"
    preset = tmp_path / "p.yaml"
    preset.write_text("budget: 8\nwidth_mult: -1\n")
    with pytest.raises(SystemExit):
        main_search(["--preset", str(preset)])
    assert capsys.readouterr().err.strip().endswith(f"{preset}: width_mult -1: out of range: use a number > 0")
    config = tmp_path / "c.yaml"
    config.write_text("schedule: {hierarchy: [1, 1], family: resnet, width_mult: 0}\nrecipe: {dataset: digits}\n")
    with pytest.raises(Exception, match="schedule.width_mult: must be positive, got 0"):
        load_config(config)


def test_a_study_with_width_mult_stores_it_and_its_flags_make_it_again():
    flags = ["--budget", "8", "--widths", "4,8,8,16", "--width-mult", "1.5", "--device", "cpu", "--precision", "fp32"]
    settings = parse_search_flags(flags)[0]
    assert json.loads(settings.to_json())["width_mult"] == 1.5
    assert "--width-mult" in settings.to_flags() and parse_search_flags(settings.to_flags())[0] == settings
    assert StudySettings.from_dict(json.loads(settings.to_json())) == settings
    assert settings.schedule((1, 1, 2, 4)).unit_widths()[-1] == (24,) * 4
    assert "widths x1.5" in settings.network_text()
    # A study made without it stores none (as before the option), so it resumes as it was.
    assert "width_mult" not in json.loads(parse_search_flags(flags[:4] + flags[6:])[0].to_json())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_study_with_width_mult_exports_and_trains_it(tmp_path, capsys):
    from cases import NO_CONFIRM, tiny

    from lwl.models import load_config
    from lwl.models.commands import train_main
    from lwl.search.commands import export_main

    url = f"sqlite:///{tmp_path / 's.db'}"
    study_flags = ("--budget", "6", "--trials", "1", "--width-mult", "2", "--storage", url, "--study-name", "w")
    assert main_search(tiny(*study_flags, *NO_CONFIRM)) == 0
    stored = json.loads(optuna.load_study(study_name="w", storage=url).user_attrs[SETTINGS_ATTR])
    assert stored["width_mult"] == 2.0
    path = tmp_path / "best.yaml"
    assert export_main(["--storage", url, "--study-name", "w", "--best", "--out", str(path)]) == 0
    schedule = load_config(path).schedule
    assert schedule.width_mult == 2.0 and schedule.widths == (4, 8, 8, 16)
    capsys.readouterr()
    run = tmp_path / "run"
    assert train_main(["--config", str(path), "--epochs", "1", "--device", "cpu", "--out", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    flags = ["--family", "resnet", "--widths", "4,8,8,16", "--hierarchy", ",".join(map(str, schedule.hierarchy))]
    assert result["params"] == _inspect(capsys, *flags, "--width-mult", "2")["params"]
    assert load_config(run / "config.yaml").schedule == schedule
