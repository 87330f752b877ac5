"""What `lwl-search` shows while it runs (a bar per trial and one over trials, or one line per trial for logs and
pipes) and the summary it prints at the end."""

from __future__ import annotations

import shlex
import sys
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lwl.models import Progress, percent, plural

from .._answer.model import Answer
from .._answer.ranking import (
    Confirmed,
    confirm_study,
    confirm_study_name,
    confirmation_runs,
    confirmed,
    study_answer,
    top_trials,
)
from .._answer.stats import LEVEL, spearman
from .._export.artifacts import dashboard_command
from .._sampling.costs import CostModel
from .._sampling.pareto import pareto_front, pareto_study_name
from .._storage.attributes import VALIDATION_ATTR, TrialRecord, read_settings, read_trial
from .._study.confirm import AFFORD, ConfirmPlan, races, racing_state

CAPACITY_RHO = 0.8  # a ranking whose Spearman with parameter count reaches this is said to follow capacity


def _pct(v: float | None) -> str:
    return percent(v, width=5, empty="  -  ")


def _describe_trial(t: FrozenTrial) -> str:
    r = read_trial(t)
    h = r.schedule or (str(list(r.hierarchy)) if r.hierarchy else "?")
    value = r.value if r.complete else (list(r.intermediate.values())[-1] if r.intermediate else None)
    extra = f" ({r.fail_reason})" if t.state == TrialState.FAIL and r.fail_reason is not None else ""
    if r.revisit_of is not None and r.resumed_step is not None:
        extra += f" (revisit of {r.revisit_of}, continued after step {r.resumed_step})"
    elif r.revisit_of is not None:
        extra += f" (revisit of {r.revisit_of})"
    secs = r.wall_time or r.elapsed
    return f"{h:<14} {t.state.name.lower():<8}{extra} acc {_pct(value)}  {'' if secs is None else f'{secs:6.1f}s'}"


def _inner_bar(make: Any, total: int, desc: str, out: Any) -> Any:
    """The bar of the steps of what trains now, under the outer bar (`make`: tqdm's class)."""
    return make(total=total, desc=desc, leave=False, file=out, position=1, dynamic_ncols=True)


class LineDisplay:
    """One line per finished trial: for logs and pipes."""

    def __init__(self, out: Any = None) -> None:
        self.out = out if out is not None else sys.stderr  # looked up now: sys.stderr may have been replaced

    def trial_started(self, number: int, hierarchy: tuple[int, ...], total_steps: int) -> None:
        pass

    def progress(self, p: Progress) -> None:
        pass

    def trial_finished(self, trial: FrozenTrial, best: float | None) -> None:
        print(f"trial {trial.number:>3}  {_describe_trial(trial)}  best {_pct(best)}", file=self.out, flush=True)


class BarDisplay(LineDisplay):
    """A bar over trials and one within the running trial (epochs or units), with the best so far."""

    def __init__(self, trials: int, done: int, out: Any = None) -> None:
        from tqdm import tqdm

        super().__init__(out)
        out = self.out
        self._tqdm = tqdm
        self.outer = tqdm(
            total=trials,
            initial=min(done, trials),
            desc="trials",
            unit="trial",
            file=out,
            position=0,
            dynamic_ncols=True,
        )
        self.inner: Any = None

    def trial_started(self, number: int, hierarchy: tuple[int, ...], total_steps: int) -> None:
        label = "[" + ",".join(map(str, hierarchy)) + "]"
        if self.inner is not None:  # --batch: the candidates train together; show the newest
            self.inner.close()
        self.inner = _inner_bar(self._tqdm, total_steps, f"trial {number} {label}", self.out)

    def progress(self, p: Progress) -> None:
        if self.inner is not None:
            self.inner.update(1)
            self.inner.set_postfix_str(f"acc {_pct(p.value).strip()}")

    def trial_finished(self, trial: FrozenTrial, best: float | None) -> None:
        if self.inner is not None:
            self.inner.close()
            self.inner = None
        self.outer.write(f"trial {trial.number:>3}  {_describe_trial(trial)}")
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            self.outer.update(1)
        self.outer.set_postfix_str(f"best {_pct(best).strip()}")

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
        self.outer.close()


class ConfirmDisplay:
    """Confirmation's progress, so that its runs (minutes when a seed's lists train together) are not silence: a
    line per finished run (list, seed, accuracy, time), as the search prints trials, and while a group trains a line
    per finished epoch (pipes, logs) or a bar over the runs with one over the group's epochs (a terminal)."""

    def __init__(self, runs: int, *, bar: bool, step: str = "epoch", out: Any = None) -> None:
        self.out = out if out is not None else sys.stderr
        self.step_word = step
        self.labels: dict[int, str] = {}  # the running group: trial number -> its list
        self.shown = 0  # the last step shown for the running group
        self.outer: Any = None
        self.inner: Any = None
        if bar:
            from tqdm import tqdm

            self._tqdm = tqdm
            self.outer = tqdm(total=runs, desc="confirm", unit="run", file=self.out, position=0, dynamic_ncols=True)

    def _line(self, text: str) -> None:
        if self.outer is not None:
            self.outer.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def trial_started(self, number: int, hierarchy: tuple[int, ...], total_steps: int) -> None:
        if not self.labels:
            self.shown = 0
        self.labels[number] = "[" + ",".join(map(str, hierarchy)) + "]"
        if self.outer is not None:
            if self.inner is not None:
                self.inner.close()
            self.inner = _inner_bar(self._tqdm, total_steps, ", ".join(self.labels.values()), self.out)

    def progress(self, p: Progress) -> None:
        if p.step <= self.shown:  # the other runs of a group report the same step
            return
        self.shown = p.step
        if self.inner is not None:
            self.inner.update(1)
            return
        together = f" ({len(self.labels)} runs together)" if len(self.labels) > 1 else ""
        self._line(
            f"confirm {', '.join(self.labels.values())}: {self.step_word} {p.step}/{p.total_steps}{together}  "
            f"{p.elapsed:6.1f}s"
        )

    def trial_finished(self, trial: FrozenTrial, best: float | None = None) -> None:
        rec = read_trial(trial)
        self.labels.pop(trial.number, None)
        if not self.labels and self.inner is not None:
            self.inner.close()
            self.inner = None
        acc = f"{100 * trial.value:5.1f} %" if trial.value is not None else f"failed ({rec.fail_reason})"
        self._line(f"confirm {rec.label:<14} seed {rec.seed}  acc {acc}  {rec.wall_time or rec.elapsed or 0:6.1f}s")
        if self.outer is not None:
            self.outer.update(1)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
        if self.outer is not None:
            self.outer.close()


def _stop_reason(reason: str, finished: int, running: int, target: int | None, ran: int | None) -> str:
    """The reason as the counts printed beside it show it: when --trials was reached, count the study's finished
    trials (and those other workers are still running), and what this run ended of them."""
    if target is None or not reason.startswith("reached --trials"):
        return reason
    words = f"the study holds {plural(finished, 'finished trial')}"
    if running:
        words += f" and {running} running in other workers"
    words += f" (--trials {target})"
    if ran is not None and ran != finished:
        words += f"; this run ended {plural(ran, 'trial')}"
    return words


def confirmation_lines(study: optuna.Study, plan: ConfirmPlan | None, trials_target: int | None) -> list[str]:
    """What confirmation did, or why it did not run."""
    runs = confirmation_runs(study)
    done = sum(len(v) for v in runs.values())
    name = confirm_study_name(study.study_name)
    if plan is not None and not plan.runs:
        if plan.chosen_by_default and trials_target is not None:
            return [
                f"confirmation: off by default (2 lists x {plan.seeds} more seeds would be more than "
                f"{100 * AFFORD:.0f} % of --trials {trials_target}); --confirm 2 trains the top 2 lists again anyway"
            ]
        return [] if not done else [f"confirmation: {done} earlier runs in study {name!r}"]
    if plan is None and not done:
        return []
    why = ""
    if plan is not None and plan.chosen_by_default:
        why = f" (on by default: {plan.runs} runs, at most {100 * AFFORD:.0f} % of --trials {trials_target})"
    what = plan.describe() if plan is not None else "earlier runs"
    lines = [f"confirmation: {what}{why}; {plural(done, 'run')} in study {name!r}"]
    if plan is not None and plan.runs and races(study):
        left, reason = racing_state(study, plan)
        if reason:
            lines.append(f"  racing ended: {reason}")
    derived = confirm_study(study)
    records = [read_trial(t) for t in derived.get_trials(deepcopy=False)] if derived is not None else []
    lines += together_lines(records, "  trained together by seed")
    return lines


def interval_text(mean: float, sd: float) -> str:
    """'97.4 ± 0.8 %': a mean with its normal 95 % interval, the interval's ends kept within 0..100 %."""
    low, high = max(0.0, mean - 1.96 * sd), min(1.0, mean + 1.96 * sd)
    return f"{100 * mean:.1f} ± {100 * max(mean - low, high - mean):.1f} %"


def answer_lines(study: optuna.Study, judged: Answer) -> list[str]:
    """The answer in words: the named list, the set, the seed sd, the expected regret, and whether parameter count
    alone explains the ranking."""
    named = "[" + ",".join(map(str, judged.named)) + "]" if judged.named else "none"
    lines = [
        f"  answer: {named}; {judged.set_text()}",
        f"  seed sd: {judged.seed_sd_text()}; expected regret of {named}: {100 * judged.expected_regret:.2f} points "
        f"({judged.expected_regret / judged.seed_sd if judged.seed_sd > 0 else 0:.2f} seed sd)",
    ]
    complete = [b for b in judged.beliefs if b.status == "complete"]
    params = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        r = read_trial(t)
        if r.params is not None and r.hierarchy:
            params[tuple(r.hierarchy)] = r.params
    pairs = [(params[b.hierarchy], b.mean) for b in complete if b.hierarchy in params]
    if len(pairs) >= 5:
        rho = spearman([p for p, _ in pairs], [m for _, m in pairs])
        if rho >= CAPACITY_RHO:
            lines.append(
                f"  capacity: the ranking follows parameter count (Spearman {rho:.2f} over {len(pairs)} lists): the "
                "largest network would have been named without training; the schedule adds little beyond size here"
            )
    return lines


def together_lines(records: list[TrialRecord], what: str) -> list[str]:
    """What training together saved over the `--batch` groups among `records`, as one line (none if no group)."""
    batches = {r.batch: r.batch_unit_epochs for r in records if r.batch is not None and r.batch_unit_epochs}
    if not batches:
        return []
    together = sum(u for u, _ in batches.values())
    alone = sum(a for _, a in batches.values())
    return [
        f"{what}: {plural(together, 'unit-epoch')} trained where one by one would take {alone} "
        f"({alone / max(together, 1):.2f}x fewer), in {plural(len(batches), 'batch', 'batches')}"
    ]


def cost_text(name: str, value: float) -> str:
    """A cost as the summary shows it: parameters and FLOPs in millions, memory in MiB, time in seconds."""
    if name == "memory":
        return f"{value / 2**20:.1f} MiB"
    if name == "time":
        return f"{value:.1f} s"
    return f"{value / 1e6:.3g}M"


def front_lines(study: optuna.Study, ranked: list[Confirmed]) -> list[str]:
    """A study with --objectives: the lists of its front (cheapest first) with accuracy and every cost; a confirmed
    list by its mean over seeds (`ranked`: `confirmed(study)`)."""
    settings = read_settings(study.study_name, study.user_attrs)
    if not settings.costs:
        return []
    costs = CostModel.of(settings)
    means = {c.trial.number: c for c in ranked}
    front = pareto_front(study, {n: c.estimate.mean for n, c in means.items()})
    lines = [
        "",
        f"front (accuracy against {', '.join(settings.costs)}): {plural(len(front), 'list')}, cheapest first"
        + ("; confirmed lists by their mean over seeds" if means else "")
        + f"; every trial is in study {pareto_study_name(study.study_name)!r}",
    ]
    if front:
        lines.append(
            f"  {'hierarchy':<14} {'val acc':>14} {'seeds':>5}  " + "  ".join(f"{c:>10}" for c in settings.costs)
        )
    for t in front:
        values = costs.of_trial(t) or ()
        record = read_trial(t)
        c = means.get(t.number)
        acc = c.estimate.text() if c is not None else _pct(t.value).strip() + " %"
        lines.append(
            f"  {record.schedule or '?':<14} {acc:>14} {c.estimate.n if c else 1:>5}  "
            + "  ".join(f"{cost_text(n, v):>10}" for n, v in zip(settings.costs, values))
        )
    return lines


def summary_text(
    study: optuna.Study,
    outcome_reason: str,
    storage_url: str,
    k: int = 5,
    *,
    trials_target: int | None = None,
    ran: int | None = None,
    plan: ConfirmPlan | None = None,
) -> str:
    """The summary printed when a run ends: counts, what sharing saved, the top `k` lists and the next commands.
    With `trials_target` (--trials) and `ran` (trials this run ended), a "reached --trials" reason is restated from
    the same counts the line shows. Confirmed lists rank first, by their mean over seeds with a 95 % interval;
    `plan` (the run's confirmation) is stated, and why it was off by default."""
    trials = study.get_trials(deepcopy=False)
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    counts = {s: sum(t.state == s for t in trials) for s in states}
    finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
    running = counts[TrialState.RUNNING]
    reason = _stop_reason(outcome_reason, finished, running, trials_target, ran)
    lines = [
        "",
        f"study {study.study_name!r}: {counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed" + (f", {running} running" if running else "") + f"; stopped: {reason}",
    ]
    val = study.user_attrs.get(VALIDATION_ATTR)
    if isinstance(val, int) and val > 0:
        lines.append(
            f"ranked on {plural(val, 'validation image')}: one image is {100 / val:.2f} % of accuracy, so lists "
            "closer than that are tied"
        )
    records = [read_trial(t) for t in trials]
    shared = [r for r in records if r.reused_units is not None]
    if shared:
        units = sum(len(r.unit_acc_history) for r in shared)
        reused = sum(int(r.reused_units or 0) for r in shared)
        seconds = sum(float(r.reused_seconds or 0.0) for r in shared)
        lines.append(
            f"prefix sharing: {reused} of {units} unit-trainings reused from earlier candidates "
            f"({100 * reused / max(units, 1):.0f} %), about {seconds:.0f}s of training saved"
        )
    lines += together_lines(records, "training together (--batch)")
    lines += confirmation_lines(study, plan, trials_target)
    ranked = confirmed(study)
    judged = study_answer(study)
    top = top_trials(study, k, judged)
    evidence = {c.trial.number: c for c in ranked}
    if top:
        lines += [
            "",
            f"  {'rank':>4}  {'hierarchy':<14} {'model':>14} {'measured':>14} {'seeds':>5} {'P(best)':>7}  "
            f"{'units: first -> last':<20} {'params':>9} {'time':>7}  paper",
        ]
        for rank, (t, r) in enumerate(((t, read_trial(t)) for t in top), 1):
            accs = [a for a in r.unit_acc if a is not None]
            curve = f"{_pct(accs[0]).strip()} -> {_pct(accs[-1]).strip()}" if accs else "-"
            c = evidence.get(t.number)
            acc = c.estimate.text() if c is not None else _pct(r.value).strip() + " %"
            b = judged.belief(r.hierarchy) if judged is not None else None
            model = interval_text(b.mean, b.sd) if b is not None else "-"
            chance = f"{100 * b.p_best:6.0f}%" if b is not None else "-"
            lines.append(
                f"  {rank:>4}  {r.schedule or '?':<14} {model:>14} {acc:>14} {c.estimate.n if c else 1:>5} "
                f"{chance:>7}  "
                f"{curve:<20} {(r.params or 0) / 1e6:8.2f}M {r.wall_time or 0:6.1f}s  {r.paper or ''}"
            )
        lines.append(
            f"  model: each list's true accuracy (its mean over seeds) as a Gaussian process over lists reads every "
            f"run, ± {LEVEL:.0%} interval; measured: the mean of its runs, ± the t interval (one seed: no interval)"
        )
        if judged is not None:
            lines += answer_lines(study, judged)
    front = front_lines(study, ranked)
    lines += front
    lines += [
        "",
        "next:",
        f"  {dashboard_command(storage_url, study.user_attrs)}      # then open http://127.0.0.1:8080",
    ]
    if top:
        lines.append(
            f"  lwl-export --storage {shlex.quote(storage_url)} --study-name {shlex.quote(study.study_name)} "
            f"--{'pareto' if front else 'best'} --out configs/      # then: lwl-train --config configs/FILE.yaml"
        )
        lines.append(f"  lwl-report --storage {shlex.quote(storage_url)} --study-name {shlex.quote(study.study_name)}")
    if "***" in storage_url:
        lines.append("  (put the password back into the URL: it is never printed)")
    return "\n".join(lines)
