"""`lwl-export` on a real (tiny) study: the selected trials become configs with the full recipe, then train."""

import json

import optuna
import pytest
import torch
import yaml
from cases import tiny
from optuna.trial import TrialState

from lwl.models import load_config, mask_secrets, paper_recipe
from lwl.models.commands import train_main
from lwl.search import (
    Selection,
    export_configs,
    hierarchy_of,
    mask_url,
    pareto_front,
    read_settings,
    study_answer,
)
from lwl.search.commands import export_main, search_main


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    url = f"sqlite:///{root / 's.db'}"
    assert (
        search_main(tiny("--budget", "8", "--trials", "3", "--pruner", "none", "--storage", url, "--study-name", "s"))
        == 0
    )
    study = optuna.load_study(study_name="s", storage=url)
    return root, url, study


def _complete(study):
    return [t for t in study.get_trials(states=(TrialState.COMPLETE,))]


def _export(*args):
    return export_main(list(args))


def test_best_is_the_most_accurate_trial_with_the_full_recipe(made):
    root, url, study = made
    settings = read_settings(study.study_name, study.user_attrs)
    [config] = export_configs(study, "best")
    best = max(_complete(study), key=lambda t: (t.value, -t.user_attrs["params"], -t.number))
    assert config.provenance["trial"] == best.number and config.provenance["search_accuracy"] == best.value
    assert config.schedule == settings.schedule(tuple(best.user_attrs["hierarchy"]))
    full = config.recipe
    assert full.epochs == paper_recipe("digits", "resnet").epochs == 10 and full.train_limit is None
    search = settings.recipe
    assert (full.loss, full.mode, full.lr, full.dropout, full.batch_size, full.seed, full.augment) == (
        search.loss,
        search.mode,
        search.lr,
        search.dropout,
        search.batch_size,
        search.seed,
        search.augment,
    )
    assert full.precision == search.precision in ("fp32", "bf16")  # what the search's numbers were measured in
    prov = config.provenance
    assert prov["study"] == "s" and prov["search_epochs"] == 1 and prov["search_train_limit"] == 128
    assert prov["storage"] == url and prov["exported_at"].endswith("Z")


def test_the_storage_password_is_masked_like_lwl_search_does(made, tmp_path):
    _, _, study = made
    secret = "postgresql://lwl:hunter2@db.example:5432/lwl"
    [config] = export_configs(study, "best", storage_url=secret)
    text = config.save_yaml(tmp_path / "c.yaml").read_text()
    assert "hunter2" not in text and config.provenance["storage"] == mask_url(secret)
    for url in (secret, "mysql+pymysql://u:p@h/db", "redis://h:6379/0", "sqlite:///x.db", "postgresql://u@h/d"):
        assert mask_secrets(url) == mask_url(url)


def test_top_pareto_and_trial_selections(made):
    _, _, study = made
    settings = read_settings(study.study_name, study.user_attrs)
    done = _complete(study)
    # --top K follows the answer: the complete lists by the model's mean (benchmarks/README.md, "The answer")
    judged = study_answer(study)
    trial_of = {tuple(t.user_attrs["hierarchy"]): t.number for t in done}
    ranked = [trial_of[b.hierarchy] for b in judged.beliefs if b.status == "complete"]
    assert [c.provenance["trial"] for c in export_configs(study, Selection("top", 2))] == ranked[:2]
    front = {c.provenance["trial"] for c in export_configs(study, "pareto")}
    expected = {
        t.number
        for t in done
        if not any(
            o.value >= t.value
            and o.user_attrs["params"] <= t.user_attrs["params"]
            and (o.value > t.value or o.user_attrs["params"] < t.user_attrs["params"])
            for o in done
        )
    }
    assert front == expected == {t.number for t in pareto_front(study)}
    last = done[-1]
    [config] = export_configs(study, f"trial:{last.number}")
    from_params = tuple(last.params[f"d{i}"] for i in (1, 2, 3, 4))
    assert config.schedule.hierarchy == hierarchy_of(last, settings.space.stages) == from_params


def test_the_command_writes_files_and_says_what_to_run(made, tmp_path, capsys):
    root, url, study = made
    out = tmp_path / "configs"
    assert _export("--storage", url, "--study-name", "s", "--top", "2", "--out", str(out)) == 0
    files = sorted(out.iterdir())
    assert len(files) == 2 and all(f.name.startswith("trial-") and f.suffix == ".yaml" for f in files)
    for f in files:
        data = yaml.safe_load(f.read_text())
        h = data["schedule"]["hierarchy"]
        assert f.name == f"trial-{data['provenance']['trial']}_{'-'.join(map(str, h))}.yaml"
        assert data["recipe"]["optimizer"] == "adam" and data["recipe"]["epochs"] == 10
    printed = capsys.readouterr().out
    assert all(f"lwl-train --config {f}" in printed for f in files)
    one = tmp_path / "best.yaml"
    assert _export("--storage", url, "--study-name", "s", "--out", str(one)) == 0
    assert load_config(one).provenance["selection"] == "best"


@pytest.fixture(scope="module")
def unfinished(made):
    """A second study in the same storage with the same settings and only a failed trial."""
    _, url, study = made
    other = optuna.create_study(study_name="nothing-done", storage=url, direction="maximize")
    other.set_user_attr("lwl:settings", study.user_attrs["lwl:settings"])
    other.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, params={}, distributions={}))
    return "nothing-done"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--study-name", "nope"], "no study named 'nope'"),
        (["--study-name", "s", "--trial", "99"], "has no trial 99"),
        (["--study-name", "nothing-done"], "has no complete trial yet"),
        (["--study-name", "nothing-done", "--trial", "0"], "trial 0 of study 'nothing-done' is failed, not complete"),
        (["--study-name", "s", "--top", "3"], "names one file but 3 trials were selected"),
        (["--study-name", "s", "--top", "0"], "--top K needs K >= 1"),
    ],
)
def test_errors_are_one_line_exit_2_and_write_nothing(made, unfinished, tmp_path, capsys, args, message):
    _, url, _ = made
    out = tmp_path / "out" / "c.yaml"
    with pytest.raises(SystemExit) as info:
        _export("--storage", url, *args, "--out", str(out))
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_missing_storage_file_is_not_created(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        _export("--storage", f"sqlite:///{tmp_path / 'none.db'}", "--study-name", "s", "--out", str(tmp_path / "o"))
    assert info.value.code == 2 and "no such file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_exported_config_trains_end_to_end(made, tmp_path, capsys):
    _, url, _ = made
    path = tmp_path / "best.yaml"
    assert _export("--storage", url, "--study-name", "s", "--best", "--out", str(path)) == 0
    run = tmp_path / "run"
    assert train_main(["--config", str(path), "--epochs", "1", "--device", "cpu", "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "output test accuracy" in printed and "search: study 's'" in printed
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete" and len(metrics["records"]) == 1
    assert 0.0 <= metrics["test"]["output_acc"] <= 1.0 and len(metrics["test"]["unit_acc"]) == 8
    saved = load_config(run / "config.yaml")
    assert saved.recipe.epochs == 1 and saved.schedule == load_config(path).schedule
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    assert checkpoint["trainer"]["complete"] and checkpoint["config"]["provenance"]["study"] == "s"
    with pytest.raises(SystemExit) as info:  # nothing to resume in a fresh folder
        train_main(["--config", str(path), "--device", "cpu", "--out", str(tmp_path / "fresh"), "--resume"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "no checkpoint at" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "fresh").exists()
