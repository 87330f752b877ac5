"""Confirmation: the search's leading lists raced over further seeds into NAME-confirm; the answer (the model's
ranking, its 95 % set, the seed sd, the expected regret) in the summary, the export and the report, with the
measured means and the paired test beside it; the statistics checked against published values."""

import math
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace

import optuna
import pytest
import yaml
from cases import tiny
from optuna.trial import TrialState

from lwl.dashboards import write_report
from lwl.models import load_data, train
from lwl.search import (
    DERIVED_ATTR,
    SET_LEVEL,
    auto_plan,
    confirm_study,
    confirm_study_name,
    confirmed,
    estimate,
    paired_t_test,
    race_round,
    read_settings,
    read_trial,
    remaining,
    study_answer,
    top_trials,
    verdict,
)
from lwl.search._answer.stats import t_quantile, t_two_sided_p
from lwl.search.commands import export_main, search_main

# Small, but with accuracies that differ between lists and seeds (pred loss learns in 2 epochs; predsim does not).
TINY = tiny(
    *("--loss", "pred", "--budget", "8", "--constraint", "none", "--pruner", "none"),
    *("--no-paper-baselines", "--seed", "3"),
    epochs=2,
    train_limit=256,
    quiet=False,
)


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


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [
        (0.5, 1, 0.7048327646991335),
        (1.7, 2, 0.23123342620157117),
        (2.3, 3, 0.10498836064446992),
        (3.1, 5, 0.02685318419003513),
        (0.8, 7, 0.45000269946982685),
        (4.0, 10, 0.0025183326247369964),
        (2.0, 29, 0.05494363718296691),
    ],
)
def test_scipys_t_distribution_gives_what_the_closed_form_gave(t, df, p):
    """Values of the finite closed form (Abramowitz & Stegun 26.7.3-4) the package computed before it used
    scipy.stats: the p-values, and so the intervals, are the same to rounding."""
    assert t_two_sided_p(t, df) == pytest.approx(p, rel=1e-12)
    assert t_two_sided_p(-t, df) == pytest.approx(p, rel=1e-12)
    assert t_quantile(1 - p, df) == pytest.approx(t, rel=1e-9)
    assert t_two_sided_p(math.inf, df) == 0.0 and math.isnan(t_two_sided_p(math.nan, df))
    with pytest.raises(ValueError):
        t_two_sided_p(t, 0)


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


def test_an_accuracys_interval_is_cut_at_100_and_0_percent():
    """98.0 % over 3 seeds with sd 1.4 % has a t interval reaching 101.4 %: cut to 100 %, shown side by side."""
    e = estimate([0.97, 0.974, 0.996])
    assert e.high == 1.0 and e.mean + (4.303 * e.sd / math.sqrt(3)) > 1.0 and e.low < e.mean
    assert e.text() == f"98.0 -{100 * (e.mean - e.low):.1f}/+2.0 %"
    low = estimate([0.0, 0.01, 0.05])
    assert low.low == 0.0 and low.text().startswith("2.0 -2.0/+")
    assert estimate([0.5, 0.52, 0.54]).text() == "52.0 ± 5.0 %"  # within bounds: symmetric as before
    assert estimate([0.97, 0.974, 0.996], bounds=None).high > 1.0


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


@pytest.mark.slow
def test_racing_trains_the_most_probable_lists_with_the_next_seeds_into_the_confirm_study(study):
    _, url, _, s = study
    derived = optuna.load_study(study_name=confirm_study_name("s"), storage=url)
    assert derived.user_attrs[DERIVED_ATTR] == "s"
    runs = [read_trial(t) for t in derived.trials]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in derived.trials)
    by_seed = {seed: sorted(r.confirms for r in runs if r.seed == seed) for seed in (4, 5)}
    assert {r.seed for r in runs} <= {4, 5} and len(runs) <= 4  # --confirm 2 --confirm-seeds 2: 4 runs at most
    # round 1 (seed 4): the 2 most probable best lists by the answer on the search alone
    first = race_round(study_answer(s, set()), 0, 2, 4)
    trial_of = {tuple(t.user_attrs["hierarchy"]): t.number for t in s.trials}
    assert by_seed[4] == sorted(trial_of[h] for h in first.lists)
    # round 2 (seed 5): decided from the runs of round 1, never a list round 1 dropped
    second = race_round(study_answer(s, {4}), 1, 2, 4)
    assert by_seed[5] == sorted(trial_of[h] for h in second.lists) and set(by_seed[5]) <= set(by_seed[4])
    # --batch auto (default): the runs of a seed trained together, through their shared units
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
    run = read_trial(next(t for t in confirm_study(s).trials if t.user_attrs["seed"] == 4))
    recipe = replace(settings.recipe, seed=4)
    data = load_data("digits", val_fraction=recipe.val_fraction, split_seed=4)
    result = train(settings.schedule(run.hierarchy), recipe, data, device="cpu")
    assert result.output_acc == run.value and list(result.unit_acc) == list(run.unit_acc)


def test_the_answer_ranks_by_the_model_and_keeps_the_measured_means_beside_it(study):
    _, _, _, s = study
    ranked = confirmed(s)
    assert len(ranked) == 2 and all(c.seeds[:2] == (3, 4) for c in ranked)
    for c in ranked:
        runs = {
            t.user_attrs["seed"]: t.value for t in confirm_study(s).trials if t.user_attrs["confirms"] == c.trial.number
        }
        assert c.values == {3: c.trial.value, **runs}
        assert c.estimate.mean == pytest.approx(sum(c.values.values()) / len(c.values))
    judged = study_answer(s)
    order = [b.hierarchy for b in judged.beliefs if b.status == "complete"]
    assert [tuple(t.user_attrs["hierarchy"]) for t in top_trials(s, 4)] == order[:4]
    assert judged.named == order[0] and judged.named in judged.best_set
    # every run read: a confirmed list's model belief stands on its seeds
    for c in ranked:
        assert judged.belief(tuple(c.trial.user_attrs["hierarchy"])).runs == len(c.values)
    paired = verdict(ranked)
    a, b = ranked[0].values, ranked[1].values
    shared = sorted(set(a) & set(b))
    assert paired is not None
    assert paired.test.p_value == paired_t_test([a[k] for k in shared], [b[k] for k in shared]).p_value


def test_the_summary_export_and_report_show_the_set_the_seed_sd_and_the_regret(study, capsys):
    root, url, args, s = study
    assert search_main(args) == 0  # a rerun: nothing left to train, not even a confirmation
    captured = capsys.readouterr()
    held = len(confirm_study(s).trials)
    assert held <= 4 and "confirming" not in captured.err
    out = captured.out
    judged = study_answer(s)
    named = "[" + ",".join(map(str, judged.named)) + "]"
    assert f"confirmation: racing over at most 4 runs, 2 lists first; {held} runs in study 's-confirm'" in out
    assert "racing ended:" in out
    assert f"answer: {named}; {judged.set_text()}" in out
    assert "seed sd:" in out and f"expected regret of {named}" in out
    assert "trained together by seed:" in out

    assert export_main(["--storage", url, "--study-name", "s", "--best", "--out", str(root / "best.yaml")]) == 0
    printed = capsys.readouterr().out
    assert f"answer: {judged.set_text()}" in printed
    config = yaml.safe_load((root / "best.yaml").read_text())
    assert config["provenance"]["trial"] == top_trials(s, 1)[0].number
    answer = config["provenance"]["answer"]
    assert (
        answer["named"]
        and answer["level"] == SET_LEVEL
        and [tuple(h) for h in answer["best_set"]] == list(judged.best_set)
    )
    assert answer["seed_sd"] == pytest.approx(judged.seed_sd, abs=1e-6)
    low, high = answer["model_interval_95"]
    assert 0.0 <= low <= answer["model_mean"] <= high <= 1.0

    report = write_report(url, "s", root / "r.html", dashboard=False)
    page = report.path.read_text()
    assert "model (95 % interval)" in page and "P(best)" in page and "mean over seeds (95 % interval)" in page
    assert "seed sd:" in page and "expected regret of" in page
    assert report.data.answer[0].startswith(f"answer: {named}")


def test_too_few_trials_leave_confirmation_off_and_say_so(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert search_main([*TINY, "--trials", "2", "--storage", url, "--study-name", "s", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "confirmation: off by default" in out and "--confirm 2" in out
    assert confirm_study(optuna.load_study(study_name="s", storage=url)) is None


@pytest.mark.slow
def test_batch_1_confirms_one_run_at_a_time(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    args = [*TINY, "--trials", "3", "--storage", url, "--study-name", "s", "--confirm", "2", "--confirm-seeds", "1"]
    assert search_main([*args, "--quiet", "--batch", "1"]) == 0
    runs = confirm_study(optuna.load_study(study_name="s", storage=url)).trials
    assert len(runs) == 2 and all("batch" not in t.user_attrs for t in runs)


@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
@pytest.mark.slow
def test_confirmation_shows_every_epoch_of_a_group_and_every_finished_run(tmp_path, capsys, monkeypatch, terminal):
    """No silence while a seed's lists train together: a line per epoch of the group (a pipe) or a bar (a
    terminal), and a line per finished run naming its list, seed and accuracy, as the search prints trials."""
    import sys

    if terminal:
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    url = f"sqlite:///{tmp_path / 's.db'}"
    args = [*TINY, "--trials", "3", "--storage", url, "--study-name", "s", "--confirm", "2", "--confirm-seeds", "1"]
    assert search_main(args) == 0
    err = capsys.readouterr().err
    lines = [x.strip("\x1b[A ") for x in re.split(r"[\r\n]", err)]  # a bar redraws itself after carriage returns
    runs = [read_trial(t) for t in confirm_study(optuna.load_study(study_name="s", storage=url)).trials]
    for r in runs:
        line = next(x for x in lines if x.startswith(f"confirm {r.label} ") and f"seed {r.seed} " in x)
        assert f"acc {r.value * 100:5.1f} %" in line, line
    if terminal:
        assert "confirm: " in err and "/2 [" in err and "\r" in err, err  # tqdm's bar over the 2 runs, redrawn
    else:
        epochs = [x for x in lines if ": epoch " in x and x.startswith("confirm [")]
        assert [x.split(": epoch ")[1].split()[0] for x in epochs] == ["1/2", "2/2"], err
        assert all("(2 runs together)" in x for x in epochs), err


@pytest.mark.slow
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
