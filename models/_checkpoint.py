"""The files of one training run: checkpoint, per-epoch metrics, final weights. All file I/O of training is here.

A 400-epoch run must survive a kill. Every file is replaced atomically (`_files.atomic_write`), so after a
SIGKILL the folder holds the last complete checkpoint and metrics that match it, and `lwl-train --resume` loses at
most the epoch in progress. Checkpoints hold only tensors and plain containers: `torch.load(path,
weights_only=True)` reads them, so opening one never runs code from the file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ._config import TrainingConfig
from ._errors import CheckpointError
from ._files import atomic_write, remove_stale_temporaries
from ._records import Progress, RunResult
from ._resume import check_state
from ._state import ResumeError, TrainerState, plain, progress_from_dict

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.yaml"
CHECKPOINT_FORMAT = 1


def save_checkpoint(path: str | os.PathLike[str], state: TrainerState, config: TrainingConfig) -> None:
    """Write the trainer's state and the config it trains, atomically."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "trainer": state,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write(Path(path), lambda f: torch.save(payload, f))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True`; a missing or damaged file is a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path} to resume: run without --resume to start training there")
    try:
        with warnings.catch_warnings():  # torch's advice on weights_only would add lines to the one we print
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: any reader error means the same
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        if isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower():
            reason = "it holds objects other than tensors and plain data; refused unread, as loading it could run code"
        raise CheckpointError(f"{path} is not a readable checkpoint ({reason}): start again in a new --out") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT or "trainer" not in payload:
        raise CheckpointError(
            f"{path} is not an lwl-train checkpoint (format {CHECKPOINT_FORMAT}): start again in a new --out"
        )
    return payload


def config_difference(saved: dict[str, Any], config: TrainingConfig) -> str | None:
    """'recipe.epochs 400 (checkpoint) vs 10 (now)' for the first schedule/recipe field that differs, else None."""
    now = config.to_dict()
    if not isinstance(saved, dict):
        return f"its config is {type(saved).__name__}, not a mapping"
    for part in ("schedule", "recipe"):
        a, b = saved.get(part) or {}, now[part]
        if not isinstance(a, dict):
            return f"{part} is {type(a).__name__} (checkpoint), not a mapping"
        for key in sorted(set(a) | set(b)):
            if plain(a.get(key)) != plain(b.get(key)):
                return f"{part}.{key} {a.get(key)!r} (checkpoint) vs {b.get(key)!r} (now)"
    return None


class RunDir:
    """One run's folder: config.yaml, checkpoint.pt, metrics.csv/json while training, model.pt at the end.

    `checkpoint(state)` is the trainer's checkpoint hook; `record(progress)` its progress callback.
    """

    def __init__(self, path: str | os.PathLike[str], config: TrainingConfig, *, device: str = "") -> None:
        self.path = Path(path)
        self.config = config
        self.device = device
        self.records: list[Progress] = []
        self.test: dict[str, Any] | None = None
        self.extra: dict[str, Any] = {}

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file()

    def refuse_overwrite(self) -> None:
        """A fresh run never overwrites another run's checkpoint."""
        if self.has_checkpoint():
            raise CheckpointError(
                f"{self.path} already holds a run (checkpoint.pt): pass --resume to continue it, "
                "or choose another --out"
            )

    def start(self) -> None:
        """A fresh run: refuse to overwrite another run's checkpoint, then write the config it trains."""
        self.refuse_overwrite()
        self.path.mkdir(parents=True, exist_ok=True)
        self.config.save_yaml(self.path / CONFIG_FILE)
        self.write_metrics()

    def resume_state(self, device: str | torch.device) -> TrainerState:
        """The trainer state to continue from, after checking it was written for this config and that every part of
        it fits (`check_state`). Writes nothing: a refused resume leaves the run folder as it was; `begin_resume`
        rewrites the metrics once training is about to continue."""
        payload = load_checkpoint(self.checkpoint_path)
        diff = config_difference(payload.get("config") or {}, self.config)
        if diff is not None:
            raise CheckpointError(
                f"{self.checkpoint_path} was written for another config: {diff}: resume with the "
                "same config and --epochs, or start a new run in another --out"
            )
        state = payload["trainer"]
        try:
            check_state(state, self.config.schedule, self.config.recipe, device)
        except ResumeError as exc:
            raise CheckpointError(f"{self.checkpoint_path}: {exc}") from None
        self.records = [progress_from_dict(p) for p in state["history"]]
        return state

    def begin_resume(self) -> None:
        """Training continues: drop what a kill cut short and any record written after the checkpoint."""
        remove_stale_temporaries(self.path)  # writes a kill cut short; the files they were for are intact
        self.write_metrics()

    def checkpoint(self, state: TrainerState) -> None:
        save_checkpoint(self.checkpoint_path, state, self.config)

    def record(self, progress: Progress) -> None:
        self.records.append(progress)
        self.write_metrics()

    def finish(self, result: RunResult) -> None:
        """Final weights and test accuracy; the checkpoint stays, so `--resume` of a finished run is harmless."""
        if result.test_output_acc is not None:
            self.test = {"output_acc": result.test_output_acc, "unit_acc": list(result.test_unit_acc or ())}
        if result.model is not None:
            weights = {k: v.detach().to("cpu", copy=True) for k, v in result.model.state_dict().items()}
            payload = {
                "format": CHECKPOINT_FORMAT,
                "config": self.config.to_dict(),
                "model": weights,
                "test": self.test,
            }
            atomic_write(self.path / MODEL_FILE, lambda f: torch.save(payload, f))
        self.write_metrics(status="complete")

    # ----------------------------------------------------------------------------------------- metrics
    def _kind(self) -> str:
        return "unit" if self.config.recipe.mode == "sequential" else "epoch"

    def rows(self) -> list[dict[str, Any]]:
        kind = self._kind()
        return [
            {
                kind: p.step,
                "of": p.total_steps,
                "unit_epochs": p.unit_epochs,
                "train_loss": list(p.train_loss),
                "val_unit_acc": list(p.unit_acc),
                "val_output_acc": p.output_acc,
                "elapsed": round(p.elapsed, 3),
            }
            for p in self.records
        ]

    def write_metrics(self, status: str = "running") -> None:
        rows = self.rows()
        doc = {
            "status": status,
            "record": self._kind(),
            "device": self.device,
            "config": self.config.to_dict(),
            "records": rows,
            "test": self.test,
            **self.extra,
        }
        atomic_write(self.path / METRICS_JSON, lambda f: f.write((json.dumps(doc, indent=1) + "\n").encode()))
        atomic_write(self.path / METRICS_CSV, lambda f: f.write(_csv(rows, self._kind(), self.config).encode()))


def _csv(rows: Sequence[dict[str, Any]], kind: str, config: TrainingConfig) -> str:
    n = config.schedule.units
    header = (
        [kind, "unit_epochs", "elapsed_s", "val_output_acc"]
        + [f"val_acc_u{j + 1}" for j in range(n)]
        + [f"train_loss_u{j + 1}" for j in range(n)]
    )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(
            [r[kind], r["unit_epochs"], r["elapsed"], _cell(r["val_output_acc"])]
            + [_cell(a) for a in r["val_unit_acc"]]
            + [_cell(x) for x in r["train_loss"]]
        )
    return buf.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None else repr(float(value))
