"""What a user sees in optuna-dashboard for a study written by lwl-search, read through its REST API."""

import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from cases import tiny

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
            tiny(
                *("--budget", "8", "--trials", "3", "--pruner", "none", "--storage", storage, "--study-name", "d"),
                *("--confirm", "2", "--confirm-seeds", "1"),
                epochs=2,
                train_limit=256,
            )
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


@pytest.mark.slow
def test_the_dashboard_shows_the_study_trials_and_the_pareto_study(dashboard):
    studies = {s["study_name"]: s for s in _get(f"{dashboard}/api/studies")["study_summaries"]}
    assert set(studies) == {"d", "d-pareto", "d-confirm"}
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


def test_the_dashboard_names_the_metric_and_maps_the_pareto_trials_to_the_search(dashboard):
    """Not "Objective 0"; and the -pareto study says how its trial numbers map to the search study's."""
    studies = {s["study_name"]: s for s in _get(f"{dashboard}/api/studies")["study_summaries"]}
    detail = _get(f"{dashboard}/api/studies/{studies['d']['study_id']}")
    assert detail["objective_names"] == ["validation accuracy"]
    pareto = _get(f"{dashboard}/api/studies/{studies['d-pareto']['study_id']}")
    assert pareto["objective_names"] == ["validation accuracy", "parameters"]
    study_attrs = {a["key"]: a["value"] for a in pareto["user_attrs"]}
    assert "source_trial" in study_attrs["trial_numbers"] and "'d'" in study_attrs["trial_numbers"]
    by_number = {t["number"]: t for t in detail["trials"]}
    for t in pareto["trials"]:
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        source = by_number[int(attrs["source_trial"])]
        assert t["values"][0] == source["values"][0]
        assert {a["key"]: a["value"] for a in source["user_attrs"]}["hierarchy"] == attrs["hierarchy"]


def test_the_dashboard_shows_the_confirmation_runs_with_their_seed_and_source(dashboard):
    studies = {s["study_name"]: s for s in _get(f"{dashboard}/api/studies")["study_summaries"]}
    search = _get(f"{dashboard}/api/studies/{studies['d']['study_id']}")
    confirm = _get(f"{dashboard}/api/studies/{studies['d-confirm']['study_id']}")
    assert confirm["objective_names"] == ["validation accuracy"] and len(confirm["trials"]) == 2
    by_number = {t["number"]: t for t in search["trials"]}
    for t in confirm["trials"]:
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        assert int(attrs["seed"]) == 1  # the study's seed (0) + 1
        source = by_number[int(attrs["confirms"])]
        assert {p["name"]: p["param_external_value"] for p in t["params"]} == {
            p["name"]: p["param_external_value"] for p in source["params"]
        }
        assert [v["step"] for v in t["intermediate_values"]] == [1, 2]


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
        assert config.recipe.val_fraction == 0 and config.data_root is None  # every training image; no --data-root


# ------------------------------------------------------------------------ the printed command, on a server
SERVERS = {
    "postgresql": ("127.0.0.1", 5432, "postgresql://postgres@127.0.0.1:5432/test"),  # trust auth
    "mariadb": ("127.0.0.1", 3306, "mysql://root@127.0.0.1:3306/test"),
}


def _server_url(name: str) -> str:
    host, port, url = SERVERS[name]
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not running on {host}:{port}; CI must start it (see .ci/run)")
        pytest.skip(f"{name} is not running on {host}:{port}")
    return url


def _dashboard_argv(printed: str) -> list[str]:
    """The printed command as argv, run with this interpreter's optuna-dashboard."""
    argv = shlex.split(printed.split("#")[0])
    assert argv[0] == "optuna-dashboard"
    script = Path(sys.executable).with_name("optuna-dashboard")
    module = [sys.executable, "-c", "from optuna_dashboard._cli import main; main()"]
    runner = [str(script)] if script.exists() else module
    return runner + argv[1:]


@pytest.mark.parametrize("server", list(SERVERS))
@pytest.mark.slow
def test_the_printed_dashboard_command_works_as_printed_on_a_server(server, tmp_path, monkeypatch, capsys):
    """lwl-search's summary prints the optuna-dashboard command; on PostgreSQL and MySQL it must name a driver
    that is installed (a bare postgresql:// makes SQLAlchemy 2.1 pick psycopg 3, mysql:// MySQLdb)."""
    import optuna

    url = _server_url(server)
    name = f"dash-{uuid.uuid4().hex[:8]}"
    monkeypatch.chdir(tmp_path)  # a server's artifacts go to studies/artifacts under the working directory
    args = tiny("--budget", "8", "--trials", "1", "--pruner", "none", "--storage", url, "--study-name", name)
    server_proc = None
    try:
        assert main(args) == 0
        [printed] = [line.strip() for line in capsys.readouterr().out.splitlines() if "optuna-dashboard" in line]
        expected = {"postgresql": "postgresql+psycopg://", "mariadb": "mysql+pymysql://"}[server]
        assert printed.startswith(f"optuna-dashboard {expected}")
        port = _free_port()
        server_proc = subprocess.Popen(
            [*_dashboard_argv(printed), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            assert server_proc.poll() is None, f"optuna-dashboard ended: {server_proc.stderr.read()[-2000:]}"
            try:
                studies = {s["study_name"]: s for s in _get(f"{base}/api/studies")["study_summaries"]}
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("optuna-dashboard did not answer within 30 s")
        assert {name, f"{name}-pareto"} <= set(studies)
        detail = _get(f"{base}/api/studies/{studies[name]['study_id']}")
        assert len(detail["trials"]) == 1 and detail["trials"][0]["artifacts"]  # --artifact-dir as printed
    finally:
        if server_proc is not None:
            server_proc.terminate()
            server_proc.wait(10)
        from lwl.search import open_storage

        storage = open_storage(url, heartbeat=False)
        for study_name in (name, f"{name}-pareto"):
            try:
                optuna.delete_study(study_name=study_name, storage=storage)
            except KeyError:
                pass
