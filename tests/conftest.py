"""Tests use tiny networks, for which one intra-op thread is as fast as two and immune to oversubscription
(OpenMP threads spinning against other processes); subprocesses inherit the setting through the environment."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
