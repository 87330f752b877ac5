"""A sequential study with the prefix store reports exactly what the same study without it reports, trains fewer
units, and says how many it reused."""

import optuna
from optuna.trial import TrialState

from lwl.search._cli import main

TINY = ["--dataset", "digits", "--widths", "4,8,8,16", "--epochs", "1", "--train-limit", "256", "--device", "cpu",
        "--quiet", "--mode", "sequential", "--budget", "10", "--sampler", "grid", "--trials", "6",
        "--no-paper-baselines"]


def _study(db, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


def _by_list(study):
    return {tuple(t.user_attrs["hierarchy"]): t for t in study.trials}


def test_sharing_changes_nothing_the_pruner_sees_and_saves_unit_trainings(tmp_path, capsys):
    shared_db, alone_db = tmp_path / "shared.db", tmp_path / "alone.db"
    for db, extra in ((shared_db, []), (alone_db, ["--prefix-store", "off"])):
        # Successive halving judges from the first step: the same decisions must come out.
        assert main([*TINY, "--pruner", "sha", "--storage", f"sqlite:///{db}",
                     "--study-name", "p", *extra]) == 0
    out = capsys.readouterr().out
    shared, alone = _by_list(_study(shared_db, "p")), _by_list(_study(alone_db, "p"))
    assert shared.keys() == alone.keys() and len(shared) == 6
    for hierarchy, t in shared.items():
        a = alone[hierarchy]
        assert t.state == a.state and t.value == a.value, hierarchy
        assert t.intermediate_values == a.intermediate_values, hierarchy
        assert t.user_attrs["unit_acc_history"] == a.user_attrs["unit_acc_history"], hierarchy
    assert {t.state for t in shared.values()} == {TrialState.COMPLETE, TrialState.PRUNED}  # decisions were taken
    reused = sum(t.user_attrs["reused_units"] for t in shared.values())
    assert reused > 0 and all("reused_units" not in t.user_attrs for t in alone.values())
    assert (tmp_path / "shared-prefixes").is_dir() and not (tmp_path / "alone-prefixes").exists()
    assert f"prefix sharing: {reused} of " in out
