"""A study's settings: everything that decides what a trial's numbers mean, fixed for the whole study.

They are stored as a study attribute when the study is created; a later run with other settings is refused with
the differing fields named, so a study never mixes results of different experiments.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from lwl.models import REFERENCE_FIELDS, Recipe, Schedule, check_aux, complexity, dataset_info, make_schedule

from .._errors import SettingsError
from .feasible import SearchSpace
from .limits import CostLimits

# lwl-search's built-in defaults, below a YAML preset's values and the command line's flags (the parser's flags
# default to None so that the layers show through); those of its numeric flags are declared with them (_flags.OPTIONS).
DEFAULTS: dict[str, Any] = {
    "constraint": "strict",
    "dataset": "digits",
    "sampler": "tpe",
    "pruner": "median",
    "seed": 0,
    "device": "auto",
}
# The recipe fields of the reference's options at their defaults (what a study stored before them trained with).
REFERENCE_DEFAULTS: dict[str, Any] = {name: Recipe.__dataclass_fields__[name].default for name in REFERENCE_FIELDS}
# Epochs per candidate: the search's fidelity. The exported config carries the full recipe (400 on CIFAR). The
# reference code's data sets: about CIFAR's share of the full recipe (15 of 400), at least 5 epochs (not measured).
SEARCH_EPOCHS = {
    "digits": 5,
    "cifar10": 15,
    "cifar100": 15,
    "mnist": 5,  # of 100
    "fmnist": 8,  # of 200
    "kmnist": 5,  # of 100
    "svhn": 5,  # of 100
    "stl10": 15,  # of 400: 5,000 images, each 9x a CIFAR image's work
}


def default_widths(dataset: str, family: str, stages: int) -> tuple[int, ...] | None:
    """Digits gets narrow networks (doubling from 16) so a search runs in minutes on a CPU; others the family's."""
    if dataset == "digits":
        return tuple(min(16 * 2**i, 256) for i in range(stages))
    return None


# The Schedule fields a study does not store: the list varies per trial; the data set's shape follows the recipe's.
PER_TRIAL = ("hierarchy", "num_classes", "in_channels", "input_size")


@dataclass(frozen=True)
class StudySettings:
    """The search space, the network that turns a list into layers, and the training recipe.

    `network` is a `Schedule` whose hierarchy is a placeholder, one unit per stage: every field of it but the list
    is what each trial's network has (`schedule(h)` puts a trial's list in), so a network option is declared once,
    on `Schedule`, and a study holds, stores and compares it without naming it here.
    """

    space: SearchSpace  # restricted to the lists within `limits`, when there are any
    network: Schedule  # hierarchy (1,) * stages: a placeholder; family, widths, downsampling, FC units, ...
    recipe: Recipe
    limits: CostLimits = CostLimits()  # --max-params, --max-flops, --max-memory
    objectives: tuple[str, ...] = ("accuracy",)  # --objectives: accuracy, then the costs the front trades it against

    @property
    def costs(self) -> tuple[str, ...]:
        """The costs the search trades accuracy against (`--objectives` after accuracy); () for accuracy alone."""
        return self.objectives[1:]

    @classmethod
    def create(
        cls,
        space: SearchSpace,
        recipe: Recipe,
        *,
        limits: CostLimits | None = None,
        objectives: Sequence[str] = ("accuracy",),
        **network: Any,
    ) -> StudySettings:
        """Resolve the network's defaults once (`network`: `make_schedule`'s fields but the list and the data set's
        shape, e.g. family, block, widths, fc_units; None or absent: the family's), prove a network can be built
        for this space, and restrict the space to the lists within `limits` (a SpaceError naming the limit to raise
        when none is)."""
        if network.get("widths") is None:
            network["widths"] = default_widths(recipe.dataset, network.get("family") or "resnet", space.stages)
        info = dataset_info(recipe.dataset)
        template = make_schedule(
            hierarchy=(1,) * space.stages,
            num_classes=info.num_classes,
            in_channels=info.in_channels,
            input_size=info.input_size,
            **network,
        )
        check_aux(template, recipe.aux_net)  # a head kind that cannot serve these units: refused before the study
        settings = cls(space, template, recipe, objectives=tuple(objectives))
        return settings.limited(limits or CostLimits())

    def limited(self, limits: CostLimits) -> StudySettings:
        """These settings with the space restricted to the lists within `limits` (none: unrestricted)."""
        space = replace(self.space, within=None, limits="")
        if limits:
            kept = limits.within(
                space.lists(), lambda h: complexity(self.schedule(h), self.recipe.head), self.recipe.batch_size
            )
            space = space.restricted(kept, limits.describe())
        return replace(self, space=space, limits=limits)

    def schedule(self, hierarchy: Sequence[int]) -> Schedule:
        """The network of one list: `network` with `hierarchy` in place of its placeholder."""
        return replace(self.network, hierarchy=tuple(hierarchy))

    def to_dict(self) -> dict[str, Any]:
        """As stored in a study: the space's fields, the network's (those added after the first studies only where
        set, `Schedule.extras`), the recipe, and limits and objectives where given."""
        network = {k: v for k, v in self.network.to_dict().items() if k not in PER_TRIAL}
        return {
            "budget": self.space.budget,
            "stages": self.space.stages,
            "shallow_stages": self.space.k,
            "constraint": self.space.constraint,
            **network,
            "recipe": self.recipe.to_dict(),
            **({"limits": self.limits.to_dict()} if self.limits else {}),  # absent without limits, as before them
            **({"objectives": list(self.objectives)} if self.costs else {}),  # absent for accuracy alone, likewise
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudySettings:
        space = SearchSpace(data["budget"], data["stages"], data["shallow_stages"], data["constraint"])
        recipe = Recipe.from_dict(data["recipe"])
        info = dataset_info(recipe.dataset)
        fields = set(Schedule.__dataclass_fields__) - set(PER_TRIAL)
        network = Schedule(
            (1,) * space.stages,
            num_classes=info.num_classes,
            in_channels=info.in_channels,
            input_size=info.input_size,
            **{k: v for k, v in data.items() if k in fields},
        )
        objectives = tuple(data.get("objectives") or ("accuracy",))
        return cls(space, network, recipe, objectives=objectives).limited(CostLimits.from_dict(data.get("limits")))

    def network_text(self) -> str:
        """'resnet basic widths 16,32,64,128', with the network's other fields where set: 'vgg widths
        128:256,256:512,512,512 + FC 1024, conv bias', 'resnet basic ..., a local loss per conv'."""
        net = self.network
        block = f" {net.block}" if net.family == "resnet" else ""
        return f"{net.family}{block} widths {net.widths_text()}{net.extras_text()}"

    def options_text(self) -> str:
        """The reference code's options that differ from Section V, as '; optimizer sgd, momentum 0.9'; '' if none."""
        stored = self.recipe.to_dict()
        given = [f"{name} {_shown(stored[name])}" for name in REFERENCE_FIELDS if name in stored]
        return f"; {', '.join(given)}" if given else ""

    def to_flags(self) -> list[str]:
        """The lwl-search flags that make these settings (on any device: the precision is given), for a command a
        report prints; the reference's options and the network's other fields only where set."""
        r, net = self.recipe, self.network
        flags = ["--dataset", r.dataset, "--budget", str(self.space.budget), "--stages", str(self.space.stages)]
        flags += ["--shallow-stages", str(self.space.k), "--constraint", self.space.constraint]
        flags += ["--family", net.family, *(["--block", net.block] if net.family == "resnet" else [])]
        flags += ["--widths", net.widths_text(), "--downsample", str(net.downsample)]
        for name, value in net.extras().items():  # the network's other fields where set; lead widths: in --widths
            if name != "lead_widths":
                flags += [f"--{name.replace('_', '-')}", "on" if value is True else _shown(value)]
        for name, value in (("loss", r.loss), ("mode", r.mode), ("epochs", r.epochs), ("batch-size", r.batch_size)):
            flags += [f"--{name}", str(value)]
        flags += ["--lr", f"{r.lr:g}", "--dropout", f"{r.dropout:g}", "--seed", str(r.seed)]
        flags += ["--val-fraction", f"{r.val_fraction:g}", "--precision", r.precision]
        flags += ["--train-limit", str(r.train_limit)] if r.train_limit is not None else []
        stored = r.to_dict()
        for name in REFERENCE_FIELDS:
            if name not in stored:
                continue
            if name == "similarity_std":
                flags.append("--no-similarity-std")
            elif name == "zero_init_output":
                flags.append("--zero-init-output")
            else:
                flags += [f"--{name.replace('_', '-')}", _shown(stored[name])]
        for name, value in self.limits.to_dict().items():
            flags += [f"--{name.replace('_', '-')}", str(value)]
        flags += ["--objectives", ",".join(self.objectives)] if self.costs else []
        return flags

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, ""))
        else:
            flat[prefix + key] = value
    return flat


def differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable 'field stored -> now' items for every setting that differs."""
    a, b = _flatten(stored), _flatten(current)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out.append(f"{key} {a.get(key)!r} (stored) vs {b.get(key)!r} (now)")
    return out


def check_same_settings(
    study_name: str, stored_json: str | None, settings: StudySettings, device_type: str = "cpu"
) -> None:
    """Refuse `settings` unless they are the stored ones. A study stored before precisions were a setting trained
    as the engine did then on `device_type`: bf16 autocast on CUDA, fp32 elsewhere."""
    if stored_json is None:
        return
    stored = json.loads(stored_json)
    if isinstance(stored.get("recipe"), dict) and "precision" not in stored["recipe"]:
        stored["recipe"]["precision"] = "bf16" if device_type == "cuda" else "fp32"
    current = settings.to_dict()
    for data in (stored, current):  # the reference's options are stored only where they differ from Section V
        if isinstance(data.get("recipe"), dict):
            data["recipe"] = {**REFERENCE_DEFAULTS, **data["recipe"]}
    diffs = differences(stored, current)
    if diffs:
        raise SettingsError(
            f"study {study_name!r} was made with other settings: {'; '.join(diffs)}: "
            "rerun with the stored settings or choose another --study-name"
        )
