"""Smoke test of benchmarks/train_speed.py: a tiny run as a user runs it, and its one JSON object.

One thread (`--threads 1`) keeps the run fast on a shared CPU, where torch's threads would otherwise wait on
each other; the whole file takes a few seconds (one torch import in the script, three forked engine runs and
one forked run of the plain reference).
"""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lwl.models import native_bf16, resolve_precision

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_speed.py"
TINY = [
    "--hierarchy",
    "1,1",
    "--widths",
    "4,8",
    "--n-images",
    "32",
    "--n-val",
    "10",
    "--batch-size",
    "32",
    "--steps",
    "1",
    "--threads",
    "1",
    "--matmul-size",
    "64",
    "--matmul-reps",
    "1",
    "--device",
    "cpu",
]
RUN_KEYS = {
    "loss",
    "mode",
    "units",
    "s_per_epoch",
    "images_per_s",
    "unit_images_per_s",
    "epoch_seconds",
    "flops_aux",
    "achieved_tflops",
    "peak_memory",
    "train_memory",
    "memory_kind",
    "utilisation",
}


def _load_script():
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_speed"] = module  # dataclasses look their module up while the script is being executed
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tiny_run_prints_every_figure_as_json():
    out = subprocess.run([sys.executable, str(SCRIPT), *TINY, "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert {
        "date",
        "torch",
        "device",
        "device_name",
        "schedule",
        "runs",
        "ratios",
        "matmul",
        "convention",
        "batches_per_epoch",
        "images_per_epoch",
        "warmup_epochs",
        "timed_epochs",
    } <= set(d)
    assert d["device"] == "cpu" and d["isolated"] is True
    assert d["schedule"]["hierarchy"] == [1, 1] and d["schedule"]["widths"] == [4, 8]
    assert (d["batches_per_epoch"], d["images_per_epoch"], d["warmup_epochs"], d["timed_epochs"]) == (1, 32, 1, 1)
    assert list(d["runs"]) == ["predsim", "pred", "global"]
    for loss, r in d["runs"].items():
        assert RUN_KEYS <= set(r), loss
        assert r["loss"] == loss and r["units"] == 2 and len(r["epoch_seconds"]) == 2
        for key in (
            "s_per_epoch",
            "images_per_s",
            "unit_images_per_s",
            "achieved_tflops",
            "utilisation",
            "peak_memory",
            "train_memory",
            "flops_aux",
        ):
            assert math.isfinite(r[key]) and r[key] > 0, (loss, key, r[key])
        assert r["unit_images_per_s"] == pytest.approx(2 * r["images_per_s"])
        assert r["images_per_s"] == pytest.approx(32 / r["s_per_epoch"])
        assert r["achieved_tflops"] == pytest.approx(3 * r["flops_aux"] * r["images_per_s"] / 1e12)
    assert d["runs"]["predsim"]["flops_aux"] > d["runs"]["pred"]["flops_aux"]  # the sim heads' convs
    assert set(d["ratios"]) == {"predsim", "pred"}
    for q in d["ratios"].values():
        assert q["time"] > 0 and q["memory"] > 0
    # Precision: the engine's runs at auto resolve as the engine does here; the matmul is in that dtype; the
    # reference is fp32; the CPU says whether it has native bf16 and which instruction sets it lists.
    here = resolve_precision("auto", torch.device("cpu"))
    assert {r["precision"] for r in d["runs"].values()} == {here}
    assert d["matmul"]["dtype"] == {"bf16": "bfloat16", "fp32": "float32"}[here]
    assert d["matmul"]["size"] == 64 and d["matmul"]["tflops"] > 0
    assert d["native_bf16"] == native_bf16() and set(d["cpu_features"]) <= {
        "amx_bf16",
        "amx_tile",
        "avx512_bf16",
        "avx512f",
        "avx2",
    }

    # The plain reference: the same network and data, timed the same way, with its ratio to the engine.
    assert list(d["reference"]) == ["pred"]
    ref, eng = d["reference"]["pred"], d["runs"]["pred"]
    assert RUN_KEYS <= set(ref) and ref["mode"] == "reference" and ref["ref_workers"] == 0
    assert ref["precision"] == "fp32"
    assert (ref["flops_aux"], ref["params_aux"], ref["units"]) == (eng["flops_aux"], eng["params_aux"], 2)
    assert ref["loader_batches_per_epoch"] == d["batches_per_epoch"] and len(ref["epoch_seconds"]) == 2
    assert ref["images_per_s"] == pytest.approx(32 / ref["s_per_epoch"])
    for r in (eng, ref):  # zero-initialised heads: both start at ln(10), and both learn
        assert r["train_loss"][0] == pytest.approx([math.log(10)] * 2)
        assert sum(r["train_loss"][-1]) < sum(r["train_loss"][0])
        assert 0 <= r["val_acc"][-1] <= 1
    q = d["reference_ratios"]["pred"]
    assert q["speed"] == pytest.approx(eng["images_per_s"] / ref["images_per_s"]) and q["memory"] > 0

    # Seconds per candidate at the study's default fidelity: 15 CIFAR epochs of the 40,000 images lwl-search's default
    # validation split (0.2) leaves, in whole batches of 64 (625 of them).
    c = d["candidate"]
    assert (c["extrapolated"], c["epochs"], c["train_images"], c["images_per_epoch"]) == (True, 15, 40_000, 40_000)
    for r in [*d["runs"].values(), ref]:
        assert r["s_per_candidate"] == pytest.approx(15 * 40_000 / r["images_per_s"])


def test_epoch_plan_rounds_batches_up_to_whole_epochs():
    ts = _load_script()
    assert ts.epoch_plan(2048, 128, 32, 1) == {
        "batches_per_epoch": 16,
        "images_per_epoch": 2048,
        "warmup_epochs": 1,
        "timed_epochs": 2,
    }
    assert ts.epoch_plan(1000, 128, 1, 20) == {
        "batches_per_epoch": 7,
        "images_per_epoch": 896,
        "warmup_epochs": 3,
        "timed_epochs": 1,
    }
    assert ts.epoch_plan(50, 128, 3, 1)["images_per_epoch"] == 50  # fewer images than a batch: one batch of all


def test_loss_list_is_checked_and_global_always_runs(capsys):
    ts = _load_script()
    with pytest.raises(SystemExit):
        ts.build_parser().parse_args(["--loss", "predsim,bogus"])
    assert "unknown loss 'bogus'" in capsys.readouterr().err
    assert ts.build_parser().parse_args(["--loss", "pred,global,pred"]).loss == ("pred",)  # global: the baseline
    assert ts.build_parser().parse_args([]).loss == ("predsim", "pred")


def test_reference_losses_are_checked_against_the_engine_runs(capsys):
    ts = _load_script()
    assert ts.parse_args([]).reference == ("pred",)
    assert ts.parse_args(["--reference", "none"]).reference == ()
    assert ts.parse_args(["--reference", "predsim,pred"]).reference == ("predsim", "pred")
    with pytest.raises(SystemExit):
        ts.parse_args(["--loss", "pred", "--reference", "predsim"])  # no engine run to compare with
    assert "add it to --loss" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ts.parse_args(["--reference", "global"])
    assert "reference loss 'global'" in capsys.readouterr().err


def test_synthetic_images_are_cifar_shaped_uint8_and_the_engine_sees_them_normalised():
    ts = _load_script()
    from lwl.models import dataset_info

    info = dataset_info("cifar100")
    arrays = ts.synthetic_images(info, 6, 3, seed=1)
    assert arrays["train_x"].shape == (6, 32, 32, 3) and arrays["train_x"].dtype.name == "uint8"
    assert arrays["val_x"].shape == (3, 32, 32, 3) and arrays["train_y"].max() < 100
    data = ts.synthetic_data(info, 6, 3, seed=1)
    assert tuple(data.train_x.shape) == (6, 3, 32, 32) and data.train_y.tolist() == arrays["train_y"].tolist()
    pixel = (arrays["train_x"][0, 5, 7, 2] / 255 - info.mean[2]) / info.std[2]
    assert data.train_x[0, 2, 5, 7].item() == pytest.approx(pixel, abs=1e-5)
