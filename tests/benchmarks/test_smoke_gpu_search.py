"""Smoke test of benchmarks/gpu_search.py: its --tiny CPU run as a user runs it, and its refusals.

The run searches 2 lists of budget 16 with widths 4..32 on 64 images for 2 epochs through the real search
machinery (a few seconds, most of it importing torch and optuna); the refusals run in this process.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPT = BENCH / "gpu_search.py"
TRIAL_KEYS = {
    "number",
    "hierarchy",
    "state",
    "seconds",
    "engine_wall_time",
    "peak_memory",
    "s_per_epoch",
    "images_per_s",
    "flops_aux",
    "achieved_tflops",
    "s_per_candidate",
    "epoch_seconds",
}


@pytest.fixture(scope="module")
def gpu_search():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        import gpu_search

        yield gpu_search


@pytest.mark.slow
def test_tiny_cpu_run_searches_and_writes_every_figure(tmp_path):
    out = tmp_path / "gpu_search.json"
    argv = ["--device", "cpu", "--tiny", "--threads", "1", "--out", str(out)]
    run = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert "seconds per trial" in run.stdout and f"written to {out}" in run.stdout
    d = json.loads(out.read_text())
    assert d["command"].endswith("benchmarks/gpu_search.py " + " ".join(argv))
    assert d["env"]["device"] == "cpu" and d["feasible"] == 61 and d["pruner"] == "none"
    assert d["settings"]["budget"] == 16 and d["settings"]["widths"] == [4, 8, 16, 32]
    assert d["settings"]["recipe"]["dataset"] == "cifar100" and d["settings"]["recipe"]["epochs"] == 2
    assert len(d["trials"]) == 2
    for t in d["trials"]:
        assert TRIAL_KEYS <= set(t) and t["state"] == "complete"
        assert sum(t["hierarchy"]) == 16 and len(t["hierarchy"]) == 4
        assert t["seconds"] >= t["engine_wall_time"] > 0 and len(t["epoch_seconds"]) == 2
        assert t["images_per_s"] == pytest.approx(64 / t["s_per_epoch"])
        assert t["achieved_tflops"] == pytest.approx(3 * t["flops_aux"] * t["images_per_s"] / 1e12)
        assert t["s_per_candidate"] == pytest.approx(15 * 40_000 / t["images_per_s"])  # 0.2 held out
        assert math.isfinite(t["output_acc"])
    assert d["matmul"]["size"] == 64 and d["matmul"]["tflops"] > 0


def test_refuses_in_one_line_without_cuda_or_without_tiny_on_a_cpu(gpu_search, monkeypatch, capsys):
    monkeypatch.setattr(gpu_search.torch.cuda, "is_available", lambda: False)
    assert gpu_search.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpu_search: no CUDA device is visible") and err.count("\n") == 1
    assert gpu_search.main(["--device", "cpu"]) == 2
    assert "needs --tiny" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_search.build_parser().parse_args(["--epochs", "1"])
    assert "the first epoch is warm-up" in capsys.readouterr().err
