"""CUDA-only code paths, pinned on the CPU (no GPU here): what they call, and in which order."""

import dataclasses
from pathlib import Path

import pytest
import torch

from lwl.models import Schedule, build_network

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_building_a_network_leaves_every_global_generator_alone(monkeypatch):
    """`torch.manual_seed` would reseed every CUDA device too, which `fork_rng(devices=[])` does not restore."""
    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: reseeded.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: reseeded.append(seed))
    cpu_state = torch.get_rng_state()
    schedule = Schedule((1, 1), widths=(4, 8), num_classes=10, in_channels=1, input_size=16)
    a, b = build_network(schedule, seed=3), build_network(schedule, seed=3)
    assert reseeded == []
    assert torch.equal(torch.get_rng_state(), cpu_state)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_train_speed_reference_initialises_cuda_before_resetting_its_peak(monkeypatch):
    """`reset_peak_memory_stats(cuda:0)` raises before CUDA is initialised, and the reference's child has not
    touched CUDA yet: `measure_reference` must initialise it first (it stops here at its DataLoader)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import train_speed

    calls: list[str] = []

    class Stop(Exception):
        pass

    def reset(device=None):
        if "init" not in calls:
            raise RuntimeError("Invalid device argument 0: did you call init?")
        calls.append("reset")

    def loader(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(train_speed.torch.cuda, "init", lambda: calls.append("init"))
    monkeypatch.setattr(train_speed.torch.cuda, "memory_allocated", lambda device=None: 0)
    monkeypatch.setattr(train_speed.torch.cuda, "reset_peak_memory_stats", reset)
    real_setup = train_speed.setup
    monkeypatch.setattr(
        train_speed,
        "setup",
        lambda args, loss: dataclasses.replace(real_setup(args, loss), dev=torch.device("cuda", 0)),
    )
    monkeypatch.setattr(train_speed, "DataLoader", loader)
    args = train_speed.parse_args(["--device", "cpu", "--n-images", "8", "--n-val", "4"])
    with pytest.raises(Stop):
        train_speed.measure_reference(args, "pred")
    assert calls == ["init", "reset"]
