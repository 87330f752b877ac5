import subprocess
import sys

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from lwl.models import HeadSpec, Schedule, build_network, complexity, conv1x1, unit_plan


def _cifar_resnet(builder, num_classes):
    """torchvision's ResNet as CIFAR code uses it: 3x3 stride-1 stem, no max-pool."""
    net = builder(num_classes=num_classes)
    net.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool = torch.nn.Identity()
    return net


def _count(params):
    return sum(p.numel() for p in params)


@pytest.mark.parametrize("num_classes, published", [(10, 11_173_962), (100, 11_220_132)])
def test_resnet18_parameter_parity_with_torchvision(num_classes, published):
    s = Schedule((2, 2, 2, 2), family="resnet", block="basic", num_classes=num_classes)
    ours = _count(build_network(s, HeadSpec()).backbone_parameters())
    theirs = _count(_cifar_resnet(torchvision.models.resnet18, num_classes).parameters())
    assert ours == theirs == published == complexity(s).params


def test_resnet50_parameter_parity_with_torchvision():
    s = Schedule((3, 4, 6, 3), block="bottleneck", num_classes=100)
    theirs = _count(_cifar_resnet(torchvision.models.resnet50, 100).parameters())
    assert _count(build_network(s).backbone_parameters()) == theirs == complexity(s).params


SCHEDULES = [
    Schedule((1, 1, 2, 4)),
    Schedule((2, 1), block="bottleneck", widths=(8, 16), input_size=16, num_classes=7),
    Schedule((1, 2, 1), family="vgg", widths=(8, 16, 32), input_size=16, in_channels=1),
    Schedule((1, 1, 2), family="vgg", downsample="conv", widths=(8, 16, 16), input_size=16),
    Schedule((1, 2), family="resnet", downsample="avgpool", widths=(8, 16), input_size=8),
    Schedule((2, 1), family="resnet", block="bottleneck", downsample="maxpool", widths=(4, 8), input_size=8),
    # The reference's kinds: lead widths, FC units and conv bias; a local loss per convolution.
    Schedule((2, 1), family="vgg", widths=(8, 16), lead_widths=((4,), ()), fc_units=(12, 6), conv_bias=True),
    Schedule((1, 2), widths=(8, 16), input_size=15, local_unit="conv", fc_units=(10,)),
    Schedule((2, 1), block="bottleneck", widths=(4, 8), input_size=16, local_unit="conv"),
    Schedule((1, 2), downsample="maxpool", widths=(4, 8), input_size=16, local_unit="conv"),
]


@pytest.mark.parametrize(
    "schedule", SCHEDULES, ids=lambda s: f"{s.family}-{s.block}-{s.downsample}-{s.local_unit}-{s.label()}"
)
@pytest.mark.parametrize("head", [HeadSpec(), HeadSpec(sim=False, aux_convs=1, dim_in_decoder=64)])
def test_analytic_complexity_matches_the_modules(schedule, head):
    cost = complexity(schedule, head)
    net = build_network(schedule, head)
    assert cost.params == _count(net.backbone_parameters())
    assert cost.params_aux == _count(net.parameters())
    assert cost.unit_params == tuple(_count(u.parameters()) for u in net.units)
    x = torch.zeros(1, schedule.in_channels, schedule.input_size, schedule.input_size)
    net.eval()
    with FlopCounterMode(display=False) as counter:
        net(x)
    assert cost.flops == counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        h = x
        for unit in net.units:
            f = unit.body(h)
            unit.pred(f)
            if unit.sim is not None:
                unit.sim(f)
            h = unit.carry(h, f)
        net.classifier(h)
    assert cost.flops_aux == counter.get_total_flops()
    # Activations: every conv (and FC unit) output in the backbone.
    acts = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: acts.append(o.numel()))
        for u in net.units
        for m in u.body.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    net(x)
    for hook in hooks:
        hook.remove()
    assert cost.activations == sum(acts)


def test_published_cost_figures():
    """Equal FLOPs for these lists (widths double per downsampling, README "Several objectives"), different
    parameters and activation memory."""
    a, b, c = (complexity(Schedule(h)) for h in [(2, 2, 2, 2), (1, 1, 2, 4), (4, 2, 1, 1)])
    assert a.flops == b.flops == c.flops  # widths double per downsampling: every unit costs the same
    assert round(a.flops / 1e9, 2) == 1.11 and round(b.flops / 1e9, 2) == 1.11
    assert (a.activations, b.activations) == (614_400, 450_560)
    assert round(b.params / 1e6, 1) == 20.2 and round(a.params / 1e6, 1) == 11.2
    assert a.conv_layers == 17 and complexity(Schedule((3, 4, 6, 3), block="bottleneck")).conv_layers == 49


def test_prefix_units_are_built_identically():
    """Unit j depends only on its position: shared prefixes start from the same weights."""
    x = build_network(Schedule((1, 1, 2, 4), widths=(8, 16, 32, 64)), seed=3)
    y = build_network(Schedule((1, 1, 3, 3), widths=(8, 16, 32, 64)), seed=3)
    for j in range(4):
        for (n1, p1), (n2, p2) in zip(x.units[j].state_dict().items(), y.units[j].state_dict().items()):
            assert n1 == n2 and torch.equal(p1, p2)
    z = build_network(Schedule((1, 1, 2, 4), widths=(8, 16, 32, 64)), seed=4)
    assert not torch.equal(x.units[0].body[0].weight, z.units[0].body[0].weight)


def test_building_does_not_touch_the_global_rng():
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    build_network(Schedule((1, 1), widths=(4, 8), input_size=8))
    assert torch.equal(torch.rand(3), before)


def test_the_heads_flatten_is_nn_flatten_with_the_gradient_in_the_inputs_layout():
    """Same values and gradients as nn.Flatten; a channels-last input gets its gradient back channels-last (the
    CPU's pooling backward is several times slower when handed NCHW)."""
    from lwl.models._network import Flatten

    x = torch.randn(4, 3, 5, 6).contiguous(memory_format=torch.channels_last)
    weights = torch.randn(4, 90)
    results = []
    for flatten in (Flatten(), torch.nn.Flatten()):
        h = x.clone().requires_grad_().mul(1.0)  # not a leaf: a leaf's .grad always takes the leaf's layout
        seen = []
        h.register_hook(seen.append)
        out = flatten(h)
        (out * weights).sum().backward()
        results.append((out.detach(), seen[0]))
    (ours, our_grad), (theirs, their_grad) = results
    assert torch.equal(ours, theirs) and torch.equal(our_grad, their_grad)
    assert our_grad.is_contiguous(memory_format=torch.channels_last)
    assert not their_grad.is_contiguous(memory_format=torch.channels_last)


def test_a_narrow_strided_shortcut_is_the_strided_convolution_without_the_broken_kernel():
    """1x1 stride-2 convolutions of fewer than 8 channels take the unstrided kernel on the subsampled input (oneDNN's
    strided one corrupts the heap on AVX2 CPUs, models/_network.py): the values and gradients of the strided
    convolution's formula, y[n, o, i, j] = sum_c w[o, c] x[n, c, 2i, 2j], and the parameter names of a Conv2d."""
    from lwl.models._network import _shortcut

    torch.manual_seed(0)
    block = _shortcut(4, 8, 2).to(memory_format=torch.channels_last)
    assert [n for n, _ in block.named_parameters()] == ["0.weight", "1.weight", "1.bias"]
    conv = block[0]
    x = torch.randn(16, 4, 12, 12).to(memory_format=torch.channels_last).requires_grad_()
    y = conv(x)
    y.square().sum().backward()
    x_ref = x.detach().contiguous().requires_grad_()
    w_ref = conv.weight.detach().contiguous().requires_grad_()
    y_ref = torch.einsum("oc,nchw->nohw", w_ref[:, :, 0, 0], x_ref[:, :, ::2, ::2])
    y_ref.square().sum().backward()
    assert torch.allclose(y, y_ref, atol=1e-6)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-5) and torch.allclose(conv.weight.grad, w_ref.grad, atol=1e-4)


# The shape that corrupts the heap through oneDNN's strided 1x1 kernel on AVX2 CPUs, run through conv1x1 (forward,
# and the weight and input gradients) in both memory formats and at 1 and 2 threads: an abort or hang stays in the
# child process, and its values are the strided convolution's formula.
_BAD_SHAPE = """
import torch
from lwl.models import conv1x1
for threads in (1, 2):
    torch.set_num_threads(threads)
    for fmt in (torch.contiguous_format, torch.channels_last):
        for _ in range(20):
            x = torch.randn(64, 4, 16, 16).to(memory_format=fmt).requires_grad_()
            w = torch.randn(8, 4, 1, 1, requires_grad=True)
            y = conv1x1(x, w, stride=2)
            y.square().sum().backward()
            ref = torch.einsum("oc,nchw->nohw", w[:, :, 0, 0].detach(), x.detach()[:, :, ::2, ::2])
            assert y.shape == (64, 8, 8, 8) and torch.allclose(y, ref, atol=1e-5)
            assert w.grad is not None and x.grad is not None and bool(x.grad[:, :, 1::2].eq(0).all())
print("ok")
"""


def test_the_heap_corrupting_strided_1x1_shape_runs_through_conv1x1():
    out = subprocess.run([sys.executable, "-c", _BAD_SHAPE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stderr[-2000:])


def test_conv1x1_is_f_conv2d_where_the_kernel_is_sound():
    """8 or more channels, or no stride: plain F.conv2d, bitwise; a kernel other than 1x1 is refused."""
    x, w8, w4 = torch.randn(2, 8, 6, 6), torch.randn(3, 8, 1, 1), torch.randn(3, 4, 1, 1)
    assert torch.equal(conv1x1(x, w8, stride=2), torch.nn.functional.conv2d(x, w8, stride=2))
    assert torch.equal(conv1x1(x[:, :4], w4), torch.nn.functional.conv2d(x[:, :4], w4))
    with pytest.raises(ValueError, match="1x1 kernel"):
        conv1x1(x, torch.randn(3, 8, 3, 3))


@pytest.mark.parametrize("downsample", ["conv", "maxpool", "avgpool"])
@pytest.mark.parametrize("family", ["vgg", "resnet"])
@pytest.mark.parametrize("size", [28, 15])
def test_every_units_planned_resolution_is_the_one_it_computes(downsample, family, size):
    """Odd sizes (MNIST's 28 reaches 7): a strided conv rounds up (7 -> 4), a pooling floors (7 -> 3); the plan (and
    so every head, FC input and cost figure) follows the layer."""
    stages = 4 if size == 28 else 3  # to 3x3 or 4x4 (28) and 3x3 or 4x4 (15) before the FC unit's pooling
    schedule = Schedule((1,) * stages, family=family, widths=(4, 4, 8, 8)[:stages], input_size=size, in_channels=1,
                        downsample=downsample, fc_units=(6,))  # fmt: skip
    net = build_network(schedule).eval()
    h = torch.zeros(2, 1, size, size)
    for unit, plan in zip(net.units, unit_plan(schedule)):
        h = unit(h)
        assert h.shape[1:] == ((plan.cout,) if plan.kind == "fc" else (plan.cout, plan.res_out, plan.res_out))
    expected = {"conv": (size, (size + 1) // 2), "maxpool": (size, size // 2), "avgpool": (size, size // 2)}
    assert schedule.resolutions[:2] == expected[downsample]
