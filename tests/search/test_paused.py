"""Pruned means paused: a revisit of a pruned list continues its stored training state and ends bitwise where the
list ends when it is never pruned, paying only the epochs it still had to train."""

import shutil

import optuna
import pytest
import torch
from cases import NO_CONFIRM, tiny
from optuna.trial import TrialState

from lwl.search import PausedStore
from lwl.search.commands import search_main as main

TINY = tiny(
    *("--budget", "10", "--sampler", "grid", "--no-paper-baselines", "--prefix-store", "off"),
    *NO_CONFIRM,
    epochs=None,
    train_limit=256,
)
MODES = {
    "simultaneous": ["--epochs", "4"],
    "sequential": ["--mode", "sequential", "--epochs", "1"],
    # Groups of 3 through one trie: a pruned candidate's state comes out of the trie, its revisit continues alone.
    "batch": ["--epochs", "4", "--batch", "3"],
}


def _study(db, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", MODES)
def test_a_revisit_continues_the_paused_candidate_exactly(tmp_path, capsys, mode):
    flags = [*TINY, *MODES[mode], "--trials", "40"]
    # The reference: every list trained to its end, nothing pruned.
    assert (
        main([*flags, "--pruner", "none", "--storage", f"sqlite:///{tmp_path / 'full.db'}", "--study-name", "f"]) == 0
    )
    full = {tuple(t.user_attrs["hierarchy"]): t for t in _study(tmp_path / "full.db", "f").trials}

    db, paused_dir = tmp_path / "p.db", tmp_path / "paused"
    search = [*flags, "--pruner", "sha", "--storage", f"sqlite:///{db}", "--study-name", "p", "--paused-store"]
    assert main([*search, str(paused_dir), "--no-revisit"]) == 0
    first = _study(db, "p").trials
    pruned = {tuple(t.user_attrs["hierarchy"]): t for t in first if t.state == TrialState.PRUNED}
    assert pruned, "the study was meant to prune"
    if mode == "batch":  # trained in groups (the last may hold one): the states came out of the trie
        assert all("batch" in t.user_attrs for t in pruned.values())
        assert any(len(t.user_attrs["batch"]) > 1 for t in pruned.values())
    store = PausedStore(paused_dir)
    assert store.size()[0] == len(pruned)  # one paused state per pruned list
    for hierarchy, t in pruned.items():
        kept = store.find("p", hierarchy)
        assert kept is not None and kept.trial == t.number and kept.step == max(t.intermediate_values)

    assert main([*search, str(paused_dir)]) == 0  # the second pass: each pruned list again, to the end
    said = capsys.readouterr().out
    assert (
        f"{len(pruned)} pruned ones trained again to the end ({len(pruned)} continued from where they were paused)"
        in said
    )
    again = _study(db, "p").trials[len(first) :]
    assert len(again) == len(pruned)
    for t in again:
        hierarchy = tuple(t.user_attrs["hierarchy"])
        before, alone = pruned[hierarchy], full[hierarchy]
        assert t.state == TrialState.COMPLETE and t.user_attrs["revisit_of"] == before.number
        assert t.user_attrs["resumed_from"] == before.number
        assert t.user_attrs["resumed_step"] == max(before.intermediate_values)
        # Bitwise the never-pruned result: value, every step's value, every unit's accuracy at every step.
        assert t.value == alone.value and t.intermediate_values == alone.intermediate_values
        assert t.user_attrs["unit_acc"] == alone.user_attrs["unit_acc"]
        assert t.user_attrs["unit_acc_history"] == alone.user_attrs["unit_acc_history"]
        # Each trial counts the unit-epochs it trained itself: together exactly the unpruned run's.
        assert t.user_attrs["unit_epochs"] + before.user_attrs["unit_epochs"] == alone.user_attrs["unit_epochs"]
        assert 0 < t.user_attrs["unit_epochs"] < alone.user_attrs["unit_epochs"]
    assert store.size()[0] == 0  # a list trained to its end needs its paused state no more


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_without_a_paused_state_a_revisit_trains_from_the_start(tmp_path):
    """`--paused-store off` (or a state evicted or lost): the revisit retrains the list, and still ends exactly."""
    flags = [*TINY, *MODES["simultaneous"], "--trials", "40", "--pruner", "sha", "--storage"]
    db = tmp_path / "o.db"
    assert main([*flags, f"sqlite:///{db}", "--study-name", "o", "--paused-store", "off", "--no-revisit"]) == 0
    n = len(_study(db, "o").trials)
    assert main([*flags, f"sqlite:///{db}", "--study-name", "o", "--paused-store", "off"]) == 0
    again = _study(db, "o").trials[n:]
    assert again and all("resumed_from" not in t.user_attrs for t in again)
    assert all(t.user_attrs["unit_epochs"] == 4 * 10 for t in again)  # the whole run: 4 epochs of 10 units
    assert not (tmp_path / "o-paused").exists() or not any((tmp_path / "o-paused").iterdir())


def _damage_types(payload):
    payload["state"]["rng"] = "abc"  # a string where a mapping belongs


def _damage_shapes(payload):
    model = payload["state"]["model"]
    model[next(iter(model))] = torch.zeros(3)


def _damage_history(payload):
    payload["state"]["history"] = [{"step": "one"}]


def _damage_payload(payload):
    payload["trial"] = "seven"


@pytest.fixture(scope="module")
def paused_study(tmp_path_factory):
    """A first pass that paused pruned candidates: its storage and paused states, copied by each test."""
    root = tmp_path_factory.mktemp("paused")
    flags = [*TINY, *MODES["simultaneous"], "--budget", "8", "--trials", "40", "--pruner", "sha"]
    assert main([*flags, "--storage", f"sqlite:///{root / 'd.db'}", "--study-name", "d", "--no-revisit"]) == 0
    assert any((root / "d-paused").iterdir()), "the study was meant to pause candidates"
    return root, flags


@pytest.mark.parametrize(
    "damage",
    [_damage_types, _damage_shapes, _damage_history, _damage_payload],
    ids=["wrong types", "wrong shapes", "malformed history", "malformed payload"],
)
@pytest.mark.slow
def test_a_damaged_paused_state_is_discarded_and_its_list_trained_from_the_start(
    paused_study, tmp_path, capsys, damage
):
    """A readable but damaged paused state never blocks its list: the revisit says so in one line, discards the
    state and trains the list from the start; the study reaches --trials (or runs out of lists) as without it."""
    root, flags = paused_study
    shutil.copy(root / "d.db", tmp_path / "d.db")
    shutil.copytree(root / "d-paused", tmp_path / "d-paused")
    n = len(_study(tmp_path / "d.db", "d").trials)
    files = [p for p in (tmp_path / "d-paused").iterdir() if p.suffix == ".pt"]
    for path in files:
        payload = torch.load(path, weights_only=True)
        damage(payload)
        torch.save(payload, path)
    capsys.readouterr()
    assert main([*flags, "--storage", f"sqlite:///{tmp_path / 'd.db'}", "--study-name", "d"]) == 0
    err = capsys.readouterr().err
    again = _study(tmp_path / "d.db", "d").trials[n:]
    assert len(again) == len(files) and all(t.state == TrialState.COMPLETE for t in again), err
    assert all("resumed_from" not in t.user_attrs and t.user_attrs["unit_epochs"] == 4 * 8 for t in again)
    warned = [line for line in err.splitlines() if "paused state of" in line]
    assert len(warned) == len(files) and all("from the start" in line for line in warned), err
    assert "Traceback" not in err and not any((tmp_path / "d-paused").glob("*.pt"))
