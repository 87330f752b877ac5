"""Prefix sharing in sequential mode: a candidate trained through the store equals the same candidate trained alone,
bitwise, in weights and in every record its caller sees."""

import pytest
import torch
from cases import NETWORKS, REFERENCE_OPTIONS, network, shared_units

from lwl.models import PrefixStore, Schedule, load_data, paper_recipe, train

WIDTHS = (4, 8, 8, 16)
CASES = [(a, p, {}, None) for a in (None, ("flip",)) for p in ("fp32", "bf16")]
CASES += [(None, "fp32", o, None) for o in REFERENCE_OPTIONS.values()]
CASES += [(None, "fp32", {}, n) for n in NETWORKS]
CASE_IDS = ["cached-prefix-fp32", "cached-prefix-bf16", "augmented-fp32", "augmented-bf16", *REFERENCE_OPTIONS]
CASE_IDS += list(NETWORKS)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def _schedule(hierarchy, net=None):
    extra = network(net, len(hierarchy)) if net else {}
    return Schedule(tuple(hierarchy), widths=WIDTHS, num_classes=10, in_channels=1, input_size=16, **extra)


def _recipe(**kw):
    return paper_recipe("digits", "resnet", mode="sequential", epochs=2, train_limit=256, **kw)


def _records(result):
    return [(p.step, p.total_steps, p.unit_acc, p.output_acc, p.train_loss, p.unit_epochs) for p in result.history]


def _assert_same(shared, alone):
    a, b = shared.model.state_dict(), alone.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert _records(shared) == _records(alone)
    assert shared.output_acc == alone.output_acc and shared.unit_acc == alone.unit_acc


@pytest.mark.parametrize(("augment", "precision", "options", "net"), CASES, ids=CASE_IDS)
@pytest.mark.slow
def test_a_candidate_through_the_store_equals_it_trained_alone(digits, tmp_path, augment, precision, options, net):
    store = PrefixStore(tmp_path / "prefixes")
    recipe = _recipe(augment=augment, precision=precision, **options)
    a, b = _schedule((1, 1, 2, 4), net), _schedule((1, 1, 3, 3), net)
    first = train(a, recipe, digits, device="cpu", prefix_store=store)
    assert first.reused_units == 0
    assert store.size()[0] == a.units - 1  # every unit but the last, which also trained the output classifier
    seen = []
    shared = train(
        b,
        recipe,
        digits,
        device="cpu",
        keep_model=True,
        prefix_store=store,
        on_progress=seen.append,
    )
    # Four units are the same in both; with --local-unit conv, the stem and the four blocks' convolutions.
    expected = {"resnet-per-conv": 1 + 4 * 2, "bottleneck-per-conv-maxpool": 1 + 4 * 3}.get(net, 4)
    assert shared.reused_units == shared_units(a, b) == expected
    assert shared.reused_seconds > 0
    alone = train(b, recipe, digits, device="cpu", keep_model=True)
    _assert_same(shared, alone)
    # The caller (a pruner) was told about the reused units too, in order, with the same values.
    assert [(p.step, p.unit_acc, p.train_loss) for p in seen] == [
        (p.step, p.unit_acc, p.train_loss) for p in alone.history
    ]


@pytest.mark.slow
def test_only_an_identical_prefix_is_reused(digits, tmp_path):
    store = PrefixStore(tmp_path / "prefixes")
    train(_schedule((1, 1, 2, 4)), _recipe(), digits, device="cpu", prefix_store=store)
    assert train(_schedule((2, 1, 2, 3)), _recipe(), digits, device="cpu", prefix_store=store).reused_units == 1
    assert train(_schedule((1, 1, 2, 4)), _recipe(lr=1e-3), digits, device="cpu", prefix_store=store).reused_units == 0
    assert train(_schedule((1, 1, 2, 4)), _recipe(seed=1), digits, device="cpu", prefix_store=store).reused_units == 0
    other = load_data("digits", split_seed=1)  # another validation split: other training data
    assert train(_schedule((1, 1, 2, 4)), _recipe(), other, device="cpu", prefix_store=store).reused_units == 0
    # Simultaneous mode trains every unit on every batch: nothing is stored or reused there.
    simultaneous = paper_recipe("digits", "resnet", epochs=1, train_limit=256)
    assert train(_schedule((1, 1, 2, 4)), simultaneous, digits, device="cpu", prefix_store=store).reused_units == 0


def test_a_pruned_candidate_stops_during_the_replay(digits, tmp_path):
    store = PrefixStore(tmp_path / "prefixes")
    train(_schedule((1, 1, 2, 4)), _recipe(), digits, device="cpu", prefix_store=store)
    seen = []
    result = train(
        _schedule((1, 1, 3, 3)),
        _recipe(),
        digits,
        device="cpu",
        prefix_store=store,
        on_progress=lambda p: seen.append(p.step) or p.step == 2,
    )
    assert result.stopped_early and seen == [1, 2]


def test_the_store_is_bounded_and_survives_eviction(digits, tmp_path):
    store = PrefixStore(tmp_path / "prefixes")
    train(_schedule((1, 1, 2, 4)), _recipe(), digits, device="cpu", prefix_store=store)
    files, size = store.size()
    assert files == 7
    small = PrefixStore(tmp_path / "prefixes", max_bytes=size // 2)
    small.evict()
    left, left_size = small.size()
    assert 0 < left < files and left_size <= size // 2
    # Oldest first: the shallow units went, so no prefix is complete from unit 1 and nothing is reused,
    # yet the candidate trains correctly to the same result as alone.
    alone = train(_schedule((1, 1, 3, 3)), _recipe(), digits, device="cpu", keep_model=True)
    shared = train(_schedule((1, 1, 3, 3)), _recipe(), digits, device="cpu", keep_model=True, prefix_store=small)
    _assert_same(shared, alone)


@pytest.mark.parametrize(
    "damage", [b"", b"not a torch file", b"PK\x03\x04 truncated zip"], ids=["empty", "garbage", "truncated"]
)
def test_a_damaged_unit_file_is_trained_again(digits, tmp_path, damage):
    """A worker killed by the disk, or a foreign file under the same name: the unit is retrained, not a crash."""
    store = PrefixStore(tmp_path / "prefixes")
    train(_schedule((1, 1, 2, 4)), _recipe(), digits, device="cpu", prefix_store=store)
    for path in (tmp_path / "prefixes").glob("*.pt"):
        path.write_bytes(damage)
    shared = train(_schedule((1, 1, 3, 3)), _recipe(), digits, device="cpu", keep_model=True, prefix_store=store)
    alone = train(_schedule((1, 1, 3, 3)), _recipe(), digits, device="cpu", keep_model=True)
    assert shared.reused_units == 0
    _assert_same(shared, alone)
    assert train(_schedule((1, 1, 3, 3)), _recipe(), digits, device="cpu", prefix_store=store).reused_units == 7
