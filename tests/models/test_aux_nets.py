"""The auxiliary networks of DGL, InfoPro and AugLocal (`--aux-net`): sizes, losses and gradients against the
formulas re-derived from the authors' code, and the engine's exactness (isolation, determinism, sharing, resume)
under each."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lwl.models import (
    RecipeError,
    Schedule,
    build_network,
    complexity,
    dataset_info,
    load_data,
    paper_recipe,
    train,
    train_together,
    unit_keys,
    unit_plan,
)
from lwl.models._steps import Learner

CPU = torch.device("cpu")
KINDS = ("dgl", "infopro", "auglocal")
WIDTHS = (4, 8, 8, 16)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", with_test=True)


def _schedule(hierarchy=(1, 1, 2, 4), **kw):
    return Schedule(tuple(hierarchy), widths=WIDTHS, num_classes=10, in_channels=1, input_size=16, **kw)


def _recipe(kind, **kw):
    return paper_recipe("digits", "resnet", epochs=2, train_limit=192, precision="fp32", aux_net=kind, **kw)


# ------------------------------------------------------------------ their definitions, re-derived as formulas


def _dgl_params(c, k):
    """eugenium/DGL auxiliary_nets_study/models.py, auxillary_classifier2 with mlp-sr (n_lin=3, mlp_layers=3): three
    bias-free 1x1 convs of c channels with BatchNorm2d, then on the 2x2-pooled 4c features three Linear(4c, 4c) (with
    bias) + BatchNorm1d, and Linear(4c, k). (Their module also holds a BatchNorm2d it never uses with an MLP; left
    out here.)"""
    f = 4 * c
    return 3 * (c * c + 2 * c) + 3 * (f * f + f + 2 * f) + f * k + k


def _infopro_params(c, wide, k, in_channels):
    """InfoPro-Pytorch networks/auxiliary_nets.py: AuxClassifier '1c2f' in cross_entropy mode (conv3x3 c -> wide, no
    bias, BN; Linear(wide, 128); Linear(128, k)) and Decoder (conv3x3 c -> 12 with bias, BN; conv3x3 12 -> 3)."""
    classifier = 9 * c * wide + 2 * wide + wide * 128 + 128 + 128 * k + k
    decoder = 9 * c * 12 + 12 + 2 * 12 + 9 * 12 * in_channels + in_channels
    return classifier + decoder


def _infopro_lambdas(j, n):
    """Their forward: ratio = i / (K - 2) over the K - 1 local modules (here the n units), lambdas linear in it, with
    ixx_1 5, ixy_1 0.05, ixx_2 0.2, ixy_2 0.5 (their ResNet-32, K = 16 command)."""
    ratio = j / (n - 1) if n > 1 else 0
    return 5 * (1 - ratio) + 0.2 * ratio, 0.05 * (1 - ratio) + 0.5 * ratio


def _auglocal_layers(n, depth=3, coeff=0.5):
    """AugLocal networks/resnet.py and auxiliary_nets.py (unifSamp, pyramid): the depth list over the aux modules
    and each one's sampled later layers, with n aux modules over n layers (K - 1 = n)."""
    k = n + 1
    depths = [max(1, round(depth * (1 - (i * coeff) / (k - 2)) + (i * coeff) / (k - 2) * 1)) for i in range(k - 1)]
    layers = []
    for i, d in enumerate(depths):
        if d >= n - 1 - i:
            layers.append([j for j in range(i + 1, n)])
        else:
            layers.append([round(i + (n - i - 1) / d * m) for m in range(1, d + 1)])
    return depths, layers


def _basic_params(cin, planes, stride):
    shortcut = cin * planes + 2 * planes if stride != 1 or cin != planes else 0
    return 9 * cin * planes + 2 * planes + 9 * planes * planes + 2 * planes + shortcut


def _head_params(unit):
    return sum(p.numel() for p in unit.pred.parameters())


# ------------------------------------------------------------------ sizes and costs


@pytest.mark.parametrize("hierarchy", [(1, 1, 2, 4), (2, 2, 2, 2), (1, 1, 1, 1)])
def test_dgl_and_infopro_heads_have_their_codes_parameter_counts(hierarchy):
    s = _schedule(hierarchy)
    for kind in ("dgl", "infopro"):
        head = _recipe(kind).head
        net, cost = build_network(s, head), complexity(s, head)
        for j, (unit, plan) in enumerate(zip(net.units, unit_plan(s))):
            c = plan.cout
            if kind == "dgl":
                expected = _dgl_params(c, 10)
            else:
                expected = _infopro_params(c, min(2 * c, 16) if c < 16 else c, 10, 1)
            assert _head_params(unit) == cost.unit_head_params[j] == expected, (kind, j)
        assert cost.params_aux - cost.params == sum(cost.unit_head_params)


def test_auglocal_heads_copy_the_later_units_their_rule_samples():
    s = _schedule((1, 1, 2, 4))
    n = s.units
    depths, layers = _auglocal_layers(n)
    assert depths == [3, 3, 3, 3, 2, 2, 2, 2] and layers[0] == [2, 5, 7] and layers[4] == [6, 7]
    plans = unit_plan(s)
    net, cost = build_network(s, _recipe("auglocal").head), complexity(s, _recipe("auglocal").head)
    for j, unit in enumerate(net.units):
        # Their stride rule: num_pool += log2 of the width ratio to the sampled layer, stride 2 while it is >= 1 (one
        # per layer). Widths double exactly where the resolution halves in their ResNets; here widths 4,8,8,16 do not,
        # so the ratio is taken of the resolutions the backbone halved between the two, which is what it stands for.
        expected, cin, res, num_pool = 0, plans[j].cout, plans[j].res_out, 0
        for k in layers[j]:
            num_pool += int(math.log2(res // plans[k].res_out))
            res = plans[k].res_out
            stride = 1
            if num_pool >= 1:
                stride, num_pool = 2, num_pool - 1
            expected += _basic_params(cin, plans[k].cout, stride)
            cin = plans[k].cout
        expected += cin * 10 + 10 + (2 * cin if depths[j] <= 1 else 0)
        blocks = [m for m in unit.pred.classifier if m.__class__.__name__ == "BasicBlock"]
        assert len(blocks) == len(layers[j])
        assert _head_params(unit) == cost.unit_head_params[j] == expected, j
    # A later unit's head depends on what follows it: change the tail, and unit 1's head changes.
    other = complexity(_schedule((1, 1, 4, 2)), _recipe("auglocal").head)
    assert other.unit_head_params[0] != cost.unit_head_params[0]


@pytest.mark.parametrize("kind", KINDS)
def test_head_flops_are_what_flop_counter_counts(kind):
    s = _schedule((1, 1, 2, 4))
    net, cost = build_network(s, _recipe(kind).head).eval(), complexity(s, _recipe(kind).head)
    h = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        for j, unit in enumerate(net.units):
            f = unit.body(h)
            with FlopCounterMode(display=False) as counter:
                unit.pred(f)
                if unit.pred.decoder is not None:
                    unit.pred.decoder(f)
            assert counter.get_total_flops() == cost.unit_head_flops[j], (kind, j)
            h = unit.carry(h, f)


NETWORKS = {
    "vgg": dict(family="vgg"),
    "bottleneck-maxpool": dict(block="bottleneck", downsample="maxpool"),
    "resnet-per-conv": dict(local_unit="conv"),
}


@pytest.mark.parametrize("net", NETWORKS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_network_kind_counts_its_heads_as_built(kind, net):
    """Counts from the description equal the built modules' (parameters) and FlopCounterMode's (FLOPs), and every
    head classifies, for VGGs, bottlenecks and a local loss per convolution."""
    if kind == "auglocal" and net == "resnet-per-conv":
        pytest.skip("refused: test_bad_combinations_are_refused_in_one_line")
    s = _schedule((1, 2, 1, 2), **NETWORKS[net])
    head = _recipe(kind).head
    model, cost = build_network(s, head).eval(), complexity(s, head)
    assert [_head_params(u) for u in model.units] == list(cost.unit_head_params)
    h = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        for j, unit in enumerate(model.units):
            f = unit.body(h)
            with FlopCounterMode(display=False) as counter:
                assert unit.pred(f).shape == (2, 10)
                if unit.pred.decoder is not None:
                    assert unit.pred.decoder(f).shape == (2, 1, 16, 16)
            assert counter.get_total_flops() == 2 * cost.unit_head_flops[j], (j, unit.pred)
            h = unit.carry(h, f)


# ------------------------------------------------------------------ losses and gradients


def _bn(h, bn):
    dims = (0,) if h.dim() == 2 else (0, 2, 3)
    shape = (1, -1) if h.dim() == 2 else (1, -1, 1, 1)
    mean, var = h.mean(dim=dims, keepdim=True), h.var(dim=dims, unbiased=False, keepdim=True)
    return (h - mean) / (var + bn.eps).sqrt() * bn.weight.view(shape) + bn.bias.view(shape)


def _of(module, kind):
    return [m for m in module if isinstance(m, kind)]


def _check_grads(ours, ref, params):
    for a, b in zip(torch.autograd.grad(ours, params, retain_graph=True), torch.autograd.grad(ref, params)):
        scale = float(b.abs().max())
        assert scale > 0
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * scale), ((a - b).abs().max(), scale)


def _dgl_ref(h, head, y):
    convs, bns = _of(head.classifier, nn.Conv2d), _of(head.classifier, nn.BatchNorm2d)
    linears, bn1 = _of(head.classifier, nn.Linear), _of(head.classifier, nn.BatchNorm1d)
    a = F.adaptive_avg_pool2d(h, math.ceil(h.shape[-1] / 4))
    for conv, bn in zip(convs, bns):
        a = F.relu(_bn(F.conv2d(a, conv.weight), bn))
    a = F.adaptive_avg_pool2d(a, 2).reshape(len(y), -1)
    for lin, bn in zip(linears, bn1):
        a = F.relu(_bn(a @ lin.weight.T + lin.bias, bn))
    return F.cross_entropy(a @ linears[-1].weight.T + linears[-1].bias, y)


def _infopro_ref(h, head, y, image, lambdas):
    conv, bn = _of(head.classifier, nn.Conv2d)[0], _of(head.classifier, nn.BatchNorm2d)[0]
    l1, l2 = _of(head.classifier, nn.Linear)
    a = F.relu(_bn(F.conv2d(h, conv.weight, stride=conv.stride, padding=1), bn)).mean(dim=(2, 3))
    ce = F.cross_entropy(F.relu(a @ l1.weight.T + l1.bias) @ l2.weight.T + l2.bias, y)
    d1, d2 = _of(head.decoder, nn.Conv2d)
    dbn = _of(head.decoder, nn.BatchNorm2d)[0]
    up = F.interpolate(h, size=[16, 16], mode="bilinear", align_corners=True)
    p = torch.sigmoid(
        F.conv2d(F.relu(_bn(F.conv2d(up, d1.weight, d1.bias, padding=1), dbn)), d2.weight, d2.bias, padding=1)
    )
    info = dataset_info("digits")
    t = image * info.std[0] + info.mean[0]
    bce = F.binary_cross_entropy(p, t)  # their nn.BCELoss
    return lambdas[0] * bce + lambdas[1] * ce


@pytest.mark.parametrize("kind", ["dgl", "infopro"])
def test_a_units_loss_and_gradients_are_their_formulas(digits, kind):
    s = _schedule((1, 1, 2, 4))
    learner = Learner(s, _recipe(kind), CPU)
    x, y = digits.train_x[:48], digits.train_y[:48]
    h_in = x
    for j in (0, 1, 2):
        unit = learner.net.units[j]
        h = unit.body(h_in)
        ours = learner.unit_loss(j, h, y, x)
        if kind == "dgl":
            ref = _dgl_ref(h, unit.pred, y)
        else:
            ref = _infopro_ref(h, unit.pred, y, x, _infopro_lambdas(j, s.units))
        assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6), (j, ours.item(), ref.item())
        params = [p for p in unit.parameters() if p.requires_grad and p.dim() > 1]
        _check_grads(ours, ref, params)
        with torch.no_grad():
            h_in = unit(h_in)


def _basic_ref(a, block):
    """He et al.'s basic block with ReLU, as their aux nets' `_make_layer` builds it: conv3x3 (strided) -> BN -> ReLU
    -> conv3x3 -> BN, plus the input or a strided 1x1 conv -> BN of it, -> ReLU."""
    stride = block.conv1.stride[0]
    out = F.relu(_bn(F.conv2d(a, block.conv1.weight, stride=stride, padding=1), block.bn1))
    out = _bn(F.conv2d(out, block.conv2.weight, padding=1), block.bn2)
    if isinstance(block.shortcut, nn.Identity):
        return F.relu(out + a)
    conv, bn = block.shortcut
    return F.relu(out + _bn(F.conv2d(a, conv.weight, stride=stride), bn))


def test_an_auglocal_units_loss_and_gradients_are_their_formula(digits):
    s = _schedule((1, 1, 2, 4))
    learner = Learner(s, _recipe("auglocal"), CPU)
    x, y = digits.train_x[:48], digits.train_y[:48]
    h_in = x
    for j in (0, 4, 7):  # depth 3 (copies units 3, 6, 8), depth 2 (units 7, 8), the last unit (no layer to copy)
        unit = learner.net.units[j]
        if j:
            with torch.no_grad():
                h_in = x
                for k in range(j):
                    h_in = learner.net.units[k](h_in)
        h = unit.body(h_in)
        blocks = [m for m in unit.pred.classifier if m.__class__.__name__ == "BasicBlock"]
        a = h
        for block in blocks:
            a = _basic_ref(a, block)
        a = a.mean(dim=(2, 3))
        bns = _of(unit.pred.classifier, nn.BatchNorm1d)
        if bns:  # depth <= 1: their BatchNorm1d before the classifier
            a = _bn(a, bns[0])
        lin = unit.pred.classifier[-1]
        ref = F.cross_entropy(a @ lin.weight.T + lin.bias, y)
        ours = learner.unit_loss(j, h, y, x)
        assert len(blocks) == {0: 3, 4: 2, 7: 0}[j] and not bns
        assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6), (j, ours.item(), ref.item())
        _check_grads(ours, ref, [p for p in unit.parameters() if p.dim() > 1])
    # Their initialisation of every convolution: normal with std sqrt(2 / (k * k * out channels)).
    conv = learner.net.units[0].pred.classifier[0].conv1
    expected = math.sqrt(2 / (9 * conv.out_channels))
    assert abs(float(conv.weight.detach().std()) - expected) < 0.3 * expected


@pytest.mark.parametrize("kind", KINDS)
def test_a_units_step_moves_only_its_own_weights(digits, kind):
    learner = Learner(_schedule((1, 1, 2, 4)), _recipe(kind), CPU)
    x, y = digits.train_x[:32], digits.train_y[:32]

    def flat():
        return [torch.cat([p.detach().flatten().clone() for p in u.parameters()]) for u in learner.net.units]

    before = flat()
    learner.layerwise_step(x, y, 0, 0, False)
    moved = [not torch.equal(a, b) for a, b in zip(before, flat())]
    assert moved == [j == 0 for j in range(len(moved))]


# ------------------------------------------------------------------ exactness


def _same(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert [(p.unit_acc, p.output_acc, p.train_loss) for p in a.history] == [
        (p.unit_acc, p.output_acc, p.train_loss) for p in b.history
    ]


@pytest.mark.parametrize("kind", ["local-loss", *KINDS])
def test_sharing_keys_include_what_a_head_depends_on(kind):
    recipe = paper_recipe("digits", "resnet", loss="pred", aux_net=kind)

    def shared(a, b):
        ka, kb = unit_keys(_schedule(a), recipe.head), unit_keys(_schedule(b), recipe.head)
        return next(j for j, (p, q) in enumerate(zip(ka, kb)) if p != q)

    # The plans agree on four units; a pred or DGL head depends on its unit's plan alone, InfoPro's loss weights on
    # the unit's place among all (8 units in each), an AugLocal head on the later units it copies: unit 1 copies
    # units 3, 6 and 8, and unit 6 is a stage-4 block in [1,1,2,4] but a stage-3 one in [1,1,4,2].
    assert shared((1, 1, 2, 4), (1, 1, 4, 2)) == {"local-loss": 4, "dgl": 4, "infopro": 4, "auglocal": 0}[kind]
    # In [1,1,3,3] units 3, 6 and 8 are layers like [1,1,2,4]'s: units 1 and 2 copy the same, so they are shared.
    assert shared((1, 1, 2, 4), (1, 1, 3, 3)) == {"local-loss": 4, "dgl": 4, "infopro": 4, "auglocal": 2}[kind]


@pytest.mark.parametrize(
    ("kind", "precision"), [(k, "fp32") for k in KINDS] + [("infopro", "bf16"), ("auglocal", "bf16")]
)
def test_candidates_together_equal_each_alone_and_share_only_what_they_may(digits, kind, precision):
    recipe = (
        _recipe(kind, augment=("crop", "flip")) if precision == "fp32" else replace(_recipe(kind), precision=precision)
    )
    lists = [(1, 1, 2, 4), (1, 1, 4, 2)]
    schedules = [_schedule(h) for h in lists]
    outcome = train_together(schedules, recipe, digits, device="cpu", keep_models=True)
    alone = [train(s, recipe, digits, device="cpu", keep_model=True) for s in schedules]
    for together, single in zip(outcome.results, alone):
        _same(together, single)
    nodes = 8 + (8 if kind == "auglocal" else 4)  # AugLocal: unit 1 of the lists copies different later units
    assert outcome.unit_epochs == nodes * recipe.epochs
    again = train(schedules[0], recipe, digits, device="cpu", keep_model=True)  # determinism
    _same(alone[0], again)


@pytest.mark.parametrize("kind", KINDS)
def test_a_paused_run_resumes_bitwise(digits, kind):
    s = _schedule((1, 1, 1, 1))
    recipe = paper_recipe(
        "digits", "resnet", epochs=3, train_limit=128, precision="fp32", aux_net=kind, augment=("crop",)
    )
    states = []
    full = train(s, recipe, digits, device="cpu", keep_model=True, test=True, checkpoint=states.append)
    stopped = []
    train(s, recipe, digits, device="cpu", on_progress=lambda p: p.step == 1, on_stop=stopped.append)
    for state in (states[0], states[1], stopped[0]):
        _same(full, train(s, recipe, digits, device="cpu", keep_model=True, test=True, resume=state))


@pytest.mark.parametrize("kind", ["dgl", "auglocal"])
def test_sequential_mode_trains_each_kind(digits, kind):
    recipe = paper_recipe("digits", "resnet", epochs=1, train_limit=128, precision="fp32", aux_net=kind,
                          mode="sequential")  # fmt: skip
    result = train(_schedule((1, 1, 1, 1)), recipe, digits, device="cpu")
    assert all(a is not None for a in result.unit_acc)


def test_bad_combinations_are_refused_in_one_line():
    with pytest.raises(RecipeError, match="use loss pred"):
        paper_recipe("digits", "resnet", aux_net="dgl", loss="predsim")
    with pytest.raises(RecipeError, match="mode simultaneous"):
        paper_recipe("digits", "resnet", aux_net="infopro", mode="sequential")
    assert paper_recipe("digits", "resnet", aux_net="dgl").loss == "pred"
    vgg = Schedule((1, 1), family="vgg", widths=(4, 8), fc_units=(16,), in_channels=1, input_size=16)
    with pytest.raises(RecipeError, match="--fc-units none"):
        complexity(vgg, _recipe("dgl").head)
    per_conv = _schedule((1, 1, 1, 1), local_unit="conv")
    with pytest.raises(RecipeError, match="--local-unit block"):
        build_network(per_conv, _recipe("auglocal").head)


@pytest.mark.parametrize("kind", ["dgl", "auglocal"])
def test_the_sequential_prefix_store_reuses_a_unit_only_with_its_head(digits, tmp_path, kind):
    from lwl.models import PrefixStore

    store = PrefixStore(tmp_path / "prefixes")
    recipe = paper_recipe(
        "digits", "resnet", mode="sequential", epochs=1, train_limit=128, precision="fp32", aux_net=kind
    )
    train(_schedule((1, 1, 2, 4)), recipe, digits, device="cpu", prefix_store=store)
    other = _schedule((1, 1, 4, 2))
    shared = train(other, recipe, digits, device="cpu", keep_model=True, prefix_store=store)
    assert shared.reused_units == {"dgl": 4, "auglocal": 0}[kind]
    _same(shared, train(other, recipe, digits, device="cpu", keep_model=True))


@pytest.mark.parametrize("kind", KINDS)
def test_global_training_trains_the_heads_as_probes(digits, kind):
    """--loss global: end-to-end back-propagation; the heads learn on detached features, so a head's loss alone
    moves no weight of the backbone."""
    learner = Learner(_schedule((1, 1, 1, 1)), paper_recipe("digits", "resnet", loss="global", aux_net=kind), CPU)
    x, y = digits.train_x[:32], digits.train_y[:32]
    unit = learner.net.units[0]
    probe = learner.cross_entropy(unit.pred(unit.body(x).detach()), y)
    probe.backward()
    assert all(p.grad is None for p in unit.body.parameters())
    assert all(p.grad is not None for p in unit.pred.classifier.parameters())
    learner.net.zero_grad(set_to_none=True)
    learner.global_step(x, y)
    result = train(_schedule((1, 1, 1, 1)), _recipe(kind, loss="global"), digits, device="cpu")
    assert all(a is not None for a in result.unit_acc) and result.output_acc is not None
