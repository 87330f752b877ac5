"""The paper's networks as the reference code (Noekland & Eidnes, anokland/local-loss train.py) builds them.

Parameter counts are re-derived here from the reference's model definitions (`_ref_vgg_count`, `_ref_resnet_count`,
line numbers of its train.py at commit 7b3b40b) and pinned to the totals its modules give (`REFERENCE_COUNTS`). A unit
of each new kind (an FC unit, one convolution of a residual block) gives the reference's loss and gradients, with
the reference's formulas written out again here, not taken from the engine.
"""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from lwl.models import (
    PRESETS,
    Schedule,
    build_network,
    complexity,
    conv1x1,
    load_data,
    make_schedule,
    paper_recipe,
    unit_plan,
)

# Private on purpose: one step of one unit is what the reference's formulas are about.
from lwl.models._steps import Learner

CPU = torch.device("cpu")

# Every parameter of the reference's network, summed with `nn.Module.parameters` (its VGGn, Net and ResNet override
# `parameters()` to return the output layer only in local mode, lines 1243-1247, 1311-1315, 1028-1032), built at a
# 32x32 RGB input with --dim-in-decoder 2048 (the CIFAR recipes'): (backbone as --backprop builds it, with every local
# head as local training builds it). ResNets: the reference trains one local loss per convolution (--local-unit conv).
REFERENCE_COUNTS = {
    ("vgg8", 10): (4_451_338, 11_105_350),
    ("vgg8b", 10): (8_903_434, 18_490_192),
    ("vgg11", 10): (9_763_594, 21_787_492),
    ("vgg16", 10): (15_260_746, 32_879_830),
    ("vgg19", 10): (20_573_002, 43_561_972),
    ("resnet18", 10): (11_173_962, 24_092_916),
    ("resnet34", 10): (21_282_122, 44_629_652),
    ("resnet50", 10): (23_520_842, 228_272_180),
    ("vgg8", 100): (4_543_588, 12_211_900),
    ("vgg8b", 100): (8_995_684, 19_781_152),
    ("vgg11", 100): (9_855_844, 23_447_272),
    ("vgg16", 100): (15_352_996, 35_461_660),
    ("vgg19", 100): (20_665_252, 46_697_032),
    ("resnet18", 100): (11_220_132, 27_274_056),
    ("resnet34", 100): (21_328_292, 50_761_352),
    ("resnet50", 100): (23_705_252, 237_492_680),
}
# The same for STL-10's 96x96 RGB input, where its VGGs start with a 7x7 stride-2 conv (line 1372), 10 classes.
REFERENCE_COUNTS_96 = {
    "vgg8": (4_459_018, 11_089_990),
    "vgg8b": (11_540_234, 21_107_792),
    "vgg11": (9_771_274, 21_767_012),
    "vgg16": (15_268_426, 32_836_310),
    "vgg19": (20_580_682, 43_513_332),
}
# Its `cfg` table (line 1271): conv widths, 'M' a 2x2 max-pool.
REFERENCE_CFG = {
    "vgg8": [64, "M", 128, "M", 256, "M", 512, "M", 512, "M"],
    "vgg8b": [128, 256, "M", 256, 512, "M", 512, "M", 512, "M"],
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _ref_decoder_features(channels, dim_out, bound=2048):
    """The flattened input of a conv block's prediction head (LocalLossBlockConv, lines 681-697): the average-pool
    kernel doubles, first in height then in width, until channels * ceil(dim/kh) * ceil(dim/kw) <= bound."""
    kh = kw = 1
    h = w = dim_out
    features = channels * h * w
    while features > bound and kh < dim_out:
        kh *= 2
        h = math.ceil(dim_out / kh)
        features = channels * h * w
        if features > bound:
            kw *= 2
            w = math.ceil(dim_out / kw)
            features = channels * h * w
    return features


def _ref_conv_block(cin, cout, k, dim_out, classes, *, bias, local):
    """LocalLossBlockConv (lines 648-722): encoder conv (bias as given), BatchNorm2d (2 per channel); local: the
    prediction head Linear(decoder features, classes) with its bias and the similarity conv 3x3 cout->cout without."""
    n = k * k * cin * cout + (cout if bias else 0) + 2 * cout
    if local:
        n += _ref_decoder_features(cout, dim_out) * classes + classes + 9 * cout * cout
    return n


def _ref_linear_block(n_in, n_out, classes, *, local):
    """LocalLossBlockLinear (lines 471-516): encoder Linear with bias, BatchNorm1d; local: Linear(n_out, classes) with
    bias and the bias-free similarity Linear(n_out, n_out)."""
    return n_in * n_out + n_out + 2 * n_out + ((n_out * classes + classes + n_out * n_out) if local else 0)


def _ref_vgg_count(name, classes, local, size=32):
    """VGGn (lines 1284-1395) with --num-layers 1 --num-hidden 1024: the cfg's convs (3x3, a bias, their heads at the
    map size reached so far; over 64 pixels the first is 7x7 with stride 2 and its map half the input, lines
    1370-1376), then Net (lines 1219-1269): one FC-1024 block on the flattened last map (the cfg ends with 'M') and the
    output Linear(1024, classes)."""
    n, cin, dim = 0, 3, size
    for i, item in enumerate(REFERENCE_CFG[name]):
        if item == "M":
            dim //= 2
            continue
        k = 3
        if i == 0 and size > 64:
            k, dim = 7, size // 2
        n += _ref_conv_block(cin, item, k, dim, classes, bias=True, local=local)
        cin = item
    return n + _ref_linear_block(cin * dim * dim, 1024, classes, local=local) + 1024 * classes + classes


def _ref_resnet_count(blocks, bottleneck, classes, local):
    """ResNet (lines 999-1075): the stem LocalLossBlockConv 3->64 (no bias), four layers of BasicBlock (lines
    884-937: conv 3x3 stride s, conv 3x3) or Bottleneck (lines 939-997: 1x1, 3x3 stride s, 1x1 to 4x), each conv a
    LocalLossBlockConv without bias; a shortcut 1x1 conv + BN where the block strides or changes width; the output
    Linear(512 * expansion, classes).

    Heads are sized at the `input_dim` a block is given: the layers get 32, 32, 16, 8 (lines 1005-1009) and
    `_make_layer` (lines 1016-1024) gives a layer's first block that and the later ones that over the stride. A
    BasicBlock sizes both its heads at it, so the first block of a strided layer sizes them at the resolution before
    the stride (the reference's forward pass then fails there; the count is the one of the right size, since the
    2048 bound is reached at either); a Bottleneck its 1x1 at it and the others over its stride."""
    expansion = 4 if bottleneck else 1
    n = _ref_conv_block(3, 64, 3, 32, classes, bias=False, local=local)
    cin = 64
    for layer, (depth, planes, layer_dim) in enumerate(zip(blocks, (64, 128, 256, 512), (32, 32, 16, 8))):
        stride = 1 if layer == 0 else 2
        for b in range(depth):
            s, dim = (stride, layer_dim) if b == 0 else (1, layer_dim // stride)
            if bottleneck:
                n += _ref_conv_block(cin, planes, 1, dim, classes, bias=False, local=local)
                n += _ref_conv_block(planes, planes, 3, dim // s, classes, bias=False, local=local)
                n += _ref_conv_block(planes, planes * 4, 1, dim // s, classes, bias=False, local=local)
            else:
                n += _ref_conv_block(cin, planes, 3, dim, classes, bias=False, local=local)
                n += _ref_conv_block(planes, planes, 3, dim, classes, bias=False, local=local)
            if s != 1 or cin != planes * expansion:
                n += cin * planes * expansion + 2 * planes * expansion
            cin = planes * expansion
    return n + 512 * expansion * classes + classes


def _ref_count(name, classes, local):
    if name.startswith("vgg"):
        return _ref_vgg_count(name, classes, local)
    blocks = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}[name]
    return _ref_resnet_count(blocks, name == "resnet50", classes, local)


@pytest.mark.parametrize(("name", "classes"), sorted(REFERENCE_COUNTS), ids=lambda v: str(v))
def test_paper_presets_have_the_references_parameter_counts(name, classes):
    schedule = make_schedule(preset=name, num_classes=classes)  # the ResNet presets: a local loss per conv
    cost = complexity(schedule)
    net = build_network(schedule)
    backbone, local = REFERENCE_COUNTS[name, classes]
    assert (_ref_count(name, classes, False), _ref_count(name, classes, True)) == (backbone, local)
    assert (cost.params, cost.params_aux) == (backbone, local)
    assert sum(p.numel() for p in net.backbone_parameters()) == backbone
    assert sum(p.numel() for p in net.parameters()) == local
    if name.startswith("resnet"):  # a local loss per block: the same backbone, fewer heads
        assert schedule.local_unit == "conv"
        blockwise = complexity(make_schedule(preset=name, num_classes=classes, local_unit="block"))
        assert blockwise.params == backbone and blockwise.params_aux < local


@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS_96))
def test_on_stl10_the_vgg_presets_start_with_the_references_7x7_stride_2_conv(name):
    schedule = make_schedule(preset=name, num_classes=10, input_size=96)
    assert schedule.first_conv == "7x7s2" and schedule.resolutions[0] == 48
    cost = complexity(schedule)
    backbone, local = REFERENCE_COUNTS_96[name]
    assert (_ref_vgg_count(name, 10, False, 96), _ref_vgg_count(name, 10, True, 96)) == (backbone, local)
    assert (cost.params, cost.params_aux) == (backbone, local)
    assert sum(p.numel() for p in build_network(schedule).parameters()) == local
    assert make_schedule(preset=name, input_size=96, first_conv="3x3").resolutions[0] == 96  # the flag wins
    assert make_schedule(family="vgg", hierarchy="1,1", input_size=96).first_conv == "3x3"  # no preset: 3x3


def test_vgg8b_is_the_references_network_unit_by_unit():
    s = make_schedule(preset="vgg8b", num_classes=10)
    assert s.unit_widths() == ((128, 256), (256, 512), (512,), (512,)) and s.fc_units == (1024,) and s.conv_bias
    plans = unit_plan(s)
    assert [(p.kind, p.cin, p.cout, p.res_out) for p in plans] == [
        ("conv", 3, 128, 32),
        ("conv", 128, 256, 32),
        ("conv", 256, 256, 16),
        ("conv", 256, 512, 16),
        ("conv", 512, 512, 8),
        ("conv", 512, 512, 4),
        ("fc", 512 * 2 * 2, 1024, 1),  # its trailing 'M': 4x4 -> 2x2, flattened
    ]
    assert s.units == 7 and s.hierarchy == (2, 2, 1, 1)  # Table II's list; the FC unit is not in it
    net = build_network(s).eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # A stage that widens inside itself keeps its widths as the search changes its depth: the stage's last unit has
    # the stage's width, those before it the lead widths, then the stage's.
    deeper = make_schedule(preset="vgg8b", hierarchy=(3, 1, 2, 1), num_classes=10)
    assert deeper.unit_widths() == ((128, 256, 256), (512,), (512, 512), (512,))


def test_the_paper_presets_set_the_references_options():
    recipe = paper_recipe("cifar10", "vgg", "vgg8b")
    assert (recipe.lr, recipe.dropout) == (5e-4, 0.2)
    assert recipe.dropout_kind == "channel" and recipe.zero_init_output and recipe.normalisation == "reference"
    assert paper_recipe("cifar10", "vgg", "vgg8b", dropout_kind="element").dropout_kind == "element"
    assert paper_recipe("digits", "resnet", "resnet18").normalisation == "dataset"  # the reference's are CIFAR's
    assert paper_recipe("cifar10", "vgg").dropout_kind == "element"  # no preset: Section V as before


def _copy_blocks_into_parts(blockwise, per_conv):
    """Give the per-convolution network the block network's weights (stem, convs, BNs, shortcuts, output)."""
    parts = iter(per_conv.units)
    with torch.no_grad():
        for unit in blockwise.units:
            body = list(unit.body)
            if unit.plan.stem:
                stem = next(parts).body
                stem[0].weight.copy_(body[0].weight)
                stem[1].load_state_dict(body[1].state_dict())
                body = body[3:]
            block = body[-1]
            convs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
            if hasattr(block, "conv3"):
                convs.append((block.conv3, block.bn3))
            for conv, bn in convs:
                part = next(parts).body[-1]
                part.conv.weight.copy_(conv.weight)
                part.bn.load_state_dict(bn.state_dict())
            if not isinstance(block.shortcut, torch.nn.Identity):
                part.shortcut[0].weight.copy_(block.shortcut[0].weight)
                part.shortcut[1].load_state_dict(block.shortcut[1].state_dict())
        per_conv.classifier.load_state_dict(blockwise.classifier.state_dict())


@pytest.mark.parametrize(
    ("block", "downsample", "size"),
    [("basic", "conv", 16), ("bottleneck", "conv", 16), ("basic", "maxpool", 16), ("basic", "conv", 15)],
)
def test_a_local_loss_per_conv_computes_the_network_a_local_loss_per_block_does(block, downsample, size):
    """The same backbone either way: the block's input rides beside the features to the block's last convolution,
    where a 1x1 unstrided shortcut reads it subsampled, as the 1x1 strided one does (odd sizes included)."""
    fields = dict(hierarchy=(1, 2, 1), widths=(4, 8, 16), num_classes=10, in_channels=3, input_size=size)
    blockwise = build_network(Schedule(block=block, downsample=downsample, **fields), seed=1).eval()
    per_conv = build_network(Schedule(block=block, downsample=downsample, local_unit="conv", **fields), seed=2)
    per_conv.eval()
    _copy_blocks_into_parts(blockwise, per_conv)
    x = torch.randn(5, 3, size, size)
    assert torch.allclose(blockwise(x), per_conv(x), rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # unit by unit: each part's features are its block's intermediate activation
        assert per_conv.units[0].body(x).shape == (5, 4, size, size)


# ------------------------------------------------------------------------------------ the reference, re-derived
def _ref_similarity(x, std=True):
    """Adjusted cosine similarity of the rows (similarity_matrix, line 1409): maps reduced to each channel's spatial
    std when they have more than 3 channels and more than 1 row, else flattened; rows centred and divided by
    (1e-8 + their norm); the Gram matrix clamped to [-1, 1]."""
    if x.dim() == 4 and std and x.shape[1] > 3 and x.shape[2] > 1:
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        x = ((flat - flat.mean(dim=2, keepdim=True)) ** 2).sum(dim=2).div(flat.shape[2] - 1).sqrt()
    else:
        x = x.reshape(x.shape[0], -1)
    centred = x - x.mean(dim=1, keepdim=True)
    normed = centred / (1e-8 + (centred**2).sum(dim=1).sqrt()).unsqueeze(1)
    return (normed @ normed.T).clamp(-1, 1)


def _ref_batch_norm(h, bn):
    """Training-mode batch normalisation over every dimension but the channels."""
    dims = (0,) if h.dim() == 2 else (0, 2, 3)
    shape = (1, -1) if h.dim() == 2 else (1, -1, 1, 1)
    mean = h.mean(dim=dims, keepdim=True)
    var = h.var(dim=dims, unbiased=False, keepdim=True)
    return (h - mean) / (var + bn.eps).sqrt() * bn.weight.view(shape) + bn.bias.view(shape)


def _ref_predsim(h, sim_features, logits, y, classes, beta=0.99):
    """(1 - beta) * cross-entropy of the prediction head + beta * MSE of the similarity matrices (lines 607-621)."""
    logp = logits - logits.logsumexp(dim=1, keepdim=True)
    cross_entropy = -logp[torch.arange(len(y)), y].mean()
    sim = ((_ref_similarity(sim_features) - _ref_similarity(torch.eye(classes)[y])) ** 2).mean()
    return (1 - beta) * cross_entropy + beta * sim


def _leaky(h):
    return torch.where(h > 0, h, 0.01 * h)


def _check_grads(ours, ref, params):
    for a, b in zip(torch.autograd.grad(ours, params, retain_graph=True), torch.autograd.grad(ref, params)):
        scale = float(b.abs().max())
        assert scale > 0
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * scale), ((a - b).abs().max(), scale)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def _recipe(**kw):
    return paper_recipe("digits", "vgg", epochs=1, precision="fp32", **kw)


def test_an_fc_unit_gives_the_references_loss_and_gradients(digits):
    """LocalLossBlockLinear (lines 558-621): h = act(BN1d(W x + b)) on the flattened, max-pooled last map; the
    prediction head reads h, the similarity a bias-free linear map of h (flat features: no std)."""
    schedule = Schedule((1, 1), family="vgg", widths=(4, 8), fc_units=(12, 6), conv_bias=True, in_channels=1,
                        input_size=16)  # fmt: skip
    learner = Learner(schedule, _recipe(), CPU)
    x, y = digits.train_x[:40], digits.train_y[:40]
    with torch.no_grad():
        for j in range(2):
            x = learner.net.units[j](x)
    for j in (2, 3):  # the first FC unit (pooling, flattening) and the second (on the first's features)
        unit = learner.net.units[j]
        with torch.no_grad():  # the zero-initialised head would hide the prediction path's gradients
            unit.pred.weight.normal_(0, 0.1)
            unit.pred.bias.normal_(0, 0.1)
        linear, bn = unit.body[-3], unit.body[-2]
        flat = F.max_pool2d(x, 2).reshape(len(y), -1) if j == 2 else x
        h = _leaky(_ref_batch_norm(flat @ linear.weight.T + linear.bias, bn))
        ref = _ref_predsim(h, h @ unit.sim.weight.T, h @ unit.pred.weight.T + unit.pred.bias, y, 10)
        ours = learner.unit_loss(j, unit.body(x), y)
        assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-7), (ours.item(), ref.item())
        # (The linear layer's bias is left out: BatchNorm cancels it, so its gradient is rounding noise around 0.)
        _check_grads(ours, ref, [linear.weight, bn.weight, bn.bias, unit.sim.weight, unit.pred.weight])
        with torch.no_grad():
            x = unit(x)


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_a_blocks_last_convolution_gives_the_references_loss_and_gradients(digits, block):
    """The last conv of a strided block (BasicBlock.forward, lines 926-937; LocalLossBlockConv.forward, 770-790):
    h = act(BN(conv(features)) + BN_s(conv1x1_stride2(block input))); predsim on h. Its loss trains the shortcut
    too, as the reference's shortcut optimiser steps after that conv's backward (lines 931-935)."""
    schedule = Schedule((1, 1), block=block, widths=(4, 8), local_unit="conv", in_channels=1, input_size=16)
    recipe = paper_recipe("digits", "resnet", epochs=1, precision="fp32", dim_in_decoder=128)
    learner = Learner(schedule, recipe, CPU)
    x, y = digits.train_x[:40], digits.train_y[:40]
    units = learner.net.units
    last = len(units) - 1
    block_input = None
    with torch.no_grad():
        for j in range(last):
            if units[j].plan.kind == "part" and units[j].plan.part == 0 and units[j].plan.stage == 1:
                block_input = x
            x = units[j](x)
    unit = units[last]
    part = unit.body[-1]
    assert unit.plan.shortcut and block_input is not None and block_input.shape[1] == 4 * schedule.expansion
    with torch.no_grad():
        unit.pred.net[-1].weight.normal_(0, 0.1)
        unit.pred.net[-1].bias.normal_(0, 0.1)
    features = x[:, : part.cin]
    # Through the engine's conv1x1: F.conv2d's strided 1x1 kernel of 4 input channels aborts on AVX2 CPUs.
    stride_shortcut = conv1x1(block_input, part.shortcut[0].weight, stride=2)
    k = part.conv.kernel_size[0]
    h = _ref_batch_norm(F.conv2d(features, part.conv.weight, padding=k // 2), part.bn)
    h = _leaky(h + _ref_batch_norm(stride_shortcut, part.shortcut[1]))
    pooled = F.adaptive_avg_pool2d(h, unit.pred.net[-3].output_size).reshape(len(y), -1)
    logits = pooled @ unit.pred.net[-1].weight.T + unit.pred.net[-1].bias
    ref = _ref_predsim(h, F.conv2d(h, unit.sim.weight, padding=1), logits, y, 10)
    ours = learner.unit_loss(last, unit.body(x), y)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-7), (ours.item(), ref.item())
    params = [part.conv.weight, part.bn.weight, part.shortcut[0].weight, part.shortcut[1].weight, unit.sim.weight]
    _check_grads(ours, ref, params)


def test_a_step_of_one_convolution_moves_only_its_own_weights(digits):
    """Gradient isolation with the block's input riding beside the features: a step of the block's last conv moves
    it and its shortcut only; a step of the first moves neither."""
    schedule = Schedule((1, 1), widths=(4, 8), local_unit="conv", in_channels=1, input_size=16)
    learner = Learner(schedule, paper_recipe("digits", "resnet", epochs=1, precision="fp32"), CPU)
    x, y = digits.train_x[:32], digits.train_y[:32]

    def flat():
        return [torch.cat([p.detach().flatten().clone() for p in u.parameters()]) for u in learner.net.units]

    h = x
    with torch.no_grad():
        for j in range(3):
            h = learner.net.units[j](h)
    for j in (3, 4):  # the strided block's first conv, then its last (with the shortcut)
        before = flat()
        learner.layerwise_step(h, y, j, j, False)
        moved = [not torch.equal(a, b) for a, b in zip(before, flat())]
        assert moved == [i == j for i in range(len(moved))], (j, moved)
        with torch.no_grad():
            h = learner.net.units[j](h)


def test_an_fc_units_channel_dropout_drops_single_features():
    """The reference drops whole maps after convs (Dropout2d) and single features after FC layers (Dropout, 513)."""
    schedule = Schedule((1,), family="vgg", widths=(4,), fc_units=(64,), in_channels=1, input_size=16)
    learner = Learner(schedule, _recipe(dropout=0.5, dropout_kind="channel"), CPU)
    dropped = learner.dropout(torch.ones(8, 64), 1)
    assert 0 < int((dropped == 0).sum()) < 8 * 64 and (dropped == 0).any(dim=1).all()
    rows = (dropped == 0).all(dim=1)
    assert not rows.any()  # not whole rows: single features


def test_lwl_inspect_shows_per_unit_widths_and_fc_units(capsys):
    from lwl.models.commands import inspect_main

    assert inspect_main(["--preset", "vgg8b", "--dataset", "cifar10"]) == 0
    out = capsys.readouterr().out
    assert "+ FC 1024 on cifar10" in out and "conv bias" in out
    assert "      1      2     32x32    128,256" in out and "     FC      1  flat 2,048  1024" in out
    assert "7   (6 convs, 1 FC)" in out and "18,490,192" in out
    assert inspect_main(["--preset", "resnet18", "--dataset", "cifar10"]) == 0
    assert "17   (one per convolution: the stem, 2 per block)" in capsys.readouterr().out


def test_lwl_inspect_json_lists_every_unit_kind(capsys):
    from lwl.models.commands import inspect_main

    assert inspect_main(["--preset", "resnet18", "--dataset", "cifar100", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["units"] == 17 and d["local_unit"] == "conv" and d["params_aux"] == REFERENCE_COUNTS["resnet18", 100][1]
    assert inspect_main(["--preset", "resnet18", "--local-unit", "block", "--dataset", "cifar100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["units"] == 8
    assert inspect_main(["--preset", "vgg8b", "--dataset", "cifar100", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["unit_widths"] == [[128, 256], [256, 512], [512], [512]] and d["fc_units"] == [1024]
    assert d["fc_input"] == 2048 and d["conv_bias"] and d["params"] == REFERENCE_COUNTS["vgg8b", 100][0]


def test_every_preset_builds_and_runs_a_batch():
    for name in PRESETS:
        schedule = make_schedule(preset=name, num_classes=10)
        assert build_network(schedule).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


SEARCH = ["--budget", "8", "--epochs", "2", "--precision", "fp32", "--device", "cpu"]
NETWORK_FLAGS = {  # flags -> the schedule fields they set
    "vgg": (
        ["--family", "vgg", "--widths", "4:8,16,16,32", "--fc-units", "24", "--conv-bias", "on"],
        dict(family="vgg", widths=(8, 16, 16, 32), lead_widths=((4,), (), (), ()), fc_units=(24,), conv_bias=True),
    ),
    "vgg-7x7s2": (["--family", "vgg", "--first-conv", "7x7s2", "--widths", "4,8,8,16"], dict(first_conv="7x7s2")),
    "resnet-per-conv": (
        ["--local-unit", "conv", "--block", "bottleneck", "--widths", "4,8,8,16"],
        dict(local_unit="conv", block="bottleneck"),
    ),
}


@pytest.mark.parametrize("case", sorted(NETWORK_FLAGS))
def test_the_network_flags_reach_lwl_train_lwl_search_and_the_exported_config(tmp_path, case):
    from lwl.models import load_config
    from lwl.models.cli import Parser, add_data_args, add_recipe_args, add_schedule_args, schedule_from_args
    from lwl.search import SettingsError, parse_search_flags, trial_config
    from lwl.search._space.settings import StudySettings, check_same_settings

    flags, fields = NETWORK_FLAGS[case]
    parser = Parser(prog="lwl-train")
    add_schedule_args(parser)
    add_data_args(parser)
    add_recipe_args(parser)
    trained = schedule_from_args(parser.parse_args(["--hierarchy", "1,1,2,4", *flags]), "digits")
    for name, value in fields.items():
        assert getattr(trained, name) == value, name
    settings = parse_search_flags([*SEARCH, *flags])[0]
    if case == "vgg":
        assert settings.network_text() == "vgg widths 4:8,16,16,32 + FC 24, conv bias"
    assert settings.schedule((1, 1, 2, 4)) == trained
    # A study setting: stored, read back equal, and a run with other network fields refused, naming them.
    assert StudySettings.from_dict(json.loads(settings.to_json())) == settings
    plain = parse_search_flags(SEARCH)[0]
    assert not set(json.loads(plain.to_json())) & {"lead_widths", "fc_units", "conv_bias", "local_unit"}
    with pytest.raises(SettingsError, match=list(trained.extras())[0]):
        check_same_settings("s", plain.to_json(), settings)
    check_same_settings("s", settings.to_json(), settings)
    # The exported config carries them; lwl-train --config builds the same network.
    path = tmp_path / "best.yaml"
    path.write_text(trial_config(settings, (1, 1, 2, 4), study_name="s", trial=0, accuracy=0.5).to_yaml("best.yaml"))
    assert load_config(path).schedule == trained


def test_a_paper_preset_in_lwl_search_searches_the_references_network():
    from lwl.search import parse_search_flags

    settings = parse_search_flags(["--preset", "cifar100-resnet-b16", "--device", "cpu", "--precision", "fp32"])[0]
    assert settings.network.local_unit == "conv" and settings.recipe.dropout_kind == "channel"
    assert settings.recipe.zero_init_output and settings.recipe.normalisation == "reference"
    block = parse_search_flags(["--preset", "cifar100-resnet-b16", "--local-unit", "block", "--device", "cpu"])[0]
    assert block.network.local_unit == "block"
    vgg = parse_search_flags(["--preset", "cifar10-vgg-b10", "--device", "cpu", "--precision", "fp32"])[0]
    net = vgg.network
    assert net.fc_units == (1024,) and net.conv_bias and net.widths == (64, 128, 256, 512, 512)
    s = vgg.schedule((1, 1, 2, 2, 2))  # the reference's vgg11, exactly
    assert complexity(s).params_aux == REFERENCE_COUNTS["vgg11", 10][1]


def test_a_study_preset_sets_the_network_fields(tmp_path):
    """YAML keys are the flag names: fc_units as a list (or none), conv_bias as YAML's on/off, local_unit."""
    from lwl.search import parse_search_flags

    (tmp_path / "vgg.yaml").write_text(
        "budget: 8\nfamily: vgg\nwidths: 4:8,16,16,32\nfc_units: [24, 12]\nconv_bias: on\n"
    )
    settings = parse_search_flags(["--preset", str(tmp_path / "vgg.yaml"), "--device", "cpu"])[0]
    net = settings.network
    assert (net.fc_units, net.conv_bias, net.lead_widths) == ((24, 12), True, ((4,), (), (), ()))
    (tmp_path / "res.yaml").write_text("budget: 8\nnetwork: resnet18\nfc_units: []\nlocal_unit: block\n")
    settings = parse_search_flags(["--preset", str(tmp_path / "res.yaml"), "--device", "cpu"])[0]
    assert (settings.network.fc_units, settings.network.local_unit) == ((), "block")
    assert settings.recipe.dropout_kind == "channel"
