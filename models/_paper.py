"""Tables I-VI of Ma et al. (2020): every published hierarchy with its layer-wise and global test accuracy.

Kept as data so that `lwl-train` can print the paper's number beside ours whenever a schedule is one the paper
trained. The values are copied as published, including where two tables disagree (ResNet18 [2,2,2,2] on CIFAR-100:
62.32 in Table IV, 66.05 in Table VI) and VGG8b's list: five entries on CIFAR-10 (Table I counts its FC unit), four
on CIFAR-100; a `--preset vgg8b` run finds both (`PaperResult.conv_hierarchy`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._schedule import Schedule


@dataclass(frozen=True)
class PaperResult:
    """One row of one table: test accuracy in percent after 400 epochs (Section V)."""

    table: str  # roman numeral
    dataset: str
    model: str
    family: str
    block: str
    hierarchy: tuple[int, ...]
    lr: float
    dropout: float
    layerwise: float
    global_: float
    # The convolutional units per stage: the hierarchy, except in Table I's VGG8b rows, which write the network's FC
    # unit as a last entry ([2,2,1,1,1]; Table II writes the same network [2,2,1,1]).
    conv_hierarchy: tuple[int, ...] = ()

    def label(self) -> str:
        return f"{self.model} (Table {self.table})"


def _rows(table: str, dataset: str, family: str, rows: str) -> tuple[PaperResult, ...]:
    out = []
    for line in rows.strip().splitlines():
        model, lr, dr, hierarchy, layerwise, global_ = line.split()
        block = "bottleneck" if model.startswith("ResNet50") else "basic"
        listed = tuple(int(d) for d in hierarchy.strip("[]").split(","))
        convs = listed[:-1] if table == "I" and model.startswith("VGG8b") else listed
        out.append(
            PaperResult(
                table,
                dataset,
                model,
                family,
                block,
                listed,
                float(lr),
                float(dr),
                float(layerwise),
                float(global_),
                convs,
            )
        )
    return tuple(out)


_VGG_CIFAR10 = """
VGG8     5e-4 0.2  [1,1,1,1,1] 89.72 90.59
VGG11    5e-4 0.2  [1,1,2,2,2] 90.6  91.6
VGG16    3e-4 0.25 [2,2,3,3,3] 89.2  92.03
VGG16_e1 3e-4 0.25 [3,3,4,4,4] 87.69 92.5
VGG16_e2 3e-4 0.25 [4,4,5,5,5] 86.2  91.72
VGG16_e3 3e-4 0.25 [5,5,6,6,6] 84.3  90.67
VGG19    3e-4 0.25 [2,2,4,4,4] 89.14 92.21
VGG19_e1 3e-4 0.25 [3,3,5,5,5] 87.77 91.93
VGG19_e2 3e-4 0.25 [4,4,6,6,6] 86.0  91.65
VGG19_e3 3e-4 0.25 [5,5,7,7,7] 83.7  89.83
VGG8b    5e-4 0.2  [2,2,1,1,1] 94.59 94.15
VGG8b_e1 5e-4 0.2  [3,3,2,2,2] 95.05 95.0
VGG8b_e2 5e-4 0.2  [4,4,3,3,3] 94.7  95.2
VGG8b_e3 5e-4 0.2  [5,5,4,4,4] 94.52 95.1
"""
_VGG_CIFAR100 = """
VGG8     5e-4 0.2  [1,1,1,1,1] 65.38 65.82
VGG11    5e-4 0.2  [1,1,2,2,2] 67.88 65.84
VGG16    3e-4 0.1  [2,2,3,3,3] 66.15 68.25
VGG16_e1 3e-4 0.1  [3,3,4,4,4] 64.43 70.13
VGG16_e2 3e-4 0.1  [4,4,5,5,5] 61.35 69.52
VGG16_e3 3e-4 0.1  [5,5,6,6,6] 57.98 67.93
VGG19    3e-4 0.15 [2,2,4,4,4] 65.76 69.4
VGG19_e1 3e-4 0.15 [3,3,5,5,5] 63.88 70.55
VGG19_e2 3e-4 0.15 [4,4,6,6,6] 60.58 68.95
VGG19_e3 3e-4 0.15 [5,5,7,7,7] 57.22 65.68
VGG8b    5e-4 0.05 [2,2,1,1]   73.93 73.47
VGG8b_e1 5e-4 0.05 [3,3,2,2]   74.5  74.05
VGG8b_e2 5e-4 0.05 [4,4,3,3]   74.2  71.79
VGG8b_e3 5e-4 0.05 [5,5,4,4]   73.02 69.0
"""
_RESNET_CIFAR10_III = """
ResNet18    3e-4 0.3 [2,2,2,2] 86.94 92.45
ResNet18_e1 3e-4 0.3 [3,3,3,3] 83.64 91.62
ResNet18_e2 3e-4 0.3 [4,4,4,4] 79.84 89.98
ResNet50    3e-4 0.3 [3,4,6,3] 85.6  89.65
ResNet50_e1 3e-4 0.3 [4,5,6,3] 83.64 88.52
ResNet50_e2 3e-4 0.3 [5,6,6,3] 81.23 87.83
"""
_RESNET_CIFAR100_IV = """
ResNet18    3e-4 0.1 [2,2,2,2] 62.32 72.45
ResNet18_e1 3e-4 0.1 [3,3,3,3] 62.85 71.38
ResNet18_e2 3e-4 0.1 [4,4,4,4] 59.98 69.74
ResNet50    3e-4 0.1 [3,4,6,3] 67.01 72.34
ResNet50_e1 3e-4 0.1 [4,5,6,3] 66.06 70.73
ResNet50_e2 3e-4 0.1 [5,6,6,3] 65.42 70.97
"""
_RESNET_CIFAR10_V = """
ResNet18    3e-4 0.3 [2,2,2,2] 86.94 92.45
ResNet18_r1 3e-4 0.3 [1,1,1,1] 89.26 92.75
ResNet18_r2 3e-4 0.3 [2,2,1,1] 86.27 92.39
ResNet18_r3 3e-4 0.3 [2,1,1,1] 87.61 92.48
ResNet18_r4 3e-4 0.3 [1,1,2,2] 89.77 93.01
ResNet50    3e-4 0.3 [3,4,6,3] 85.6  89.65
ResNet50_r1 3e-4 0.3 [2,3,6,3] 87.62 90.73
ResNet50_r2 3e-4 0.3 [1,2,6,3] 89.68 91.69
ResNet50_r3 3e-4 0.3 [2,3,7,4] 87.93 90.52
ResNet50_r4 3e-4 0.3 [1,2,8,5] 89.81 90.49
"""
_RESNET_CIFAR100_VI = """
ResNet18    3e-4 0.1 [2,2,2,2] 66.05 73.13
ResNet18_r1 3e-4 0.1 [1,1,1,1] 66.37 73.6
ResNet18_r2 3e-4 0.1 [2,2,1,1] 64.54 74.08
ResNet18_r3 3e-4 0.1 [2,1,1,1] 64.84 73.55
ResNet18_r4 3e-4 0.1 [1,1,2,2] 68.32 73.76
ResNet18_r5 3e-4 0.1 [1,1,2,4] 69.12 72.8
ResNet50    3e-4 0.1 [3,4,6,3] 67.01 72.34
ResNet50_r1 3e-4 0.1 [2,3,6,3] 68.64 73.94
ResNet50_r2 3e-4 0.1 [1,2,6,3] 69.53 73.86
ResNet50_r3 3e-4 0.1 [2,3,7,4] 68.06 72.82
ResNet50_r4 3e-4 0.1 [1,2,8,5] 68.98 72.77
"""

PAPER_RESULTS: tuple[PaperResult, ...] = (
    _rows("I", "cifar10", "vgg", _VGG_CIFAR10)
    + _rows("II", "cifar100", "vgg", _VGG_CIFAR100)
    + _rows("III", "cifar10", "resnet", _RESNET_CIFAR10_III)
    + _rows("IV", "cifar100", "resnet", _RESNET_CIFAR100_IV)
    + _rows("V", "cifar10", "resnet", _RESNET_CIFAR10_V)
    + _rows("VI", "cifar100", "resnet", _RESNET_CIFAR100_VI)
)


def paper_results(dataset: str, schedule: Schedule) -> list[PaperResult]:
    """The rows that trained this hierarchy in this family (and block) on this data set; [] if none.

    Widths, FC units and the local unit are not compared: the search varies only the hierarchy. Table I's VGG8b
    rows match by their convolutional units (`conv_hierarchy`), as Table II's.
    """
    return [
        r
        for r in PAPER_RESULTS
        if r.dataset == dataset
        and r.family == schedule.family
        and r.conv_hierarchy == schedule.hierarchy
        and (r.family == "vgg" or r.block == schedule.block)
    ]
