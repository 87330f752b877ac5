"""Confirmation: the search's top lists trained again with further seeds into NAME-confirm, ranked by the mean over
seeds with an interval and a paired test, in the summary, the export and the report; the statistics checked
against published values."""

import math
import signal
import subprocess
import sys
import time
from dataclasses import replace

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from lwl.dashboards import write_report
from lwl.models import load_data, train
from lwl.search import (
    DERIVED_ATTR,
    auto_plan,
    confirm_study,
    confirm_study_name,
    confirmed,
    estimate,
    paired_t_test,
    read_settings,
    read_trial,
    remaining,
    top_trials,
    verdict,
)
from lwl.search._stats import t_quantile, t_two_sided_p
from lwl.search.commands import export_main, search_main

# Small, but with accuracies that differ between lists and seeds (pred loss learns in 2 epochs; predsim does not).
TINY = [
    "--dataset",
    "digits",
    "--widths",
    "4,8,8,16",
    "--epochs",
    "2",
    "--loss",
    "pred",
    "--train-limit",
    "256",
    "--device",
    "cpu",
    "--budget",
    "8",
    "--constraint",
    "none",
    "--pruner",
    "none",
    "--no-paper-baselines",
    "--seed",
    "3",
]


# ------------------------------------------------------------------------------------------ statistics
@pytest.mark.parametrize(("df", "critical"), [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (30, 2.042)])
def test_the_t_distribution_gives_the_published_two_sided_5_percent_points(df, critical):
    # Student's t table (e.g. NIST/SEMATECH e-Handbook, Table 1.4.2.3.4), to 3 decimals
    assert t_quantile(0.95, df) == pytest.approx(critical, abs=5e-4)
    assert t_two_sided_p(critical, df) == pytest.approx(0.05, abs=2e-4)


def test_closed_forms_of_the_t_distribution():
    assert t_two_sided_p(1.0, 1) == pytest.approx(0.5)  # Cauchy: P(|T| >= 1) = 1/2
    assert t_two_sided_p(2.0, 2) == pytest.approx(1 - 2 / math.sqrt(6))  # df 2: P(|T| < t) = t / sqrt(2 + t^2)
    assert t_two_sided_p(0.0, 5) == pytest.approx(1.0)


def test_the_paired_test_and_the_interval_by_hand():
    # differences 1, 2, 2: mean 5/3, sd sqrt(1/3), t = (5/3) / (sqrt(1/3) / sqrt(3)) = 5, df 2
    test = paired_t_test([3.0, 4.0, 5.0], [2.0, 2.0, 3.0])
    assert test.difference == pytest.approx(5 / 3)
    assert test.p_value == pytest.approx(t_two_sided_p(5.0, 2))
    assert test.p_value == pytest.approx(1 - 5 / math.sqrt(27))
    e = estimate([0.90, 0.92, 0.94])
    assert e.mean == pytest.approx(0.92) and e.sd == pytest.approx(0.02)
    assert e.half_width == pytest.approx(4.303 * 0.02 / math.sqrt(3), rel=1e-3)
    assert estimate([0.5]).half_width == 0 and paired_t_test([1.0], [0.0]).pairs == 1
    assert paired_t_test([1.0, 1.0], [1.0, 1.0]).p_value == 1.0  # identical: nothing tells them apart
    assert paired_t_test([2.0, 3.0], [1.0, 2.0]).p_value == 0.0  # always ahead by the same margin


def test_auto_confirms_as_many_lists_as_half_the_trials_afford():
    assert (auto_plan(12).lists, auto_plan(12).seeds) == (3, 2)
    assert (auto_plan(20).lists, auto_plan(32).lists, auto_plan(60).lists) == (5, 8, 8)
    assert auto_plan(8).lists == 2 and auto_plan(7).runs == 0
    assert auto_plan(12, seeds=3).lists == 2


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("confirm")
    url = f"sqlite:///{root / 's.db'}"
    args = [*TINY, "--trials", "4", "--storage", url, "--study-name", "s", "--confirm", "2", "--confirm-seeds", "2"]
    assert search_main([*args, "--quiet"]) == 0
    return root, url, args, optuna.load_study(study_name="s", storage=url)


def test_the_top_lists_are_trained_again_with_the_next_seeds_into_the_confirm_study(study):
    _, url, _, s = study
    derived = optuna.load_study(study_name=confirm_study_name("s"), storage=url)
    assert derived.user_attrs[DERIVED_ATTR] == "s"
    runs = [read_trial(t) for t in derived.trials]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in derived.trials)
    search_top = sorted(
        s.get_trials(states=(optuna.trial.TrialState.COMPLETE,)),
        key=lambda t: (-t.value, t.user_attrs["params"], t.number),
    )[:2]
    assert sorted((r.confirms, r.seed) for r in runs) == sorted((t.number, seed) for t in search_top for seed in (4, 5))
    # --batch auto (default): the two runs of a seed trained together, through their shared units
    assert all(r.batch is not None and len(r.batch) == 2 for r in runs)
    for r in runs:  # each run holds its list, its costs and its curve, as a search trial does
        source = s.trials[r.confirms]
        assert r.hierarchy == tuple(source.user_attrs["hierarchy"]) and r.params == source.user_attrs["params"]
        assert len(r.output_acc_history) == 2 and r.unit_epochs == 2 * 8
    # the search study is untouched: no run among its trials, the sampler's taken lists the same
    settings = read_settings("s", s.user_attrs)
    assert len(s.trials) == 4 and all("seed" not in t.user_attrs for t in s.trials)
    assert len(remaining(s, settings.space)) == len(settings.space) - 4


def test_a_confirmation_run_is_what_the_search_trains_with_that_seed(study):
    """Trained together with the other run of its seed, yet bitwise what training the list alone gives."""
    _, url, _, s = study
    settings = read_settings("s", s.user_attrs)
    run = read_trial(next(t for t in confirm_study(s).trials if t.user_attrs["seed"] == 5))
    recipe = replace(settings.recipe, seed=5)
    data = load_data("digits", val_fraction=recipe.val_fraction, split_seed=5)
    result = train(settings.schedule(run.hierarchy), recipe, data, device="cpu")
    assert result.output_acc == run.value and list(result.unit_acc) == list(run.unit_acc)


def test_the_answer_ranks_confirmed_lists_by_their_mean_and_tests_the_winner(study):
    _, _, _, s = study
    ranked = confirmed(s)
    assert len(ranked) == 2 and all(c.seeds == (3, 4, 5) for c in ranked)
    for c in ranked:
        runs = {
            t.user_attrs["seed"]: t.value for t in confirm_study(s).trials if t.user_attrs["confirms"] == c.trial.number
        }
        assert c.values == {3: c.trial.value, **runs}
        assert c.estimate.mean == pytest.approx(sum(c.values.values()) / 3)
    assert ranked[0].estimate.mean >= ranked[1].estimate.mean
    assert [t.number for t in top_trials(s, 2)] == [c.trial.number for c in ranked]
    judged = verdict(ranked)
    a, b = ranked[0].values, ranked[1].values
    assert judged is not None
    assert judged.test.p_value == paired_t_test([a[k] for k in (3, 4, 5)], [b[k] for k in (3, 4, 5)]).p_value


def test_the_summary_export_and_report_show_the_interval_and_the_test(study, capsys):
    root, url, args, s = study
    assert search_main(args) == 0  # a rerun: nothing left to train, not even a confirmation
    captured = capsys.readouterr()
    assert len(confirm_study(s).trials) == 4 and "confirming" not in captured.err
    out = captured.out
    winner = confirmed(s)[0]
    assert "confirmation: top 2 × 2 more seeds; 4 runs in study 's-confirm'" in out
    assert f"{winner.label}" in out and winner.estimate.text() in out and "paired t-test over 3 seeds" in out
    assert "trained together by seed:" in out

    assert export_main(["--storage", url, "--study-name", "s", "--best", "--out", str(root / "best.yaml")]) == 0
    config = yaml.safe_load((root / "best.yaml").read_text())
    assert config["provenance"]["trial"] == winner.trial.number
    assert config["provenance"]["confirmed"]["seeds"] == [3, 4, 5]
    assert config["provenance"]["confirmed"]["mean"] == pytest.approx(winner.estimate.mean, abs=1e-6)

    report = write_report(url, "s", root / "r.html", dashboard=False)
    page = report.path.read_text()
    assert "mean over seeds (95 % interval)" in page and "paired t-test over 3 seeds" in page
    assert report.data.confirmed[winner.trial.number] == (winner.estimate.text(), 3)


def test_too_few_trials_leave_confirmation_off_and_say_so(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert search_main([*TINY, "--trials", "2", "--storage", url, "--study-name", "s", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "confirmation: off by default" in out and "--confirm 2" in out
    assert confirm_study(optuna.load_study(study_name="s", storage=url)) is None


def test_batch_1_confirms_one_run_at_a_time(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    args = [*TINY, "--trials", "3", "--storage", url, "--study-name", "s", "--confirm", "2", "--confirm-seeds", "1"]
    assert search_main([*args, "--quiet", "--batch", "1"]) == 0
    runs = confirm_study(optuna.load_study(study_name="s", storage=url)).trials
    assert len(runs) == 2 and all("batch" not in t.user_attrs for t in runs)


def test_a_killed_confirmation_run_is_failed_with_its_reason_and_nothing_stays_waiting(tmp_path):
    """A worker killed mid-confirmation: the rerun fails its run with a reason (`lost worker`), trains it again, and
    leaves no WAITING retry copy behind (one left by an earlier version, stood for by an enqueued run, is failed
    with its reason too)."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    args = [*TINY, "--epochs", "12", "--trials", "2", "--storage", url, "--study-name", "k", "--heartbeat", "1"]
    args += ["--confirm", "2", "--confirm-seeds", "1", "--batch", "1", "--quiet"]
    victim = subprocess.Popen(
        [sys.executable, "-m", "lwl.search", *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 300
        killed = None
        while killed is None:
            assert victim.poll() is None and time.monotonic() < deadline, "no confirmation run was seen training"
            try:
                derived = optuna.load_study(study_name=confirm_study_name("k"), storage=url)
                running = [t for t in derived.get_trials(states=(TrialState.RUNNING,)) if t.intermediate_values]
                killed = running[0] if running else None
            except KeyError:
                pass
            time.sleep(0.1)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        victim.kill()
    derived.enqueue_trial(killed.params, user_attrs={"confirms": killed.user_attrs["confirms"], "seed": 4})
    time.sleep(4)  # past the grace period of --heartbeat 1 (3 s)
    rerun = subprocess.run(
        [sys.executable, "-m", "lwl.search", *args], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr
    runs = optuna.load_study(study_name=confirm_study_name("k"), storage=url).trials
    assert not [t for t in runs if t.state in (TrialState.WAITING, TrialState.RUNNING)]
    lost = runs[killed.number]
    assert lost.state == TrialState.FAIL and lost.user_attrs["fail_reason"] == "lost worker", lost.user_attrs
    assert "the run is trained again" in lost.user_attrs["fail_detail"]
    copy = [t for t in runs if t.user_attrs.get("seed") == 4 and t.state == TrialState.FAIL]
    assert copy and copy[0].user_attrs["fail_reason"] == "lost worker"
    again = [
        t for t in runs if t.state == TrialState.COMPLETE and t.user_attrs["confirms"] == killed.user_attrs["confirms"]
    ]
    assert again and again[0].params == killed.params and "fail_reason" not in again[0].user_attrs
    assert sum(t.state == TrialState.COMPLETE for t in runs) == 2  # both planned runs, once each
