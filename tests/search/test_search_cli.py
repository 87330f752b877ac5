"""`lwl-search` end to end on digits, checked from the database as a user's tools would see it."""

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from cases import tiny
from optuna.trial import TrialState

from lwl.search import SearchSpace
from lwl.search.commands import search_main as main

TINY = tiny(epochs=2, train_limit=256)


def _study(path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{path}")


def _lists(study):
    return [tuple(t.params[f"d{i}"] for i in range(1, 5)) for t in study.trials if t.params]


@pytest.mark.slow
def test_a_small_study_end_to_end_and_resume(tmp_path, capsys):
    db = tmp_path / "s.db"
    args = [*TINY, "--budget", "10", "--storage", f"sqlite:///{db}", "--study-name", "s", "--pruner", "none"]
    assert main([*args, "--trials", "4"]) == 0
    study = _study(db, "s")
    space = SearchSpace(10, 4)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    lists = _lists(study)
    assert all(sum(h) == 10 and space.is_feasible(h) for h in lists)
    assert len(set(lists)) == len(lists), "a list was trained twice"
    for t in finished:
        assert sorted(t.intermediate_values) == [1, 2]
        assert t.user_attrs["hierarchy"] == list(lists[t.number])
        assert len(t.user_attrs["unit_acc_history"]) == 2 and len(t.user_attrs["unit_acc"]) == 10
        assert t.user_attrs["params"] > 0 and t.user_attrs["flops"] > 0 and t.user_attrs["device"] == "cpu"
    out = capsys.readouterr().out
    assert "4 complete" in out and "optuna-dashboard sqlite:///" in out
    # The size of the split the lists are ranked on, and what one image is worth.
    from lwl.models import load_data

    val = load_data("digits", val_fraction=0.2, split_seed=0).val_x.shape[0]  # lwl-search's default split
    assert study.user_attrs["validation_images"] == val
    assert f"ranked on {val} validation images: one image is {100 / val:.2f} % of accuracy" in out
    # Resume: the same command with --trials 6 adds exactly 2.
    assert main([*args, "--trials", "6"]) == 0
    study = _study(db, "s")
    assert len([t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 6
    assert len(set(_lists(study))) == len(_lists(study))
    settings = json.loads(study.user_attrs["lwl:settings"])
    assert settings["budget"] == 10 and settings["widths"] == [4, 8, 8, 16]


@pytest.mark.slow
def test_whole_space_then_stop(tmp_path, capsys):
    db = tmp_path / "all.db"
    assert (
        main(
            [
                *TINY,
                "--budget",
                "8",
                "--storage",
                f"sqlite:///{db}",
                "--study-name",
                "all",
                "--trials",
                "10",
                "--sampler",
                "random",
                "--pruner",
                "none",
            ]
        )
        == 0
    )
    study = _study(db, "all")
    assert sorted(_lists(study)) == sorted(SearchSpace(8, 4).lists())
    # The paper's only feasible budget-8 list, ResNet18_r5's [1,1,2,4], was enqueued and ran first.
    assert _lists(study)[0] == (1, 1, 2, 4) and study.trials[0].user_attrs["enqueued"] == "paper"
    assert "ResNet18_r5" in study.trials[0].user_attrs["paper"]
    assert "every feasible list (3) has been evaluated" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_study_built_to_prune_prunes(tmp_path):
    db = tmp_path / "p.db"
    # Wide enough to learn something in 3 epochs, so accuracies differ and the median rule has something to cut.
    args = tiny(epochs=2, train_limit=512, widths="8,16,16,32")
    assert (
        main(
            [
                *args,
                "--budget",
                "12",
                "--constraint",
                "sum",
                "--storage",
                f"sqlite:///{db}",
                "--study-name",
                "p",
                "--trials",
                "8",
                "--epochs",
                "3",
                "--pruner",
                "median",
                "--pruner-startup",
                "1",
                "--sampler",
                "random",
                "--no-paper-baselines",
                "--seed",
                "3",
                "--val-fraction",  # the split this study was built to prune with
                "0.1",
                "--confirm",
                "off",
            ]
        )
        == 0
    )
    study = _study(db, "p")
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, [t.state for t in study.trials]
    for t in pruned:  # a pruned trial keeps what it learned so far
        assert t.user_attrs["unit_acc_history"] and len(t.intermediate_values) < 3


def test_other_settings_are_refused_and_nothing_changes(tmp_path, capsys):
    db = tmp_path / "x.db"
    base = [*TINY, "--budget", "8", "--storage", f"sqlite:///{db}", "--study-name", "x", "--trials", "1"]
    assert main(base) == 0
    before = len(_study(db, "x").trials)
    with pytest.raises(SystemExit) as info:
        main([*base, "--epochs", "3", "--trials", "2"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "epochs 2 (stored) vs 3 (now)" in err and len(err.strip().splitlines()) == 1
    assert len(_study(db, "x").trials) == before


@pytest.mark.slow
def test_a_study_keeps_the_precision_it_was_made_with(tmp_path, capsys):
    """auto is stored resolved (what the trials trained in); a worker whose precision differs is refused, and a
    study stored before precisions were a setting is read as the fp32 it trained in on the CPU."""
    from lwl.models import resolve_precision

    db = tmp_path / "p.db"
    base = [*TINY, "--budget", "8", "--storage", f"sqlite:///{db}", "--study-name", "p", "--trials", "1"]
    assert main(base) == 0
    study = _study(db, "p")
    here = resolve_precision("auto", torch.device("cpu"))
    assert json.loads(study.user_attrs["lwl:settings"])["recipe"]["precision"] == here
    assert {t.user_attrs["precision"] for t in study.trials} == {here}
    other = "fp32" if here == "bf16" else "bf16"
    before = len(study.trials)
    with pytest.raises(SystemExit) as info:
        main([*base, "--precision", other, "--trials", "2"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"precision {here!r} (stored) vs {other!r} (now)" in err and len(err.strip().splitlines()) == 1
    assert len(_study(db, "p").trials) == before
    # The same study as an earlier version stored it, without the field: it trained fp32 on the CPU.
    settings = json.loads(study.user_attrs["lwl:settings"])
    del settings["recipe"]["precision"]
    study.set_user_attr("lwl:settings", json.dumps(settings))
    assert main([*base, "--precision", "fp32", "--trials", "2"]) == 0
    assert len(_study(db, "p").trials) == before + 1
    with pytest.raises(SystemExit):
        main([*base, "--precision", "bf16", "--trials", "3"])
    assert "precision 'fp32' (stored) vs 'bf16' (now)" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_installed_command_with_a_preset(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("dataset: digits\nbudget: 8\nwidths: [4, 8, 8, 16]\nepochs: 1\ntrials: 2\ntrain_limit: 128\n")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from lwl.search.commands import search_main; sys.exit(search_main())",
            "--preset",
            str(preset),
            "--epochs",
            "2",
            "--device",
            "cpu",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    db = tmp_path / "studies" / "digits-resnet-b8-s4.db"
    study = _study(db, "digits-resnet-b8-s4")
    assert len(study.trials) == 2 and json.loads(study.user_attrs["lwl:settings"])["recipe"]["epochs"] == 2
    assert "trial   0" in out.stderr and "rank" in out.stdout


@pytest.mark.slow
def test_the_derived_pareto_study_holds_the_true_front(tmp_path):
    from lwl.search import pareto_front, pareto_study_name

    db = tmp_path / "f.db"
    assert (
        main(
            [
                *TINY,
                "--budget",
                "10",
                "--storage",
                f"sqlite:///{db}",
                "--study-name",
                "f",
                "--trials",
                "4",
                "--pruner",
                "none",
            ]
        )
        == 0
    )
    study = _study(db, "f")
    derived = optuna.load_study(study_name=pareto_study_name("f"), storage=f"sqlite:///{db}")
    assert len(derived.trials) == 4 and derived.metric_names == ["validation accuracy", "parameters"]
    front = {t.user_attrs["source_trial"] for t in derived.best_trials}
    assert front == {t.number for t in pareto_front(study)}
    for t in derived.trials:
        source = study.trials[t.user_attrs["source_trial"]]
        assert t.values == [source.value, source.user_attrs["params"]]


@pytest.mark.parametrize(
    "flags",
    [
        ["--budget", "8"],
        ["--budget", "10", "--stages", "3", "--family", "vgg", "--widths", "4:8,16,32", "--fc-units", "24,12"],
        ["--preset", "cifar100-resnet-b16", "--max-params", "30M", "--objectives", "accuracy,params,memory"],
        ["--preset", "vgg8b", "--dataset", "stl10", "--budget", "8"],
        [
            *("--budget", "9", "--block", "bottleneck", "--local-unit", "conv", "--optimizer", "sgd", "--momentum"),
            *("0.9", "--no-similarity-std", "--zero-init-output", "--lr-milestone-epochs", "2,3", "--cutout", "4"),
            *("--train-limit", "100", "--val-fraction", "0.3", "--shallow-stages", "1", "--constraint", "none"),
        ],
    ],
    ids=["default", "vgg-fc", "paper-preset-costs", "vgg8b-on-stl10", "reference-options"],
)
def test_a_studys_flags_make_its_settings_again(flags):
    """`StudySettings.to_flags` (the command a report prints): the flags parse back to the same settings."""
    from lwl.search import StudySettings, parse_search_flags

    settings = parse_search_flags([*flags, "--device", "cpu"])[0]
    if "stl10" in flags:
        assert settings.network.first_conv == "7x7s2" and settings.network.fc_units == (1024,)
    flags_again = settings.to_flags()
    assert parse_search_flags(flags_again)[0] == settings
    assert StudySettings.from_dict(json.loads(settings.to_json())).to_flags() == flags_again
