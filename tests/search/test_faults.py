"""Training faults end one trial, with the reason stored, and the study goes on."""

import weakref

import optuna
import torch
from optuna.trial import TrialState

import lwl.search._objective as study_module  # a private mechanism on purpose: inject an out-of-memory error
from lwl.search.commands import search_main as main

TINY = [
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
    "--pruner",
    "none",
    "--budget",
    "10",
]


def _trials(db, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}").trials


def test_a_diverging_candidate_fails_as_diverged_and_the_study_goes_on(tmp_path, capsys):
    db = tmp_path / "d.db"
    assert (
        main(
            [
                *TINY,
                "--loss",
                "pred",
                "--lr",
                "1e30",
                "--trials",
                "2",
                "--storage",
                f"sqlite:///{db}",
                "--study-name",
                "d",
            ]
        )
        == 0
    )
    trials = _trials(db, "d")
    assert len(trials) >= 2, "the study stopped at the first failure"
    assert all(t.state == TrialState.FAIL and t.user_attrs["fail_reason"] == "diverged" for t in trials)
    assert "not finite" in trials[0].user_attrs["fail_detail"]
    assert "failed" in capsys.readouterr().out


def test_out_of_memory_fails_the_trial_frees_its_memory_and_the_study_goes_on(tmp_path, monkeypatch, capsys):
    # No GPU here: the engine is made to raise CUDA's own out-of-memory error once, holding a tensor as a real
    # out-of-memory failure holds its activations. The trial must fail with its reason and release that tensor.
    real_train = study_module.train
    held: list[weakref.ref] = []

    def train_once_out_of_memory(*args, **kwargs):
        if not held:
            activations = torch.empty(1 << 20)
            held.append(weakref.ref(activations))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        assert held[0]() is None, "the failed trial's tensors are still alive when the next trial starts"
        return real_train(*args, **kwargs)

    monkeypatch.setattr(study_module, "train", train_once_out_of_memory)
    db = tmp_path / "m.db"
    assert main([*TINY, "--trials", "2", "--storage", f"sqlite:///{db}", "--study-name", "m"]) == 0
    trials = _trials(db, "m")
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[0].user_attrs["fail_reason"] == "out of memory"
    assert "Tried to allocate 20.00 GiB" in trials[0].user_attrs["fail_detail"]
    assert "1 failed" in capsys.readouterr().out
