"""The one description of a network: a hierarchy list plus what turns it into layers.

Everything downstream (builders, complexity, trainer, the search, exported configs) is a pure function of a
`Schedule`, so it is frozen, hashable and validated when it is made: a bad schedule never reaches training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ._errors import ScheduleError
from ._fields import Choice, Flag, Maybe, Range, Spec, apply_specs

FAMILIES = ("vgg", "resnet")
BLOCKS = ("basic", "bottleneck")
DOWNSAMPLES = ("maxpool", "avgpool", "conv")
# What one local loss trains in the resnet family: a residual block (the paper's unit count) or each convolution,
# as the reference code (its stem its own unit, a block's shortcut trained by the block's last conv's loss).
LOCAL_UNITS = ("block", "conv")
# The first conv of a vgg: 3x3 (stride 1), or 7x7 with stride 2 as the reference's VGGs take inputs over 64 pixels.
FIRST_CONVS = ("3x3", "7x7s2")

# VGG's widths per stage (Simonyan & Zisserman); stages beyond the fifth stay at 512.
_VGG_WIDTHS = (64, 128, 256, 512, 512)


@dataclass(frozen=True)
class Schedule:
    """A hierarchy list and the family that turns it into a network.

    `hierarchy[i]` is the number of locally trained units in stage i; a downsampling separates stages. A unit is
    one 3x3 conv (+BN, activation, dropout) for `vgg` and one residual block for `resnet`, as the paper counts.
    Defaults left as None are filled from the family (widths doubling from 64 for resnet, VGG's for vgg;
    max-pool for vgg, the strided first block for resnet).

    Hidden FC units (`fc_units`, the reference's `--num-layers`/`--num-hidden`) come after the last stage and are
    not in the hierarchy list: the list counts convolutional units per stage, as the paper's Tables do for VGG8,
    VGG11, VGG16 and VGG19 (Table I writes VGG8b's FC unit as a fifth entry, [2,2,1,1,1]; Table II leaves it out).
    The search varies the list only; FC units and widths are fixed for a study.
    """

    hierarchy: tuple[int, ...]
    family: str = "resnet"
    block: str = "basic"
    widths: tuple[int, ...] | None = None  # channels of each stage's units (leaving the stage); None: the family's
    num_classes: int = 10
    in_channels: int = 3
    input_size: int = 32
    downsample: str | None = None
    # Per stage, the widths of its first units when a stage widens inside itself (VGG8b: ((128,), (256,), (), ()),
    # i.e. 128,256 | 256,512 | 512 | 512); a stage's other units, and always its last, take its width in `widths`.
    # None: every unit of a stage has the stage's width.
    lead_widths: tuple[tuple[int, ...], ...] | None = None
    # Widths of the locally trained hidden FC units after the last stage (the reference's VGGs: (1024,)). Before the
    # first, the last stage's output is downsampled once more (max- or average-pooled as `downsample` says; average
    # for strided convs) and flattened, as the reference's trailing 'M'; the output layer then reads the last FC unit.
    fc_units: tuple[int, ...] = ()
    conv_bias: bool = False  # a bias in every VGG conv (the reference's; BatchNorm cancels it but it counts)
    local_unit: str = "block"  # resnet: block | conv (see LOCAL_UNITS); the hierarchy counts blocks either way
    first_conv: str = "3x3"  # vgg: 3x3 | 7x7s2 (see FIRST_CONVS): the reference's for inputs over 64 pixels
    # Multiplies every width (stages' and lead widths) where the network is built, rounded half up, at least 1;
    # `widths` keep the widths given (--widths), `unit_width` and `out_widths` are the built network's.
    width_mult: float = 1.0

    def __post_init__(self) -> None:
        hierarchy = _as_int_tuple(self.hierarchy, "hierarchy")
        object.__setattr__(self, "hierarchy", hierarchy)
        if not hierarchy:
            raise ScheduleError("empty hierarchy: give at least one stage, e.g. --hierarchy 1,1,2,4")
        bad = [d for d in hierarchy if d <= 0]
        if bad:
            raise ScheduleError(
                f"hierarchy {list(hierarchy)} has non-positive entries {bad}: every stage needs at least one unit"
            )
        apply_specs(self, SCHEDULE_FIELDS, ScheduleError)
        if self.family == "vgg" and self.block != "basic":
            raise ScheduleError(f"block {self.block!r} applies to the resnet family only: drop --block for vgg")
        downsample = self.downsample or ("maxpool" if self.family == "vgg" else "conv")
        object.__setattr__(self, "downsample", downsample)
        n = len(hierarchy)
        if self.widths is None:
            if self.family == "resnet":
                widths = tuple(64 * 2**i for i in range(n))
            else:
                widths = tuple(_VGG_WIDTHS[min(i, len(_VGG_WIDTHS) - 1)] for i in range(n))
        else:
            widths = _as_int_tuple(self.widths, "widths")
        if len(widths) != n or any(w <= 0 for w in widths):
            raise ScheduleError(
                f"widths {list(widths)} do not fit {n} stages: give {n} positive widths, one per stage", "widths"
            )
        object.__setattr__(self, "widths", widths)
        if self.lead_widths is not None:
            if not isinstance(self.lead_widths, (list, tuple)):
                raise ScheduleError(
                    f"lead widths must be one list per stage, got {self.lead_widths!r}: e.g. [[128], [256], [], []]",
                    "lead_widths",
                )
            lead = tuple(_as_int_tuple(stage, "lead widths") for stage in self.lead_widths)
            if len(lead) != n or any(w <= 0 for stage in lead for w in stage):
                raise ScheduleError(
                    f"widths within stages {[list(t) for t in lead]} do not fit {n} stages: give positive widths, "
                    "e.g. --widths 128:256,256:512,512,512",
                    "lead_widths",
                )
            object.__setattr__(self, "lead_widths", lead if any(lead) else None)
        fc_units = _as_int_tuple(self.fc_units, "fc_units")
        if any(w <= 0 for w in fc_units):
            raise ScheduleError(
                f"FC units {list(fc_units)} must have positive widths, e.g. --fc-units 1024 (none: no FC unit)",
                "fc_units",
            )
        object.__setattr__(self, "fc_units", fc_units)
        if self.conv_bias and self.family != "vgg":
            raise ScheduleError(
                "conv bias applies to the vgg family only (the reference's ResNets have none)", "conv_bias"
            )
        if self.local_unit != "block" and self.family != "resnet":
            raise ScheduleError(
                "--local-unit applies to the resnet family only (a vgg unit is one conv already)", "local_unit"
            )
        if self.first_conv != "3x3" and self.family != "vgg":
            raise ScheduleError("--first-conv applies to the vgg family only (a resnet's stem is 3x3)", "first_conv")
        sizes = self.resolutions
        allowed = 1 + _max_downsamplings(sizes[0])  # halvings to 1x1 (floored), for any downsampling
        if n > allowed or any(s < 1 for s in sizes):
            raise ScheduleError(
                f"hierarchy {list(hierarchy)} needs {n - 1} downsamplings but a {self.input_size}x{self.input_size} "
                f"input allows at most {allowed - 1}: use at most {allowed} stages or a larger input"
            )
        if fc_units and sizes[-1] // 2 < 1:
            raise ScheduleError(
                f"FC units need one more downsampling after the last stage, but its feature maps are "
                f"{sizes[-1]}x{sizes[-1]}: use fewer stages, a larger input or no --fc-units",
                "fc_units",
            )

    @property
    def stages(self) -> int:
        return len(self.hierarchy)

    @property
    def units(self) -> int:
        """Locally trained units: the hierarchy's, each block's convolutions (2 basic, 3 bottleneck) and the stem
        with `local_unit` conv, and the FC units."""
        if self.local_unit == "conv":
            return 1 + sum(self.hierarchy) * (3 if self.block == "bottleneck" else 2) + len(self.fc_units)
        return sum(self.hierarchy) + len(self.fc_units)

    @property
    def expansion(self) -> int:
        return 4 if self.family == "resnet" and self.block == "bottleneck" else 1

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Feature-map side per stage: halved by every downsampling between stages, as the layer does it: a 2x2
        pooling floors (7 -> 3), a strided 3x3 convolution with padding 1 rounds up (7 -> 4), as does a 7x7 stride-2
        first conv (`first_conv`) before the first stage."""
        sizes = [(self.input_size + 1) // 2 if self.first_conv == "7x7s2" else self.input_size]
        for _ in range(len(self.hierarchy) - 1):
            sizes.append((sizes[-1] + 1) // 2 if self.downsample == "conv" else sizes[-1] // 2)
        return tuple(sizes)

    def scaled(self, width: int) -> int:
        """`width` times `width_mult`, rounded half up to a whole number of channels, at least 1."""
        return max(1, math.floor(width * self.width_mult + 0.5))

    @property
    def out_widths(self) -> tuple[int, ...]:
        """Channels leaving each stage (bottleneck blocks expand by 4)."""
        assert self.widths is not None
        return tuple(self.scaled(w) * self.expansion for w in self.widths)

    @property
    def fc_input(self) -> int:
        """Features the first FC unit reads: the last stage's channels at half its resolution, flattened."""
        side = self.resolutions[-1] // 2
        return self.out_widths[-1] * side * side

    @property
    def final_width(self) -> int:
        """What the output layer reads: the last FC unit's width, else the last stage's channels."""
        return self.fc_units[-1] if self.fc_units else self.out_widths[-1]

    def unit_width(self, stage: int, index: int) -> int:
        """The width (bottleneck: inner width) of unit `index` of `stage`: a lead width, or the stage's."""
        assert self.widths is not None
        lead = self.lead_widths[stage] if self.lead_widths else ()
        last = index == self.hierarchy[stage] - 1
        return self.scaled(lead[index] if index < len(lead) and not last else self.widths[stage])

    def unit_widths(self) -> tuple[tuple[int, ...], ...]:
        """Per stage, the width of each of its units (FC units not included)."""
        return tuple(tuple(self.unit_width(s, i) for i in range(d)) for s, d in enumerate(self.hierarchy))

    def widths_text(self) -> str:
        """The widths as --widths takes them: 64,128,256,512, or 128:256,256:512,512,512 where stages widen."""
        return format_widths(self.widths or (), self.lead_widths)

    def label(self) -> str:
        return "[" + ",".join(map(str, self.hierarchy)) + "]"

    def extras_text(self) -> str:
        """What is set beyond one width per stage, as commands print it: ' + FC 1024, conv bias', ', a local loss
        per conv'; '' for none."""
        phrases = extras_phrases(self.extras())
        fc = phrases.pop("fc_units", "")
        return (f" + {fc}" if fc else "") + "".join(f", {p}" for p in phrases.values())

    def summary(self) -> str:
        """'resnet basic [1,1,2,4]', 'vgg [2,2,1,1] + FC 1024, conv bias': the network in one phrase."""
        block = f" {self.block}" if self.family == "resnet" else ""
        return f"{self.family}{block} {self.label()}{self.extras_text()}"

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON takes them; those added later (lead widths, FC units, conv bias) only where set, so a
        schedule without them reads as it did before them."""
        data = asdict(self)
        data["hierarchy"] = list(self.hierarchy)
        data["widths"] = list(self.widths or ())
        for name in EXTRA_FIELDS:
            data.pop(name)
        data.update(self.extras())
        return data

    def extras(self) -> dict[str, Any]:
        """The fields added after the first schedules (lead widths, FC units, conv bias, local unit) that differ
        from their defaults, as JSON takes them: {} for one width per stage, no FC unit, no bias, block units."""
        out: dict[str, Any] = {}
        if self.lead_widths:
            out["lead_widths"] = [list(t) for t in self.lead_widths]
        if self.fc_units:
            out["fc_units"] = list(self.fc_units)
        if self.conv_bias:
            out["conv_bias"] = True
        if self.local_unit != "block":
            out["local_unit"] = self.local_unit
        if self.first_conv != "3x3":
            out["first_conv"] = self.first_conv
        if self.width_mult != 1:
            out["width_mult"] = self.width_mult
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ScheduleError(f"unknown schedule field(s) {unknown}: allowed are {sorted(known)}")
        return cls(**data)


# The values of each field that is one value (the lists, hierarchy and widths, are `__post_init__`'s: they take
# text as a flag gives it), declared once: `Schedule` applies them at construction, the config reader (`_config`)
# to a YAML file's schedule. What fields say together (a block or a local unit for resnet only, ...) is
# `__post_init__`'s.
SCHEDULE_FIELDS: dict[str, Spec] = {
    "family": Choice(FAMILIES),
    "block": Choice(BLOCKS),
    "num_classes": Range(int, 2),
    "in_channels": Range(int, 1),
    "input_size": Range(int, 1),
    "downsample": Maybe(Choice(DOWNSAMPLES)),  # None: the family's
    "conv_bias": Flag(),
    "local_unit": Choice(LOCAL_UNITS),
    "first_conv": Choice(FIRST_CONVS),
    "width_mult": Range(float, 0, low_open=True),
}
# Schedule fields stored only where they differ from their defaults (`Schedule.extras`).
EXTRA_FIELDS = ("lead_widths", "fc_units", "conv_bias", "local_unit", "first_conv", "width_mult")


def extras_phrases(fields: Mapping[str, Any]) -> dict[str, str]:
    """The network's fields beyond one width per stage that differ from their defaults (in `fields`: a schedule's
    `extras()`, its JSON or stored settings), each as every command and the report word it: {'fc_units': 'FC 1024',
    'conv_bias': 'conv bias', ...}; lead widths are the widths' own ('128:256,...')."""
    out: dict[str, str] = {}
    if fields.get("fc_units"):
        out["fc_units"] = f"FC {','.join(map(str, fields['fc_units']))}"
    if fields.get("conv_bias"):
        out["conv_bias"] = "conv bias"
    if fields.get("local_unit", "block") == "conv":
        out["local_unit"] = "a local loss per conv"
    if fields.get("first_conv", "3x3") == "7x7s2":
        out["first_conv"] = "a 7x7 stride-2 first conv"
    if fields.get("width_mult", 1) != 1:
        out["width_mult"] = f"widths x{fields['width_mult']:g}"
    return out


def parse_widths(text: str) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...] | None]:
    """'64,128,256,512' or '128:256,256:512,512,512' (a stage that widens inside itself: its units' widths joined
    by ':') as (stage widths, lead widths or None); see `Schedule.lead_widths`."""
    cleaned = text.strip().strip("[]()").replace(" ", "")
    stages = [part for part in cleaned.split(",") if part != ""]
    try:
        per_stage = [tuple(int(w) for w in part.split(":")) for part in stages]
    except ValueError:
        raise ScheduleError(
            f"widths {text!r} are not integers separated by commas (and ':' within a stage), e.g. 64,128,256,512 "
            "or 128:256,256:512,512,512"
        ) from None
    widths = tuple(t[-1] for t in per_stage)
    lead = tuple(t[:-1] for t in per_stage)
    return widths, (lead if any(lead) else None)


def format_widths(widths: Sequence[int], lead: Sequence[Sequence[int]] | None) -> str:
    """The inverse of `parse_widths`."""
    lead = lead or [()] * len(widths)
    return ",".join(":".join(map(str, (*stage, w))) for stage, w in zip(lead, widths))


def _as_int_tuple(values: Any, name: str) -> tuple[int, ...]:
    if isinstance(values, str):
        values = parse_int_list(values, name)
    try:
        items = tuple(values)
    except TypeError:
        raise ScheduleError(f"{name} must be a list of integers, got {values!r}") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ScheduleError(f"{name} must be a list of integers, got {list(items)!r}")
    return items


def parse_int_list(text: str, name: str = "hierarchy") -> tuple[int, ...]:
    """Parse '1,1,2,4' or '[1, 1, 2, 4]' as typed on a command line."""
    cleaned = text.strip().strip("[]()")
    try:
        return tuple(int(part) for part in cleaned.replace(" ", "").split(",") if part != "")
    except ValueError:
        raise ScheduleError(f"{name} {text!r} is not a comma-separated list of integers, e.g. 1,1,2,4") from None


def _max_downsamplings(size: int) -> int:
    count = 0
    while size // 2 >= 1:
        size //= 2
        count += 1
    return count


@dataclass(frozen=True)
class Preset:
    """A base network of the paper as the reference code builds it, with its published hierarchy, per-data-set
    learning rate and dropout, and the reference's training options for it."""

    name: str
    family: str
    block: str
    hierarchy: tuple[int, ...]
    widths: tuple[int, ...]
    lr: float
    dropout: dict[str, float] = field(default_factory=dict)
    note: str = ""
    lead_widths: tuple[tuple[int, ...], ...] | None = None  # see Schedule.lead_widths
    fc_units: tuple[int, ...] = ()  # see Schedule.fc_units
    conv_bias: bool = False
    local_unit: str = "block"  # the reference's ResNets: a local loss per convolution (see LOCAL_UNITS)

    def network_fields(self, input_size: int) -> dict[str, Any]:
        """Its Schedule fields beyond hierarchy and widths, at an input of `input_size` pixels a side: its FC units,
        conv bias and local unit, and for a VGG over 64 pixels (STL-10) the reference's 7x7 stride-2 first conv
        (its VGGn, train.py line 1372)."""
        first = "7x7s2" if self.family == "vgg" and input_size > 64 else "3x3"
        return dict(fc_units=self.fc_units, conv_bias=self.conv_bias, local_unit=self.local_unit, first_conv=first)

    # The reference's options for it (recipe fields), below the command line's: its Dropout2d on convolutions and
    # its zero-initialised output layer (train.py 723, 1014, 1241). Its CIFAR normalisation: `paper_recipe`.
    options: dict[str, object] = field(default_factory=lambda: dict(REFERENCE_PRESET_OPTIONS))


REFERENCE_PRESET_OPTIONS: dict[str, object] = {"dropout_kind": "channel", "zero_init_output": True}

# Tables I-VI of Ma et al. (2020): LR and DR columns; the networks as anokland/local-loss's train.py defines them
# (its `cfg` table, line 1271, with --num-layers 1 --num-hidden 1024 by default: one hidden FC-1024 unit after a
# trailing max-pool; convs with a bias, line 675). One row per network, as the paper's tables print them.
_VGG5 = (64, 128, 256, 512, 512)


def _vgg(name: str, hierarchy: tuple[int, ...], widths: tuple[int, ...], lr: float, dropout: dict[str, float],
         note: str, lead: tuple[tuple[int, ...], ...] | None = None) -> Preset:  # fmt: skip
    """A VGG of the reference: its convs with a bias, one hidden FC-1024 unit."""
    return Preset(name, "vgg", "basic", hierarchy, widths, lr, dropout, note, lead, (1024,), True)


# fmt: off
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _vgg("vgg8", (1, 1, 1, 1, 1), _VGG5, 5e-4, {"cifar10": 0.2, "cifar100": 0.2}, "Table I/II; its vgg8"),
        _vgg("vgg8b", (2, 2, 1, 1), (256, 512, 512, 512), 5e-4, {"cifar10": 0.2, "cifar100": 0.05},
             "Table I/II; its vgg8b, 128,256 | 256,512 | 512 | 512", ((128,), (256,), (), ())),
        _vgg("vgg11", (1, 1, 2, 2, 2), _VGG5, 5e-4, {"cifar10": 0.2, "cifar100": 0.2}, "Table I/II; its vgg11"),
        _vgg("vgg16", (2, 2, 3, 3, 3), _VGG5, 3e-4, {"cifar10": 0.25, "cifar100": 0.1}, "Table I/II; its vgg16"),
        _vgg("vgg19", (2, 2, 4, 4, 4), _VGG5, 3e-4, {"cifar10": 0.25, "cifar100": 0.15}, "Table I/II; its vgg19"),
        Preset("resnet18", "resnet", "basic", (2, 2, 2, 2), (64, 128, 256, 512), 3e-4,
               {"cifar10": 0.3, "cifar100": 0.1}, "Table III-VI", local_unit="conv"),
        Preset("resnet34", "resnet", "basic", (3, 4, 6, 3), (64, 128, 256, 512), 3e-4,
               {"cifar10": 0.3, "cifar100": 0.1}, "He et al.; recipe of Table V/VI", local_unit="conv"),
        Preset("resnet50", "resnet", "bottleneck", (3, 4, 6, 3), (64, 128, 256, 512), 3e-4,
               {"cifar10": 0.3, "cifar100": 0.1}, "Table III-VI", local_unit="conv"),
    )
}
# fmt: on


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ScheduleError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}") from None


def make_schedule(
    *,
    preset: str | None = None,
    hierarchy: Sequence[int] | str | None = None,
    family: str | None = None,
    block: str | None = None,
    widths: Sequence[int] | str | None = None,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    downsample: str | None = None,
    fc_units: Sequence[int] | str | None = None,
    conv_bias: bool | None = None,
    local_unit: str | None = None,
    first_conv: str | None = None,
    width_mult: float | None = None,
) -> Schedule:
    """Build a schedule from a preset and/or explicit fields; explicit fields win over the preset's.

    `widths` may be a string as --widths takes it ('128:256,256:512,512,512': see `parse_widths`). A preset's
    widths apply when the hierarchy has its number of stages; its FC units, conv bias and local unit always (for its
    family), and a VGG preset's first conv is the reference's 7x7 stride-2 one for inputs over 64 pixels (STL-10).
    """
    lead: tuple[tuple[int, ...], ...] | None = None
    if isinstance(widths, str):
        widths, lead = parse_widths(widths)
    if preset is not None:
        p = get_preset(preset)
        family = family or p.family
        block = block or p.block
        if hierarchy is None:
            hierarchy = p.hierarchy
        if widths is None and (len(_as_int_tuple(hierarchy, "hierarchy")) == len(p.widths)):
            widths, lead = p.widths, p.lead_widths
        if family == p.family:
            own = p.network_fields(input_size)
            fc_units = own["fc_units"] if fc_units is None else fc_units
            conv_bias = own["conv_bias"] if conv_bias is None else conv_bias
            local_unit = own["local_unit"] if local_unit is None else local_unit
            first_conv = own["first_conv"] if first_conv is None else first_conv
    if hierarchy is None:
        raise ScheduleError("no hierarchy given: pass --hierarchy 1,1,2,4 or --preset NAME")
    family = family or "resnet"
    if isinstance(fc_units, str):
        fc_units = () if fc_units.strip().lower() == "none" else parse_int_list(fc_units, "fc_units")
    return Schedule(
        hierarchy=_as_int_tuple(hierarchy, "hierarchy"),
        family=family,
        block=block or "basic",
        widths=None if widths is None else _as_int_tuple(widths, "widths"),
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        downsample=downsample,
        lead_widths=lead,
        fc_units=tuple(fc_units or ()),
        conv_bias=bool(conv_bias),
        local_unit=local_unit or "block",
        first_conv=first_conv or "3x3",
        width_mult=1.0 if width_mult is None else width_mult,
    )
