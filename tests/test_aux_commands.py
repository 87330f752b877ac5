"""`--aux-net` in every command: lwl-inspect shows each unit's auxiliary network and its cost, lwl-train trains with
it, lwl-search keeps it as a study setting (refusing a rerun with another), an exported config carries it, and bad
combinations are one line, exit 2, nothing written."""

import json
import subprocess
import sys

import pytest
from cases import tiny

from lwl.models import Schedule, TrainingConfig, complexity, load_config, paper_recipe
from lwl.search import SettingsError, parse_search_flags
from lwl.search._space.settings import check_same_settings

ENTRY = {"lwl-inspect": "lwl.models.commands:inspect_main", "lwl-train": "lwl.models.commands:train_main"}
ENTRY["lwl-search"] = "lwl.search.commands:search_main"


def run(prog, *args, cwd=None):
    module, name = ENTRY[prog].split(":")
    code = f"import sys; from {module} import {name}; sys.exit({name}(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("kind", ["local-loss", "dgl", "infopro", "auglocal"])
@pytest.mark.slow
def test_inspect_shows_each_units_auxiliary_network_and_its_cost(kind):
    out = run("lwl-inspect", "--hierarchy", "1,1,2,4", "--aux-net", kind, "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["aux_net"] == kind and len(d["unit_heads"]) == 8
    assert d["params_aux"] - d["params"] == sum(h["params"] for h in d["unit_heads"])
    assert d["flops_aux"] - d["flops"] == sum(h["flops"] for h in d["unit_heads"])
    recipe = paper_recipe("digits", "resnet", aux_net=kind)
    schedule = Schedule((1, 1, 2, 4), widths=(64, 128, 256, 512), num_classes=10, in_channels=1, input_size=16)
    assert d["params_aux"] == complexity(schedule, recipe.head).params_aux
    text = run("lwl-inspect", "--hierarchy", "1,1,2,4", "--aux-net", kind).stdout
    assert f"auxiliary network per unit ({kind})" in text
    first = {"local-loss": "avgpool", "dgl": "avgpool 4x4, conv1x1 64->64", "infopro": "decoder: bilinear 16x16"}
    first["auglocal"] = "(copies units 3,6,8)"
    assert first[kind] in text


@pytest.mark.slow
def test_lwl_train_trains_each_kind_and_a_config_carries_it(tmp_path):
    out = run(
        "lwl-train", "--hierarchy", "1,1,1,1", "--widths", "4,8,8,16", "--epochs", "1", "--aux-net", "auglocal",
        "--device", "cpu", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["loss"] == "pred"
    schedule = Schedule((1, 1, 2, 4), widths=(4, 8, 8, 16), num_classes=10, in_channels=1, input_size=16)
    for kind in ("dgl", "infopro", "auglocal"):
        config = TrainingConfig(schedule, paper_recipe("digits", "resnet", epochs=1, aux_net=kind), {})
        path = config.save_yaml(tmp_path / f"{kind}.yaml")
        assert f"aux_net: {kind}" in path.read_text() and load_config(path) == config
    # Left out of a config, as in every config written before it: the reference's heads.
    plain = TrainingConfig(schedule, paper_recipe("digits", "resnet"), {})
    assert "aux_net" not in plain.save_yaml(tmp_path / "plain.yaml").read_text()
    assert load_config(tmp_path / "plain.yaml").recipe.aux_net == "local-loss"


def test_the_study_setting_is_stored_and_a_rerun_with_another_is_refused():
    base = ["--budget", "8", "--widths", "4,8,8,16", "--device", "cpu"]
    dgl, _ = parse_search_flags([*base, "--aux-net", "dgl"])
    assert dgl.recipe.aux_net == "dgl" and dgl.recipe.loss == "pred"
    assert parse_search_flags(dgl.to_flags())[0].to_dict() == dgl.to_dict()
    plain, _ = parse_search_flags(base)
    assert "aux_net" not in plain.to_dict()["recipe"]  # studies made before it compare as they did
    check_same_settings("s", dgl.to_json(), dgl)
    with pytest.raises(SettingsError, match="aux_net 'dgl' \\(stored\\) vs 'auglocal' \\(now\\)"):
        check_same_settings("s", dgl.to_json(), parse_search_flags([*base, "--aux-net", "auglocal"])[0])
    with pytest.raises(SettingsError, match="aux_net 'local-loss' \\(stored\\) vs 'dgl' \\(now\\)"):
        check_same_settings("s", plain.to_json(), dgl)


@pytest.mark.slow
def test_an_auglocal_study_shares_only_the_units_it_may(tmp_path):
    """A --batch group trains its lists in one trie, sharing a unit only where its head is the same too."""
    out = run(
        "lwl-search",
        *tiny("--budget", "8", "--trials", "3", "--batch", "3", "--aux-net", "auglocal", "--confirm", "0", quiet=False),
        *("--storage", f"sqlite:///{tmp_path / 's.db'}", "--study-name", "aug", "--no-paper-baselines"),
        *("--max-params", "10M"),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "; aux_net auglocal" in out.stdout + out.stderr
    # [1,1,2,4] and [1,1,3,3] share their first two units (the later units those heads copy are alike), [1,1,4,2]
    # none with either (its units 6 and 8, which every earlier head copies, are other layers): 24 - 2.
    assert "22 unit-epochs trained where one by one would take 24" in out.stdout
    from lwl.search.commands import export_main

    db = f"sqlite:///{tmp_path / 's.db'}"
    assert export_main(["--storage", db, "--study-name", "aug", "--best", "--out", str(tmp_path / "best.yaml")]) == 0
    assert load_config(tmp_path / "best.yaml").recipe.aux_net == "auglocal"
    rerun = run(
        "lwl-search",
        *tiny(
            "--budget", "8", "--trials", "4", "--aux-net", "dgl", "--storage", db, "--study-name", "aug", quiet=False
        ),
        *("--max-params", "10M"),
        cwd=tmp_path,
    )
    assert rerun.returncode == 2 and len(rerun.stderr.strip().splitlines()) == 1
    assert "other settings: aux_net 'auglocal' (stored) vs 'dgl' (now): rerun" in rerun.stderr, rerun.stderr


@pytest.mark.parametrize(
    ("prog", "args", "message"),
    [
        ("lwl-train", ["--hierarchy", "1,1", "--aux-net", "dgl", "--loss", "predsim"], "use loss pred"),
        ("lwl-train", ["--preset", "vgg8b", "--aux-net", "dgl"], "use --fc-units none"),
        ("lwl-train", ["--hierarchy", "1,1", "--aux-net", "infopro", "--mode", "sequential"], "mode simultaneous"),
        ("lwl-train", ["--hierarchy", "1,1", "--aux-net", "bogus"], "invalid choice: 'bogus'"),
        ("lwl-inspect", ["--hierarchy", "1,1", "--aux-net", "auglocal", "--local-unit", "conv"], "--local-unit block"),
        ("lwl-search", ["--budget", "8", "--aux-net", "dgl", "--fc-units", "64"], "use --fc-units none"),
        ("lwl-search", ["--budget", "8", "--aux-net", "dgl", "--loss", "sim"], "use loss pred"),
    ],
)
@pytest.mark.slow
def test_bad_combinations_are_one_line_exit_2_and_nothing_written(tmp_path, prog, args, message):
    extra = ["--out", str(tmp_path / "out")] if prog == "lwl-train" else []
    if prog == "lwl-search":
        extra = ["--storage", f"sqlite:///{tmp_path / 's.db'}", "--device", "cpu"]
    out = run(prog, *args, *extra, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, out.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_config_with_an_unknown_kind_names_the_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("schedule:\n  hierarchy: [1, 1]\n  family: resnet\nrecipe:\n  dataset: digits\n  aux_net: dlg\n")
    from lwl.models import ConfigError

    with pytest.raises(ConfigError, match="recipe.aux_net"):
        load_config(path)


def test_the_memory_limit_counts_each_kinds_heads():
    """--max-memory's estimate holds every parameter with heads: dearer heads leave fewer lists of the space."""
    kept = {}
    for kind in ("local-loss", "dgl", "infopro", "auglocal"):
        settings, _ = parse_search_flags(
            ["--budget", "8", "--max-memory", "80MB", "--aux-net", kind, "--device", "cpu"]
        )
        kept[kind] = settings.space.lists()
    assert kept["local-loss"] == kept["infopro"] == ((1, 1, 2, 4), (1, 1, 3, 3), (1, 1, 4, 2))
    assert kept["dgl"] == ((1, 1, 3, 3), (1, 1, 4, 2)) and kept["auglocal"] == ((1, 1, 4, 2),)
