"""The path a newcomer takes through the README, command by command, run in-process as the console scripts run them:
what each command prints must work as printed (issue 12)."""

import json
import pickle
import re
import shlex
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from cases import tiny

from lwl.dashboards.commands import report_main
from lwl.models.commands import inspect_main, train_main
from lwl.search import parse_search_flags
from lwl.search.commands import export_main, search_main

TINY = tiny(dataset=None, quiet=False)
COMMANDS = {
    "lwl-search": search_main,
    "lwl-export": export_main,
    "lwl-report": report_main,
    "lwl-train": train_main,
    "lwl-inspect": inspect_main,
}


def _printed(text: str, command: str) -> list[list[str]]:
    """Every command line starting with `command` in a command's output (comments after # dropped)."""
    return [shlex.split(line.split("#")[0]) for line in text.splitlines() if line.strip().startswith(command + " ")]


# ------------------------------------------------------------------------ a fake CIFAR-10 under --data-root
PER_BATCH = 20  # 5 training batches and a test batch: 100 training images, 20 test images


def _write_fake_cifar10(root: Path) -> None:
    """cifar-10-batches-py in torchvision's exact pickle format (as tests/models/test_data.py writes it)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        ids = np.arange(b * PER_BATCH, (b + 1) * PER_BATCH)
        batch = {
            "data": np.repeat(ids.astype(np.uint8)[:, None], 3 * 32 * 32, axis=1),
            "labels": [int(i % 10) for i in ids],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)


@pytest.fixture
def fake_cifar10(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import torchvision.datasets
    import torchvision.datasets.cifar as cifar

    root = tmp_path / "data"
    _write_fake_cifar10(root)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)  # batches.meta's md5
    monkeypatch.setenv("LWL_DATA", str(tmp_path / "empty"))  # the default root holds nothing
    return root


def test_an_exported_config_trains_as_printed_on_all_training_images(fake_cifar10, tmp_path, monkeypatch, capsys):
    """Items 2 and 3: the config remembers --data-root, and lwl-train --config trains on every training image
    (no validation split) and reports test accuracy."""
    import lwl.models._data as data_module  # a private mechanism on purpose: see the data lwl-train loads

    monkeypatch.chdir(tmp_path)
    search = tiny("--data-root", str(fake_cifar10), dataset="cifar10", train_limit=64)
    assert search_main([*search, "--budget", "8", "--trials", "1", "--pruner", "none", "--study-name", "c"]) == 0
    capsys.readouterr()
    assert export_main(["--study-name", "c", "--best", "--out", "configs/best.yaml"]) == 0
    [command] = _printed(capsys.readouterr().out, "lwl-train")
    assert command == ["lwl-train", "--config", "configs/best.yaml"]
    config = yaml.safe_load(Path("configs/best.yaml").read_text())
    assert config["data_root"] == str(fake_cifar10)
    assert config["recipe"]["val_fraction"] == 0 and config["provenance"]["search_val_fraction"] == 0.2

    loaded = []
    real_load = data_module.load_data
    monkeypatch.setattr(data_module, "load_data", lambda *a, **k: loaded.append(real_load(*a, **k)) or loaded[-1])
    assert train_main([*command[1:], "--epochs", "1", "--device", "cpu"]) == 0  # only the length and the device
    [data] = loaded
    assert data.train_x.shape[0] == 5 * PER_BATCH and data.val_x.shape[0] == 0  # every training image
    captured = capsys.readouterr()
    assert "no validation split" in captured.err and "output test accuracy" in captured.out
    metrics = json.loads((tmp_path / "runs" / "best" / "metrics.json").read_text())
    assert metrics["test"]["output_acc"] is not None
    assert [r["val_output_acc"] for r in metrics["records"]] == [None]  # nothing held out, nothing measured on it


def test_a_validation_split_is_there_when_asked_for(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["--dataset", "digits", "--hierarchy", "1,1", "--widths", "4,8", "--epochs", "1", "--device", "cpu"]
    assert train_main([*args, "--out", "flags", "--test", "--val-fraction", "0"]) == 0
    assert "(no validation split" in capsys.readouterr().out
    config = Path("flags/config.yaml")
    assert yaml.safe_load(config.read_text())["recipe"]["val_fraction"] == 0
    assert train_main(["--config", str(config), "--val-fraction", "0.2", "--out", "split", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\(validation \d+\.\d %\)", out)
    assert yaml.safe_load(Path("split/config.yaml").read_text())["recipe"]["val_fraction"] == 0.2
    with pytest.raises(SystemExit) as exc:  # nothing at all would be measured
        train_main([*args, "--val-fraction", "0"])
    assert exc.value.code == 2 and "add --test" in capsys.readouterr().err


# ------------------------------------------------------------------------ smaller things (item 6)
def test_one_epoch_is_singular_in_every_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert search_main(["--dataset", "digits", *TINY, "--budget", "8", "--trials", "1", "--pruner", "none"]) == 0
    err = capsys.readouterr().err
    assert "1 epoch," in err and "1 epochs" not in err
    args = ["--hierarchy", "1,1", "--widths", "4,8", "--epochs", "1", "--device", "cpu", "--test"]
    assert train_main(args) == 0
    err = capsys.readouterr().err
    assert "1 epoch," in err and "1 epochs" not in err


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_version(command, capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        COMMANDS[command](["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{command} {version('lwl-search')}")
    if command == "lwl-search":
        assert out == f"lwl-search {version('lwl-search')}"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_help_example_parses_and_names_what_exists(command, capsys, monkeypatch):
    """Each example in an epilog takes flags the command has, a packaged preset, and the study the default
    preset makes: the chain in the help works as written after lwl-search --preset digits-quick."""
    monkeypatch.setenv("COLUMNS", "400")  # one example per line, unwrapped
    with pytest.raises(SystemExit):
        COMMANDS[command](["--help"])
    text = capsys.readouterr().out
    examples = _printed(text.split("examples", 1)[1], command)
    assert examples, f"{command} --help shows no example"
    quick, _ = parse_search_flags(["--preset", "digits-quick"])
    study = f"{quick.recipe.dataset}-{quick.network.family}-b{quick.space.budget}-s{quick.space.stages}"
    assert study == "digits-resnet-b12-s4"
    for argv in examples:
        if command == "lwl-search":
            parse_search_flags(argv[1:])  # the presets resolve and the settings build
        else:
            from lwl.dashboards._cli import build_parser as report_parser
            from lwl.search._console.lwl_export import build_parser as export_parser

            if command in ("lwl-export", "lwl-report"):
                parser = export_parser() if command == "lwl-export" else report_parser()
                args = parser.parse_args(argv[1:])
                assert args.study_name in (None, study)
                assert args.storage in (None, f"sqlite:///studies/{study}.db")
    assert "digits-resnet-b16" not in text and "studies/s.db" not in text and "runs/trial-12" not in text


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_examples_are_never_broken_inside_a_command_at_80_columns(command, capsys, monkeypatch):
    """On an 80-column terminal an example's comment moves or goes above it; the command stays whole on one line."""

    def examples(columns: str) -> list[str]:
        monkeypatch.setenv("COLUMNS", columns)
        with pytest.raises(SystemExit):
            COMMANDS[command](["--help"])
        text = capsys.readouterr().out.split("examples", 1)[1]
        return [line.split("  #")[0].strip() for line in text.splitlines() if line.strip().startswith("lwl-")]

    wide, narrow = examples("400"), examples("80")
    assert wide and narrow == wide, (wide, narrow)


def test_batch_and_batch_size_say_what_they_count(capsys):
    with pytest.raises(SystemExit):
        search_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "K = candidates (trials) trained together, not images" in text
    assert "--batch-size BATCH_SIZE images per optimiser step" in text


def test_the_summary_counts_agree_with_its_reason(tmp_path, monkeypatch, capsys):
    """The summary's counts and its stop reason are the same study's (it said '5 complete ... reached --trials 6'
    while another worker's trial was still running); it says what this run ended, and counts running trials."""
    monkeypatch.chdir(tmp_path)
    base = ["--dataset", "digits", *TINY, "--budget", "10", "--pruner", "none", "--storage", "s.log", "--quiet"]
    assert search_main([*base, "--trials", "2", "--study-name", "w"]) == 0
    capsys.readouterr()
    assert search_main([*base, "--trials", "4", "--study-name", "w"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("study 'w'"))
    assert line == (
        "study 'w': 4 complete, 0 pruned, 0 failed; stopped: the study holds 4 finished trials (--trials 4); "
        "this run ended 2 trials"
    )
    from lwl.search import open_storage

    optuna.load_study(study_name="w", storage=open_storage("s.log")).ask()  # another worker's, still running
    search_main([*base, "--trials", "6", "--study-name", "w"])  # a journal has no heartbeat: it stops, saying why
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("study 'w'"))
    assert line.startswith("study 'w': 5 complete, 0 pruned, 0 failed, 1 running; stopped: ")
