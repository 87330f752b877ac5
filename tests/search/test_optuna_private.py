"""Pins every private Optuna name lwl.search._storage.optuna_private uses, so an Optuna upgrade fails here, by name,
first.

This test imports the private door on purpose: it is the mechanism under test.
"""

import inspect
import time

import optuna
import pytest
from optuna.storages import RDBStorage

from lwl.search import OptunaVersionError
from lwl.search._storage import optuna_private as private


def _study(tmp_path, heartbeat: int | None = None) -> optuna.Study:
    kwargs = {"heartbeat_interval": heartbeat, "grace_period": 3 * heartbeat} if heartbeat else {}
    with pytest.warns(optuna.exceptions.ExperimentalWarning) if heartbeat else _nothing():
        storage = RDBStorage(f"sqlite:///{tmp_path / 's.db'}", **kwargs)
    return optuna.create_study(storage=storage, direction="maximize")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_study_and_trial_ids_reach_the_storage(tmp_path):
    study = _study(tmp_path)
    trial = study.ask()
    private.set_system_attr(study, trial, "k", [1, 2])
    assert private.system_attrs(study, trial)["k"] == [1, 2]
    assert private.trial_id(trial) == private.trial_id(private.all_trials(study)[0])
    assert private.study_id(study) == study._study_id and private.storage_of(study) is study._storage


def test_heartbeat_helpers_keep_their_signatures():
    from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled

    assert list(inspect.signature(get_heartbeat_thread).parameters) == ["trial_id", "storage"]
    assert list(inspect.signature(is_heartbeat_enabled).parameters) == ["storage"]
    assert list(inspect.signature(RDBStorage.record_heartbeat).parameters) == ["self", "trial_id"]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_heartbeats_are_sent_by_optuna_s_own_thread(tmp_path):
    study = _study(tmp_path, heartbeat=1)
    assert private.heartbeat_enabled(study)
    trial = study.ask()
    storage = private.storage_of(study)
    with private.heartbeat(study, trial):
        time.sleep(0.2)
    assert storage._get_stale_trial_ids(private.study_id(study)) == []  # a heartbeat was recorded


def test_no_heartbeats_are_expected_of_a_storage_without_them(tmp_path):
    study = _study(tmp_path)
    assert not private.heartbeat_enabled(study) and private.stale_trial_ids(study) == []


def test_an_optuna_without_the_heartbeat_helpers_names_the_pin(tmp_path, monkeypatch):
    """No fallback: the pin admits no Optuna without them, so their absence is one line naming the pin."""
    import sys

    study = _study(tmp_path)
    trial = study.ask()
    monkeypatch.setitem(sys.modules, "optuna.storages._heartbeat", None)  # the private module gone
    pattern = rf"optuna {optuna.__version__} has no optuna\.storages\._heartbeat helpers.*{private.PIN}"
    with pytest.raises(OptunaVersionError, match=pattern):
        private.heartbeat_enabled(study)
    with pytest.raises(OptunaVersionError, match=pattern), private.heartbeat(study, trial):
        pass


def test_redis_backend_keeps_its_client():
    pytest.importorskip("redis")
    from optuna.storages.journal import JournalRedisBackend

    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        backend = JournalRedisBackend("redis://127.0.0.1:1/0")  # no connection until used
    assert hasattr(private.redis_client(backend), "ping")


def test_tpe_parts_are_where_the_sampler_looks():
    parts = private.tpe_parts(optuna.samplers.TPESampler())
    assert list(inspect.signature(parts.split_trials).parameters)[:3] == ["study", "trials", "n_below"]
    assert list(inspect.signature(parts.ParzenEstimator).parameters)[:4] == [
        "observations",
        "search_space",
        "parameters",
        "predetermined_weights",
    ]
    assert callable(parts.acquisition) and parts.parzen_parameters is not None


def test_a_missing_private_name_is_one_line_naming_the_version():
    with pytest.raises(OptunaVersionError, match=rf"optuna {optuna.__version__} has no int\._trial_id.*{private.PIN}"):
        private.trial_id(3)


@pytest.mark.slow
def test_stale_trials_are_found_by_the_storage_s_own_check(tmp_path):
    study = _study(tmp_path, heartbeat=1)
    trial = study.ask()
    storage = private.storage_of(study)
    assert list(inspect.signature(RDBStorage._get_stale_trial_ids).parameters) == ["self", "study_id"]
    storage.record_heartbeat(private.trial_id(trial))
    assert private.stale_trial_ids(study) == []
    time.sleep(4.5)  # past the grace period of three heartbeats
    assert private.stale_trial_ids(study) == [private.trial_id(trial)]


def test_a_heartbeat_thread_that_loses_the_storage_is_silent_and_other_threads_are_not(monkeypatch):
    """Optuna's heartbeat thread is known by its name; its lost connection is left to the main thread's one line."""
    import threading

    import sqlalchemy.exc
    from optuna.storages._heartbeat import HeartbeatThread

    from lwl.search._storage.backends import quiet_heartbeat_errors

    class Lost:
        def get_heartbeat_interval(self):
            return 1

        def record_heartbeat(self, trial_id):
            raise sqlalchemy.exc.OperationalError("UPDATE trial_heartbeats", {}, ConnectionRefusedError(111, "refused"))

    def other():
        raise ValueError("not a lost connection")

    reported = []  # what reaches the hook that prints a thread's traceback
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(args.exc_type))
    with quiet_heartbeat_errors():
        beat = HeartbeatThread(0, Lost())
        beat.start()
        beat.join()
        assert private.is_heartbeat_thread(beat._thread)
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert reported == [ValueError]
