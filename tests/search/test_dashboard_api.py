"""What a user sees in optuna-dashboard for a study written by lwl-search, read through its REST API."""

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from lwl.models import load_config
from lwl.search.commands import search_main as main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dash")
    storage = f"sqlite:///{tmp / 'd.db'}"
    assert (
        main(
            [
                "--dataset",
                "digits",
                "--widths",
                "4,8,8,16",
                "--epochs",
                "2",
                "--train-limit",
                "256",
                "--device",
                "cpu",
                "--quiet",
                "--budget",
                "8",
                "--trials",
                "3",
                "--pruner",
                "none",
                "--storage",
                storage,
                "--study-name",
                "d",
            ]
        )
        == 0
    )
    port = _free_port()
    artifacts = tmp / "d-artifacts"  # where lwl-search puts them beside a SQLite file
    assert artifacts.is_dir()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from optuna_dashboard._cli import main; main()",
            storage,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--artifact-dir",
            str(artifacts),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                _get(f"{base}/api/studies")
                break
            except OSError:
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(10)


def test_the_dashboard_shows_the_study_trials_and_the_pareto_study(dashboard):
    studies = {s["study_name"]: s for s in _get(f"{dashboard}/api/studies")["study_summaries"]}
    assert set(studies) == {"d", "d-pareto"}
    assert studies["d"]["directions"] == ["maximize"]
    assert studies["d-pareto"]["directions"] == ["maximize", "minimize"]
    detail = _get(f"{dashboard}/api/studies/{studies['d']['study_id']}")
    trials = detail["trials"]
    assert len(trials) == 3
    for t in trials:
        assert sorted(p["name"] for p in t["params"]) == ["d1", "d2", "d3", "d4"]
        assert [v["step"] for v in t["intermediate_values"]] == [1, 2]
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        assert {"hierarchy", "params", "unit_acc_history", "wall_time"} <= set(attrs)
    pareto = _get(f"{dashboard}/api/studies/{studies['d-pareto']['study_id']}")
    assert len(pareto["trials"]) == 3 and pareto["best_trials"]


def test_every_complete_trial_offers_its_training_config_for_download(dashboard):
    studies = {s["study_name"]: s for s in _get(f"{dashboard}/api/studies")["study_summaries"]}
    study_id = studies["d"]["study_id"]
    for t in _get(f"{dashboard}/api/studies/{study_id}")["trials"]:
        [artifact] = t["artifacts"]
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        hierarchy = json.loads(attrs["hierarchy"]) if isinstance(attrs["hierarchy"], str) else attrs["hierarchy"]
        assert artifact["filename"] == f"trial-{t['number']}_{'-'.join(map(str, hierarchy))}.yaml"
        with urllib.request.urlopen(
            f"{dashboard}/artifacts/{study_id}/{t['trial_id']}/{artifact['artifact_id']}", timeout=10
        ) as response:
            text = response.read().decode()
        path = Path(tempfile.mkdtemp()) / artifact["filename"]
        path.write_text(text)
        config = load_config(path)  # the file lwl-train --config takes
        assert list(config.schedule.hierarchy) == hierarchy
        assert config.provenance["trial"] == t["number"] and config.provenance["study"] == "d"
        assert config.provenance["search_accuracy"] == t["values"][0]
        assert config.recipe.epochs == 10 and config.recipe.train_limit is None  # the full recipe
