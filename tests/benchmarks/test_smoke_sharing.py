"""Smoke test of benchmarks/sharing.py: a tiny run in both modes, on digits and on CIFAR-shaped synthetic data."""

import json

import pytest

TINY = [
    "--budget",
    "8",
    "--lists",
    "0",
    "--epochs",
    "1",
    "--widths",
    "4,8,8,16",
    "--train-limit",
    "128",
    "--threads",
    "1",
    "--json",
]


@pytest.fixture(scope="module")
def sharing():
    from pathlib import Path

    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
        import sharing

        yield sharing


@pytest.mark.parametrize("data", [[], ["--dataset", "cifar10", "--synthetic", "128"]], ids=["digits", "synthetic"])
@pytest.mark.slow
def test_both_modes_share_and_stay_exact(sharing, capsys, data):
    assert sharing.main([*TINY, *data]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["lists"] == [[1, 1, 2, 4], [1, 1, 3, 3], [1, 1, 4, 2]] and report["device"] == "cpu"
    for mode in ("simultaneous", "sequential"):
        r = report[mode]
        assert r["exact"] is True  # bitwise the accuracies of each candidate trained alone
        # all three share their first 4 units, [1,1,3,3] and [1,1,4,2] a fifth: 24 unit-epochs -> 15
        assert r["unit_epochs_alone"] == 24 and r["unit_epochs_shared"] == 15
    assert report["sequential"]["units_reused"] == 9  # 4 by the second list, 5 by the third


def test_synthetic_needs_a_cifar_data_set(sharing):
    with pytest.raises(SystemExit) as exc:
        sharing.main(["--synthetic", "10"])
    assert exc.value.code == 2
