"""Every bad input a user can give: one line naming the problem and the fix, exit status 2, no traceback, and the
study database neither created nor changed (compared as a full SQL dump before and after)."""

import sqlite3
from pathlib import Path

import pytest

from lwl.models.commands import train_main
from lwl.search.commands import export_main, search_main

TINY = [
    "--dataset",
    "digits",
    "--widths",
    "4,8,8,16",
    "--epochs",
    "1",
    "--train-limit",
    "128",
    "--device",
    "cpu",
    "--quiet",
    "--pruner",
    "none",
]
SECRET = "hunter2"

# (id, command, arguments, what the one line must say). {db}: an existing study's storage (study "s", budget 8,
# one finished trial, plus study "empty" with none); {new}: a storage path that must not come into being; {tmp}: a
# scratch folder.
CASES = [
    ("budget below stages", search_main, ["--budget", "3", "--storage", "{new}"], "smaller than --stages 4"),
    ("no feasible list", search_main, ["--budget", "5", "--storage", "{new}"], "the smallest budget with one is 6"),
    ("no budget", search_main, ["--storage", "{new}"], "--budget is required"),
    (
        "unknown data set",
        search_main,
        ["--budget", "8", "--dataset", "mnist", "--storage", "{new}"],
        "argument --dataset: invalid choice: 'mnist'",
    ),
    (
        "unknown family",
        search_main,
        ["--budget", "8", "--family", "vit", "--storage", "{new}"],
        "argument --family: invalid choice: 'vit'",
    ),
    (
        "unknown preset",
        search_main,
        ["--budget", "8", "--preset", "nosuch", "--storage", "{new}"],
        "no such study preset or network",
    ),
    (
        "unknown sampler",
        search_main,
        ["--budget", "8", "--sampler", "cmaes", "--storage", "{new}"],
        "argument --sampler: invalid choice: 'cmaes'",
    ),
    (
        "unknown pruner",
        search_main,
        ["--budget", "8", "--pruner", "percentile", "--storage", "{new}"],
        "argument --pruner: invalid choice: 'percentile'",
    ),
    ("malformed storage URL", search_main, ["--budget", "8", "--storage", "ftp://nowhere/x"], "is not understood"),
    (
        "unreachable storage",
        search_main,
        ["--budget", "8", "--storage", f"postgresql://lwl:{SECRET}@127.0.0.1:1/lwl"],
        "check that the server runs",
    ),
    (
        "data set missing",
        search_main,
        ["--budget", "8", "--dataset", "cifar10", "--data-root", "{tmp}", "--storage", "{new}"],
        "pass --download to fetch it",
    ),
    (
        "study reused with other settings",
        search_main,
        ["--budget", "8", "--epochs", "3", "--storage", "{db}", "--study-name", "s"],
        "epochs 1 (stored) vs 3 (now)",
    ),
    (
        "infeasible enqueue",
        search_main,
        ["--budget", "8", "--enqueue", "4,2,1,1", "--storage", "{db}", "--study-name", "s"],
        "--enqueue 4,2,1,1: not feasible",
    ),
    (
        "export with no finished trial",
        export_main,
        ["--storage", "{db}", "--study-name", "empty", "--out", "{tmp}/c"],
        "has no complete trial yet",
    ),
    (
        "export of a missing study",
        export_main,
        ["--storage", "{db}", "--study-name", "nope", "--out", "{tmp}/c"],
        "no study named 'nope'",
    ),
    ("config not YAML", train_main, ["--config", "{tmp}/broken.yaml", "--out", "{tmp}/run"], "not valid YAML"),
    (
        "config missing a field",
        train_main,
        ["--config", "{tmp}/partial.yaml", "--out", "{tmp}/run"],
        "missing field schedule",
    ),
    (
        "resume without checkpoint",
        train_main,
        ["--config", "{tmp}/good.yaml", "--out", "{tmp}/run", "--resume"],
        "no checkpoint at",
    ),
]


def _dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        return list(con.iterdump())


@pytest.fixture(scope="module")
def study_db(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-input")
    db = root / "s.db"
    assert (
        search_main([*TINY, "--budget", "8", "--trials", "1", "--storage", f"sqlite:///{db}", "--study-name", "s"]) == 0
    )
    assert (
        search_main([*TINY, "--budget", "8", "--trials", "0", "--storage", f"sqlite:///{db}", "--study-name", "empty"])
        == 0
    )
    return db


@pytest.mark.parametrize(("command", "args", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(study_db, tmp_path, capsys, command, args, message):
    (tmp_path / "broken.yaml").write_text("schedule: [1, 1\nrecipe: {")
    (tmp_path / "partial.yaml").write_text("recipe:\n  dataset: digits\n")
    (tmp_path / "good.yaml").write_text(
        "schedule:\n  hierarchy: [1, 1, 2, 4]\n  family: resnet\nrecipe:\n  dataset: digits\n"
    )
    new = tmp_path / "studies" / "new.db"
    argv = [a.format(db=f"sqlite:///{study_db}", new=f"sqlite:///{new}", tmp=tmp_path) for a in args]
    before = _dump(study_db)
    with pytest.raises(SystemExit) as info:
        command(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert SECRET not in err
    assert _dump(study_db) == before
    assert not new.exists() and not (tmp_path / "studies").exists()
    assert not (tmp_path / "run").exists() and not (tmp_path / "c").exists()
