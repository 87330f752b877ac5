"""The training recipe: every hyper-parameter in one commented place, and the paper's values per data set.

`Recipe` defaults are Section V of Ma et al. (2020); `paper_recipe(dataset, family)` fills in the per-data-set and
per-family values of Tables I-VI (and of a network preset), then the caller's overrides. A value out of range is a
`RecipeError` naming the field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ._aux import AUX_NETS
from ._datasets import AUGMENTATIONS, DATASETS
from ._errors import RecipeError
from ._fields import Choice, Flag, ListOf, Maybe, Range, Spec, apply_specs, ranges
from ._plan import HeadSpec
from ._schedule import get_preset

# The local losses (`_losses`): pred, sim, predsim mixing them with beta = BETA (the paper's), or global
# back-propagation of the output loss through every unit.
LOSSES = ("predsim", "pred", "sim", "global")
BETA = 0.99
MODES = ("simultaneous", "sequential")
# auto: bf16 autocast where the device computes it natively (CUDA, a CPU with AVX512-BF16 or AMX), else fp32.
PRECISIONS = ("auto", "fp32", "bf16")
# The most extra convs an auxiliary classifier may hold (Belilovsky et al. use k-1 with k <= 3; the reference none): a
# bound, like the widths' and the units', so that a typing slip (100000) is refused before anything is built.
MAX_AUX_CONVS = 32
# Section V: the learning rate is multiplied by 0.25 at 50/75/89/94 % of the epochs.
PAPER_MILESTONES = (0.5, 0.75, 0.89, 0.94)
# The options of the reference code (Noekland & Eidnes, anokland/local-loss, train.py) beside Section V's choice.
OPTIMIZERS = ("adam", "amsgrad", "sgd")  # its --optim; Section V: "The learning solver is ADAM"
ACTIVATIONS = ("leaky_relu", "relu")  # its --nonlin leakyrelu | relu (slope 0.01); Section V: leaky-ReLU
DROPOUT_KINDS = ("element", "channel")  # channel: whole feature maps, as its Dropout2d on convolutions
NORMALISATIONS = ("dataset", "reference")  # reference: its CIFAR mean/std (REFERENCE_NORMALISATION)
# The per-channel (mean, std) that local-loss normalises CIFAR with; ours (DATASETS) are the usual statistics.
REFERENCE_NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.424, 0.415, 0.384), (0.283, 0.278, 0.284)),
    "cifar100": ((0.438, 0.418, 0.377), (0.300, 0.287, 0.294)),
}


@dataclass(frozen=True)
class Recipe:
    """Every training hyper-parameter in one place (Section V of Ma et al. unless noted)."""

    dataset: str = "digits"  # a name in DATASETS; sets what the network sees and the default augmentation
    loss: str = "predsim"  # predsim | pred | sim | global
    mode: str = "simultaneous"  # simultaneous: every unit on every batch; sequential: greedy, unit by unit
    epochs: int = 400  # per unit in sequential mode
    batch_size: int = 128  # "A batch size of 128 is applied to all the experiments"
    lr: float = 3e-4  # Adam's learning rate: ResNets 3e-4, small VGGs 5e-4
    dropout: float = 0.1  # on what a unit passes on; 0.3 (CIFAR-10 ResNets) / 0.1 (CIFAR-100 ResNets)
    weight_decay: float = 0.0  # Adam's (L2, coupled); the paper uses none
    lr_milestones: tuple[float, ...] = PAPER_MILESTONES  # fractions of the run where the learning rate decays
    lr_gamma: float = 0.25  # the factor applied at each milestone
    beta: float = BETA  # predsim = (1 - beta) * pred + beta * sim
    aux_convs: int = 0  # extra 3x3 convs in each auxiliary classifier (Belilovsky et al. use k-1)
    dim_in_decoder: int = 2048  # pool each auxiliary input down to at most this many features
    augment: tuple[str, ...] | None = None  # None: the data set's default (CIFAR: crop + flip)
    val_fraction: float = 0.1  # of the training set held out (stratified) for validation; 0: none (full training)
    seed: int = 0  # seeds initialisation, dropout, batch order and augmentation (the commands: the split too)
    eval_batch_size: int = 1024  # batch size of evaluation and of the sequential mode's cached features
    precision: str = "auto"  # auto | fp32 | bf16 (autocast; weights, optimiser state and losses stay fp32)
    train_limit: int | None = None  # train on the first N training images only: quick checks and tests
    # The reference's options (anokland/local-loss train.py); each default is Section V, i.e. what ran before them.
    optimizer: str = "adam"  # adam | amsgrad | sgd (the reference's --optim)
    momentum: float = 0.0  # SGD's momentum (--momentum); adam and amsgrad take none
    activation: str = "leaky_relu"  # leaky_relu (slope 0.01, Section V) | relu (--nonlin; the reference's default)
    dropout_kind: str = "element"  # element | channel: whole feature maps, the reference's Dropout2d on convs
    similarity_std: bool = True  # sim loss on each channel's spatial std; False: flattened maps (--no-similarity-std)
    label_smoothing: float = 0.0  # of every cross-entropy (not in the reference)
    zero_init_output: bool = False  # zero the output classifier's weight at start (the reference's; bias as drawn)
    cutout: int = 0  # side in pixels of Cutout's square holes (--cutout --length L); 0: no Cutout
    cutout_holes: int = 1  # Cutout holes per image (--n_holes)
    lr_milestone_epochs: tuple[int, ...] | None = None  # epochs (0-based) from which the lr decays, per epoch as
    # the reference's --lr-decay-milestones counts them (200,300,350,375 of 400); None: lr_milestones, per batch
    normalisation: str = "dataset"  # dataset (DATASETS) | reference: local-loss's CIFAR mean/std
    # Each unit's auxiliary network (`_aux`): local-loss (the reference's pred/sim heads, as `loss` says) | dgl |
    # infopro | auglocal (later methods' heads, each trained with its own loss: `loss` pred, or global as probes).
    aux_net: str = "local-loss"

    def __post_init__(self) -> None:
        apply_specs(self, RECIPE_FIELDS, RecipeError)  # each field alone; then what fields say together
        if self.loss == "global" and self.mode != "simultaneous":
            raise RecipeError("loss 'global' trains end to end: use --mode simultaneous with it")
        if self.momentum != 0.0 and self.optimizer != "sgd":
            raise RecipeError(
                f"momentum applies to the sgd optimizer only (optimizer is {self.optimizer!r}): use optimizer sgd, "
                "or leave momentum at 0"
            )
        if self.lr_milestone_epochs is not None and self.lr_milestones != PAPER_MILESTONES:
            raise RecipeError("give lr_milestones (fractions of the run) or lr_milestone_epochs, not both")
        if self.aux_net != "local-loss" and self.loss not in ("pred", "global"):
            raise RecipeError(
                f"aux_net {self.aux_net!r} trains each unit with its own loss, not {self.loss!r}: use loss pred "
                "(--loss pred; global trains end to end with the heads as probes)"
            )
        if self.aux_net == "infopro" and self.mode != "simultaneous":
            raise RecipeError(
                "aux_net 'infopro' reconstructs each batch's image from every unit: use mode simultaneous with it"
            )
        if self.normalisation == "reference" and self.dataset not in REFERENCE_NORMALISATION:
            raise RecipeError(
                f"normalisation 'reference' is the reference's CIFAR statistics: use it with "
                f"{' or '.join(REFERENCE_NORMALISATION)}, not {self.dataset!r}"
            )

    @property
    def head(self) -> HeadSpec:
        """The auxiliary classifier every unit carries under this recipe."""
        return HeadSpec(
            sim=self.loss in ("sim", "predsim") and self.aux_net == "local-loss",
            aux_convs=self.aux_convs,
            dim_in_decoder=self.dim_in_decoder,
            kind=self.aux_net,
        )

    @property
    def layerwise(self) -> bool:
        """Each unit learns from its own local loss (every loss but `global`)."""
        return self.loss != "global"

    @property
    def trains_together(self) -> bool:
        """Candidates can share a pass through their common units (`train_together`, `lwl-search --batch`): every
        unit trains on every batch from a detached input (simultaneous mode, a layer-wise loss)."""
        return self.mode == "simultaneous" and self.layerwise

    def lr_at(self, step: int, total: int, steps_per_epoch: int = 1) -> float:
        """The learning rate at optimiser step `step` of `total`: step decay at fractions of the run, per batch so
        that short runs decay too; with `lr_milestone_epochs`, per epoch of `steps_per_epoch` steps as the
        reference counts them: epoch e (0-based) runs at lr * lr_gamma ** (milestones <= e)."""
        if self.lr_milestone_epochs is not None:
            epoch = step // max(steps_per_epoch, 1)
            passed = sum(epoch >= m for m in self.lr_milestone_epochs)
        else:
            passed = sum(step >= math.floor(m * total) for m in self.lr_milestones)
        return self.lr * self.lr_gamma**passed

    def first_decay_epoch(self) -> int | None:
        """The first epoch (1-based) that runs at a decayed learning rate, or None when there is none."""
        if self.lr_milestone_epochs is not None:
            return min(self.lr_milestone_epochs) + 1 if self.lr_milestone_epochs else None
        if not self.lr_milestones:
            return None
        return math.floor(min(self.lr_milestones) * self.epochs) + 1

    def to_dict(self) -> dict[str, Any]:
        """Every field, but the reference's options only where they differ from their default: a recipe of
        Section V writes (and compares, stored in a study, a checkpoint or a config) as it did before them."""
        data = asdict(self)
        data["lr_milestones"] = list(self.lr_milestones)
        if self.augment is not None:
            data["augment"] = list(self.augment)
        for name in REFERENCE_FIELDS:
            if data[name] == _DEFAULTS[name]:
                del data[name]
        if self.lr_milestone_epochs is not None:
            data["lr_milestone_epochs"] = list(self.lr_milestone_epochs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecipeError(f"unknown recipe field(s) {unknown}: allowed are {sorted(known)}")
        return cls(**data)


# Every field's values, declared once: `Recipe` applies them at construction, the config reader (`_config`) to a
# YAML file's recipe, the command line and the study presets (`cli.TRAINING_RANGES`) to their flags. What the fields
# must say together (loss global with mode simultaneous, momentum with sgd, ...) is `Recipe.__post_init__`'s.
RECIPE_FIELDS: dict[str, Spec] = {
    "dataset": Choice(tuple(DATASETS)),
    "loss": Choice(LOSSES),
    "mode": Choice(MODES),
    "epochs": Range(int, 1),
    "batch_size": Range(int, 1),
    "lr": Range(float, 0, low_open=True),
    "dropout": Range(float, 0, 1, high_open=True),
    "weight_decay": Range(float, 0),
    "lr_milestones": ListOf(Range(float, 0, 1)),  # empty: no decay
    "lr_gamma": Range(float, 0, low_open=True),
    "beta": Range(float, 0, 1),
    "aux_convs": Range(int, 0, MAX_AUX_CONVS),
    "dim_in_decoder": Range(int, 1),
    "augment": Maybe(ListOf(Choice(AUGMENTATIONS))),  # empty: none
    "val_fraction": Range(float, 0, 0.5),  # 0: no validation split (train on all); `load_data` splits at most half
    "seed": Range(int, 0, 2**32 - 1),  # numpy's and Optuna's samplers take no other seeds
    "eval_batch_size": Range(int, 1),
    "precision": Choice(PRECISIONS),
    "train_limit": Maybe(Range(int, 1)),
    "optimizer": Choice(OPTIMIZERS),
    "momentum": Range(float, 0, 1, high_open=True),
    "activation": Choice(ACTIVATIONS),
    "dropout_kind": Choice(DROPOUT_KINDS),
    "similarity_std": Flag(),
    "label_smoothing": Range(float, 0, 1, high_open=True),
    "zero_init_output": Flag(),
    "cutout": Range(int, 0),
    "cutout_holes": Range(int, 1),
    "lr_milestone_epochs": Maybe(ListOf(Range(int, 0), increasing=True)),
    "normalisation": Choice(NORMALISATIONS),
    "aux_net": Choice(AUX_NETS),
}
assert set(RECIPE_FIELDS) == set(Recipe.__dataclass_fields__), "declare every Recipe field once"
# The numeric fields' ranges, as the flags check them (`cli.TRAINING_RANGES`, lwl-search's `--train-limit`).
RECIPE_RANGES: dict[str, Range] = ranges(RECIPE_FIELDS)


# The fields added for the reference's options: `to_dict` leaves them out at their defaults.
REFERENCE_FIELDS = (
    "optimizer",
    "momentum",
    "activation",
    "dropout_kind",
    "similarity_std",
    "label_smoothing",
    "zero_init_output",
    "cutout",
    "cutout_holes",
    "lr_milestone_epochs",
    "normalisation",
    "aux_net",
)
_DEFAULTS: dict[str, Any] = {name: Recipe.__dataclass_fields__[name].default for name in REFERENCE_FIELDS}


# Section V / Tables I-VI per data set and family. Digits is ours: 1,300 training images need a faster rate and
# smaller batches (64) to train in seconds; measured 97-99 % output accuracy after 4-10 epochs on the CPU.
_PAPER = {
    ("cifar10", "resnet"): dict(lr=3e-4, dropout=0.3, epochs=400),
    ("cifar100", "resnet"): dict(lr=3e-4, dropout=0.1, epochs=400),
    ("cifar10", "vgg"): dict(lr=5e-4, dropout=0.2, epochs=400),
    ("cifar100", "vgg"): dict(lr=5e-4, dropout=0.2, epochs=400),
    ("digits", "resnet"): dict(lr=2e-3, dropout=0.1, epochs=10, batch_size=64),
    ("digits", "vgg"): dict(lr=2e-3, dropout=0.1, epochs=10, batch_size=64),
    # The reference code's data sets (anokland/local-loss, run_experiments.sh): its VGG8b learning rate, dropout and
    # epochs (its decay milestones are PAPER_MILESTONES of them, its batch 128). It trained no ResNet on them; ours
    # take the paper's ResNet rate, 3e-4, with the same dropout and epochs.
    ("mnist", "vgg"): dict(lr=5e-4, dropout=0.2, epochs=100),
    ("mnist", "resnet"): dict(lr=3e-4, dropout=0.2, epochs=100),
    ("fmnist", "vgg"): dict(lr=5e-4, dropout=0.1, epochs=200),
    ("fmnist", "resnet"): dict(lr=3e-4, dropout=0.1, epochs=200),
    ("kmnist", "vgg"): dict(lr=5e-4, dropout=0.3, epochs=100),
    ("kmnist", "resnet"): dict(lr=3e-4, dropout=0.3, epochs=100),
    ("svhn", "vgg"): dict(lr=3e-4, dropout=0.3, epochs=100),
    ("svhn", "resnet"): dict(lr=3e-4, dropout=0.3, epochs=100),
    ("stl10", "vgg"): dict(lr=5e-4, dropout=0.1, epochs=400),
    ("stl10", "resnet"): dict(lr=3e-4, dropout=0.1, epochs=400),
}


def paper_recipe(dataset: str, family: str = "resnet", preset: str | None = None, **overrides: Any) -> Recipe:
    """The paper's recipe for a data set and family, then a network preset's (its table's lr and dropout, the
    reference code's options for it and, on CIFAR, the reference's normalisation), then overrides."""
    key = (dataset, family)
    if key not in _PAPER:
        raise RecipeError(f"no recipe for data set {dataset!r} and family {family!r}")
    values: dict[str, Any] = dict(_PAPER[key], dataset=dataset)
    if preset is not None:
        p = get_preset(preset)
        if dataset in p.dropout:
            values.update(lr=p.lr, dropout=p.dropout[dataset])
        values.update(p.options)
        if dataset in REFERENCE_NORMALISATION:
            values["normalisation"] = "reference"
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values.get("aux_net", "local-loss") != "local-loss" and "loss" not in values:
        values["loss"] = "pred"  # a later method's head trains with its own loss (`_aux`), not predsim
    return Recipe(**values)


__all__ = [
    "ACTIVATIONS",
    "BETA",
    "LOSSES",
    "DROPOUT_KINDS",
    "MODES",
    "NORMALISATIONS",
    "OPTIMIZERS",
    "PAPER_MILESTONES",
    "PRECISIONS",
    "RECIPE_FIELDS",
    "RECIPE_RANGES",
    "REFERENCE_FIELDS",
    "REFERENCE_NORMALISATION",
    "Recipe",
    "paper_recipe",
]
