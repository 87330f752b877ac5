"""Where a study lives: any SQLAlchemy URL, a journal file, or a Redis journal. Passwords never leave this module.

SQLite suits one process; a journal file several processes on one machine; PostgreSQL/MySQL (with heartbeats, so
a killed worker's trial is failed and retried) or Redis several machines.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

from lwl.models import mask_secrets

from . import _optuna as private
from ._errors import StorageError

HEARTBEAT_SECONDS = 30  # a RUNNING trial silent for 3 heartbeats is failed (by the next worker) and retried
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")


def mask_url(url: str) -> str:
    """The URL (or any text holding URLs) with every password and credential replaced by ***: the only form of a
    storage URL that is ever printed or stored (`lwl.models.mask_secrets`: user info and query parameters)."""
    return mask_secrets(url)


def default_storage(study_name: str, directory: str | Path = "studies") -> str:
    path = Path(directory) / f"{study_name}.db"
    return f"sqlite:///{path}"


def storage_sibling(url: str, suffix: str) -> Path:
    """A folder that belongs with a storage: `NAME-SUFFIX` beside a SQLite or journal file `NAME.db`/`NAME.log`,
    `studies/SUFFIX` for a server's storage."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
    elif kind_of(url) == "journal":
        path = Path(url.removeprefix("journal:"))
    else:
        return Path("studies") / suffix
    return path.with_name(f"{path.stem}-{suffix}")


def kind_of(url: str) -> str:
    """'rdb', 'journal' or 'redis'; a plain path ending .log/.journal (or 'journal:PATH') is a journal file."""
    if url.startswith("journal:") or (("://" not in url) and url.endswith((".log", ".journal", ".jsonl"))):
        return "journal"
    scheme = urlsplit(url).scheme.split("+")[0].lower()
    if scheme in ("redis", "rediss"):
        return "redis"
    if scheme in _RDB_SCHEMES:
        return "rdb"
    raise StorageError(
        f"storage {mask_url(url)!r} is not understood: use sqlite:///FILE.db, postgresql://USER@HOST/DB, "
        "mysql+pymysql://USER@HOST/DB, redis://HOST:PORT, or a journal file path ending in .log"
    )


def _rdb_url(url: str) -> str:
    """Pick installed pure-Python drivers for bare mysql:// URLs, so users need not know driver names."""
    parts = url.split("://", 1)
    scheme = parts[0].lower()
    if scheme in ("mysql", "mariadb"):
        return "mysql+pymysql://" + parts[1]
    if scheme in ("postgres", "postgresql"):  # SQLAlchemy 2.1 defaults to psycopg 3; take whichever is installed
        driver = "psycopg" if importlib.util.find_spec("psycopg") else "psycopg2"
        return f"postgresql+{driver}://" + parts[1]
    return url


def require_existing(url: str) -> None:
    """For readers (lwl-export, lwl-report): opening a storage creates a missing SQLite or journal file, so refuse
    one that is not there, and an in-memory database, before anything is opened."""
    path: str | None = None
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
    elif url.startswith("sqlite:"):
        path = ""
    elif kind_of(url) == "journal":
        path = url.removeprefix("journal:")
    if path in ("", ":memory:"):
        raise StorageError(f"storage {mask_url(url)!r} is an in-memory database: it holds no study")
    if path is not None and not Path(path).is_file():
        raise StorageError(f"storage {mask_url(url)!r}: no such file {path!r}: give the --storage URL lwl-search used")


def open_storage(url: str, *, heartbeat: bool = True, heartbeat_seconds: int = HEARTBEAT_SECONDS) -> BaseStorage:
    """Open (creating tables or files as needed) the storage behind `url`, or raise a one-line StorageError."""
    kind = kind_of(url)
    try:
        if kind == "journal":
            path = Path(url.removeprefix("journal:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        if kind == "redis":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                backend = JournalRedisBackend(url)
            private.redis_client(backend).ping()  # fail now, not at the first trial
            return JournalStorage(backend)
        url = _rdb_url(url)
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"pool_pre_ping": True} if not url.startswith("sqlite") else None
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5.0 and the only recovery we have
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            kwargs: dict = {}
            if heartbeat:
                kwargs = dict(
                    heartbeat_interval=heartbeat_seconds,
                    grace_period=3 * heartbeat_seconds,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
                )
            return RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
    except StorageError:
        raise
    except ImportError as exc:
        raise StorageError(
            f"storage {mask_url(url)!r} needs a driver that is not installed ({exc.name}): "
            "pip install 'lwl-search[servers]'"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any driver error becomes one masked line
        reason = mask_url(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise StorageError(
            f"cannot open storage {mask_url(url)!r}: {reason[:200]}: check that the server runs and the URL is right"
        ) from None


class StorageLost(RuntimeError):
    """The storage went away mid-study (server stopped, network cut). Finished trials are safe in it."""


def _lost_kinds() -> tuple[type[BaseException], ...]:
    kinds: list[type[BaseException]] = [optuna.exceptions.StorageInternalError, ConnectionError, TimeoutError]
    try:
        import sqlalchemy.exc

        kinds += [sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError]
    except ImportError:  # pragma: no cover - sqlalchemy comes with optuna
        pass
    if importlib.util.find_spec("redis") is not None:
        import redis.exceptions

        kinds += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    return tuple(kinds)


def storage_lost(exc: BaseException, url: str) -> StorageLost | None:
    """A one-line StorageLost when `exc` (or what it was raised from or while handling) is a lost connection.

    Optuna re-raises a failed write of the trial's state as an AssertionError ("Should not reach"), so the whole
    chain is searched; the message names the deepest connection error, with any URL password masked.
    """
    kinds, found, seen = _lost_kinds(), None, set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, kinds):
            found = exc
        # Follow the chain as a traceback shows it: `raise ... from None` ends it (a StorageError said it all).
        exc = (
            exc.__cause__
            if exc.__cause__ is not None
            # type: ignore[assignment]
            else (None if exc.__suppress_context__ else exc.__context__)
        )
    if found is None:
        return None
    orig = getattr(found, "orig", None) or found  # sqlalchemy wraps the driver's error
    text = " ".join(str(orig).split()) or type(orig).__name__
    retry = (
        "; the interrupted trial is failed by its heartbeat and its list retried"
        if kind_of(url) == "rdb"
        else "; the interrupted trial stays RUNNING (no heartbeat here): fail it by hand if it matters"
    )
    return StorageLost(
        f"lost the storage {mask_url(url)!r} mid-study ({mask_url(text)[:160]}): finished trials are "
        f"kept there; when it is back, run the same command to continue{retry}"
    )


def study_exists(storage: BaseStorage, study_name: str) -> bool:
    try:
        storage.get_study_id_from_name(study_name)
        return True
    except KeyError:
        return False


def load_existing_study(storage: BaseStorage, study_name: str) -> optuna.Study:
    if not study_exists(storage, study_name):
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        hint = f"; studies there: {', '.join(names)}" if names else "; the storage holds no study"
        raise StorageError(f"no study named {study_name!r} in this storage{hint}")
    return optuna.load_study(study_name=study_name, storage=storage)
