"""A schedule's units and their analytic cost, without building a module: plain arithmetic, no torch.

`unit_plan` derives the structure once; the builder (`_network`) and `complexity()` both read it, so counts can be
pinned by tests against the real modules, torchvision and `FlopCounterMode`. `lwl-inspect`, the search's cost
limits and objectives, `lwl-export` and `lwl-report` count from here and never import torch.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from ._aux import aux_cost, aux_designs
from ._errors import TooLargeError
from ._schedule import Schedule


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


def decoder_size(channels: int, res: int, dim_in_decoder: int) -> tuple[int, int]:
    """Halve the pooled size until C*h*w fits the decoder, as local-loss does."""
    h = w = res
    while channels * h * w > dim_in_decoder and (h > 1 or w > 1):
        h = math.ceil(h / 2)
        if channels * h * w > dim_in_decoder:
            w = math.ceil(w / 2)
    return h, w


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
    dh, dw = decoder_size(c, r, spec.dim_in_decoder)
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
        dh, dw = decoder_size(c, plan.res_out, spec.dim_in_decoder)
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


# More units than this is far beyond any network trained here, and counting its costs would take long.
MAX_UNITS = 100_000


def check_units(units: int) -> None:
    """Refuse a network of more than MAX_UNITS units before its costs are counted (that takes time per unit)."""
    if units > MAX_UNITS:
        raise TooLargeError(
            f"a network of {units:,} units: at most {MAX_UNITS:,} can be trained: use a smaller hierarchy or --budget"
        )


__all__ = [
    "MAX_UNITS",
    "Complexity",
    "HeadSpec",
    "StageInfo",
    "UnitPlan",
    "check_units",
    "complexity",
    "decoder_size",
    "derive_seed",
    "head_descriptions",
    "unit_keys",
    "unit_plan",
]
