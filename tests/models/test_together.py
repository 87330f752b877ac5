"""Candidates trained together through their shared units equal the same candidates trained alone, bitwise."""

import pytest
import torch
from cases import NETWORKS, REFERENCE_OPTIONS, network, prefixes

from lwl.models import RecipeError, Schedule, load_data, paper_recipe, train, train_together

WIDTHS = (4, 8, 8, 16)
LISTS = ((1, 1, 2, 4), (1, 1, 3, 3), (2, 1, 2, 3))  # share four units, then one unit with the first two
CASES = [(a, p, {}, None) for a in (None, ("crop", "flip")) for p in ("fp32", "bf16")]
CASES += [(None, "fp32", o, None) for o in REFERENCE_OPTIONS.values()]
CASES += [(None, "fp32", {}, n) for n in NETWORKS]
CASE_IDS = ["plain-fp32", "plain-bf16", "augmented-fp32", "augmented-bf16", *REFERENCE_OPTIONS, *NETWORKS]


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def _schedule(hierarchy, net=None):
    extra = network(net, len(hierarchy)) if net else {}
    return Schedule(tuple(hierarchy), widths=WIDTHS, num_classes=10, in_channels=1, input_size=16, **extra)


def _records(history):
    return [(p.step, p.total_steps, p.unit_acc, p.output_acc, p.train_loss, p.unit_epochs) for p in history]


def _assert_same(together, alone):
    a, b = together.model.state_dict(), alone.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert _records(together.history) == _records(alone.history)


@pytest.mark.slow
@pytest.mark.parametrize(("augment", "precision", "options", "net"), CASES, ids=CASE_IDS)
def test_candidates_trained_together_equal_each_trained_alone(digits, augment, precision, options, net):
    recipe = paper_recipe(
        "digits", "resnet", epochs=2, train_limit=256, augment=augment, precision=precision, **options
    )
    schedules = [_schedule(h, net) for h in LISTS]
    outcome = train_together(schedules, recipe, digits, device="cpu", keep_models=True)
    for s, result in zip(schedules, outcome.results):
        _assert_same(result, train(s, recipe, digits, device="cpu", keep_model=True))
    # 8 + 8 + 8 units alone; together the first four (and unit 1 of the third) are trained once: 8 + 4 + 7 nodes.
    nodes = len({p for s in schedules for p in prefixes(s)})
    assert nodes == 19 or net is not None
    assert (outcome.unit_epochs, outcome.unit_epochs_alone) == (nodes * 2, sum(s.units for s in schedules) * 2)


def test_a_stopped_candidate_leaves_and_the_others_go_on_unchanged(digits):
    recipe = paper_recipe("digits", "resnet", epochs=3, train_limit=256)
    seen = []

    def on_progress(i, p):
        seen.append((i, p.step))
        if i == 0 and p.step == 1:
            raise RuntimeError("pruned")  # as optuna.TrialPruned leaves a trial
        return i == 2 and p.step == 2

    outcome = train_together(
        [_schedule(h) for h in LISTS], recipe, digits, device="cpu", keep_models=True, on_progress=on_progress
    )
    first, second, third = outcome.results
    assert isinstance(first, RuntimeError) and str(first) == "pruned"
    assert third.stopped_early and [p.step for p in third.history] == [1, 2]
    assert sorted(seen) == [(0, 1), (1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]
    alone = [train(_schedule(h), recipe, digits, device="cpu", keep_model=True) for h in LISTS[1:]]
    _assert_same(second, alone[0])  # the shared units went on for it after candidate 0 left
    assert _records(third.history) == _records(alone[1].history[:2])
    assert outcome.unit_epochs < outcome.unit_epochs_alone


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_candidate_stopped_in_the_trie_continues_alone_bitwise(digits, precision):
    """`on_stop` hands over a stopped candidate's state; resumed alone it ends exactly as trained alone (its shared
    units, optimisers and streams are its own in the state) while the others went on through the trie."""
    recipe = paper_recipe("digits", "resnet", epochs=3, train_limit=256, augment=("crop", "flip"), precision=precision)
    states = {}
    outcome = train_together(
        [_schedule(h) for h in LISTS],
        recipe,
        digits,
        device="cpu",
        on_progress=lambda i, p: i in (0, 2) and p.step == i // 2 + 1,  # candidate 0 after epoch 1, 2 after 2
        on_stop=states.__setitem__,
    )
    assert sorted(states) == [0, 2] and outcome.results[0].stopped_early and outcome.results[2].stopped_early
    for i, epoch in ((0, 1), (2, 2)):
        assert states[i]["position"]["epoch"] == epoch and not states[i]["complete"]
        resumed = train(_schedule(LISTS[i]), recipe, digits, device="cpu", keep_model=True, resume=states[i])
        _assert_same(resumed, train(_schedule(LISTS[i]), recipe, digits, device="cpu", keep_model=True))


def test_only_layer_wise_simultaneous_training_can_share(digits):
    for recipe in (
        paper_recipe("digits", "resnet", loss="global"),
        paper_recipe("digits", "resnet", mode="sequential"),
    ):
        with pytest.raises(RecipeError, match="simultaneous mode and a layer-wise loss"):
            train_together([_schedule(LISTS[0])], recipe, digits, device="cpu")


def test_models_come_back_in_training_mode_as_a_single_run_returns_them(digits):
    """Validation after every epoch leaves each module in the mode it had: a kept model, from the trie or from a
    single run (a group of one), is in training mode, whatever an evaluation set to eval mode."""
    recipe = paper_recipe("digits", "resnet", epochs=1, train_limit=64)
    outcome = train_together([_schedule(h) for h in LISTS[:2]], recipe, digits, device="cpu", keep_models=True)
    alone = train(_schedule(LISTS[0]), recipe, digits, device="cpu", keep_model=True)
    models = [r.model for r in outcome.results] + [alone.model]
    assert [[m.training for m in model.modules()].count(False) for model in models] == [0, 0, 0]
