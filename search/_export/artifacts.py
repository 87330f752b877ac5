"""Each complete trial's training config as an Optuna artifact, so optuna-dashboard's trial page offers it for download.

Optuna attaches an artifact only to a running trial, so the objective uploads the config just before it returns the
trial's value. The files live in a `FileSystemArtifactStore` beside the storage (`studies/NAME-artifacts/` for the
default SQLite file `studies/NAME.db`); the study records the folder, and `optuna-dashboard STORAGE --artifact-dir
DIR` serves them.
Workers on several machines need `--artifact-dir` on a shared file system to see each other's files.
"""

from __future__ import annotations

import shlex
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from .._space.settings import StudySettings
from .._storage.attributes import ARTIFACT_DIR_ATTR, DATA_ROOT_ATTR, STORAGE_ATTR
from .._storage.backends import kind_of, mask_url, rdb_url, storage_sibling
from .configs import config_filename, trial_config

MIMETYPE = "application/yaml"


def default_artifact_dir(storage_url: str) -> Path:
    """One folder per storage, since optuna-dashboard serves one (artifact ids are UUIDs: studies can share it)."""
    return storage_sibling(storage_url, "artifacts")


def dashboard_url(storage_url: str) -> str:
    """The storage URL as optuna-dashboard must be given it (masked): a server's URL names the driver lwl-search
    uses (`postgresql+psycopg://`, `mysql+pymysql://`), since SQLAlchemy's own default for a bare `postgresql://`
    or `mysql://` may not be installed; a `journal:PATH` is given as the path."""
    kind = kind_of(storage_url)
    if kind == "rdb":
        storage_url = rdb_url(storage_url)
    elif kind == "journal":
        storage_url = storage_url.removeprefix("journal:")
    return mask_url(storage_url)


def dashboard_command(storage_url: str, study_attrs: Mapping[str, Any]) -> str:
    """The optuna-dashboard command line for a study: its (masked) storage and, once recorded, its artifact folder.
    It works as printed (tests/search/test_dashboard_api.py runs it against PostgreSQL and MariaDB)."""
    command = f"optuna-dashboard {shlex.quote(dashboard_url(storage_url))}"
    artifact_dir = study_attrs.get(ARTIFACT_DIR_ATTR)
    return command + (f" --artifact-dir {shlex.quote(str(artifact_dir))}" if artifact_dir else "")


class ConfigArtifacts:
    """Uploads a trial's exported training config (YAML) to the artifact store as the trial completes."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.store = FileSystemArtifactStore(str(self.directory))

    def upload(self, trial: optuna.Trial, settings: StudySettings, hierarchy: Sequence[int], accuracy: float) -> str:
        """The artifact id of `trial`'s config; the trial must still be running."""
        study = trial.study
        config = trial_config(
            settings,
            hierarchy,
            study_name=study.study_name,
            trial=trial.number,
            accuracy=accuracy,
            storage_url=str(study.user_attrs.get(STORAGE_ATTR, "")),
            data_root=study.user_attrs.get(DATA_ROOT_ATTR),
        )
        with tempfile.TemporaryDirectory(prefix="lwl-artifact-") as tmp:
            path = config.save_yaml(Path(tmp) / config_filename(config))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return upload_artifact(
                    artifact_store=self.store, file_path=str(path), study_or_trial=trial, mimetype=MIMETYPE
                )


__all__ = ["ConfigArtifacts", "dashboard_command", "dashboard_url", "default_artifact_dir"]
