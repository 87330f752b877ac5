"""Pure builders: a `Schedule` (+ `HeadSpec`) becomes a network of locally trained units, and its analytic cost.

The structure is derived once (`unit_plan`) and both the builder and `complexity()` read it, so counts can be
pinned by tests against the real modules, torchvision and `FlopCounterMode`.

Each unit is initialised from its own seed derived from (seed, unit position) and a unit's body depends only
on its own position, never on what comes after it: two schedules that share a prefix build that prefix
identically. That is what makes exact prefix sharing possible; keep it so. A unit's head depends on its plan alone
too, except for two later methods' (`_aux`): an AugLocal head copies later units and InfoPro's loss weights follow
the unit's place among all; `unit_keys` names what makes a unit the same in two networks, heads included.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ._aux import AuxDesign, aux_cost, aux_designs, build_aux
from ._schedule import Schedule

LEAKY_SLOPE = 0.01  # Section V: leaky-ReLU with negative slope 0.01 (Noekland & Eidnes)


def activation_module(kind: str = "leaky_relu") -> nn.Module:
    """The nonlinearity of every unit: leaky_relu (slope LEAKY_SLOPE, Section V) or relu (the reference's default)."""
    if kind == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE)
    if kind == "relu":
        return nn.ReLU()
    raise ValueError(f"unknown activation {kind!r}: choose leaky_relu or relu")


@dataclass(frozen=True)
class HeadSpec:
    """The auxiliary classifier every unit carries (paper Eq. 2).

    `pred`: `aux_convs` 3x3 convs, average pooling until C*h*w <= `dim_in_decoder`, a zero-initialised linear
    layer (Noekland & Eidnes). `sim`: a 3x3 C->C conv whose per-channel spatial std feeds similarity matching.
    `kind`: local-loss (those) or a later method's auxiliary network (`_aux`: dgl, infopro, auglocal).
    """

    sim: bool = True
    aux_convs: int = 0
    dim_in_decoder: int = 2048
    kind: str = "local-loss"


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed for one component, stable across processes and Python versions."""
    text = repr((int(seed),) + tuple(keys)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & (2**63 - 1)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw parameter initialisations from `seed` without touching the caller's global RNG.

    Modules are built on the CPU, so only the CPU generator is seeded (and restored): `torch.manual_seed` would also
    reseed every CUDA device's default generator, which `fork_rng(devices=[])` does not restore.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


@dataclass(frozen=True)
class UnitPlan:
    """Where a unit sits and what it maps: enough to build it and to count it."""

    position: int  # 0-based index in training order
    stage: int  # FC units: len(hierarchy), one past the last stage
    index: int  # index within its stage
    stem: bool  # the resnet stem is trained with the first unit
    pool: str | None  # "maxpool"/"avgpool" applied before the unit (first unit of a later stage, first FC unit)
    stride: int
    cin: int  # channels in (FC units: input features, flattened for the first)
    cout: int  # channels the unit emits
    planes: int  # the unit's width (bottleneck inner width)
    res_in: int
    res_out: int  # FC units: 1
    # conv (a vgg conv) | block (a residual block) | fc (a hidden fully connected unit) | stem (the resnet stem as
    # a unit of its own) | part (one convolution of a residual block, with --local-unit conv)
    kind: str = "conv"
    bias: bool = False  # its conv (vgg) carries a bias
    # Parts only: which convolution of its block (0-based) and how many the block has; the channels of the block's
    # input carried beside the features into parts after the first (0: none); whether the block's last part adds
    # a 1x1 conv shortcut (else the identity).
    part: int = 0
    parts: int = 1
    skip: int = 0
    shortcut: bool = False
    kernel: int = 3  # its conv's kernel size (1 for a bottleneck's 1x1 parts, 7 for a vgg's 7x7s2 first conv)


def unit_plan(schedule: Schedule) -> list[UnitPlan]:
    """The units of a schedule in training order (convolutional, then FC); unit j depends on units < j only."""
    assert schedule.widths is not None
    plans: list[UnitPlan] = []
    resolutions = schedule.resolutions
    cin = schedule.in_channels
    res = schedule.input_size
    position = 0
    kind = "conv" if schedule.family == "vgg" else "block"
    per_conv = schedule.local_unit == "conv"
    if per_conv:  # the stem is a unit of its own
        width = schedule.unit_width(0, 0)
        plans.append(UnitPlan(0, 0, 0, False, None, 1, cin, width, width, res, res, "stem"))
        cin, position = width, 1
    for stage, depth in enumerate(schedule.hierarchy):
        for index in range(depth):
            width = schedule.unit_width(stage, index)
            cout = width * schedule.expansion
            downsampling = stage > 0 and index == 0
            pool = schedule.downsample if downsampling and schedule.downsample != "conv" else None
            stride = 2 if downsampling and schedule.downsample == "conv" else 1
            res_out = resolutions[stage]
            if per_conv:
                plans += _block_parts(schedule, position, stage, index, pool, stride, cin, width, res, res_out)
                position = plans[-1].position + 1
                cin, res = cout, res_out
                continue
            stem = schedule.family == "resnet" and position == 0
            kernel = 3
            if position == 0 and schedule.first_conv == "7x7s2":
                kernel, stride = 7, 2
            plans.append(
                UnitPlan(
                    position, stage, index, stem, pool, stride, cin, cout, width, res, res_out, kind,
                    schedule.conv_bias, kernel=kernel,
                )
            )  # fmt: skip
            cin, res = cout, res_out
            position += 1
    pool = schedule.downsample if schedule.downsample != "conv" else "avgpool"
    for index, width in enumerate(schedule.fc_units):
        first = index == 0
        fc_in = schedule.fc_input if first else cin
        plans.append(
            UnitPlan(
                position, schedule.stages, index, False, pool if first else None, 1, fc_in, width, width,
                res if first else 1, 1, "fc",
            )
        )  # fmt: skip
        cin = width
        position += 1
    return plans


def _block_parts(
    schedule: Schedule, position: int, stage: int, index: int, pool: str | None, stride: int, cin: int, planes: int,
    res_in: int, res_out: int,
) -> list[UnitPlan]:  # fmt: skip
    """The convolutions of one residual block as units (`local_unit` conv), as the reference trains them: basic
    3x3 (strided) then 3x3; bottleneck 1x1, 3x3 (strided), 1x1 to 4x planes. A pooling before the block belongs to
    its first part; the block's (pooled) input rides beside the features to the last part, whose loss trains the
    shortcut, as in the reference (the shortcut's optimiser steps after the block's last conv's backward)."""
    bottleneck = schedule.block == "bottleneck"
    cout = planes * schedule.expansion
    shortcut = stride != 1 or cin != cout
    res_first = res_out if pool or not bottleneck else res_in  # a pooled block works at res_out from the start
    if bottleneck:  # (cin, cout, kernel, stride, res_out) of each conv
        shapes = [(cin, planes, 1, 1, res_first), (planes, planes, 3, stride, res_out), (planes, cout, 1, 1, res_out)]
        ins = [res_in, res_first, res_out]
    else:
        shapes = [(cin, planes, 3, stride, res_out), (planes, planes, 3, 1, res_out)]
        ins = [res_in, res_out]
    n = len(shapes)
    return [
        UnitPlan(
            position + p, stage, index, False, pool if p == 0 else None, s, c_in, c_out, planes, r_in, r_out, "part",
            part=p, parts=n, skip=0 if p == 0 else cin, shortcut=shortcut and p == n - 1, kernel=k,
        )
        for p, ((c_in, c_out, k, s, r_out), r_in) in enumerate(zip(shapes, ins))
    ]  # fmt: skip


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


def _decoder_size(channels: int, res: int, dim_in_decoder: int) -> tuple[int, int]:
    """Halve the pooled size until C*h*w fits the decoder, as local-loss does."""
    h = w = res
    while channels * h * w > dim_in_decoder and (h > 1 or w > 1):
        h = math.ceil(h / 2)
        if channels * h * w > dim_in_decoder:
            w = math.ceil(w / 2)
    return h, w


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
        h, w = _decoder_size(channels, res, spec.dim_in_decoder)
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


# ----------------------------------------------------------------------------------------------- complexity


@dataclass(frozen=True)
class StageInfo:
    units: int
    resolution: int
    width: int  # channels leaving the stage


@dataclass(frozen=True)
class Complexity:
    """Analytic cost of a schedule per image; FLOPs count a multiply and an add as 2 (FlopCounterMode's rule)."""

    params: int  # backbone + output classifier (what a deployed network holds)
    params_aux: int  # params + every unit's auxiliary heads
    flops: int  # forward, backbone + output classifier
    flops_aux: int  # forward including the auxiliary heads' convs and linears
    activations: int  # elements of every conv (and FC unit) output in the backbone (stem and shortcuts included)
    conv_layers: int  # weight layers as the paper counts them (stem + block convs, no shortcuts)
    unit_params: tuple[int, ...]  # body + heads, per unit: what each unit's optimizer holds
    unit_activations: tuple[int, ...]  # conv output elements per unit (body only)
    stages: tuple[StageInfo, ...]
    unit_head_params: tuple[int, ...] = ()  # per unit: its auxiliary network's (heads') parameters
    unit_head_flops: tuple[int, ...] = ()  # per unit: its auxiliary network's forward FLOPs per image


def _conv_cost(cin: int, cout: int, k: int, res_out: int, bias: bool = False) -> tuple[int, int, int]:
    """(params, flops, output elements) of a conv (bias-free unless `bias`) followed by BatchNorm."""
    params = k * k * cin * cout + (cout if bias else 0) + 2 * cout
    flops = 2 * k * k * cin * cout * res_out * res_out
    return params, flops, cout * res_out * res_out


def complexity(schedule: Schedule, head: HeadSpec | None = None) -> Complexity:
    """Count parameters, FLOPs and activations from the plan alone (no module is built)."""
    spec = head or HeadSpec()
    params = flops = acts = convs = 0
    head_params = head_flops = 0
    unit_params: list[int] = []
    unit_acts: list[int] = []
    per_head: list[tuple[int, int]] = []
    plans = unit_plan(schedule)
    designs = aux_designs(schedule, plans, spec.kind)
    for plan in plans:
        if plan.kind == "fc":  # linear with bias + BatchNorm1d; heads: linear classifier, bias-free linear map
            u_params, u_flops = plan.cin * plan.cout + plan.cout + 2 * plan.cout, 2 * plan.cin * plan.cout
            h_params = plan.cout * schedule.num_classes + schedule.num_classes + (plan.cout**2 if spec.sim else 0)
            h_flops = 2 * plan.cout * schedule.num_classes + (2 * plan.cout**2 if spec.sim else 0)
            params, flops, acts = params + u_params, flops + u_flops, acts + plan.cout
            head_params, head_flops = head_params + h_params, head_flops + h_flops
            unit_params.append(u_params + h_params)
            unit_acts.append(plan.cout)
            per_head.append((h_params, h_flops))
            continue
        costs: list[tuple[int, int, int]] = []
        res_block_in = plan.res_in if plan.pool is None else plan.res_out
        cin = plan.cin
        if plan.stem:
            costs.append(_conv_cost(cin, plan.planes, 3, plan.res_in))
            cin = plan.planes
            convs += 1
        if plan.kind in ("conv", "stem"):
            costs.append(_conv_cost(cin, plan.cout, plan.kernel, plan.res_out, plan.bias))
            convs += 1
        elif plan.kind == "part":
            costs.append(_conv_cost(cin, plan.cout, plan.kernel, plan.res_out))
            if plan.shortcut:
                costs.append(_conv_cost(plan.skip, plan.cout, 1, plan.res_out))
            convs += 1
        elif schedule.block == "basic":
            costs += [
                _conv_cost(cin, plan.planes, 3, plan.res_out),
                _conv_cost(plan.planes, plan.planes, 3, plan.res_out),
            ]
            convs += 2
        else:
            costs += [
                _conv_cost(cin, plan.planes, 1, res_block_in),
                _conv_cost(plan.planes, plan.planes, 3, plan.res_out),
                _conv_cost(plan.planes, plan.cout, 1, plan.res_out),
            ]
            convs += 3
        if plan.kind == "block" and (plan.stride != 1 or cin != plan.cout):
            costs.append(_conv_cost(cin, plan.cout, 1, plan.res_out))
        u_params = sum(c[0] for c in costs)
        u_flops = sum(c[1] for c in costs)
        u_acts = sum(c[2] for c in costs)
        # Auxiliary heads.
        h_params, h_flops = _head_cost(plan, schedule, spec) if designs is None else aux_cost(designs[plan.position])
        per_head.append((h_params, h_flops))
        params, flops, acts = params + u_params, flops + u_flops, acts + u_acts
        head_params, head_flops = head_params + h_params, head_flops + h_flops
        unit_params.append(u_params + h_params)
        unit_acts.append(u_acts)
    last = schedule.final_width
    params += last * schedule.num_classes + schedule.num_classes
    flops += 2 * last * schedule.num_classes
    stages = tuple(StageInfo(d, r, w) for d, r, w in zip(schedule.hierarchy, schedule.resolutions, schedule.out_widths))
    return Complexity(
        params=params,
        params_aux=params + head_params,
        flops=flops,
        flops_aux=flops + head_flops,
        activations=acts,
        conv_layers=convs,
        unit_params=tuple(unit_params),
        unit_activations=tuple(unit_acts),
        stages=stages,
        unit_head_params=tuple(p for p, _ in per_head),
        unit_head_flops=tuple(f for _, f in per_head),
    )


def _head_cost(plan: UnitPlan, schedule: Schedule, spec: HeadSpec) -> tuple[int, int]:
    """(parameters, FLOPs) of a convolutional unit's local-loss heads: [3x3 convs,] pooled linear, [sim conv]."""
    h_params = h_flops = 0
    c, r = plan.cout, plan.res_out
    for _ in range(spec.aux_convs):
        p, f, _ = _conv_cost(c, c, 3, r)
        h_params, h_flops = h_params + p, h_flops + f
    dh, dw = _decoder_size(c, r, spec.dim_in_decoder)
    h_params += c * dh * dw * schedule.num_classes + schedule.num_classes
    h_flops += 2 * c * dh * dw * schedule.num_classes
    if spec.sim:
        h_params += 9 * c * c
        h_flops += 2 * 9 * c * c * r * r
    return h_params, h_flops


def head_descriptions(schedule: Schedule, head: HeadSpec | None = None) -> list[str]:
    """Each unit's auxiliary network in words (what `lwl-inspect` prints beside its cost)."""
    spec = head or HeadSpec()
    plans = unit_plan(schedule)
    designs = aux_designs(schedule, plans, spec.kind)
    if designs is not None:
        return [d.describe() for d in designs]
    out = []
    for plan in plans:
        c, k = plan.cout, schedule.num_classes
        if plan.kind == "fc":
            out.append(f"linear {c}->{k}" + (f"; sim: linear {c}->{c}" if spec.sim else ""))
            continue
        dh, dw = _decoder_size(c, plan.res_out, spec.dim_in_decoder)
        convs = f"{spec.aux_convs}x conv3x3 {c}->{c} bn act, " if spec.aux_convs else ""
        sim = f"; sim: conv3x3 {c}->{c}" if spec.sim else ""
        out.append(f"{convs}avgpool {dh}x{dw}, linear {c * dh * dw}->{k}{sim}")
    return out


def unit_keys(schedule: Schedule, head: HeadSpec | None = None) -> list[str]:
    """What makes unit j the same unit in two networks trained with one recipe, for prefix sharing: its plan and,
    for a head that depends on more than its own plan (AugLocal copies later units, InfoPro weighs its loss by the
    unit's place among all), its auxiliary network's design. Local-loss heads: the plan alone, as always."""
    spec = head or HeadSpec()
    plans = unit_plan(schedule)
    designs = aux_designs(schedule, plans, spec.kind)
    if designs is None:
        return [repr(p) for p in plans]
    return [repr((p, d)) for p, d in zip(plans, designs)]
