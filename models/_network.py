"""Pure builders: a `Schedule` (+ `HeadSpec`) becomes a network of locally trained units.

The structure is derived once (`_plan.unit_plan`) and both this builder and the torch-free `complexity()` read it, so
counts can be pinned by tests against the real modules, torchvision and `FlopCounterMode`.

Each unit is initialised from its own seed derived from (seed, unit position) and a unit's body depends only
on its own position, never on what comes after it: two schedules that share a prefix build that prefix
identically. That is what makes exact prefix sharing possible; keep it so. A unit's head depends on its plan alone
too, except for two later methods' (`_aux`): an AugLocal head copies later units and InfoPro's loss weights follow
the unit's place among all; `unit_keys` names what makes a unit the same in two networks, heads included.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ._aux import AuxDesign, Op, aux_designs
from ._plan import HeadSpec, UnitPlan, decoder_size, derive_seed, unit_plan
from ._schedule import Schedule

LEAKY_SLOPE = 0.01  # Section V: leaky-ReLU with negative slope 0.01 (Noekland & Eidnes)


def activation_module(kind: str = "leaky_relu") -> nn.Module:
    """The nonlinearity of every unit: leaky_relu (slope LEAKY_SLOPE, Section V) or relu (the reference's default)."""
    if kind == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE)
    if kind == "relu":
        return nn.ReLU()
    raise ValueError(f"unknown activation {kind!r}: choose leaky_relu or relu")


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw parameter initialisations from `seed` without touching the caller's global RNG.

    Modules are built on the CPU, so only the CPU generator is seeded (and restored): `torch.manual_seed` would also
    reseed every CUDA device's default generator, which `fork_rng(devices=[])` does not restore.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def _conv_bn_act(
    cin: int, cout: int, stride: int = 1, act: str = "leaky_relu", bias: bool = False, kernel: int = 3
) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=bias),
        nn.BatchNorm2d(cout),
        activation_module(act),
    ]


def _pool(kind: str | None) -> list[nn.Module]:
    if kind == "maxpool":
        return [nn.MaxPool2d(2)]
    if kind == "avgpool":
        return [nn.AvgPool2d(2)]
    return []


class BasicBlock(nn.Module):
    """He et al.'s basic block as CIFAR ResNets use it, with the paper's leaky-ReLU (or `act`)."""

    def __init__(self, cin: int, planes: int, stride: int, act: str = "leaky_relu") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act = activation_module(act)
        self.shortcut = _shortcut(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """He et al.'s bottleneck block (stride on the 3x3 conv, as torchvision's V1.5)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, act: str = "leaky_relu") -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.act = activation_module(act)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act(out + self.shortcut(x))


class ConvPart(nn.Module):
    """One convolution of a residual block as a unit of its own (see `_block_parts`): conv -> BN [-> + shortcut of
    the block's input] -> activation. A part after its block's first reads its input as the features of the part
    before (the first `cin` channels) and the block's input beside them (the rest)."""

    def __init__(self, plan: UnitPlan, act: str) -> None:
        super().__init__()
        k = plan.kernel
        self.cin, self.stride = plan.cin, plan.stride
        self.first, self.last = plan.part == 0, plan.part == plan.parts - 1
        self.pool = nn.Sequential(*_pool(plan.pool))
        self.conv = nn.Conv2d(plan.cin, plan.cout, k, stride=plan.stride, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(plan.cout)
        self.act = activation_module(act)
        # The reference's strided 1x1 shortcut conv reads every stride-th pixel: here it reads the input the parts
        # before subsampled so (`skip`), unstrided; the same sums, the same parameters.
        self.shortcut = (
            nn.Sequential(nn.Conv2d(plan.skip, plan.cout, 1, bias=False), nn.BatchNorm2d(plan.cout))
            if plan.shortcut
            else nn.Identity()
        )

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the features it convolves, the block's input beside them) of its input."""
        if self.first:
            x = self.pool(x)
            return x, x
        return x[:, : self.cin], x[:, self.cin :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, skip = self.split(x)
        out = self.bn(self.conv(h))
        if self.last:
            out = out + self.shortcut(skip)
        return self.act(out)

    def carry(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """What it passes on: its features h, and (before its block's last part) the block's input beside them,
        subsampled as it strides."""
        if self.last:
            return h
        skip = self.split(x)[1]
        if self.stride > 1:
            skip = skip[:, :, :: self.stride, :: self.stride]
        return torch.cat([h, skip], 1)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    conv = _NarrowStridedConv if stride > 1 and cin < 8 else nn.Conv2d
    return nn.Sequential(conv(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class _NarrowStridedConv(nn.Conv2d):
    """A 1x1 strided convolution of fewer than 8 input channels, computed as the 1x1 convolution of the subsampled
    input (the same sum for every output pixel, the same parameters under the same names).

    On a CPU without AVX-512, oneDNN's 1x1 strided kernel for the weight gradient corrupts the heap when the input has
    fewer than 8 channels (PyTorch 2.14, oneDNN 3.12, an AVX2 AMD EPYC: `Conv2d(4, 8, 1, stride=2)` alone aborts with
    "free(): invalid next size" at one thread and hangs at two, whatever the memory format); the unstrided kernel is
    sound. Only networks this narrow (widths below 8: tests and tiny searches) use it.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sh, sw = self.stride[0], self.stride[-1]
        return conv1x1(x, self.weight, self.bias, (sh, sw), self.groups)


def conv1x1(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    groups: int = 1,
) -> torch.Tensor:
    """`F.conv2d(x, weight, bias, stride)` for a 1x1 `weight` (no padding), the one way to compute a strided 1x1
    convolution here (the engine's shortcuts, the tests' references): with fewer than 8 input channels and a stride,
    the unstrided convolution of the subsampled input, the same sums without oneDNN's strided kernel, whose weight
    gradient corrupts the heap on AVX2 CPUs (`_NarrowStridedConv`)."""
    if tuple(weight.shape[2:]) != (1, 1):
        raise ValueError(f"conv1x1 takes a 1x1 kernel, got {tuple(weight.shape[2:])}")
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    if (sh, sw) != (1, 1) and x.shape[1] < 8:
        return F.conv2d(x[:, :, ::sh, ::sw], weight, bias, 1, 0, 1, groups)
    return F.conv2d(x, weight, bias, (sh, sw), 0, 1, groups)


class _Contiguous(torch.autograd.Function):
    """`x.contiguous()` whose gradient goes back in x's own memory format (channels-last stays channels-last)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        cl = torch.channels_last
        ctx.channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=cl)
        return x.contiguous()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last) if ctx.channels_last else grad


class Flatten(nn.Flatten):
    """`nn.Flatten` (in the reference's NCHW order) whose gradient goes back to the pooling in the pooling's own
    memory format: on the CPU a channels-last pooling's backward is 3-8x slower when handed an NCHW gradient.
    Same values, same parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_Contiguous.apply(x))


def _zero_linear(cin: int, cout: int) -> nn.Linear:
    """A linear classifier that starts at zero, weight and bias (every auxiliary head's)."""
    linear = nn.Linear(cin, cout)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


class PredHead(nn.Module):
    """Auxiliary classifier: [3x3 conv]* -> average pool -> linear (zero-initialised)."""

    def __init__(self, channels: int, res: int, num_classes: int, spec: HeadSpec, act: str = "leaky_relu") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(spec.aux_convs):
            layers += _conv_bn_act(channels, channels, act=act)
        h, w = decoder_size(channels, res, spec.dim_in_decoder)
        layers += [nn.AdaptiveAvgPool2d((h, w)), Flatten()]
        self.net = nn.Sequential(*layers, _zero_linear(channels * h * w, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LocalUnit(nn.Module):
    """One locally trained unit: its body, its auxiliary heads, and nothing that depends on later units.

    An FC unit (the reference's LocalLossBlockLinear) is linear (with bias) -> BatchNorm1d -> activation, its first
    one after a pooling and a flattening; its heads are a zero-initialised linear classifier and, for similarity
    matching, a bias-free linear map of its features (the similarity of flat features has no std to take).
    """

    def __init__(
        self,
        plan: UnitPlan,
        schedule: Schedule,
        spec: HeadSpec,
        act: str = "leaky_relu",
        design: AuxDesign | None = None,
    ) -> None:
        super().__init__()
        self.plan = plan
        layers: list[nn.Module] = []
        cin = plan.cin
        if plan.stem:
            layers += _conv_bn_act(cin, plan.planes, act=act)
            cin = plan.planes
        if plan.kind != "part":  # a part pools inside itself, where its block's input is taken for the shortcut
            layers += _pool(plan.pool)
        self.sim: nn.Module | None
        if plan.kind == "fc":
            if plan.index == 0:
                layers.append(Flatten())
            layers += [nn.Linear(cin, plan.cout), nn.BatchNorm1d(plan.cout), activation_module(act)]
            self.body = nn.Sequential(*layers)
            self.pred: nn.Module = _zero_linear(plan.cout, schedule.num_classes)
            self.sim = nn.Linear(plan.cout, plan.cout, bias=False) if spec.sim else None
            return
        if plan.kind == "part":
            layers.append(ConvPart(plan, act))
        elif plan.kind in ("conv", "stem"):
            layers += _conv_bn_act(cin, plan.cout, plan.stride, act, plan.bias, plan.kernel)
        elif schedule.block == "basic":
            layers.append(BasicBlock(cin, plan.planes, plan.stride, act))
        else:
            layers.append(Bottleneck(cin, plan.planes, plan.stride, act))
        self.body = nn.Sequential(*layers)
        if design is not None:  # a later method's auxiliary network (drawn after the body: the body is unchanged)
            self.pred = build_aux(design)
            self.sim = None
            return
        self.pred = PredHead(plan.cout, plan.res_out, schedule.num_classes, spec, act)
        self.sim = nn.Conv2d(plan.cout, plan.cout, 3, padding=1, bias=False) if spec.sim else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.carry(x, self.body(x))

    def carry(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """What the unit passes on, given its input x and its features h (dropped out in training): h, except for a
        block's convolution before the last (`ConvPart.carry`)."""
        if self.plan.kind != "part":
            return h
        return cast(ConvPart, self.body[-1]).carry(x, h)


class LocalNet(nn.Module):
    """The units in order plus the output classifier (global average pool -> linear).

    `forward` is plain inference through the backbone; training is the trainer's business. `activation` is every
    unit's nonlinearity; `zero_init_output` zeroes the output layer's weight after it is drawn (the reference's
    initialisation: the bias keeps its draw).
    """

    def __init__(
        self,
        schedule: Schedule,
        spec: HeadSpec,
        seed: int,
        activation: str = "leaky_relu",
        zero_init_output: bool = False,
    ) -> None:
        super().__init__()
        self.schedule = schedule
        self.spec = spec
        units = []
        plans = unit_plan(schedule)
        designs = aux_designs(schedule, plans, spec.kind)
        for plan in plans:
            with seeded(derive_seed(seed, "unit", plan.position)):
                design = None if designs is None else designs[plan.position]
                units.append(LocalUnit(plan, schedule, spec, activation, design))
        self.units = nn.ModuleList(units)
        with seeded(derive_seed(seed, "output")):
            linear = nn.Linear(schedule.final_width, schedule.num_classes)
            if zero_init_output:
                nn.init.zeros_(linear.weight)
            # After FC units the output layer reads their features; else the global average of the last stage's.
            pooling = [] if schedule.fc_units else [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            self.classifier = nn.Sequential(*pooling, linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.units:
            x = unit(x)
        return self.classifier(x)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        for unit in self.units:
            yield from cast(nn.Module, unit.body).parameters()
        yield from self.classifier.parameters()


def build_network(
    schedule: Schedule,
    head: HeadSpec | None = None,
    seed: int = 0,
    *,
    activation: str = "leaky_relu",
    zero_init_output: bool = False,
) -> LocalNet:
    """The network a schedule makes, every unit initialised from its own (seed, position) stream."""
    return LocalNet(schedule, head or HeadSpec(), seed, activation, zero_init_output)


# --------------------------------------------------------------------------- the later methods' auxiliary networks


class _Upsample(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=[self.size, self.size], mode="bilinear", align_corners=True)


def _modules(ops: tuple[Op, ...]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for op in ops:
        kind = op[0]
        if kind == "pool":
            layers.append(nn.AdaptiveAvgPool2d((op[1], op[2])))
        elif kind == "conv":
            _, cin, cout, k, stride, _, bias, bn, act = op
            layers.append(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias))
            layers += [nn.BatchNorm2d(cout)] if bn else []
            layers += [nn.ReLU()] if act else []
        elif kind == "flatten":
            layers.append(Flatten())
        elif kind == "linear":
            _, fin, fout, bias, bn, act = op
            layers.append(nn.Linear(fin, fout, bias=bias))
            layers += [nn.BatchNorm1d(fout)] if bn else []
            layers += [nn.ReLU()] if act else []
        elif kind == "block":
            _, block, cin, planes, stride, _, _ = op
            layers.append((BasicBlock if block == "basic" else Bottleneck)(cin, planes, stride, "relu"))
        elif kind == "bn1d":
            layers.append(nn.BatchNorm1d(op[1]))
        elif kind == "upsample":
            layers.append(_Upsample(op[1]))
        elif kind == "sigmoid":
            layers.append(nn.Sigmoid())
        else:  # pragma: no cover - every design above uses the kinds listed
            raise ValueError(f"unknown auxiliary layer {kind!r}")
    return layers


class AuxNet(nn.Module):
    """A unit's auxiliary network: `forward` gives the classifier's logits; `decoder` (InfoPro) reconstructs the
    input image. `weights` = (reconstruction, classification) of its loss (plain data, not in the state dict)."""

    def __init__(self, design: AuxDesign) -> None:
        super().__init__()
        self.classifier = nn.Sequential(*_modules(design.classifier))
        self.decoder = nn.Sequential(*_modules(design.decoder)) if design.decoder else None
        self.weights = design.weights
        if design.he_init:  # their ResNets' initialisation, applied to every conv of the model (heads included)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                    m.weight.data.normal_(0, math.sqrt(2.0 / fan_out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(h)


def build_aux(design: AuxDesign) -> AuxNet:
    return AuxNet(design)
