"""Auxiliary networks of later layer-wise methods: DGL, InfoPro and AugLocal heads, described once and then built and
counted from that description.

Each unit's head is an `AuxDesign`: a tuple of layer descriptions (`ops`) for the classifier and, for InfoPro, the
reconstruction decoder, with the weights of its two losses. The builder (`_network.build_aux`, torch) and the cost
counter (`aux_cost`, here: no torch) read the same description, so parameter and FLOP counts cannot drift from the
modules; the design's `repr` is also what the prefix-sharing key adds for a unit (`_plan.unit_keys`), because an
AugLocal head (and InfoPro's loss weights) depend on the units after it.

Re-derived from the authors' code (not copied):

- DGL (Belilovsky et al., ICML 2020; eugenium/DGL, auxiliary_nets_study, its CIFAR default `mlp-sr`): average-pool
  the unit's output to ceil(r/4) a side, three 1x1 conv -> BatchNorm -> ReLU at the unit's width, average-pool to
  2x2, flatten, three linear (with bias) -> BatchNorm1d -> ReLU of 4C features, a linear classifier. PyTorch's
  default initialisation.
- InfoPro (Wang et al., ICLR 2021; blackfeather-wang/InfoPro-Pytorch): the decoder upsamples bilinearly
  (align_corners) to the input size, conv 3x3 (bias) to 12 -> BatchNorm -> ReLU, conv 3x3 (bias) to the image's
  channels, sigmoid; its loss is the binary cross-entropy against the un-normalised image. The classifier is their
  `1c2f`: conv 3x3 (stride 2 and twice the width before the last stage's width, else stride 1) -> BatchNorm -> ReLU,
  global average, linear to 128 -> ReLU, linear to the classes, with their cross-entropy loss mode. The loss of
  unit j of n is lambda1 * reconstruction + lambda2 * cross-entropy, both moving linearly from the first unit's
  values to the last's (ratio j / (n - 1)); the values are the ones their commands set for ResNet-32 with one local
  module per block (5, 0.05 -> 0.2, 0.5). Convolutions He-normal (fan out), BatchNorm 1/0.
- AugLocal (Ma et al., ICLR 2024; ChenxiangMA/AugLocal, `unifSamp`): unit j's head copies, as fresh layers, a
  uniformly spaced subset of the later units j+1..n-1: every one of them when the depth reaches them, else
  round(j + (n - j - 1) / d * i) for i = 1..d. The depth shrinks with position (their pyramid rule):
  d_j = max(1, round(D (1 - j c / (n - 1)) + j c / (n - 1))) with D = 3 and c = 0.5 (their run.sh). A copied layer
  has the later unit's width and kind (a residual block of the network's block kind with ReLU, or for VGG a conv ->
  BatchNorm -> ReLU) and strides 2 where the backbone halved the resolution before it; then global average,
  (BatchNorm1d when d_j <= 1), linear. Convolutions He-normal (fan out), BatchNorm 1/0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import RecipeError

if TYPE_CHECKING:
    from ._plan import UnitPlan
    from ._schedule import Schedule

AUX_NETS = ("local-loss", "dgl", "infopro", "auglocal")
# DGL's mlp-sr (eugenium/DGL auxiliary_nets_study/models.py): pool to ceil(r / 4), 3 1x1 convs, 2x2, a 3-layer MLP.
DGL_REDUCTION = 4
DGL_CONVS = 3
DGL_MLP_LAYERS = 3
DGL_MAP = 2
# InfoPro: decoder width 12, classifier hidden width 128 (--aux_net_feature_dim 128), and the loss weights
# (lambda1 = ixx, lambda2 = ixy) at the first and at the last unit, as their ResNet-32, K = 16 command sets them.
INFOPRO_DECODER_WIDTH = 12
INFOPRO_HIDDEN = 128
INFOPRO_WEIGHTS = {"ixx_1": 5.0, "ixy_1": 0.05, "ixx_2": 0.2, "ixy_2": 0.5}
# AugLocal: --aux_net_depth 3 --pyramid --pyramid_coeff 0.5 (their run.sh's middle setting).
AUGLOCAL_DEPTH = 3
AUGLOCAL_PYRAMID = 0.5

Op = tuple[Any, ...]


@dataclass(frozen=True)
class AuxDesign:
    """One unit's auxiliary network: classifier ops, decoder ops (InfoPro) and the weights of (reconstruction,
    classification) in its loss."""

    kind: str
    classifier: tuple[Op, ...]
    decoder: tuple[Op, ...] = ()
    weights: tuple[float, float] = (0.0, 1.0)
    he_init: bool = False
    samples: tuple[int, ...] = ()  # AugLocal: the positions of the later units its layers copy

    def describe(self) -> str:
        """One line: 'pool 2x2, 3x conv1x1 16, ...'."""
        text = ", ".join(_op_text(op) for op in self.classifier)
        if self.decoder:
            text += f"; decoder: {', '.join(_op_text(op) for op in self.decoder)}"
            text += f"; loss {self.weights[0]:.3g} x BCE + {self.weights[1]:.3g} x CE"
        if self.samples:
            text += f" (copies units {','.join(str(s + 1) for s in self.samples)})"
        return text


def _op_text(op: Op) -> str:
    kind = op[0]
    if kind == "pool":
        return f"avgpool {op[1]}x{op[2]}"
    if kind == "conv":
        _, cin, cout, k, stride, _, _, bn, act = op
        return f"conv{k}x{k}{'/2' if stride == 2 else ''} {cin}->{cout}{' bn' if bn else ''}{' relu' if act else ''}"
    if kind == "linear":
        _, fin, fout, _, bn, act = op
        return f"linear {fin}->{fout}{' bn' if bn else ''}{' relu' if act else ''}"
    if kind == "block":
        _, block, cin, planes, stride, _, _ = op
        return f"{block}{'/2' if stride == 2 else ''} {cin}->{planes}"
    if kind == "bn1d":
        return f"bn {op[1]}"
    if kind == "upsample":
        return f"bilinear {op[1]}x{op[1]}"
    return str(kind)


def check_aux(schedule: Schedule, kind: str) -> None:
    """Refuse, in one line, a network whose units a head kind cannot serve."""
    if kind not in AUX_NETS:
        raise RecipeError(f"unknown aux_net {kind!r}: choose one of {', '.join(AUX_NETS)}")
    if kind == "local-loss":
        return
    if schedule.fc_units:
        raise RecipeError(
            f"--aux-net {kind} serves convolutional units only: use --fc-units none (or --aux-net local-loss)"
        )
    if kind == "auglocal" and schedule.local_unit == "conv":
        raise RecipeError("--aux-net auglocal copies whole later units: use --local-unit block with it")


def aux_designs(schedule: Schedule, plans: list[UnitPlan], kind: str) -> list[AuxDesign] | None:
    """Every unit's auxiliary network for head kind `kind` (None: the local-loss heads of `_network`)."""
    check_aux(schedule, kind)
    if kind == "local-loss":
        return None
    n = len(plans)
    if kind == "dgl":
        return [_dgl(p, schedule.num_classes) for p in plans]
    if kind == "infopro":
        return [_infopro(p, j, n, schedule) for j, p in enumerate(plans)]
    return [_auglocal(plans, j, schedule) for j in range(n)]


def _dgl(plan: UnitPlan, classes: int) -> AuxDesign:
    c, s = plan.cout, math.ceil(plan.res_out / DGL_REDUCTION)
    feat = c * DGL_MAP * DGL_MAP
    ops: list[Op] = [("pool", s, s)]
    ops += [("conv", c, c, 1, 1, s, False, True, True)] * DGL_CONVS
    ops += [("pool", DGL_MAP, DGL_MAP), ("flatten",)]
    ops += [("linear", feat, feat, True, True, True)] * DGL_MLP_LAYERS
    ops.append(("linear", feat, classes, True, False, False))
    return AuxDesign("dgl", tuple(ops))


def infopro_weights(j: int, n: int) -> tuple[float, float]:
    """(lambda1, lambda2) of unit j of n: linear from the first unit's to the last's, as their ratio j / (K - 2)."""
    r = j / (n - 1) if n > 1 else 0.0
    w = INFOPRO_WEIGHTS
    return (w["ixx_1"] * (1 - r) + w["ixx_2"] * r, w["ixy_1"] * (1 - r) + w["ixy_2"] * r)


def _infopro(plan: UnitPlan, j: int, n: int, schedule: Schedule) -> AuxDesign:
    c, r, last = plan.cout, plan.res_out, schedule.final_width
    stride = 2 if c < last else 1
    wide = min(2 * c, last) if c < last else c
    res = math.ceil(r / stride)
    classifier: tuple[Op, ...] = (
        ("conv", c, wide, 3, stride, res, False, True, True),
        ("pool", 1, 1),
        ("flatten",),
        ("linear", wide, INFOPRO_HIDDEN, True, False, True),
        ("linear", INFOPRO_HIDDEN, schedule.num_classes, True, False, False),
    )
    size, width = schedule.input_size, INFOPRO_DECODER_WIDTH
    decoder: tuple[Op, ...] = (
        ("upsample", size),
        ("conv", c, width, 3, 1, size, True, True, True),
        ("conv", width, schedule.in_channels, 3, 1, size, True, False, False),
        ("sigmoid",),
    )
    return AuxDesign("infopro", classifier, decoder, infopro_weights(j, n), he_init=True)


def auglocal_depth(j: int, n: int) -> int:
    """Their pyramid rule: the depth of unit j's head shrinks from AUGLOCAL_DEPTH towards 1 along the network."""
    if n <= 1:
        return AUGLOCAL_DEPTH
    t = j * AUGLOCAL_PYRAMID / (n - 1)
    return max(1, round(AUGLOCAL_DEPTH * (1 - t) + t * 1))


def auglocal_samples(j: int, n: int, depth: int) -> list[int]:
    """The later units unit j's head copies: all of them when `depth` reaches them, else uniformly spaced."""
    if depth >= n - 1 - j:
        return list(range(j + 1, n))
    return [round(j + (n - j - 1) / depth * i) for i in range(1, depth + 1)]


def _halvings(res: int, target: int) -> int:
    count = 0
    while res > target:
        res, count = math.ceil(res / 2), count + 1
    return count


def _auglocal(plans: list[UnitPlan], j: int, schedule: Schedule) -> AuxDesign:
    n = len(plans)
    depth = auglocal_depth(j, n)
    samples = auglocal_samples(j, n, depth)
    cin, res, backbone_res, owed = plans[j].cout, plans[j].res_out, plans[j].res_out, 0
    ops: list[Op] = []
    for k in samples:
        p = plans[k]
        owed += _halvings(backbone_res, p.res_out)
        backbone_res = p.res_out
        stride = 1
        if owed >= 1:
            stride, owed = 2, owed - 1
        prev, res = res, math.ceil(res / stride)
        if schedule.family == "resnet":
            ops.append(("block", schedule.block, cin, p.planes, stride, prev, res))
        else:
            ops.append(("conv", cin, p.cout, 3, stride, res, False, True, True))
        cin = p.cout
    ops += [("pool", 1, 1), ("flatten",)]
    if depth <= 1:
        ops.append(("bn1d", cin))
    ops.append(("linear", cin, schedule.num_classes, True, False, False))
    return AuxDesign("auglocal", tuple(ops), he_init=True, samples=tuple(samples))


# ----------------------------------------------------------------------------------------------- cost


def _ops_cost(ops: tuple[Op, ...]) -> tuple[int, int]:
    """(parameters, forward FLOPs per image) of `ops`: convolutions and linear layers count FLOPs (2 per
    multiply-add, as FlopCounterMode), BatchNorm only parameters; pooling, upsampling and activations nothing."""
    params = flops = 0
    for op in ops:
        kind = op[0]
        if kind == "conv":
            _, cin, cout, k, _, res, bias, bn, _ = op
            params += k * k * cin * cout + (cout if bias else 0) + (2 * cout if bn else 0)
            flops += 2 * k * k * cin * cout * res * res
        elif kind == "linear":
            _, fin, fout, bias, bn, _ = op
            params += fin * fout + (fout if bias else 0) + (2 * fout if bn else 0)
            flops += 2 * fin * fout
        elif kind == "bn1d":
            params += 2 * op[1]
        elif kind == "block":
            _, block, cin, planes, stride, res_in, res = op
            convs = (
                [(cin, planes, 3), (planes, planes, 3)]
                if block == "basic"
                else [(cin, planes, 1), (planes, planes, 3), (planes, 4 * planes, 1)]
            )
            cout = convs[-1][1]
            if stride != 1 or cin != cout:
                convs.append((cin, cout, 1))
            for i, (a, b, k) in enumerate(convs):
                r = res_in if block == "bottleneck" and i == 0 else res  # a bottleneck's first 1x1 runs unstrided
                params += k * k * a * b + 2 * b
                flops += 2 * k * k * a * b * r * r
    return params, flops


def aux_cost(design: AuxDesign) -> tuple[int, int]:
    """(parameters, forward FLOPs per image) of a unit's auxiliary network, decoder included."""
    p1, f1 = _ops_cost(design.classifier)
    p2, f2 = _ops_cost(design.decoder)
    return p1 + p2, f1 + f2


__all__ = [
    "AUGLOCAL_DEPTH",
    "AUGLOCAL_PYRAMID",
    "AUX_NETS",
    "INFOPRO_WEIGHTS",
    "AuxDesign",
    "aux_cost",
    "aux_designs",
    "auglocal_depth",
    "auglocal_samples",
    "check_aux",
    "infopro_weights",
]
