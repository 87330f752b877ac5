"""The feasible-set sampler: only feasible, unseen lists; exhaustion; enqueueing; the TPE pin."""

from __future__ import annotations

import inspect
import multiprocessing
import pickle
import statistics

import numpy as np
import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from lwl.search import SearchSpace, SpaceError

# The sampler's own mechanism is tested here on purpose: its claim attributes and helpers are private.
from lwl.search._sampling.sampler import (
    CHOSEN_BY_ATTR,
    EXHAUSTED_ATTR,
    HIERARCHY_ATTR,
    REVISIT_ATTR,
    SAMPLERS,
    FeasibleSampler,
    SpaceExhausted,
    enqueue_hierarchy,
    evaluated,
    hierarchy_params,
    make_sampler,
    promoted,
    remaining,
    revisit_of,
    stop_when_exhausted,
    trial_hierarchy,
    validate_enqueued,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE16 = SearchSpace(16, 4)  # 61 lists
SPACE12 = SearchSpace(12, 4)  # 20 lists


def synthetic_table(space: SearchSpace, seed: int = 0) -> dict[tuple[int, ...], float]:
    """Smooth in the list (fewer shallow, more deep units is better) plus fixed per-list noise."""
    rng = np.random.default_rng(seed)
    k = space.k
    return {
        h: -1.0 * sum(h[:k]) + 0.5 * sum(h[k:]) - 0.1 * (h[-1] - h[-2]) ** 2 + 0.3 * float(rng.standard_normal())
        for h in space.lists()
    }


def make_objective(space: SearchSpace, table: dict[tuple[int, ...], float]):
    low, high = space.param_range()

    def objective(trial: optuna.Trial) -> float:
        hierarchy = tuple(trial.suggest_int(name, low, high) for name in space.param_names())
        assert space.is_feasible(hierarchy), hierarchy
        return table[hierarchy]

    return objective


def run(
    space: SearchSpace,
    strategy: str,
    n_trials: int,
    seed: int | None = 0,
    callback: bool = True,
    study: optuna.Study | None = None,
    **options,
) -> optuna.Study:
    """The driver pattern the CLI uses: a stop callback, and SpaceExhausted caught around optimize."""
    study = study or optuna.create_study(direction="maximize", sampler=make_sampler(strategy, space, seed, **options))
    try:
        study.optimize(
            make_objective(space, synthetic_table(space)),
            n_trials=n_trials,
            callbacks=[stop_when_exhausted(space)] if callback else None,
        )
    except SpaceExhausted:
        pass
    return study


def lists_of(study: optuna.Study, space: SearchSpace) -> list[tuple[int, ...]]:
    return [trial_hierarchy(t, space) for t in study.trials if t.state == TrialState.COMPLETE]


@pytest.mark.parametrize("strategy", SAMPLERS)
def test_feasible_and_unique(strategy: str) -> None:
    study = run(SPACE16, strategy, n_trials=30)
    lists = lists_of(study, SPACE16)
    assert len(lists) == 30
    assert all(SPACE16.is_feasible(h) for h in lists)
    assert len(set(lists)) == 30
    for t in study.trials:
        assert t.system_attrs[HIERARCHY_ATTR] == list(trial_hierarchy(t, SPACE16))
        assert t.distributions["d1"] == IntDistribution(*SPACE16.param_range())


@pytest.mark.parametrize("strategy", SAMPLERS)
def test_exhausts_whole_space_with_stop_callback(strategy: str) -> None:
    study = run(SPACE12, strategy, n_trials=len(SPACE12) + 7)
    assert len(study.trials) == len(SPACE12)
    assert sorted(lists_of(study, SPACE12)) == list(SPACE12.lists())
    assert remaining(study, SPACE12) == []


@pytest.mark.parametrize("strategy", SAMPLERS)
def test_exhaustion_raises_space_exhausted(strategy: str) -> None:
    study = optuna.create_study(sampler=make_sampler(strategy, SPACE12, 1))
    study.optimize(make_objective(SPACE12, synthetic_table(SPACE12)), n_trials=len(SPACE12))
    with pytest.raises(SpaceExhausted, match="all 20 hierarchies of 4 stages summing to 12"):
        study.optimize(make_objective(SPACE12, synthetic_table(SPACE12)), n_trials=5)
    last = study.trials[-1]
    assert last.state == TrialState.FAIL and last.system_attrs[EXHAUSTED_ATTR] is True
    assert sorted(lists_of(study, SPACE12)) == list(SPACE12.lists())


def test_grid_visits_in_order() -> None:
    study = run(SPACE16, "grid", n_trials=25)
    assert lists_of(study, SPACE16) == list(SPACE16.lists()[:25])
    assert {t.system_attrs[CHOSEN_BY_ATTR] for t in study.trials} == {"grid"}


def test_random_is_reproducible_and_seed_dependent() -> None:
    a = lists_of(run(SPACE16, "random", 15, seed=3), SPACE16)
    b = lists_of(run(SPACE16, "random", 15, seed=3), SPACE16)
    c = lists_of(run(SPACE16, "random", 15, seed=4), SPACE16)
    assert a == b and a != c


def test_tpe_finds_best_faster_than_random_expectation() -> None:
    # Deterministic for fixed seeds (choices are keyed by seed and trial number), so not flaky.
    # Uniform sampling without replacement needs (61 + 1) / 2 = 31 trials on average.
    table = synthetic_table(SPACE16)
    best = max(table, key=table.get)
    firsts = []
    for seed in range(5):
        lists = lists_of(run(SPACE16, "tpe", n_trials=len(SPACE16), seed=seed), SPACE16)
        firsts.append(lists.index(best) + 1)
    assert statistics.median(firsts) <= 22, firsts


def test_failed_trials_may_be_retried() -> None:
    space = SearchSpace(8, 4)  # 3 lists
    study = optuna.create_study(sampler=make_sampler("grid", space))
    low, high = space.param_range()

    def failing(trial: optuna.Trial) -> float:
        [trial.suggest_int(n, low, high) for n in space.param_names()]
        raise RuntimeError("out of memory")

    study.optimize(failing, n_trials=1, catch=(RuntimeError,))
    assert study.trials[0].state == TrialState.FAIL
    assert remaining(study, space) == list(space.lists())
    run(space, "grid", n_trials=3, study=study)
    assert lists_of(study, space) == list(space.lists())


def test_running_and_waiting_trials_count_as_taken() -> None:
    study = optuna.create_study(sampler=make_sampler("grid", SPACE12))
    low, high = SPACE12.param_range()
    first = study.ask()
    first.suggest_int("d1", low, high)  # claims the whole first list at once
    assert tuple(study.trials[0].system_attrs[HIERARCHY_ATTR]) == SPACE12.lists()[0]
    enqueue_hierarchy(study, SPACE12, SPACE12.lists()[1])
    assert evaluated(study, SPACE12) == set(SPACE12.lists()[:2])
    # The enqueued trial runs next with its fixed list; the one after is the third list.
    queued = study.ask()
    assert tuple(queued.suggest_int(n, low, high) for n in SPACE12.param_names()) == SPACE12.lists()[1]
    other = study.ask()
    assert tuple(other.suggest_int(n, low, high) for n in SPACE12.param_names()) == SPACE12.lists()[2]
    # The first trial answers its later stages from its claim, in any order.
    assert first.suggest_int("d4", low, high) == SPACE12.lists()[0][3]


def test_enqueued_paper_baselines_run_first_and_are_not_repeated() -> None:
    from lwl.search import paper_baselines

    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", SPACE16, 0))
    for h in paper_baselines(SPACE16):
        assert enqueue_hierarchy(study, SPACE16, h)
    assert not enqueue_hierarchy(study, SPACE16, (2, 3, 7, 4))  # already queued
    run(SPACE16, "tpe", n_trials=len(SPACE16) + 3, study=study)
    lists = lists_of(study, SPACE16)
    assert lists[:2] == [(2, 3, 7, 4), (1, 2, 8, 5)]
    assert sorted(lists) == list(SPACE16.lists())


def test_partial_enqueue_is_respected() -> None:
    study = optuna.create_study(sampler=make_sampler("random", SPACE16, 0))
    study.enqueue_trial({"d2": 3})
    run(SPACE16, "random", n_trials=1, study=study)
    assert lists_of(study, SPACE16)[0][1] == 3
    study.enqueue_trial({"d1": 9})
    with pytest.raises(SpaceError, match="has d1=9"):
        run(SPACE16, "random", n_trials=1, study=study)
    # A partial list whose matches are all taken is the user's problem, not exhaustion.
    space = SearchSpace(8, 4)  # (1,1,2,4), (1,1,3,3), (1,1,4,2)
    small = optuna.create_study(sampler=make_sampler("grid", space))
    run(space, "grid", n_trials=1, study=small)
    small.enqueue_trial({"d3": 2})
    with pytest.raises(SpaceError, match="with d3=2 has been evaluated") as info:
        run(space, "grid", n_trials=1, study=small)
    assert not isinstance(info.value, SpaceExhausted)
    assert remaining(small, space) == [(1, 1, 3, 3), (1, 1, 4, 2)]


def test_validate_enqueued() -> None:
    assert validate_enqueued(SPACE16, [1, 2, 8, 5]) == (1, 2, 8, 5)
    with pytest.raises(SpaceError) as info:
        validate_enqueued(SPACE16, (4, 4, 4, 4))
    message = str(info.value)
    assert message.startswith("--enqueue 4,4,4,4: not feasible")
    assert "strict constraint (k=2)" in message and "nearest feasible list is" in message
    with pytest.raises(SpaceError, match="sums to 15"):
        validate_enqueued(SPACE16, (1, 2, 8, 4))
    with pytest.raises(SpaceError, match="3 stages"):
        validate_enqueued(SPACE16, (1, 2, 13))
    assert hierarchy_params((1, 2, 8, 5)) == {"d1": 1, "d2": 2, "d3": 8, "d4": 5}


def test_make_sampler_choices() -> None:
    for name in SAMPLERS:
        sampler = make_sampler(name, SPACE16, seed=1)
        assert isinstance(sampler, optuna.samplers.BaseSampler) and sampler.strategy == name
    with pytest.raises(SpaceError, match="--sampler cmaes: unknown sampler; choose one of tpe, random, grid"):
        make_sampler("cmaes", SPACE16, None)


def test_sampler_pickles_and_keeps_working() -> None:
    sampler = make_sampler("tpe", SPACE12, 0, n_startup_trials=3)
    study = run(SPACE12, "tpe", n_trials=6, study=optuna.create_study(sampler=sampler))
    clone = pickle.loads(pickle.dumps(study.sampler))
    assert clone.space == SPACE12 and clone.strategy == "tpe"
    run(
        SPACE12,
        "tpe",
        n_trials=len(SPACE12),
        study=optuna.load_study(study_name=study.study_name, storage=study._storage, sampler=clone),
    )
    assert sorted(lists_of(study, SPACE12)) == list(SPACE12.lists())


def test_other_params_are_delegated() -> None:
    study = optuna.create_study(sampler=make_sampler("random", SPACE12, 0))
    low, high = SPACE12.param_range()

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        h = [trial.suggest_int(n, low, high) for n in SPACE12.param_names()]
        return lr * sum(h)

    study.optimize(objective, n_trials=5)
    assert len(set(lists_of(study, SPACE12))) == 5
    assert all(1e-4 <= t.params["lr"] <= 1e-2 for t in study.trials)


def test_too_narrow_distribution_is_a_clear_error() -> None:
    study = optuna.create_study(sampler=make_sampler("grid", SearchSpace(12, 4, constraint="none")))
    with pytest.raises(SpaceError, match=r"suggest_int\('d4', 1, 9\)"):
        study.optimize(lambda t: sum(t.suggest_int(n, 1, 2) for n in ("d1", "d2", "d3", "d4")), n_trials=1)


@pytest.mark.parametrize("strategy", SAMPLERS)
def test_threads_share_the_study(strategy: str) -> None:
    study = optuna.create_study(direction="maximize", sampler=make_sampler(strategy, SPACE12, 0, n_startup_trials=4))
    try:
        study.optimize(
            make_objective(SPACE12, synthetic_table(SPACE12)),
            n_trials=40,
            n_jobs=4,
            callbacks=[stop_when_exhausted(SPACE12)],
        )
    except SpaceExhausted:
        pass
    lists = lists_of(study, SPACE12)
    assert set(lists) == set(SPACE12.lists())
    # Duplicates are possible in principle (documented residual race), but must stay rare.
    assert len(lists) - len(set(lists)) <= 2


def _worker(storage_path: str, study_name: str, strategy: str, seed: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage_path))
    study = optuna.load_study(
        study_name=study_name, storage=storage, sampler=make_sampler(strategy, SPACE12, seed, n_startup_trials=4)
    )
    run(SPACE12, strategy, n_trials=40, study=study)


def test_two_processes_share_a_journal(tmp_path) -> None:
    path = str(tmp_path / "journal.log")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    optuna.create_study(study_name="s", storage=storage, direction="maximize")
    ctx = multiprocessing.get_context("fork")
    # Same seed on purpose: choices are keyed by trial number, so the workers still diverge.
    procs = [ctx.Process(target=_worker, args=(path, "s", "random", 7)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    study = optuna.load_study(study_name="s", storage=storage)
    lists = lists_of(study, SPACE12)
    assert set(lists) == set(SPACE12.lists())
    assert len(lists) - len(set(lists)) <= 2


# -- the private TPE API pin ------------------------------------------------------------------


def test_tpe_private_api_is_the_one_used() -> None:
    """Fails on an Optuna upgrade that moves or reshapes the TPE internals the sampler uses."""
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator
    from optuna.samplers._tpe.sampler import _split_trials, default_gamma

    assert list(inspect.signature(_ParzenEstimator.__init__).parameters) == [
        "self",
        "observations",
        "search_space",
        "parameters",
        "predetermined_weights",
    ]
    assert list(inspect.signature(_split_trials).parameters) == ["study", "trials", "n_below"]
    assert default_gamma(100) == 10
    tpe = optuna.samplers.TPESampler()
    assert hasattr(tpe, "_parzen_estimator_parameters")
    assert hasattr(tpe, "_compute_acquisition_func")

    study = run(SPACE16, "tpe", n_trials=20, n_startup_trials=5)
    chosen = [t.system_attrs[CHOSEN_BY_ATTR] for t in study.trials]
    assert chosen == ["random-startup"] * 5 + ["tpe"] * 15


def test_tpe_scores_equal_optunas_own_estimators() -> None:
    from optuna.samplers._tpe.sampler import _split_trials, default_gamma

    study = run(SPACE16, "random", n_trials=25)
    sampler = FeasibleSampler(SPACE16, "tpe", seed=0)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    observed = [(t, trial_hierarchy(t, SPACE16)) for t in trials]
    candidates = remaining(study, SPACE16)
    ours = sampler._tpe_scores(study, observed, candidates)

    tpe = optuna.samplers.TPESampler(seed=0)
    space = {n: IntDistribution(*SPACE16.param_range()) for n in SPACE16.param_names()}
    below, above = _split_trials(study, trials, default_gamma(len(trials)))
    l_x = tpe._build_parzen_estimator(study, space, below, handle_below=True)
    g_x = tpe._build_parzen_estimator(study, space, above, handle_below=False)
    x = {n: np.asarray([h[i] for h in candidates], float) for i, n in enumerate(space)}
    np.testing.assert_allclose(ours, l_x.log_pdf(x) - g_x.log_pdf(x))


def test_tpe_without_its_optuna_internals_names_the_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    """No surrogate stands in for TPE: an Optuna outside the pin that moved its internals stops the search with one
    line naming the version and the pin, after the random start-up trials."""
    import optuna.samplers._tpe.parzen_estimator as pe

    from lwl.search import OptunaVersionError

    monkeypatch.delattr(pe, "_ParzenEstimator")
    with pytest.raises(OptunaVersionError, match=r"has no TPE internals .*optuna>=5\.0,<5\.1"):
        run(SPACE16, "tpe", n_trials=10, n_startup_trials=5)


def test_multi_objective_tpe() -> None:
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_sampler("tpe", SPACE12, 0, n_startup_trials=4)
    )
    low, high = SPACE12.param_range()
    table = synthetic_table(SPACE12)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        h = tuple(trial.suggest_int(n, low, high) for n in SPACE12.param_names())
        return table[h], float(h[-1])

    study.optimize(objective, n_trials=12)
    lists = lists_of(study, SPACE12)
    assert len(set(lists)) == 12
    assert study.trials[-1].system_attrs[CHOSEN_BY_ATTR] == "tpe"


def pruning_objective(space: SearchSpace, table: dict[tuple[int, ...], float], cut: set[tuple[int, ...]]):
    """Prunes the first visit of every list in `cut`; a revisit reports and completes, as lwl-search's does."""
    low, high = space.param_range()

    def objective(trial: optuna.Trial) -> float:
        hierarchy = tuple(trial.suggest_int(name, low, high) for name in space.param_names())
        trial.report(table[hierarchy] - 1.0, 1)
        if hierarchy in cut and revisit_of(trial.study, trial) is None:
            raise optuna.TrialPruned()
        return table[hierarchy]

    return objective


@pytest.mark.parametrize("strategy", SAMPLERS)
def test_pruned_lists_are_revisited_once_after_the_first_pass(strategy: str) -> None:
    table = synthetic_table(SPACE12)
    cut = set(SPACE12.lists()[::4])  # 5 of 20
    study = optuna.create_study(direction="maximize", sampler=make_sampler(strategy, SPACE12, 3))
    study.optimize(pruning_objective(SPACE12, table, cut), n_trials=100, callbacks=[stop_when_exhausted(SPACE12)])
    trials = study.trials
    assert len(trials) == len(SPACE12) + len(cut)
    first, again = trials[: len(SPACE12)], trials[len(SPACE12) :]  # no revisit before every list was tried
    assert sorted(trial_hierarchy(t, SPACE12) for t in first) == list(SPACE12.lists())
    pruned = {trial_hierarchy(t, SPACE12): t.number for t in first if t.state == TrialState.PRUNED}
    assert set(pruned) == cut
    for t in again:
        assert t.state == TrialState.COMPLETE
        assert t.system_attrs[REVISIT_ATTR] == pruned[trial_hierarchy(t, SPACE12)]
        assert t.system_attrs[CHOSEN_BY_ATTR].endswith("-revisit")
    assert sorted(trial_hierarchy(t, SPACE12) for t in again) == sorted(cut)
    assert all(t.system_attrs[REVISIT_ATTR] is None for t in first)
    assert remaining(study, SPACE12) == []
    with pytest.raises(SpaceExhausted, match=r"evaluated \(the pruned ones revisited\)"):
        study.optimize(pruning_objective(SPACE12, table, cut), n_trials=1)
    # Promotion: the pruned lists come back in the order they stood among their peers when they were cut (here
    # every trial reports its table value - 1 at step 1, all distinct), whatever the strategy.
    assert [trial_hierarchy(t, SPACE12) for t in again] == sorted(cut, key=table.get, reverse=True)


def test_revisit_false_is_one_pass() -> None:
    table = synthetic_table(SPACE12)
    cut = set(SPACE12.lists()[::4])
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", SPACE12, 3, revisit=False))
    study.optimize(pruning_objective(SPACE12, table, cut), n_trials=100, callbacks=[stop_when_exhausted(SPACE12)])
    assert len(study.trials) == len(SPACE12)
    assert remaining(study, SPACE12) == []


def test_promotion_ranks_a_pruned_trial_among_its_peers_at_its_step_and_leaves_ties_to_the_sampler() -> None:
    """`promoted`: the fraction of every trial's values at the pruned trial's last step at or below its own, then
    the further step; the candidates tied at the top are all returned (the sampler's order decides among them)."""
    d = IntDistribution(1, 9)

    def trial(number: int, values: dict[int, float], state: TrialState = TrialState.PRUNED):
        t = optuna.trial.create_trial(
            state=state,
            params={"d1": 1},
            distributions={"d1": d},
            intermediate_values=values,
            value=max(values.values()) if state == TrialState.COMPLETE else None,
        )
        t.number = number
        return t

    trials = [
        trial(0, {1: 0.5, 2: 0.9, 3: 0.95}, TrialState.COMPLETE),
        trial(1, {1: 0.6, 2: 0.8, 3: 0.9}, TrialState.COMPLETE),
        trial(2, {1: 0.7}),
        trial(3, {1: 0.4, 2: 0.95}),
        trial(4, {1: 0.3}),
    ]
    a, b, c = (1, 1, 1, 1), (1, 1, 1, 2), (1, 1, 2, 1)
    pruned = {a: 2, b: 3, c: 4}
    # Trial 2 is the best of 5 values at step 1 (5/5); trial 3 the best of 3 at step 2 (3/3) and further on.
    assert promoted(trials, [a, b, c], pruned) == [b]
    trials[3] = trial(3, {1: 0.4, 2: 0.85})  # now 2 of 3 at step 2: trial 2's standing leads
    assert promoted(trials, [a, b, c], pruned) == [a]
    trials[4] = trial(4, {1: 0.7})  # equal to trial 2 at step 1: both at 5/5, same step: a tie
    assert promoted(trials, [a, b, c], pruned) == [a, c]


def test_a_revisit_does_not_count_its_pruned_trial_as_a_rival() -> None:
    """Two workers in lockstep: each revisit claim is made once, none is refused for the pruned trial it follows."""
    table = synthetic_table(SPACE12)
    cut = set(SPACE12.lists()[:3])
    study = optuna.create_study(direction="maximize", sampler=make_sampler("random", SPACE12, 0))
    study.optimize(
        pruning_objective(SPACE12, table, cut),
        n_trials=100,
        n_jobs=2,
        callbacks=[stop_when_exhausted(SPACE12)],
        catch=(SpaceExhausted,),
    )
    complete = [trial_hierarchy(t, SPACE12) for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == list(SPACE12.lists())  # every list once, the cut ones through their revisit


def test_the_largest_network_is_enqueued_after_the_paper_lists_where_sizes_differ() -> None:
    from lwl.search import enqueue_lists, largest_baseline, paper_baselines, parse_search_flags

    doubling = parse_search_flags(["--budget", "10", "--widths", "4,8,16,32", "--constraint", "none"])[0]
    # Widths double with every stage, so the list with every spare unit in the last stage has the most parameters.
    assert largest_baseline(doubling) == (1, 1, 1, 7)
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", doubling.space, 0))
    queued = enqueue_lists(study, doubling, [(2, 2, 2, 4)])
    assert queued == [*paper_baselines(doubling.space), (1, 1, 1, 7), (2, 2, 2, 4)]
    reasons = [t.user_attrs["enqueued"] for t in study.get_trials(states=(TrialState.WAITING,))]
    assert reasons == ["paper"] * len(paper_baselines(doubling.space)) + ["largest", "user"]
    assert enqueue_lists(optuna.create_study(), doubling, paper=False) == []
    # Every stage equally wide: every list has the same size, so no list is "the largest".
    equal = parse_search_flags(["--budget", "8", "--widths", "16,16,16,16", "--constraint", "none"])[0]
    assert largest_baseline(equal) is None
