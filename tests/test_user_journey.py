"""The whole road a user takes, through the installed commands: search, report, export, train, kill, resume."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cases import tiny

CHECKPOINT_FILE = "checkpoint.pt"  # lwl-train's checkpoint in its --out folder (README)

TINY = tiny(epochs=2, train_limit=256, quiet=False)
MODULES = {
    "lwl-search": "lwl.search.commands:search_main",
    "lwl-report": "lwl.dashboards.commands:report_main",
    "lwl-export": "lwl.search.commands:export_main",
    "lwl-train": "lwl.models.commands:train_main",
}


def _cmd(name: str, *args: str) -> list[str]:
    exe = shutil.which(name)
    if exe is not None:
        return [exe, *args]
    module, func = MODULES[name].split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}())", *args]


def _run(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(_cmd(name, *args), cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{name} failed:\n{done.stderr}"
    return done


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_search_report_export_train_kill_resume(tmp_path, sigkill_after_checkpoint):
    storage = "sqlite:///studies/j.db"
    search = _run(
        "lwl-search",
        *TINY,
        "--budget",
        "8",
        "--trials",
        "3",
        "--pruner",
        "none",
        "--storage",
        storage,
        "--study-name",
        "j",
        cwd=tmp_path,
    )
    assert "lwl-export --storage sqlite:///studies/j.db --study-name j --best" in search.stdout

    report = _run("lwl-report", "--storage", storage, "--study-name", "j", "--out", "j.html", cwd=tmp_path)
    assert "wrote j.html" in report.stdout
    page = (tmp_path / "j.html").read_text()
    assert page.count("Plotly.newPlot") >= 5 and "<script src=" not in page

    export = _run("lwl-export", "--storage", storage, "--study-name", "j", "--best", "--out", "configs", cwd=tmp_path)
    [config] = sorted((tmp_path / "configs").glob("trial-*.yaml"))
    assert f"lwl-train --config configs/{config.name}" in export.stdout
    data = yaml.safe_load(config.read_text())
    assert data["recipe"]["epochs"] == 10 and data["provenance"]["study"] == "j"

    # Full training of the exported config, killed with SIGKILL after its first checkpoint, then resumed.
    out = tmp_path / "run"
    args = ["--config", str(config), "--epochs", "6", "--device", "cpu", "--out", str(out)]
    killed_at = sigkill_after_checkpoint(_cmd("lwl-train", *args), out / CHECKPOINT_FILE, cwd=tmp_path)
    assert 1 <= killed_at < 6
    resumed = _run("lwl-train", *args, "--resume", cwd=tmp_path)
    assert f"resuming after epoch {killed_at}/6" in resumed.stderr
    assert "output test accuracy" in resumed.stdout and "search: study 'j'" in resumed.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and [r["epoch"] for r in metrics["records"]] == [1, 2, 3, 4, 5, 6]
    assert (out / "model.pt").is_file() and metrics["test"]["output_acc"] is not None
