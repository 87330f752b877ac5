"""Many workers on the real database servers this machine runs (PostgreSQL, MariaDB, Redis on loopback).

In CI (CI=true) a missing server is a failure, not a skip: CI starts them. On a user's machine without them, skip."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import optuna
import pytest
from cases import tiny
from optuna.trial import TrialState

# Whole searches on database servers, several workers each, waited for up to 10 minutes: a longer limit than the
# suite's default (pyproject.toml).
pytestmark = pytest.mark.timeout(1200)

SERVERS = {
    "postgresql": ("127.0.0.1", 5432, "postgresql://postgres:s3cret-pw@127.0.0.1:5432/test"),
    "mariadb": ("127.0.0.1", 3306, "mysql+pymysql://root@127.0.0.1:3306/test"),
    "redis": ("127.0.0.1", 6379, "redis://127.0.0.1:6379/0"),
}
TINY = tiny("--budget", "10", "--pruner", "none", "--no-paper-baselines", quiet=False)
LWL_SEARCH = [sys.executable, "-m", "lwl.search"]  # this interpreter's lwl-search


def _require(name: str) -> str:
    host, port, url = SERVERS[name]
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not running on {host}:{port}; CI must start it (see .ci/run)")
        pytest.skip(f"{name} is not running on {host}:{port}")
    return url


def _drop(storage, name: str) -> None:
    """Delete a test's study and its derived Pareto study from a shared server."""
    for study_name in (name, f"{name}-pareto"):
        try:
            optuna.delete_study(study_name=study_name, storage=storage)
        except KeyError:
            pass


@pytest.fixture(params=list(SERVERS))
def server(request):
    url = _require(request.param)
    name = f"w-{uuid.uuid4().hex[:8]}"
    yield url, name
    from lwl.search import open_storage

    _drop(open_storage(url.replace("s3cret-pw", ""), heartbeat=False), name)


@pytest.mark.slow
def test_workers_share_one_study_exactly(server, tmp_path):
    url, name = server
    out = subprocess.run(
        [
            *LWL_SEARCH,
            *TINY,
            "--sampler",
            "grid",
            "--trials",
            "5",
            "--workers",
            "3",
            "--storage",
            url,
            "--study-name",
            name,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    from lwl.search import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=False))
    states = Counter(t.state for t in study.trials)
    assert states[TrialState.COMPLETE] + states[TrialState.PRUNED] == 5, states
    assert states[TrialState.RUNNING] == states[TrialState.WAITING] == 0, "every trial ends in a final state"
    lists = [tuple(t.params.values()) for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(lists) == len(set(lists)), "grid trained a list twice"
    # The password never appears: not in output, not in the study's attributes.
    assert "s3cret-pw" not in out.stdout + out.stderr
    assert "s3cret-pw" not in repr(study.user_attrs) + repr([t.user_attrs for t in study.trials])


@pytest.mark.slow
def test_sqlite_is_refused_for_several_workers(tmp_path):
    out = subprocess.run(
        [*LWL_SEARCH, *TINY, "--workers", "2", "--storage", f"sqlite:///{tmp_path / 'x.db'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "not safe" in out.stderr and not (tmp_path / "x.db").exists()


@pytest.mark.slow
def test_an_unreachable_server_is_one_line_without_the_password(tmp_path):
    out = subprocess.run(
        [*LWL_SEARCH, *TINY, "--storage", "postgresql://postgres:hunter2@127.0.0.1:1/none"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "cannot open storage" in out.stderr and "hunter2" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_failed_by_heartbeat_and_its_list_retried(tmp_path):
    url = _require("postgresql")
    name = f"k-{uuid.uuid4().hex[:8]}"
    args = [
        *TINY,
        "--epochs",
        "8",
        "--sampler",
        "grid",
        "--storage",
        url,
        "--study-name",
        name,
        "--heartbeat",
        "1",
        "--quiet",
    ]
    from lwl.search import open_storage

    storage = open_storage(url, heartbeat=False)
    victim = subprocess.Popen(
        [*LWL_SEARCH, *args, "--trials", "2"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(600):
            try:
                running = optuna.load_study(study_name=name, storage=storage).get_trials(states=(TrialState.RUNNING,))
            except KeyError:
                running = []
            if running and running[0].intermediate_values:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the first worker never reported progress")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed = running[0]
        time.sleep(4)  # three missed heartbeats
        rescuer = subprocess.run(
            [*LWL_SEARCH, *args, "--trials", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert rescuer.returncode == 0, rescuer.stderr
        study = optuna.load_study(study_name=name, storage=storage)
        states = {t.number: t.state for t in study.trials}
        assert states[killed.number] == TrialState.FAIL, "the killed worker's trial must not stay RUNNING"
        assert TrialState.RUNNING not in states.values()
        retried = [t for t in study.trials if t.number != killed.number and t.params == killed.params]
        assert retried and retried[0].state == TrialState.COMPLETE, "another worker retried the same list"
        finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) == 2
    finally:
        victim.kill()
        _drop(storage, name)


class _Proxy:
    """A TCP proxy in front of a real server: `cut()` drops the listener and every connection, as a stopped server
    or a broken network does, without touching the server that other tests share; `restore()` listens again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port, self.conns, self.lock = target, 0, [], threading.Lock()
        self.restore()

    def restore(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(), which frees the port
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.conns = []


@pytest.mark.slow
def test_a_database_that_goes_away_stops_the_worker_cleanly_and_the_rerun_continues(tmp_path):
    url = _require("postgresql")
    proxy = _Proxy(("127.0.0.1", 5432))
    via_proxy = url.replace(":5432/", f":{proxy.port}/")
    name = f"g-{uuid.uuid4().hex[:8]}"
    args = [
        *TINY,
        "--epochs",
        "3",
        "--train-limit",
        "512",
        "--storage",
        via_proxy,
        "--study-name",
        name,
        "--heartbeat",
        "1",
        "--trials",
        "5",
    ]
    from lwl.search import open_storage

    storage = open_storage(url, heartbeat=False)  # the test's own view, not through the proxy
    worker = subprocess.Popen(
        [*LWL_SEARCH, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(600):
            try:
                study = optuna.load_study(study_name=name, storage=storage)
                if sum(t.state == TrialState.COMPLETE for t in study.trials) >= 2:
                    break
            except KeyError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("no trial finished")
        proxy.cut()
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 1, err
        lines = [line for line in err.strip().splitlines() if line.startswith("lwl-search: lost the storage")]
        assert len(lines) == 1 and "run the same command to continue" in lines[0], err
        assert "Traceback" not in err and "s3cret-pw" not in err
        study = optuna.load_study(study_name=name, storage=storage)
        kept = {t.number: t.params for t in study.trials if t.state == TrialState.COMPLETE}
        assert len(kept) >= 2, "finished trials must survive"
        stranded = [t for t in study.trials if t.state == TrialState.RUNNING]

        proxy.restore()  # the server is back
        time.sleep(4)  # past the stranded trial's three heartbeats
        rerun = subprocess.run([*LWL_SEARCH, *args], cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr
        study = optuna.load_study(study_name=name, storage=storage)
        assert all(
            study.trials[n].params == p and study.trials[n].state == TrialState.COMPLETE for n, p in kept.items()
        )
        assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials) == 5
        assert not [t for t in study.trials if t.state == TrialState.RUNNING]
        finished = (TrialState.COMPLETE, TrialState.PRUNED)  # trained again, the list may be pruned this time
        stages = len(next(iter(kept.values())))
        for t in stranded:  # failed by its heartbeat, its list trained again
            assert study.trials[t.number].state == TrialState.FAIL
            # a trial cut between its start and its list's choice holds no list (its params are not all there):
            # nothing of it is left to train again (its retry samples a fresh list)
            fresh = study.trials[t.number].params
            if len(fresh) == stages:
                assert any(o.params == fresh and o.state in finished for o in study.trials)
    finally:
        worker.kill()
        proxy.cut()
        _drop(storage, name)


# user:pw@ on PostgreSQL is covered by test_workers_share_one_study_exactly (s3cret-pw), so only the others run
# here: each case is a search, an export, a report and an lwl-train of the exported config (about a minute on 2
# cores). "azure" and "encoded-key" are issue 28's forms on a role named "hostile@az": a user name with '@' and a
# password with a space, and a percent-encoded query key (?pass%77ord=); the unencoded '@' in a password cannot
# reach a server (SQLAlchemy takes its tail for the host) and is covered by tests/models/test_secrets.py.
@pytest.mark.parametrize("form", ["query", "redis", "azure", "encoded-key"])
@pytest.mark.slow
def test_a_password_in_any_form_of_url_reaches_no_output_and_no_file(tmp_path, form):
    """The password of a query string (?password=, ?pass%77ord=), of the user info (user:pw@, u@x:pw@) and of
    Redis' :pw@ form: masked in every message, in the study's and trials' attributes, the artifacts, the exported
    config, the report and the training run of the exported config (config.yaml, metrics, checkpoint, model)."""
    secret = "hunter2-" + uuid.uuid4().hex[:6]
    database = None
    if form == "redis":
        _require("redis")
        # The loopback Redis has no password: a user of this test's own (an ACL user) carries one, leaving the
        # default user, which other tests share, as it is. (The bare `redis://:pw@` form is masked by the same rule,
        # tests/models/test_secrets.py.)
        import redis

        user = f"lwl-{uuid.uuid4().hex[:6]}"
        redis.Redis(host="127.0.0.1", port=6379).acl_setuser(
            user, enabled=True, passwords=[f"+{secret}"], keys=["*"], channels=["*"], commands=["+@all"]
        )
        url = f"redis://{user}:{secret}@127.0.0.1:6379/0"
    elif form == "query":
        _require("postgresql")
        url = f"postgresql://postgres@127.0.0.1:5432/test?password={secret}"
    else:
        _require("postgresql")
        secret = f"hunter2 {uuid.uuid4().hex[:6]}" if form == "azure" else secret  # a space in the password
        database = _hostile_database(secret)
        url = (
            f"postgresql://hostile@az:{secret}@127.0.0.1:5432/{database}"
            if form == "azure"
            else f"postgresql://hostile@az@127.0.0.1:5432/{database}?pass%77ord={secret}"
        )
    name = f"pw-{uuid.uuid4().hex[:8]}"
    workers = ["--workers", "2"] if form == "azure" else []  # the group's own lines and the workers' output too
    try:
        runs = [
            subprocess.run(
                [*LWL_SEARCH, *TINY, "--trials", "2", "--storage", url, "--study-name", name, *workers],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=600,
            )
        ]
        assert runs[0].returncode == 0, runs[0].stderr
        runs.append(
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; from lwl.search.commands import export_main; sys.exit(export_main())",
                    "--storage",
                    url,
                    "--study-name",
                    name,
                    "--out",
                    str(tmp_path / "configs"),
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
            )
        )
        runs.append(
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; from lwl.dashboards.commands import report_main; sys.exit(report_main())",
                    "--storage",
                    url,
                    "--study-name",
                    name,
                    "--out",
                    str(tmp_path / "r.html"),
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
            )
        )
        [config] = (tmp_path / "configs").glob("*.yaml")
        runs.append(
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; from lwl.models.commands import train_main; sys.exit(train_main())",
                    "--config",
                    str(config),
                    "--epochs",
                    "1",
                    "--device",
                    "cpu",
                    "--out",
                    str(tmp_path / "run"),
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
            )
        )
        for run in runs:
            assert run.returncode == 0, run.stderr
            assert secret not in run.stdout + run.stderr
        assert "***" in runs[0].stdout
        from lwl.search import open_storage

        storage = open_storage(url, heartbeat=False)
        study = optuna.load_study(study_name=name, storage=storage)
        stored = repr(study.user_attrs) + repr(storage.get_study_system_attrs(storage.get_study_id_from_name(name)))
        stored += repr([(t.user_attrs, t.system_attrs) for t in study.trials])
        assert secret not in stored and "***" in study.user_attrs["storage"]
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert any(p.suffix == ".yaml" for p in files) and (tmp_path / "r.html").is_file()
        made = {p.name for p in (tmp_path / "run").iterdir()}
        assert {"config.yaml", "metrics.json", "metrics.csv", "checkpoint.pt", "model.pt"} <= made
        for path in files:
            data = path.read_bytes()
            assert secret.encode() not in data and secret.split()[-1].encode() not in data, path
    finally:
        from lwl.search import open_storage

        try:
            if database is None:
                _drop(open_storage(url, heartbeat=False), name)
        finally:
            if form == "redis":
                redis.Redis(host="127.0.0.1", port=6379).acl_deluser(user)
            if database is not None:
                _drop_database(database)


_HOSTILE_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def _hostile_database(password: str) -> str:
    """A fresh database owned by the role "hostile@az" (made if missing; this password set on it)."""
    import sqlalchemy

    db = f"lwl_pw_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(_HOSTILE_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            exists = c.execute(sqlalchemy.text("SELECT 1 FROM pg_roles WHERE rolname = 'hostile@az'")).first()
            if not exists:
                c.execute(sqlalchemy.text('CREATE ROLE "hostile@az" LOGIN'))
            quoted = password.replace("'", "''")
            c.execute(sqlalchemy.text(f"ALTER ROLE \"hostile@az\" PASSWORD '{quoted}'"))
            c.execute(sqlalchemy.text(f'CREATE DATABASE {db} OWNER "hostile@az"'))
    finally:
        admin.dispose()
    return db


def _drop_database(db: str) -> None:
    import sqlalchemy

    admin = sqlalchemy.create_engine(_HOSTILE_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
    finally:
        admin.dispose()


def _wait_for_progress(storage, name: str, proc: subprocess.Popen, count: int = 1, limit: float = 300) -> list:
    """The RUNNING trials once `count` of them have reported progress (the worker `proc` must still run)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the worker ended before its trial reported progress"
        try:
            running = optuna.load_study(study_name=name, storage=storage).get_trials(states=(TrialState.RUNNING,))
        except KeyError:
            running = []
        if sum(bool(t.intermediate_values) for t in running) >= count:
            return running
        time.sleep(0.2)
    raise AssertionError("no trial reported progress in time")


@pytest.mark.slow
def test_a_rerun_right_after_a_sigkill_waits_for_the_heartbeat_and_ends_exact(tmp_path):
    """Within the grace period the killed worker's trial still counts as RUNNING: the rerun must not stop short
    saying 'reached --trials'; it waits until the heartbeat fails that trial (with its reason), then trains its
    list again, and ends with exactly --trials finished."""
    url = _require("postgresql")
    name = f"r-{uuid.uuid4().hex[:8]}"
    args = [*TINY, "--epochs", "8", "--sampler", "grid", "--storage", url, "--study-name", name, "--heartbeat", "8"]
    from lwl.search import open_storage

    storage = open_storage(url, heartbeat=False)
    victim = subprocess.Popen(
        [*LWL_SEARCH, *args, "--trials", "2", "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        (killed,) = _wait_for_progress(storage, name, victim)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        t0 = time.monotonic()
        rerun = subprocess.run(
            [*LWL_SEARCH, *args, "--trials", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert rerun.returncode == 0, rerun.stderr
        study = optuna.load_study(study_name=name, storage=storage)
        states = Counter(t.state for t in study.trials)
        assert states[TrialState.COMPLETE] + states[TrialState.PRUNED] == 2, states
        assert states[TrialState.RUNNING] == states[TrialState.WAITING] == 0
        lost = study.trials[killed.number]
        assert lost.state == TrialState.FAIL and lost.user_attrs["fail_reason"] == "lost worker"
        assert "no heartbeat for more than 24 s" in lost.user_attrs["fail_detail"]
        retried = [t for t in study.trials if t.number != killed.number and t.params == killed.params]
        assert retried and retried[0].state == TrialState.COMPLETE and "fail_reason" not in retried[0].user_attrs
        assert "2 complete, 0 pruned, 1 failed; stopped:" in rerun.stdout
        if time.monotonic() - t0 < 24:  # it started within the grace period: it said what it waited for
            assert f"waiting for trial {killed.number}" in rerun.stderr
    finally:
        victim.kill()
        _drop(storage, name)


def _simultaneous(url: str, name: str, workers: int, flags: list[str], cwd) -> list[subprocess.CompletedProcess]:
    """`workers` independent lwl-search processes that open the storage within milliseconds of each other: each
    imports everything, then waits at a barrier (imports alone take seconds and would spread the starts)."""
    code = (
        "import os, sys, time\n"
        "from lwl.search.commands import search_main\n"
        "open(sys.argv[1], 'w').close()\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.002)\n"
        "sys.exit(search_main(sys.argv[3:]))\n"
    )
    go = cwd / "go"
    ready = [cwd / f"ready-{i}" for i in range(workers)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(ready[i]), str(go), *flags, "--storage", url, "--study-name", name],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    try:
        deadline = time.monotonic() + 300
        while not all(r.exists() for r in ready):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a worker did not start"
            time.sleep(0.05)
        go.touch()
        done = []
        for p in procs:
            out, err = p.communicate(timeout=600)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
        return done
    finally:
        for p in procs:
            p.kill()


@pytest.fixture
def fresh_database(request):
    """A new, empty database on the server `request.param` (postgresql or mariadb), dropped afterwards."""
    import sqlalchemy

    base = _require(request.param).rsplit("/", 1)[0].replace(":s3cret-pw", "")
    db = f"lwl_race_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(f"{base}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sqlalchemy.text(f"CREATE DATABASE {db}"))
    try:
        yield f"{base}/{db}"
    finally:
        with admin.connect() as c:
            force = " WITH (FORCE)" if request.param == "postgresql" else ""
            c.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {db}{force}"))
        admin.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("fresh_database", ["postgresql", "mariadb"], indirect=True)
def test_workers_started_at_once_on_a_fresh_database_neither_crash_nor_train_a_list_twice(fresh_database, tmp_path):
    """Schema, study, settings and the enqueued lists are created by whichever worker is first; the others wait,
    retry or load, and an enqueued list two workers both queued is trained once."""
    flags = [*TINY, "--trials", "4", "--quiet", "--no-summary", "--enqueue", "1,1,4,4", "--enqueue", "1,2,3,4"]
    runs = _simultaneous(fresh_database, "race", 3, flags, tmp_path)
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr[-500:] for r in runs]
    assert not any("Traceback" in r.stderr for r in runs)
    from lwl.search import open_storage

    storage = open_storage(fresh_database, heartbeat=False)
    study = optuna.load_study(study_name="race", storage=storage)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4, Counter(t.state for t in study.trials)
    lists = [tuple(t.params.values()) for t in finished]
    assert len(lists) == len(set(lists)), "a list was trained twice"
    assert {(1, 1, 4, 4), (1, 2, 3, 4)} <= set(lists), "the enqueued lists were trained"
    for t in study.trials:
        if t.state == TrialState.FAIL:
            assert t.user_attrs.get("fail_reason") in ("duplicate", "surplus"), t.user_attrs
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    storage.engine.dispose()  # let the database be dropped


def test_a_study_name_too_long_for_the_server_is_one_line_not_a_lost_storage(tmp_path, monkeypatch, capsys):
    """The command refuses long names itself; should a server refuse one anyway (DataError), the line says so."""
    url = _require("postgresql")
    # a private mechanism on purpose: let a name past the command's own check
    import lwl.search._console.lwl_search as cli

    monkeypatch.setattr(cli, "check_study_name", lambda name: name)
    monkeypatch.chdir(tmp_path)  # the artifacts folder of a server's storage is studies/artifacts
    from lwl.search.commands import search_main

    name = "n" * 600
    with pytest.raises(SystemExit) as exit_status:
        search_main([*TINY, "--trials", "1", "--quiet", "--storage", url, "--study-name", name])
    assert exit_status.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "600 characters" in err[0] and "lost the storage" not in err[0], err


@pytest.mark.slow
def test_losing_the_database_mid_trial_is_one_line_without_the_heartbeat_thread_s_traceback(tmp_path):
    """Cut while a trial trains: the heartbeat thread meets the lost connection first, and stays silent."""
    url = _require("postgresql")
    proxy = _Proxy(("127.0.0.1", 5432))
    via_proxy = url.replace(":5432/", f":{proxy.port}/")
    name = f"h-{uuid.uuid4().hex[:8]}"
    args = [*TINY, "--epochs", "40", "--batch-size", "8", "--train-limit", "1024", "--trials", "1"]
    from lwl.search import open_storage

    storage = open_storage(url, heartbeat=False)
    worker = subprocess.Popen(
        [*LWL_SEARCH, *args, "--storage", via_proxy, "--study-name", name, "--heartbeat", "1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_progress(storage, name, worker)
        proxy.cut()  # mid-epoch: the next heartbeat (every second) fails before the epoch's report does
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 1, err
        assert "Traceback" not in err and "Exception in thread" not in err, err
        lines = [line for line in err.splitlines() if line.startswith("lwl-search: lost the storage")]
        assert len(lines) == 1, err
    finally:
        worker.kill()
        proxy.cut()
        _drop(storage, name)


@pytest.mark.slow
def test_a_multi_objective_study_with_workers_and_batches_on_every_server(server, tmp_path):
    """--objectives with the hvi sampler and the dominance pruner, 2 workers each training 2 candidates together:
    the count is exact, no list is trained twice, every trial carries its costs, and the front is published."""
    url, name = server
    cmd = [*LWL_SEARCH, *TINY, "--objectives", "accuracy,params,memory", "--trials", "8", "--workers", "2"]
    cmd += ["--pruner", "dominance", "--batch", "2", "--epochs", "3", "--confirm", "off"]
    cmd += ["--storage", url, "--study-name", name]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    from lwl.search import open_storage, pareto_front

    storage = open_storage(url, heartbeat=False)
    study = optuna.load_study(study_name=name, storage=storage)
    states = Counter(t.state for t in study.trials)
    assert states[TrialState.COMPLETE] + states[TrialState.PRUNED] == 8, states
    first = [tuple(t.user_attrs["hierarchy"]) for t in study.trials if t.user_attrs.get("revisit_of") is None]
    assert len(first) == len(set(first)), "a list was trained twice"
    assert all(t.user_attrs.get("memory") for t in study.trials if t.state == TrialState.COMPLETE)
    derived = optuna.load_study(study_name=f"{name}-pareto", storage=storage)
    assert len(derived.directions) == 3
    assert {t.user_attrs["source_trial"] for t in derived.best_trials} == {t.number for t in pareto_front(study)}
    assert "front (accuracy against params, memory)" in out.stdout
