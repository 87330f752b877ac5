"""Multi-objective search (`--objectives accuracy,COST`): the hypervolume arithmetic against hand computations, the
dominance-aware pruner judged from the database in a study built to show it, the hvi sampler, and a real lwl-search
study whose front, derived study and pruned trials are read back from its storage."""

import json

import optuna
import pytest
from cases import NO_CONFIRM, tiny
from optuna.trial import TrialState

from lwl.models import paper_recipe
from lwl.search import (
    CostModel,
    SearchSpace,
    StudySettings,
    UsageError,
    hypervolume,
    make_pruner,
    make_sampler,
    pareto_front,
    pareto_indices,
    pareto_study_name,
    parse_objectives,
    read_settings,
)
from lwl.search._sampling.costs import expected_improvement
from lwl.search._sampling.sampler import hierarchy_params
from lwl.search.commands import search_main

TINY = tiny("--budget", "6", "--constraint", "none", *NO_CONFIRM, epochs=3)


def _settings(objectives=("accuracy", "params"), epochs=4):
    recipe = paper_recipe("digits", "resnet", epochs=epochs)
    return StudySettings.create(
        SearchSpace(8, 4, constraint="none"), recipe, widths=(4, 8, 8, 16), objectives=objectives
    )


# ------------------------------------------------------------------------------------------ arithmetic
def test_hypervolume_and_its_expected_improvement_match_hand_computations():
    front = [((0.2,), 0.9), ((0.6,), 0.95)]
    # the integral over cost of (best accuracy at no greater cost - floor), up to the reference cost 1.1
    assert hypervolume(front, 0.8) == pytest.approx(0.1 * 0.4 + 0.15 * 0.5)
    assert hypervolume([((0.2, 0.5), 0.9)], 0.8) == pytest.approx(0.1 * 0.9 * 0.6)  # two costs: a box
    assert hypervolume([((0.3,), 0.7)], 0.8) == 0.0  # below the floor: nothing
    # a certain accuracy 0.92 at cost 0.1: it adds 0.12 over [0.1, 0.2) and 0.02 over [0.2, 0.6), nothing beyond
    assert expected_improvement(front, (0.1,), 0.92, 1e-9, 0.8) == pytest.approx(0.1 * 0.12 + 0.4 * 0.02)
    # what it adds is exactly the difference of the hypervolumes
    with_it = hypervolume([*front, ((0.1,), 0.92)], 0.8)
    assert expected_improvement(front, (0.1,), 0.92, 1e-9, 0.8) == pytest.approx(with_it - hypervolume(front, 0.8))
    # a dominated point adds nothing; uncertainty makes a dominated guess worth a little
    assert expected_improvement(front, (0.7,), 0.9, 1e-9, 0.8) == 0.0
    assert expected_improvement(front, (0.7,), 0.9, 0.05, 0.8) > 0.0
    # without costs it is the classic expected improvement over the best accuracy: E[max(0, A - 0.95)]
    assert expected_improvement([((), 0.95)], (), 0.95, 0.01, 0.5) == pytest.approx(
        0.01 / (2 * 3.141592653589793) ** 0.5
    )


def test_pareto_indices_take_one_cost_or_several():
    assert pareto_indices([(3.0, 0.9), (1.0, 0.8), (2.0, 0.7)]) == [1, 0]
    # (2, 1) is cheaper than (1, 2) in the second cost: both stay; (2, 2) at a lower accuracy is beaten
    assert pareto_indices([((1, 2), 0.9), ((2, 1), 0.9), ((2, 2), 0.85)]) == [0, 1]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("params", "the first objective is accuracy"),
        ("accuracy,size", "unknown objective 'size'"),
        ("accuracy,params,params", "named twice"),
    ],
)
def test_bad_objectives_are_refused_in_one_line(text, words):
    with pytest.raises(UsageError, match=words):
        parse_objectives(text)
    assert parse_objectives("Accuracy, memory,time") == ("accuracy", "memory", "time")


def test_objectives_are_a_setting_absent_for_accuracy_alone():
    alone, searched = _settings(("accuracy",)), _settings()
    assert "objectives" not in alone.to_dict()  # a study made before objectives compares equal
    assert searched.to_dict()["objectives"] == ["accuracy", "params"]
    assert StudySettings.from_dict(json.loads(searched.to_json())) == searched
    assert StudySettings.from_dict(json.loads(alone.to_json())).costs == ()


# ------------------------------------------------------------------------------------------ the pruner
def _finished(study, settings, hierarchy, curve):
    """A finished candidate as lwl-search records one: its costs before anything trains, its value per step."""
    costs = CostModel.of(settings)
    attrs = {name: int(v) for name, v in zip(costs.costs, costs.of_list(hierarchy))}
    attrs["hierarchy"] = list(hierarchy)
    dists = {f"d{i}": optuna.distributions.IntDistribution(1, 5) for i in range(1, 5)}
    study.add_trial(
        optuna.trial.create_trial(
            params=hierarchy_params(hierarchy),
            distributions=dists,
            value=curve[-1],
            intermediate_values=dict(enumerate(curve, start=1)),
            user_attrs=attrs,
        )
    )


def test_a_dominated_candidate_is_pruned_and_a_cheap_one_is_not(tmp_path):
    """A study built to show it, in a real SQLite storage: three finished candidates of middling cost were more
    accurate at step 3 than both newcomers; the dearer newcomer is pruned, the cheapest list of all is not (nobody
    of no greater cost was more accurate), and a median pruner would have stopped both."""
    settings = _settings()
    costs = CostModel.of(settings)
    by_params = sorted(settings.space.lists(), key=lambda h: costs.of_list(h)[0])
    cheapest, middle, dearest = by_params[0], by_params[10:13], by_params[-1]
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    for h in middle:
        _finished(study, settings, h, [0.5, 0.7, 0.8, 0.9])
    for h in by_params[13:15]:  # two more, so that the startup count is passed
        _finished(study, settings, h, [0.4, 0.5, 0.6, 0.7])
    dominance = make_pruner("dominance", settings, startup_trials=5)
    median = make_pruner("median", settings, startup_trials=5)
    verdicts = {}
    for name, h in (("dear", dearest), ("cheap", cheapest)):
        for pruner in (dominance, median):
            study.pruner = pruner
            trial = study.ask(fixed_distributions={})
            for key, value in zip(costs.costs, costs.of_list(h)):
                trial.set_user_attr(key, int(value))
            for step, value in enumerate([0.45, 0.55, 0.65], start=1):
                trial.report(value, step)
            verdicts[name, type(pruner).__name__] = bool(trial.should_prune())
            study.tell(trial, state=TrialState.FAIL)  # not a candidate of the study: leave no value behind
    assert verdicts["dear", "DominancePruner"] is True
    assert verdicts["cheap", "DominancePruner"] is False
    assert verdicts["dear", "MedianPruner"] is True and verdicts["cheap", "MedianPruner"] is True


def test_the_dominance_pruner_needs_enough_dominators_and_its_warm_up(tmp_path):
    settings = _settings()
    costs = CostModel.of(settings)
    by_params = sorted(settings.space.lists(), key=lambda h: costs.of_list(h)[0])
    study = optuna.create_study(direction="maximize")
    for h in by_params[:5]:
        _finished(study, settings, h, [0.9, 0.9, 0.9, 0.9])
    dearest = by_params[-1]
    # five cheaper candidates were more accurate: K = 6 is not met; before the warm-up (step 3 here, the epoch after
    # the first learning-rate drop) nobody is judged
    for k, step, expected in ((5, 3, True), (6, 3, False), (1, 2, False)):
        study.pruner = make_pruner("dominance", settings, startup_trials=5, min_dominators=k)
        trial = study.ask(fixed_distributions={})
        trial.set_user_attr("params", int(costs.of_list(dearest)[0]))
        trial.report(0.1, step)
        assert trial.should_prune() is expected, (k, step)
        study.tell(trial, state=TrialState.FAIL)
    with pytest.raises(UsageError, match="--pruner dominance judges accuracy at no greater cost"):
        make_pruner("dominance", _settings(("accuracy",)))


# ------------------------------------------------------------------------------------------ the sampler
def test_hvi_proposes_unseen_feasible_lists_and_spreads_away_from_running_ones():
    settings = _settings()
    costs = CostModel.of(settings)
    space = settings.space
    study = optuna.create_study(direction="maximize")
    study.sampler = make_sampler("hvi", space, 0, costs=costs)
    lists = sorted(space.lists(), key=lambda h: costs.of_list(h)[0])
    for i, h in enumerate(lists[::5]):
        _finished(study, settings, h, [0.5, 0.6, 0.7, 0.6 + 0.3 * i / 7])
    seen = {tuple(t.user_attrs["hierarchy"]) for t in study.trials}
    low, high = space.param_range()
    first = study.ask()
    chosen = tuple(first.suggest_int(n, low, high) for n in space.param_names())
    assert chosen in space and chosen not in seen
    assert study.get_trials()[-1].system_attrs["lwl:chosen_by"] == "hvi"
    # the first stays RUNNING: the second is chosen with it believed at its predicted accuracy, and differs
    second = study.ask()
    other = tuple(second.suggest_int(n, low, high) for n in space.param_names())
    assert other in space and other not in seen and other != chosen


@pytest.mark.slow
# ------------------------------------------------------------------------------------------ a real study
def test_a_multi_objective_study_from_the_command_to_its_storage(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    argv = [*TINY, "--objectives", "accuracy,params", "--trials", "12", "--storage", url, "--study-name", "s"]
    assert search_main(argv) == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="s", storage=url)
    settings = read_settings("s", study.user_attrs)
    assert settings.objectives == ("accuracy", "params")
    assert "traded against parameters" in study.user_attrs["objective"]
    chosen_by = {t.system_attrs.get("lwl:chosen_by") for t in study.trials}
    assert "hvi" in chosen_by  # after the startup trials, the sampler is the front's
    # every trial recorded its costs before it trained
    assert all(t.user_attrs.get("memory") and t.user_attrs.get("params") for t in study.trials)
    # every pruned candidate was beaten at its last step by at least two finished ones of no greater cost
    costs = CostModel.of(settings)
    for t in study.get_trials(states=(TrialState.PRUNED,)):
        step = max(t.intermediate_values)
        mine = costs.of_trial(t)
        beaten = [
            o
            for o in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
            if o.number != t.number
            and o.intermediate_values.get(step, -1) > t.intermediate_values[step]
            and costs.of_trial(o)[0] <= mine[0]
        ]
        assert len(beaten) >= 2, (t.number, step)
    # the derived study: accuracy up, parameters down, every complete trial; its best trials are the summary's front
    derived = optuna.load_study(study_name=pareto_study_name("s"), storage=url)
    assert [d.name for d in derived.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert derived.metric_names == ["validation accuracy", "parameters"]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(derived.trials) == len(complete)
    front = pareto_front(study)
    assert {t.user_attrs["source_trial"] for t in derived.best_trials} == {t.number for t in front}
    assert "front (accuracy against params)" in out and "--pareto --out configs/" in out
    for t in front:
        assert t.user_attrs["schedule"] in out


def test_costs_bring_the_front_s_sampler_and_pruner_unless_the_command_line_chooses():
    from lwl.search._console.flags import parse_args

    def chosen(*argv):
        args = parse_args(list(argv))
        return args.sampler, args.pruner

    # the digits-quick preset names tpe and median for accuracy alone: --objectives on the command line overrides them
    assert chosen("--preset", "digits-quick", "--objectives", "accuracy,params") == ("hvi", "dominance")
    assert chosen("--preset", "digits-quick") == ("tpe", "median")
    assert chosen("--budget", "8", "--objectives", "accuracy,memory", "--sampler", "random") == ("random", "dominance")
    assert chosen("--budget", "8", "--objectives", "accuracy,memory", "--pruner", "median") == ("hvi", "median")


def test_promotion_judges_a_paused_list_against_peers_of_no_greater_cost():
    """Of two paused lists, the dear one stood higher among everyone at step 3 but below a cheaper complete list; the
    cheap one has no cheaper peer: accuracy alone promotes the dear one, a study with costs the cheap one."""
    from lwl.search._sampling.sampler import promoted

    settings = _settings()
    costs = CostModel.of(settings)
    by_params = sorted(settings.space.lists(), key=lambda h: costs.of_list(h)[0])
    cheap, dear, middle = by_params[0], by_params[-1], by_params[15]
    study = optuna.create_study(direction="maximize")
    _finished(study, settings, middle, [0.5, 0.6, 0.8, 0.9])  # a complete peer, dearer than cheap, cheaper than dear
    for h, value in ((cheap, 0.7), (dear, 0.75)):
        attrs = {"params": int(costs.of_list(h)[0]), "hierarchy": list(h)}
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.PRUNED,
                params=hierarchy_params(h),
                distributions={f"d{i}": optuna.distributions.IntDistribution(1, 5) for i in range(1, 5)},
                intermediate_values={1: 0.4, 2: 0.5, 3: value},
                user_attrs=attrs,
            )
        )
    trials = study.get_trials()
    pruned = {cheap: 1, dear: 2}
    assert promoted(trials, [cheap, dear], pruned) == [dear]
    assert promoted(trials, [cheap, dear], pruned, costs) == [cheap]


def test_a_study_with_costs_confirms_its_front_first(tmp_path):
    """Top 2 by accuracy would be the middle list and a dearer, less accurate one it dominates; a study with costs
    confirms the front instead: the middle list and the cheap one."""
    from lwl.search import ConfirmPlan, prepare_study
    from lwl.search._study.confirm import planned

    settings = _settings()
    costs = CostModel.of(settings)
    by_params = sorted(settings.space.lists(), key=lambda h: costs.of_list(h)[0])
    cheap, middle, dear = by_params[0], by_params[10], by_params[-1]
    study = prepare_study(settings, f"sqlite:///{tmp_path / 's.db'}", "s", sampler="hvi", pruner="dominance", seed=0)
    for h, acc in ((cheap, 0.90), (middle, 0.95), (dear, 0.93)):
        _finished(study, settings, h, [0.5, 0.6, 0.7, acc])
    chosen = [tuple(t.user_attrs["hierarchy"]) for t, _ in planned(study, ConfirmPlan(2, 1), 0)]
    assert chosen == [middle, cheap]
