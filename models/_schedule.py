"""The one description of a network: a hierarchy list plus what turns it into layers.

Everything downstream (builders, complexity, trainer, the search, exported configs) is a pure function of a
`Schedule`, so it is frozen, hashable and validated when it is made: a bad schedule never reaches training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ._errors import ScheduleError

FAMILIES = ("vgg", "resnet")
BLOCKS = ("basic", "bottleneck")
DOWNSAMPLES = ("maxpool", "avgpool", "conv")

# VGG's widths per stage (Simonyan & Zisserman); stages beyond the fifth stay at 512.
_VGG_WIDTHS = (64, 128, 256, 512, 512)


@dataclass(frozen=True)
class Schedule:
    """A hierarchy list and the family that turns it into a network.

    `hierarchy[i]` is the number of locally trained units in stage i; a downsampling separates stages. A unit is
    one 3x3 conv (+BN, activation, dropout) for `vgg` and one residual block for `resnet`, as the paper counts.
    Defaults left as None are filled from the family (widths doubling from 64 for resnet, VGG's for vgg;
    max-pool for vgg, the strided first block for resnet).
    """

    hierarchy: tuple[int, ...]
    family: str = "resnet"
    block: str = "basic"
    widths: tuple[int, ...] | None = None
    num_classes: int = 10
    in_channels: int = 3
    input_size: int = 32
    downsample: str | None = None

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
        if self.family not in FAMILIES:
            raise ScheduleError(f"unknown family {self.family!r}: choose one of {', '.join(FAMILIES)}")
        if self.family == "resnet" and self.block not in BLOCKS:
            raise ScheduleError(f"unknown block {self.block!r}: choose one of {', '.join(BLOCKS)}")
        if self.family == "vgg" and self.block != "basic":
            raise ScheduleError(f"block {self.block!r} applies to the resnet family only: drop --block for vgg")
        downsample = self.downsample or ("maxpool" if self.family == "vgg" else "conv")
        if downsample not in DOWNSAMPLES:
            raise ScheduleError(f"unknown downsampling {downsample!r}: choose one of {', '.join(DOWNSAMPLES)}")
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
            raise ScheduleError(f"widths {list(widths)} do not fit {n} stages: give {n} positive widths, one per stage")
        object.__setattr__(self, "widths", widths)
        for name in ("num_classes", "in_channels", "input_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (2 if name == "num_classes" else 1):
                raise ScheduleError(f"{name} must be a positive integer (classes >= 2), got {value!r}")
        sizes = self.resolutions
        if sizes[-1] < 1 or any(s < 1 for s in sizes):
            allowed = 1 + _max_downsamplings(self.input_size)
            raise ScheduleError(
                f"hierarchy {list(hierarchy)} needs {n - 1} downsamplings but a {self.input_size}x{self.input_size} "
                f"input allows at most {allowed - 1}: use at most {allowed} stages or a larger input"
            )

    @property
    def stages(self) -> int:
        return len(self.hierarchy)

    @property
    def units(self) -> int:
        return sum(self.hierarchy)

    @property
    def expansion(self) -> int:
        return 4 if self.family == "resnet" and self.block == "bottleneck" else 1

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Feature-map side per stage: halved (floor) by every downsampling between stages."""
        sizes = [self.input_size]
        for _ in range(len(self.hierarchy) - 1):
            sizes.append(sizes[-1] // 2)
        return tuple(sizes)

    @property
    def out_widths(self) -> tuple[int, ...]:
        """Channels leaving each stage (bottleneck blocks expand by 4)."""
        assert self.widths is not None
        return tuple(w * self.expansion for w in self.widths)

    def unit_positions(self) -> list[tuple[int, int]]:
        """(stage, index within stage) of every unit, in training order."""
        return [(s, i) for s, d in enumerate(self.hierarchy) for i in range(d)]

    def label(self) -> str:
        return "[" + ",".join(map(str, self.hierarchy)) + "]"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hierarchy"] = list(self.hierarchy)
        data["widths"] = list(self.widths or ())
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ScheduleError(f"unknown schedule field(s) {unknown}: allowed are {sorted(known)}")
        return cls(**data)


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
    """A base network of the paper, with its published hierarchy and per-data-set learning rate and dropout."""

    name: str
    family: str
    block: str
    hierarchy: tuple[int, ...]
    widths: tuple[int, ...]
    lr: float
    dropout: dict[str, float] = field(default_factory=dict)
    note: str = ""


# Tables I-VI of Ma et al. (2020): LR and DR columns. VGG8b's per-conv widths 128,256 | 256,512 | 512 | 512
# (Noekland & Eidnes) are approximated by each stage's last width, since a schedule has one width per stage.
# One row per network, as the paper's tables print them.
# fmt: off
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("vgg8b", "vgg", "basic", (2, 2, 1, 1), (256, 512, 512, 512), 5e-4,
               {"cifar10": 0.2, "cifar100": 0.05}, "Table I/II; stage widths approximate 128-256/256-512"),
        Preset("vgg11", "vgg", "basic", (1, 1, 2, 2, 2), (64, 128, 256, 512, 512), 5e-4,
               {"cifar10": 0.2, "cifar100": 0.2}, "Table I/II"),
        Preset("vgg16", "vgg", "basic", (2, 2, 3, 3, 3), (64, 128, 256, 512, 512), 3e-4,
               {"cifar10": 0.25, "cifar100": 0.1}, "Table I/II"),
        Preset("vgg19", "vgg", "basic", (2, 2, 4, 4, 4), (64, 128, 256, 512, 512), 3e-4,
               {"cifar10": 0.25, "cifar100": 0.15}, "Table I/II"),
        Preset("resnet18", "resnet", "basic", (2, 2, 2, 2), (64, 128, 256, 512), 3e-4,
               {"cifar10": 0.3, "cifar100": 0.1}, "Table III-VI"),
        Preset("resnet34", "resnet", "basic", (3, 4, 6, 3), (64, 128, 256, 512), 3e-4,
               {"cifar10": 0.3, "cifar100": 0.1}, "He et al.; recipe of Table V/VI"),
        Preset("resnet50", "resnet", "bottleneck", (3, 4, 6, 3), (64, 128, 256, 512), 3e-4,
               {"cifar10": 0.3, "cifar100": 0.1}, "Table III-VI"),
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
) -> Schedule:
    """Build a schedule from a preset and/or explicit fields; explicit fields win over the preset's."""
    if preset is not None:
        p = get_preset(preset)
        family = family or p.family
        block = block or p.block
        if hierarchy is None:
            hierarchy = p.hierarchy
        if widths is None and (len(_as_int_tuple(hierarchy, "hierarchy")) == len(p.widths)):
            widths = p.widths
    if hierarchy is None:
        raise ScheduleError("no hierarchy given: pass --hierarchy 1,1,2,4 or --preset NAME")
    family = family or "resnet"
    return Schedule(
        hierarchy=_as_int_tuple(hierarchy, "hierarchy"),
        family=family,
        block=block or "basic",
        widths=None if widths is None else _as_int_tuple(widths, "widths"),
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        downsample=downsample,
    )
