"""Where a study lives: any SQLAlchemy URL, a journal file, or a Redis journal. Passwords never leave this module.

SQLite suits one process; a journal file several processes on one machine; PostgreSQL/MySQL (with heartbeats, so
a killed worker's trial is failed and retried) or Redis several machines.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import random
import re
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend
from optuna.trial import FrozenTrial

from lwl.models import mask_secrets, writable_file
from lwl.models import mask_url as _mask_url

from .._errors import StorageError, UsageError
from . import optuna_private as private
from .attributes import DERIVED_ATTR, FAILURE_ATTRS

HEARTBEAT_SECONDS = 30  # a RUNNING trial silent for 3 heartbeats is failed (by the next worker) and retried
GRACE_BEATS = 3  # the grace period, in heartbeats
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")


def mask_url(url: str) -> str:
    """The storage URL with its password and every credential replaced by ***, as SQLAlchemy parses it: the only
    form of a storage URL that is ever printed or stored (`lwl.models.mask_url`)."""
    return _mask_url(url)


# A study name becomes a file name (studies/NAME.db, NAME-artifacts/, NAME-prefixes/) and a row in a server's
# index (with the -pareto suffix): letters, digits, '.', '_' and '-', starting with a letter or digit, short enough
# for every file system and server once a suffix is added.
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_STUDY_NAME = 100
_RESERVED_SUFFIX = "-pareto"


def check_study_name(name: str) -> str:
    """`name` if it is a usable --study-name; else a one-line UsageError saying what is allowed."""
    shown = name if len(name) <= 60 else name[:57] + "..."
    if not _STUDY_NAME.fullmatch(name) or ".." in name:
        raise UsageError(
            f"--study-name {shown!r}: use letters, digits, '.', '_' and '-' only, starting with a "
            "letter or digit (no '/', no '..'), e.g. --study-name cifar100-b16"
        )
    if len(name) > MAX_STUDY_NAME:
        raise UsageError(f"--study-name of {len(name)} characters: use at most {MAX_STUDY_NAME}")
    if name.endswith(_RESERVED_SUFFIX):
        raise UsageError(
            f"--study-name {shown!r}: names ending in {_RESERVED_SUFFIX!r} are the derived Pareto "
            f"studies lwl-search keeps; use the search study's name ({name[: -len(_RESERVED_SUFFIX)]!r})"
        )
    return name


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


rdb_url = _rdb_url  # public: the printed optuna-dashboard command names the same driver (_artifacts.dashboard_url)


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


def check_new_storage(url: str) -> None:
    """For lwl-search, before anything is created: the URL is understood, a study there persists (an in-memory
    SQLite database would train, then lose every trial), and a SQLite or journal file can be made where it is named
    (`lwl.models.cli.writable_file`)."""
    kind = kind_of(url)
    path: str | None = None
    if kind == "journal":
        path = url.removeprefix("journal:")
    elif url.split("://", 1)[0].split("+")[0].lower() == "sqlite":
        rest = url.split("://", 1)[1] if "://" in url else ""
        path = (rest[1:] if rest.startswith("/") else rest).split("?", 1)[0]
        if path in ("", ":memory:") or path.startswith("file::memory:") or "mode=memory" in url:
            raise StorageError(
                f"storage {mask_url(url)!r} is an in-memory database: a study must persist: give a file, "
                "e.g. sqlite:///studies/NAME.db, or leave --storage out"
            )
    if path is not None:
        writable_file(path, "--storage")


# The tables of Optuna's RDB schema: a database holding tables but none of these belongs to another program.
OPTUNA_TABLES = frozenset(
    {
        "studies",
        "study_directions",
        "study_user_attributes",
        "study_system_attributes",
        "trials",
        "trial_params",
        "trial_values",
        "trial_intermediate_values",
        "trial_user_attributes",
        "trial_system_attributes",
        "trial_heartbeats",
        "version_info",
        "alembic_version",
    }
)


def _check_schema(url: str, create: bool) -> None:
    """Refuse a database of another program before Optuna adds its tables to it; a reader (`create=False`) also
    refuses a database that holds no Optuna schema at all, since it holds no study."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if tables & OPTUNA_TABLES:
        return
    if tables:
        raise StorageError(
            f"storage {mask_url(url)!r} holds {len(tables)} table(s) of another program and no Optuna study: "
            "give lwl-search a database of its own (it never adds tables to another program's)"
        )
    if not create:
        raise StorageError(f"storage {mask_url(url)!r} holds no study: give the --storage URL lwl-search used")


def open_storage(
    url: str, *, heartbeat: bool = True, heartbeat_seconds: int = HEARTBEAT_SECONDS, create: bool = True
) -> BaseStorage:
    """Open the storage behind `url`, or raise a one-line StorageError.

    With `create` (lwl-search), a missing SQLite or journal file, and Optuna's tables in an empty database, are
    created; a database of another program is refused. Readers pass `create=False`: nothing is ever created.
    """
    kind = kind_of(url)
    if not create:
        require_existing(url)
    made = _would_create(url, kind) if create else []
    try:
        return _open(url, kind, heartbeat, heartbeat_seconds, create)
    except BaseException:
        _remove_created(made)  # a refused storage (a full disk, a server error) leaves nothing behind
        raise


def _would_create(url: str, kind: str) -> list[Path]:
    """The file of a SQLite or journal storage and the folders above it that are not there yet (deepest last)."""
    if kind == "journal":
        path = Path(url.removeprefix("journal:"))
    elif kind == "rdb" and url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
    else:
        return []
    if path.exists():
        return []
    missing = [path]
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    return missing


def _remove_created(made: list[Path]) -> None:
    """Remove the storage file (with SQLite's journal, WAL and the journal's lock files) and the folders made for it."""
    if not made:
        return
    file, folders = made[0], made[1:]
    for path in [file, *(file.with_name(file.name + s) for s in ("-journal", "-wal", "-shm", ".lock"))]:
        with contextlib.suppress(OSError):
            path.unlink()
    for folder in folders:  # deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()


def _open(url: str, kind: str, heartbeat: bool, heartbeat_seconds: int, create: bool) -> BaseStorage:
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
        if create and url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        _check_schema(url, create)
        engine_kwargs = {"pool_pre_ping": True} if not url.startswith("sqlite") else None
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5.0 and the only recovery we have
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            kwargs: dict = {}
            if heartbeat:
                kwargs = dict(
                    heartbeat_interval=heartbeat_seconds,
                    grace_period=GRACE_BEATS * heartbeat_seconds,
                    heartbeat_stale_trial_callback=RetryLostTrial(max_retry=3),
                )
            return _create_rdb(url, engine_kwargs, create, kwargs)
    except StorageError:
        raise
    except ImportError as exc:
        raise StorageError(
            f"storage {mask_url(url)!r} needs a driver that is not installed ({exc.name}): "
            "pip install 'lwl-search[servers]'"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any driver error becomes one masked line
        reason = mask_secrets(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
        local = kind == "journal" or url.startswith("sqlite")
        fix = (
            "check that its disk has free space and the file can be written"
            if local
            else ("check that the server runs and the URL is right")
        )
        raise StorageError(f"cannot open storage {mask_url(url)!r}: {reason[:200]}: {fix}") from None


_CREATE_ATTEMPTS = 6


def _create_rdb(url: str, engine_kwargs: dict | None, create: bool, kwargs: dict) -> RDBStorage:
    """Optuna's RDBStorage, retried when it lost a race to create the schema.

    Workers started at the same moment on a fresh database all create the tables and the version row; all but one
    meet "already exists" or a duplicate key (PostgreSQL's pg_type index, MySQL's 1050/1062). Once the winner is
    done the schema is there, so a retry after a short random pause opens it (measured by
    benchmarks/concurrent_starts.py).
    """
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=not create, **kwargs)
        except Exception as exc:  # noqa: BLE001 - only a lost creation race is retried
            if attempt == _CREATE_ATTEMPTS - 1 or not _lost_creation_race(exc):
                raise
            time.sleep(random.uniform(0.1, 0.4) * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _lost_creation_race(exc: BaseException) -> bool:
    text = " ".join(str(e) for e in _chain(exc)).lower()
    return any(word in text for word in ("already exists", "duplicate", "deadlock", "concurrent ddl"))


def _chain(exc: BaseException | None) -> list[BaseException]:
    """`exc` and what it was raised from or while handling, as a traceback shows them (`from None` ends it)."""
    chain: list[BaseException] = []
    while exc is not None and all(exc is not e for e in chain):
        chain.append(exc)
        exc = exc.__cause__ if exc.__cause__ is not None else (None if exc.__suppress_context__ else exc.__context__)
    return chain


class RetryLostTrial(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a trial failed by its heartbeat, as a fresh attempt: the copy does not inherit the lost
    trial's `fail_reason` (written on it just before it was failed, `_objective.fail_lost_workers`)."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if DERIVED_ATTR in study.user_attrs:  # a confirmation run: confirmation trains a missing run again itself,
            return  # and a WAITING copy nobody asks for would stay WAITING for good
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in FAILURE_ATTRS}
        super().__call__(study, trial)


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
    found = _lost_cause(exc)
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
        f"lost the storage {mask_url(url)!r} mid-study ({mask_secrets(text, url)[:160]}): finished trials are "
        f"kept there; {'once its disk has space' if _disk_full(found) else 'when it is back'}, run the same command "
        f"to continue{retry}"
    )


def _lost_cause(exc: BaseException) -> BaseException | None:
    """The deepest lost-connection error in `exc`'s chain; None when there is none, or when the server refused a
    value (a DataError: too long for its column), which Optuna wraps in the same StorageInternalError."""
    chain = _chain(exc)
    if _refusal(chain) is not None:
        return None
    kinds = _lost_kinds()
    found = [e for e in chain if isinstance(e, kinds) or _disk_full(e)]
    return found[-1] if found else None


def _disk_full(exc: BaseException) -> bool:
    """A journal file that cannot grow (a full disk, a quota, a file size limit): lost as a server is lost."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _refusal(chain: list[BaseException]) -> BaseException | None:
    try:
        from sqlalchemy.exc import DataError
    except ImportError:  # pragma: no cover - sqlalchemy comes with optuna
        return None
    return next((e for e in chain if isinstance(e, DataError)), None)


def value_refused(exc: BaseException, study_name: str) -> StorageError | None:
    """A one-line StorageError when the server refused a value as too long (a study name longer than its column):
    the storage is there, nothing is lost; None for any other error."""
    refused = _refusal(_chain(exc))
    if refused is None:
        return None
    orig = getattr(refused, "orig", None) or refused
    text = mask_secrets(" ".join(str(orig).split()) or type(orig).__name__)[:160]
    return StorageError(
        f"the storage refused a value as too long ({text}): the study name is {len(study_name)} characters "
        f"(the derived Pareto study adds {len('-pareto')}); choose a shorter --study-name"
    )


@contextlib.contextmanager
def quiet_heartbeat_errors() -> Iterator[None]:
    """While the block runs, a heartbeat thread that loses the storage ends without a traceback: the main thread
    meets the same lost connection at its next write and says so in one line (`storage_lost`). Every other
    thread's error is printed as before."""
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if private.is_heartbeat_thread(args.thread) and args.exc_value is not None:
            if _lost_cause(args.exc_value) is not None:
                return
        previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


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
