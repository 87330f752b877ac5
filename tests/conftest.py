"""Tests use tiny networks, for which one intra-op thread is as fast as two and immune to oversubscription
(OpenMP threads spinning against other processes); subprocesses inherit the setting through the environment."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def sigkill_after_checkpoint():
    """Start `cmd`, SIGKILL it as soon as `checkpoint` exists (a kill mid-training), return the epoch it had saved."""

    def run(cmd: list[str], checkpoint: Path, cwd: Path | None = None) -> int:
        from lwl.models import load_checkpoint

        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not checkpoint.exists():
                assert proc.poll() is None, "the command ended before its first checkpoint"
                assert time.monotonic() < deadline, "no checkpoint within 120 s"
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        return int(load_checkpoint(checkpoint)["trainer"]["position"]["epoch"])

    return run
