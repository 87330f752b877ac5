"""lwl-search never takes over what another program made: a foreign study, a foreign database, a name that would
reach outside studies/. Each refusal is one line, exit status 2, and leaves the storage exactly as it was."""

import sqlite3

import optuna
import pytest
from cases import tiny

from lwl.dashboards.commands import report_main
from lwl.search import StorageError, UsageError, check_study_name, open_storage
from lwl.search.commands import export_main, search_main

TINY = tiny("--budget", "8", "--trials", "1", train_limit=64)


def _dump(path) -> list[str]:
    with sqlite3.connect(path) as db:
        return list(db.iterdump())


def _refused(capsys, main, argv, words: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and words in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_study_of_another_program_is_refused_and_left_unchanged(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "other.db"
    plain = optuna.create_study(study_name="plain", storage=f"sqlite:///{db}", direction="maximize")
    plain.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    before = _dump(db)
    _refused(
        capsys,
        search_main,
        [*TINY, "--storage", f"sqlite:///{db}", "--study-name", "plain"],
        "study 'plain' in this storage was not made by lwl-search",
    )
    assert _dump(db) == before
    assert not (tmp_path / "studies").exists() and not (tmp_path / "other-artifacts").exists()


@pytest.mark.parametrize("suffix", ["pareto", "confirm"])
def test_a_foreign_derived_name_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch, suffix):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "s.db"
    optuna.create_study(study_name=f"mine-{suffix}", storage=f"sqlite:///{db}")
    before = _dump(db)
    _refused(
        capsys,
        search_main,
        [*TINY, "--storage", f"sqlite:///{db}", "--study-name", "mine"],
        f"'mine-{suffix}' exists in this storage and was not derived from 'mine'",
    )
    assert _dump(db) == before


def _foreign_db(path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("create table invoices (id integer primary key, total real)")
        db.execute("insert into invoices values (1, 9.5)")


@pytest.mark.parametrize("command", ["search", "export", "report"])
def test_a_database_of_another_program_gets_no_optuna_tables(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "shop.db"
    _foreign_db(db)
    before = _dump(db)
    url = f"sqlite:///{db}"
    argv = {
        "search": (search_main, [*TINY, "--storage", url, "--study-name", "s"]),
        "export": (export_main, ["--storage", url, "--study-name", "s", "--out", str(tmp_path / "c")]),
        "report": (report_main, ["--storage", url, "--study-name", "s", "--out", str(tmp_path / "r.html")]),
    }
    main, args = argv[command]
    _refused(capsys, main, args, "another program" if command == "search" else "holds")
    assert _dump(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.db"]


@pytest.mark.parametrize("command", ["export", "report"])
def test_readers_create_nothing_in_an_empty_database(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    url = f"sqlite:///{db}"
    main = export_main if command == "export" else report_main
    extra = ["--out", str(tmp_path / ("c" if command == "export" else "r.html"))]
    _refused(capsys, main, ["--storage", url, "--study-name", "s", *extra], "holds no study")
    assert _dump(db) == ["BEGIN TRANSACTION;", "COMMIT;"]  # no table
    with pytest.raises(StorageError, match="holds no study"):
        open_storage(url, heartbeat=False, create=False)


@pytest.mark.parametrize(
    "name, words",
    [
        ("../escape", "letters, digits"),
        ("a/b", "letters, digits"),
        ("-dash", "starting with a letter or digit"),
        ("x" * 101, "at most 100"),
        ("mine-pareto", "derived Pareto"),
        ("naïve", "letters, digits"),
        ("", "letters, digits"),
    ],
)
def test_study_names_are_checked_once_for_every_command(tmp_path, capsys, monkeypatch, name, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=words):
        check_study_name(name)
    _refused(capsys, search_main, [*TINY, f"--study-name={name}"], words)
    _refused(capsys, export_main, [f"--study-name={name}", "--out", "c"], words)
    _refused(capsys, report_main, [f"--study-name={name}"], words)
    assert list(tmp_path.iterdir()) == []


def test_good_names_pass():
    for name in ("digits-resnet-b12-s4", "run_3.a", "A1", "x" * 100):
        assert check_study_name(name) == name
