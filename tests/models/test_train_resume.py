"""Checkpoint and resume: a resumed run ends bitwise equal to an uninterrupted one, in process and after SIGKILL."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from cases import NETWORKS, REFERENCE_OPTIONS, network

from lwl.models import ResumeError, RunDir, Schedule, TrainingConfig, load_data, paper_recipe, train

SCHEDULE = Schedule((1, 2), widths=(4, 8), num_classes=10, in_channels=1, input_size=16)
CASES = [
    (m, a, p, {}, None)
    for m, a in (("simultaneous", ("crop", "flip")), ("sequential", None), ("sequential", ("flip",)))
    for p in ("fp32", "bf16")
]
CASES += [(m, None, "fp32", o, None) for o in REFERENCE_OPTIONS.values() for m in ("simultaneous", "sequential")]
CASES += [(m, None, "fp32", {}, n) for n in NETWORKS for m in ("simultaneous", "sequential")]
CASE_IDS = [
    f"{name}-{p}" for name in ("simultaneous", "sequential-cached", "sequential-augmented") for p in ("fp32", "bf16")
]
CASE_IDS += [f"{m}-{name}" for name in [*REFERENCE_OPTIONS, *NETWORKS] for m in ("simultaneous", "sequential")]


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", with_test=True)


def _same_run(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert [(p.step, p.unit_acc, p.output_acc, p.train_loss, p.unit_epochs) for p in a.history] == [
        (p.step, p.unit_acc, p.output_acc, p.train_loss, p.unit_epochs) for p in b.history
    ]
    assert a.test_output_acc == b.test_output_acc and a.test_unit_acc == b.test_unit_acc


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "augment", "precision", "options", "net"), CASES, ids=CASE_IDS)
def test_resuming_from_any_checkpoint_ends_bitwise_equal(digits, tmp_path, mode, augment, precision, options, net):
    schedule = SCHEDULE  # the other networks with one unit (block) per stage: their units are many already
    if net is not None:
        schedule = Schedule((1, 1), widths=(4, 8), num_classes=10, in_channels=1, input_size=16, **network(net, 2))
    recipe = paper_recipe(
        "digits", "resnet", epochs=3, train_limit=192, mode=mode, augment=augment, precision=precision, **options
    )
    states = []
    full = train(schedule, recipe, digits, device="cpu", keep_model=True, test=True, checkpoint=states.append)
    # One state per epoch; in sequential mode per epoch of every unit (the unit's last one once it is evaluated).
    assert len(states) == (3 if mode == "simultaneous" else 3 * schedule.units)
    assert states[-1]["complete"] and not any(s["complete"] for s in states[:-1])
    for k in range(len(states) - 1):
        state = states[k]
        if k == 1:  # through a file, read back as torch.load(weights_only=True) reads it
            torch.save(state, tmp_path / "state.pt")
            state = torch.load(tmp_path / "state.pt", weights_only=True)
        resumed = train(schedule, recipe, digits, device="cpu", keep_model=True, test=True, resume=state)
        _same_run(full, resumed)
    if mode == "sequential" and augment:
        # Frozen units stay frozen: unit 0's BN statistics after unit 0 finished are its final ones.
        frozen = states[2]["model"]
        final = full.model.state_dict()
        assert all(torch.equal(frozen[k], final[k]) for k in final if k.startswith("units.0."))


def test_a_stopped_run_resumes_and_a_foreign_state_is_refused(digits):
    recipe = paper_recipe("digits", "resnet", epochs=3, train_limit=192)
    states = []
    stopped = train(SCHEDULE, recipe, digits, device="cpu", checkpoint=states.append, on_progress=lambda p: p.step == 2)
    assert stopped.stopped_early and len(states) == 2 and states[-1]["position"]["epoch"] == 2
    resumed = train(SCHEDULE, recipe, digits, device="cpu", resume=states[-1])
    assert [p.step for p in resumed.history] == [1, 2, 3]
    with pytest.raises(ResumeError, match="recipe.epochs = 3, this run has 4"):
        train(
            SCHEDULE,
            paper_recipe("digits", "resnet", epochs=4, train_limit=192),
            digits,
            device="cpu",
            resume=states[-1],
        )


def _lwl_train(*args):
    exe = shutil.which("lwl-train")
    if exe is not None:
        return [exe, *args]
    # The console script's own entry point (pyproject.toml [project.scripts]) when it is not installed.
    return [
        sys.executable,
        "-c",
        "import sys; from lwl.models.commands import train_main; sys.exit(train_main())",
        *args,
    ]


@pytest.mark.slow
def test_a_sigkilled_lwl_train_resumes_to_the_uninterrupted_result(digits, tmp_path, sigkill_after_checkpoint):
    schedule = Schedule((1, 1, 1, 1), widths=(4, 8, 8, 16), num_classes=10, in_channels=1, input_size=16)
    recipe = paper_recipe("digits", "resnet", epochs=8, train_limit=512)
    config = TrainingConfig(schedule, recipe, {"study": "test"})
    path = config.save_yaml(tmp_path / "c.yaml")
    out = tmp_path / "run"
    killed_at = sigkill_after_checkpoint(
        _lwl_train("--config", str(path), "--device", "cpu", "--out", str(out)), RunDir(out, config).checkpoint_path
    )
    assert 1 <= killed_at < 8, "the kill came too late to test anything"
    assert not (out / "model.pt").exists()

    done = subprocess.run(
        _lwl_train("--config", str(path), "--device", "cpu", "--out", str(out), "--resume"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"resuming after epoch {killed_at}/8" in done.stderr and "output test accuracy" in done.stdout
    assert not list(out.glob(".*.tmp"))

    # The uninterrupted run, in this process.
    full = train(schedule, recipe, digits, device="cpu", keep_model=True, test=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and [r["epoch"] for r in metrics["records"]] == list(range(1, 9))
    assert [(r["val_unit_acc"], r["val_output_acc"], r["train_loss"]) for r in metrics["records"]] == [
        (list(p.unit_acc), p.output_acc, list(p.train_loss)) for p in full.history
    ]
    assert metrics["test"] == {"output_acc": full.test_output_acc, "unit_acc": list(full.test_unit_acc)}
    csv_rows = (out / "metrics.csv").read_text().splitlines()
    assert len(csv_rows) == 9 and csv_rows[0].startswith("epoch,unit_epochs,elapsed_s,val_output_acc,val_acc_u1")
    weights = torch.load(out / "model.pt", weights_only=True)["model"]
    for key, value in full.model.state_dict().items():
        assert torch.equal(weights[key], value), key
    # A finished run resumes to the same answer; a run folder is never overwritten without --resume.
    again = subprocess.run(
        _lwl_train("--config", str(path), "--device", "cpu", "--out", str(out)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 2 and "already holds a run" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
