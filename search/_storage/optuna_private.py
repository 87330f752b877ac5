"""Every use of Optuna's private API, behind one door.

Optuna is pinned to the 5.0 series (pyproject.toml). What this module touches, and why no public API does it:
- `study._storage`, `study._study_id`, `trial._trial_id`: the sampler reads and writes trial system attributes
  through the storage (a claim every worker sees) and reads all trials of a study without a Hyperband bracket's
  filter; the revisit and heartbeat code needs a trial's storage id.
- `optuna.storages._heartbeat` (`is_heartbeat_enabled`, `get_heartbeat_thread`): every trial trains outside
  `study.optimize` (one ask/tell loop for one candidate at a time and `--batch` groups alike), so lwl-search sends
  their heartbeats itself, with Optuna's own thread.
- `RDBStorage._get_stale_trial_ids` (`BaseHeartbeat`): the trials a killed worker left RUNNING, found before
  `optuna.storages.fail_stale_trials` fails them, so that each gets its `fail_reason` while it can still take one
  (a finished trial refuses user attributes). `HeartbeatThread._record_heartbeat` names the heartbeat thread, so
  that its connection errors are left to the main thread's one line.
- `optuna.Trial(study, trial_id)` over `storage.create_new_trial(..., template_trial=...)`: a confirmation run is a
  RUNNING trial with its list fixed at creation (`running_trial`); the queue (`enqueue_trial` + `ask`) would hand
  one worker's list to another worker that asks first.
- `JournalRedisBackend._redis`: one ping when the storage opens, so a wrong Redis URL fails at once.
- The TPE internals `_tpe.sampler._split_trials`, `default_gamma(_multiobjective)`,
  `_tpe.parzen_estimator._ParzenEstimator`, `TPESampler._parzen_estimator_parameters` and
  `_compute_acquisition_func`: the feasible-set TPE scores the remaining lists with Optuna's own estimator.

Each accessor raises `OptunaVersionError` (one line naming the installed version and the pin) where a name is
missing; there is no fallback, as the pin admits no Optuna without them. tests/search/test_optuna_private.py and
tests/search/test_sampler.py pin every signature used here.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from lwl.models import LwlError

PIN = "optuna>=5.0,<5.1"


class OptunaVersionError(LwlError, RuntimeError):
    """The installed Optuna lacks a private name lwl-search needs; the message names the version and the pin."""


def _missing(what: str, exc: BaseException) -> OptunaVersionError:
    return OptunaVersionError(
        f"optuna {optuna.__version__} has no {what} ({type(exc).__name__}: {exc}): "
        f"install {PIN!r}, the version lwl-search is tested with"
    )


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage object."""
    try:
        return study._storage
    except AttributeError as exc:
        raise _missing("Study._storage", exc) from None


def study_id(study: optuna.Study) -> int:
    try:
        return int(study._study_id)
    except AttributeError as exc:
        raise _missing("Study._study_id", exc) from None


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """A trial's id in its storage (not its number)."""
    try:
        return int(trial._trial_id)
    except AttributeError as exc:
        raise _missing(f"{type(trial).__name__}._trial_id", exc) from None


def all_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Every trial of the study, straight from the storage (no Hyperband bracket filter, no cached view)."""
    return storage_of(study).get_all_trials(study_id(study), deepcopy=False)


def system_attrs(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> dict[str, Any]:
    """A trial's system attributes as the storage holds them now."""
    return storage_of(study).get_trial_system_attrs(trial_id(trial))


def set_system_attr(study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str, value: Any) -> None:
    storage_of(study).set_trial_system_attr(trial_id(trial), key, value)


def running_trial(
    study: optuna.Study, params: dict[str, Any], distributions: dict[str, optuna.distributions.BaseDistribution]
) -> optuna.Trial:
    """A new RUNNING trial of `study` that holds `params` from its creation."""
    template = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, params=params, distributions=distributions
    )
    tid = storage_of(study).create_new_trial(study_id(study), template_trial=template)
    return optuna.Trial(study, tid)


def _heartbeat_helpers() -> SimpleNamespace:
    """Optuna 5.0's heartbeat helpers: whether a storage expects heartbeats, and the thread that sends a trial's."""
    try:
        from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled
    except ImportError as exc:
        raise _missing("optuna.storages._heartbeat helpers", exc) from None
    return SimpleNamespace(enabled=is_heartbeat_enabled, thread=get_heartbeat_thread)


def heartbeat_enabled(study: optuna.Study) -> bool:
    """Whether the study's storage expects heartbeats from running trials."""
    return bool(_heartbeat_helpers().enabled(storage_of(study)))


def stale_trial_ids(study: optuna.Study) -> list[int]:
    """Storage ids of the study's RUNNING trials whose last heartbeat is older than the grace period; none on a
    storage without heartbeats (a journal file, Redis)."""
    if not heartbeat_enabled(study):
        return []
    storage = storage_of(study)
    try:
        stale = storage._get_stale_trial_ids  # type: ignore[attr-defined]
    except AttributeError as exc:
        raise _missing(f"{type(storage).__name__}._get_stale_trial_ids", exc) from None
    return [int(tid) for tid in stale(study_id(study))]


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's own stale-trial check: fail every stale trial and run the storage's stale-trial callback (retry)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def is_heartbeat_thread(thread: threading.Thread | None) -> bool:
    """Whether `thread` sends a trial's heartbeats (Optuna's thread, named after its target)."""
    name = getattr(thread, "name", "") or ""
    return "_record_heartbeat" in name


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Send `trial`'s heartbeats while the block runs, as `study.optimize` does for its own trials."""
    with _heartbeat_helpers().thread(trial_id(trial), storage_of(study)):
        yield


def redis_client(backend: Any) -> Any:
    """The Redis client inside a `JournalRedisBackend` (to ping it when the storage opens)."""
    try:
        return backend._redis
    except AttributeError as exc:
        raise _missing("JournalRedisBackend._redis", exc) from None


def tpe_parts(tpe: optuna.samplers.TPESampler) -> SimpleNamespace:
    """Optuna 5.0's TPE pieces the feasible-set sampler scores lists with: the good/bad split and its gammas, the
    Parzen estimator class, and `tpe`'s estimator parameters and acquisition function."""
    try:
        from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator
        from optuna.samplers._tpe.sampler import _split_trials, default_gamma, default_gamma_multiobjective

        parameters = tpe._parzen_estimator_parameters
        acquisition = tpe._compute_acquisition_func
    except (ImportError, AttributeError) as exc:
        raise _missing("TPE internals", exc) from None
    return SimpleNamespace(
        split_trials=_split_trials,
        default_gamma=default_gamma,
        default_gamma_multiobjective=default_gamma_multiobjective,
        ParzenEstimator=_ParzenEstimator,
        parzen_parameters=parameters,
        acquisition=acquisition,
    )


__all__ = [
    "PIN",
    "OptunaVersionError",
    "all_trials",
    "fail_stale_trials",
    "heartbeat",
    "heartbeat_enabled",
    "is_heartbeat_thread",
    "redis_client",
    "set_system_attr",
    "stale_trial_ids",
    "storage_of",
    "study_id",
    "system_attrs",
    "tpe_parts",
    "trial_id",
]
