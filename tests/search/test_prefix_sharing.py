"""A sequential study with the prefix store reports exactly what the same study without it reports, trains fewer
units, and says how many it reused."""

import optuna
import pytest
from cases import NO_CONFIRM, tiny
from optuna.trial import TrialState

from lwl.search.commands import search_main as main

TINY = tiny(
    *("--mode", "sequential", "--budget", "10", "--sampler", "grid", "--trials", "6"),
    "--no-paper-baselines",
    *NO_CONFIRM,
    train_limit=256,
)


def _study(db, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


def _by_list(study):
    return {tuple(t.user_attrs["hierarchy"]): t for t in study.trials}


@pytest.mark.slow
def test_sharing_changes_nothing_the_pruner_sees_and_saves_unit_trainings(tmp_path, capsys):
    shared_db, alone_db = tmp_path / "shared.db", tmp_path / "alone.db"
    for db, extra in ((shared_db, []), (alone_db, ["--prefix-store", "off"])):
        # Successive halving judges from the first step: the same decisions must come out.
        assert main([*TINY, "--pruner", "sha", "--storage", f"sqlite:///{db}", "--study-name", "p", *extra]) == 0
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


SIMULTANEOUS = tiny(
    "--budget", "10", "--sampler", "grid", "--trials", "6", "--no-paper-baselines", epochs=2, train_limit=256
)


@pytest.mark.slow
def test_a_batched_study_reports_what_one_by_one_reports_with_fewer_unit_trainings(tmp_path, capsys):
    batched_db, alone_db = tmp_path / "batched.db", tmp_path / "alone.db"
    for db, extra in ((batched_db, ["--batch", "3"]), (alone_db, [])):
        assert (
            main([*SIMULTANEOUS, "--pruner", "none", "--storage", f"sqlite:///{db}", "--study-name", "b", *extra]) == 0
        )
    out = capsys.readouterr().out
    batched, alone = _by_list(_study(batched_db, "b")), _by_list(_study(alone_db, "b"))
    assert batched.keys() == alone.keys() and len(batched) == 6
    for hierarchy, t in batched.items():
        a = alone[hierarchy]
        assert t.state == a.state == TrialState.COMPLETE, hierarchy
        assert t.value == a.value and t.intermediate_values == a.intermediate_values, hierarchy
        assert t.user_attrs["unit_acc_history"] == a.user_attrs["unit_acc_history"], hierarchy
        assert len(t.user_attrs["batch"]) == 3
    together, one_by_one = map(
        sum, zip(*{tuple(t.user_attrs["batch"]): t.user_attrs["batch_unit_epochs"] for t in batched.values()}.values())
    )
    assert one_by_one == 6 * 10 * 2 and together < one_by_one
    assert (
        f"training together (--batch): {together} unit-epochs trained where one by one would take {one_by_one}" in out
    )


@pytest.mark.slow
def test_a_batched_study_prunes_and_finishes_every_trial(tmp_path):
    db = tmp_path / "p.db"
    assert (
        main(
            [
                *SIMULTANEOUS,
                "--pruner",
                "sha",
                "--batch",
                "3",
                "--epochs",
                "4",
                "--trials",
                "9",
                "--storage",
                f"sqlite:///{db}",
                "--study-name",
                "p",
            ]
        )
        == 0
    )
    trials = _study(db, "p").trials
    assert len(trials) == 9 and {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert any(t.state == TrialState.PRUNED for t in trials)
    for t in trials:  # a pruned candidate reported until it was stopped, and nothing after
        assert sorted(t.intermediate_values) == list(range(1, len(t.intermediate_values) + 1))
        assert len(t.user_attrs["unit_acc_history"]) == len(t.intermediate_values)


def test_batch_needs_layer_wise_simultaneous_training(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as info:
        main([*SIMULTANEOUS, "--batch", "3", "--mode", "sequential", "--storage", f"sqlite:///{tmp_path / 'x.db'}"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--batch 3 needs --mode simultaneous" in err
    assert not (tmp_path / "x.db").exists()


@pytest.mark.slow
def test_pruned_lists_are_trained_again_to_the_end_from_their_stored_prefix(tmp_path, capsys):
    """`--no-revisit` stops after one pass. Without it, the same study goes on: each pruned list is trained again,
    never pruned, starting (sequential mode) from the units its first visit froze. With no paused state to continue
    (`--paused-store off`; tests/search/test_paused.py has the paused road), the prefix store provides them."""
    small = [  # TINY with room for a second pass (a later --trials overrides the earlier)
        *TINY,
        "--trials",
        "40",
        "--pruner",
        "sha",
        "--storage",
        f"sqlite:///{tmp_path / 'r.db'}",
        "--study-name",
        "r",
        "--paused-store",
        "off",
    ]
    assert main([*small, "--no-revisit"]) == 0
    first = _study(tmp_path / "r.db", "r").trials
    assert len({tuple(t.user_attrs["hierarchy"]) for t in first}) == len(first) == 10  # one pass, then stop
    assert "every feasible list (10) has been evaluated\n" in capsys.readouterr().out

    assert main(small) == 0
    out = capsys.readouterr().out
    trials = _study(tmp_path / "r.db", "r").trials
    again = trials[len(first) :]
    pruned = {tuple(t.user_attrs["hierarchy"]): t for t in first if t.state == TrialState.PRUNED}
    assert pruned and len(again) == len(pruned)
    for t in again:
        hierarchy = tuple(t.user_attrs["hierarchy"])
        assert t.state == TrialState.COMPLETE and t.user_attrs["revisit_of"] == pruned[hierarchy].number
        assert len(t.intermediate_values) == sum(hierarchy)  # trained to the end
        # What the first visit reported is reported again, bitwise, and its frozen units were not retrained.
        assert all(t.intermediate_values[s] == v for s, v in pruned[hierarchy].intermediate_values.items())
        assert t.user_attrs["reused_units"] >= len(pruned[hierarchy].intermediate_values)
    assert f"every feasible list (10) has been evaluated, {len(pruned)} pruned ones trained again to the end" in out
