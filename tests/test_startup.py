"""The commands that never train start without torch: every command's --help, lwl-inspect, and lwl-export and
lwl-report on a study each run in a fresh interpreter (the installed entry point, run in-process there) that ends by
listing the torch modules it loaded: none. Importing the libraries loads neither torch nor the command layer."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lwl.search.commands import search_main

ROOT = Path(__file__).resolve().parents[1]
# [project.scripts]: command -> "module:function", the entry points the console scripts run.
SCRIPTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

# Run in the child after the code under test: the torch modules it holds, as one JSON line.
LOADED = (
    "import json, sys\n"
    "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))))\n"
)


def _child(code: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run `code` then LOADED in a fresh interpreter: (the process, the torch modules it had loaded at the end)."""
    out = subprocess.run([sys.executable, "-c", code + "\n" + LOADED], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out, json.loads(out.stdout.strip().splitlines()[-1])


def _command(name: str, *args: str) -> str:
    """Code that runs command `name` with `args` through its entry point, in-process, and checks its exit status 0."""
    module, function = SCRIPTS[name].split(":")
    return (
        f"from {module} import {function} as main\n"
        f"try:\n    status = main({list(args)!r})\nexcept SystemExit as exc:\n    status = exc.code\n"
        "assert status in (0, None), status\n"
    )


def test_every_command_is_covered():
    assert set(SCRIPTS) == {"lwl-inspect", "lwl-train", "lwl-search", "lwl-export", "lwl-report"}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_loads_no_torch(name):
    out, loaded = _child(_command(name, "--help"))
    assert f"usage: {name}" in out.stdout
    assert loaded == [], f"{name} --help imported {loaded[:5]}"


@pytest.mark.parametrize(
    "args",
    [
        ("--family", "resnet", "--block", "basic", "--hierarchy", "2,2,2,2", "--dataset", "cifar100"),
        ("--preset", "vgg8b", "--dataset", "cifar10", "--json"),
        ("--hierarchy", "1,1,2,4", "--aux-net", "auglocal", "--json"),
    ],
)
def test_inspect_counts_without_torch(args):
    out, loaded = _child(_command("lwl-inspect", *args))
    assert loaded == [], loaded
    assert "parameters" in out.stdout or '"params"' in out.stdout


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A real tiny study (2 trials of 1 epoch on 128 digits), made in this process."""
    root = tmp_path_factory.mktemp("startup")
    url = f"sqlite:///{root / 's.db'}"
    args = ["--dataset", "digits", "--budget", "8", "--widths", "4,8,8,16", "--epochs", "1", "--train-limit", "128"]
    args += ["--trials", "2", "--pruner", "none", "--device", "cpu", "--quiet", "--storage", url, "--study-name", "s"]
    assert search_main(args) == 0
    return root, url


def test_export_reads_a_study_without_torch(study):
    root, url = study
    configs = root / "configs"
    out, loaded = _child(
        _command("lwl-export", "--storage", url, "--study-name", "s", "--best", "--out", f"{configs}/")
    )
    assert loaded == [], loaded
    assert len(list(configs.glob("*.yaml"))) == 1, out.stdout


def test_report_reads_a_study_without_torch(study):
    root, url = study
    page = root / "s.html"
    _, loaded = _child(_command("lwl-report", "--storage", url, "--study-name", "s", "--out", str(page)))
    assert loaded == [], loaded
    assert page.is_file()


def test_the_libraries_load_neither_torch_nor_the_command_layer():
    code = (
        "import sys\nimport lwl.dashboards, lwl.models, lwl.search\n"
        "commands = ('lwl.models.cli', 'lwl.models._train_inspect', 'lwl.search._console.flags',"
        " 'lwl.search._console.lwl_search')\n"
        "commands = [m for m in commands if m in sys.modules]\n"
        "assert not commands, commands\n"
    )
    _, loaded = _child(code)
    assert loaded == [], loaded


def test_the_public_names_that_need_torch_load_it_on_first_use():
    """Every name of lwl.models.__all__ and lwl.search.__all__ is there; the training ones bring torch with them."""
    code = (
        "import sys\nimport lwl.models, lwl.search\n"
        "assert 'train' in dir(lwl.models) and 'parse_search_flags' in dir(lwl.search)\n"
        "assert 'torch' not in sys.modules\n"
        "assert lwl.search.parse_search_flags.__module__ == 'lwl.search._console.flags'\n"
        "assert 'torch' not in sys.modules\n"
        "from lwl.models import *  # noqa\n"
        "from lwl.search import *  # noqa\n"
        "missing = [n for n in (*lwl.models.__all__, *lwl.search.__all__) if n not in globals()]\n"
        "assert not missing, missing\n"
        "import torch\nassert lwl.models.build_network.__module__ == 'lwl.models._network'\n"
    )
    _child(code)
