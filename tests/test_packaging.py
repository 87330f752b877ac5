"""The installed wheel, not the editable checkout, is what users get: check it holds every package."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"models": "lwl/models", "search": "lwl/search", "dashboards": "lwl/dashboards", "studies": "lwl/studies"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (path,) = out.glob("lwl_search-*.whl")
    return path


def test_wheel_contains_every_package_under_the_lwl_namespace(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, target in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.relative_to(ROOT / folder).as_posix()
            assert f"{target}/{rel}" in names, f"{folder}/{rel} is missing from the wheel"
        for module in (ROOT / folder).rglob("*.py"):
            assert f"{target}/{module.relative_to(ROOT / folder).as_posix()}" in names
    assert not any(n.split("/")[0] in FOLDERS for n in names), "a bare top-level package leaked into the wheel"
    assert any(n.startswith("lwl/studies/") and n.endswith(".yaml") for n in names) or not list(
        (ROOT / "studies").glob("*.yaml")
    )
    for data in (ROOT / "dashboards").glob("*.html"):  # the report's page template is package data
        assert f"lwl/dashboards/{data.name}" in names, f"dashboards/{data.name} is missing from the wheel"


@pytest.mark.slow
def test_the_wheel_imports_and_its_commands_run(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    code = (
        "import lwl.models, lwl.search, lwl.dashboards, sys; "
        "assert lwl.models.__file__.startswith(sys.argv[1]), lwl.models.__file__; "
        "from lwl.models.commands import inspect_main; "
        "inspect_main(['--preset', 'resnet18', '--dataset', 'cifar10', '--json'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert '"params": 11173962' in out.stdout
    # `python -m lwl.search` is lwl-search under this interpreter (workers are started that way).
    out = subprocess.run(
        [sys.executable, "-m", "lwl.search", "--help"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.stdout.startswith("usage: lwl-search")
