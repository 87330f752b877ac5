import math

import pytest
import torch
from cases import NETWORKS, REFERENCE_OPTIONS, network, shared_units

from lwl.models import Diverged, Recipe, Schedule, load_data, paper_recipe, train

# Private on purpose: gradient isolation is a property of one step, which only `Learner` (the per-step module) exposes.
from lwl.models._steps import Learner

WIDTHS4 = (8, 16, 32, 64)
PRECISIONS_AND_OPTIONS = [(p, {}, None) for p in ("fp32", "bf16")]
PRECISIONS_AND_OPTIONS += [("fp32", o, None) for o in REFERENCE_OPTIONS.values()]
PRECISIONS_AND_OPTIONS += [("fp32", {}, n) for n in NETWORKS]
CASE_IDS = ["fp32", "bf16", *REFERENCE_OPTIONS, *NETWORKS]


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", with_test=True)


def _schedule(hierarchy, widths=WIDTHS4, net=None, **kw):
    kw = {**(network(net, len(hierarchy)) if net else {}), **kw}
    return Schedule(
        tuple(hierarchy), widths=widths[: len(hierarchy)], num_classes=10, in_channels=1, input_size=16, **kw
    )


def _recipe(**kw):
    return Recipe(**{"dataset": "digits", "epochs": 2, "lr": 2e-3, "dropout": 0.1, "batch_size": 64, **kw})


@pytest.mark.slow
def test_digits_run_is_far_above_chance(digits):
    schedule = _schedule((1, 1, 1, 1), widths=(16, 32, 64, 64))
    result = train(schedule, paper_recipe("digits", "resnet", epochs=5), digits, device="cpu", test=True)
    assert result.output_acc > 0.85 and result.test_output_acc > 0.85
    assert len(result.history) == 5 and result.history[-1].unit_epochs == 20
    assert all(a is not None and a > 0.5 for a in result.unit_acc)
    assert result.device == "cpu" and result.peak_memory is None and result.wall_time > 0


@pytest.mark.parametrize("loss", ["pred", "sim", "predsim"])
def test_a_units_loss_leaves_earlier_units_untouched(digits, loss):
    """Gradient isolation: back-propagating unit j's local loss writes no gradient below j."""
    schedule = _schedule((1, 1, 2, 1))
    learner = Learner(schedule, _recipe(loss=loss), torch.device("cpu"))
    x, y = digits.train_x[:32], digits.train_y[:32]
    h = x
    for j in range(3):
        h = learner.net.units[j].body(h).detach() if j < 2 else learner.net.units[j].body(h)
    learner.unit_loss(2, h, y).backward()
    for j, unit in enumerate(learner.net.units):
        grads = [p.grad for p in unit.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
        assert (len(grads) > 0) == (j == 2), f"unit {j} has gradients: {len(grads)}"
    # And the training step itself: units' inputs are detached, so a step of unit j alone moves only unit j.
    learner.net.zero_grad(set_to_none=True)
    before = [torch.cat([p.detach().flatten().clone() for p in u.parameters()]) for u in learner.net.units]
    x0 = learner.net.units[0].body(x).detach()
    learner.layerwise_step(x0, y, 1, 1, False)
    after = [torch.cat([p.detach().flatten() for p in u.parameters()]) for u in learner.net.units]
    assert [not torch.equal(b, a) for b, a in zip(before, after)] == [False, True, False, False, False]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["simultaneous", "sequential"])
@pytest.mark.parametrize(("precision", "options", "net"), PRECISIONS_AND_OPTIONS, ids=CASE_IDS)
def test_shared_prefixes_train_to_identical_weights(digits, mode, precision, options, net):
    """[1,1,2,4] and [1,1,3,3] share their first four units (blocks): they must end bitwise equal."""
    recipe = _recipe(mode=mode, epochs=2, precision=precision, **options)
    schedules = [_schedule(h, net=net) for h in ((1, 1, 2, 4), (1, 1, 3, 3))]
    results = [train(s, recipe, digits, device="cpu", keep_model=True) for s in schedules]
    a, b = (r.model for r in results)
    k = shared_units(*schedules)  # 4; with --local-unit conv the stem and the four blocks' convolutions
    assert k == 4 or net is not None
    for j in range(k):
        sa, sb = a.units[j].state_dict(), b.units[j].state_dict()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), (j, key)
    # Every record agrees on the shared units: their accuracies and train losses (in sequential mode a unit's are
    # None until it is trained, in both runs alike).
    ha, hb = results[0].history, results[1].history
    assert len(ha) == len(hb) == (2 if mode == "simultaneous" else schedules[0].units)
    for pa, pb in zip(ha, hb):
        assert pa.unit_acc[:k] == pb.unit_acc[:k] and pa.train_loss[:k] == pb.train_loss[:k]
    if mode == "sequential":
        # One record per unit: the first k trained only shared units, so they agree whole; unit j's numbers are
        # set from record j + 1 on, and the frozen units keep them.
        assert [(p.step, p.unit_acc, p.output_acc, p.train_loss, p.unit_epochs) for p in ha[:k]] == [
            (p.step, p.unit_acc, p.output_acc, p.train_loss, p.unit_epochs) for p in hb[:k]
        ]
        for i, p in enumerate(ha):
            assert [a is not None for a in p.unit_acc[:k]] == [j <= i for j in range(k)]
            assert [v is not None for v in p.train_loss[:k]] == [j <= i for j in range(k)]
        assert {p.unit_acc[:k] for p in ha[k - 1 :]} == {ha[k - 1].unit_acc[:k]}
    else:
        assert all(a is not None for p in ha for a in p.unit_acc[:k] + p.train_loss[:k])
    # The next unit differs (a new stage in one, the same stage in the other).
    next_a, next_b = (next(m.units[k].body.parameters()).flatten()[:10] for m in (a, b))
    assert not torch.equal(next_a, next_b)


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "options", "net"), PRECISIONS_AND_OPTIONS, ids=CASE_IDS)
def test_seeded_runs_are_reproducible_and_seeds_matter(digits, precision, options, net):
    s = _schedule((1, 1, 1), net=net)
    r1, r2, r3 = (
        train(s, _recipe(seed=seed, precision=precision, **options), digits, device="cpu", keep_model=True)
        for seed in (0, 0, 1)
    )
    assert [p.unit_acc for p in r1.history] == [p.unit_acc for p in r2.history]
    for p1, p2 in zip(r1.model.parameters(), r2.model.parameters()):
        assert torch.equal(p1, p2)
    assert any(not torch.equal(p1, p3) for p1, p3 in zip(r1.model.parameters(), r3.model.parameters()))


def test_sequential_reports_one_record_per_unit(digits):
    result = train(_schedule((1, 2)), _recipe(mode="sequential", epochs=2), digits, device="cpu")
    steps = result.history
    assert [p.step for p in steps] == [1, 2, 3] and steps[-1].total_steps == 3
    assert steps[0].unit_acc[1:] == (None, None) and steps[0].output_acc is None
    assert steps[0].value == steps[0].unit_acc[0]
    assert steps[-1].output_acc is not None and steps[-1].unit_epochs == 6
    # Frozen units keep their accuracy.
    assert steps[2].unit_acc[0] == steps[0].unit_acc[0]


def test_global_training_probes_every_unit(digits):
    result = train(_schedule((1, 1)), _recipe(loss="global", epochs=4), digits, device="cpu")
    assert result.output_acc > 0.5 and all(a is not None for a in result.unit_acc)


def test_the_caller_can_stop_training(digits):
    seen = []
    result = train(
        _schedule((1, 1)),
        _recipe(epochs=5),
        digits,
        device="cpu",
        on_progress=lambda p: seen.append(p.step) or p.step == 2,
    )
    assert seen == [1, 2] and result.stopped_early and len(result.history) == 2

    class Stop(Exception):
        pass

    def raise_at_1(p):
        raise Stop

    with pytest.raises(Stop):
        train(_schedule((1, 1)), _recipe(epochs=5), digits, device="cpu", on_progress=raise_at_1)


def test_divergence_is_reported(digits):
    with pytest.raises(Diverged, match="not finite"):
        train(_schedule((1,)), _recipe(lr=1e30, epochs=2, loss="pred"), digits, device="cpu")


def test_lr_decays_at_the_papers_milestones():
    recipe = _recipe(lr=1.0)
    seen = [recipe.lr_at(step, 100) for step in range(100)]
    changes = [i for i in range(1, 100) if seen[i] != seen[i - 1]]
    assert changes == [50, 75, 89, 94] and math.isclose(seen[-1], 0.25**4)


def test_a_schedule_for_another_data_set_is_refused(digits):
    from lwl.models import ScheduleError

    with pytest.raises(ScheduleError, match="build the schedule for the data set"):
        train(Schedule((1, 1)), _recipe(), digits, device="cpu")
