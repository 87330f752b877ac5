"""Local losses of Noekland & Eidnes (2019), "Training neural networks with local error signals".

`pred` is the cross-entropy of a unit's auxiliary classifier, `sim` matches the cosine-similarity structure of
the unit's features to that of the labels, `predsim` mixes them with beta = 0.99 (the paper's choice). `global`
is ordinary back-propagation of the output loss through every unit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._recipe import BETA, LOSSES


def similarity_matrix(x: torch.Tensor, std: bool = True) -> torch.Tensor:
    """Cosine similarity between the rows of a batch, after reducing each channel to its spatial std.

    As the reference: the std reduction applies to feature maps with more than 3 channels and more than one
    row; otherwise (and always with `std` False, its --no-similarity-std) the features are flattened. Computed in
    float32 even under autocast.
    """
    x = x.float()
    if std and x.dim() == 4 and x.size(1) > 3 and x.size(2) > 1:
        x = x.flatten(2).std(dim=2)
    else:
        x = x.flatten(1)
    xc = x - x.mean(dim=1, keepdim=True)
    xn = xc / (1e-8 + xc.pow(2).sum(dim=1, keepdim=True).sqrt())
    return (xn @ xn.t()).clamp(-1, 1)


def sim_loss(features: torch.Tensor, labels: torch.Tensor, num_classes: int, std: bool = True) -> torch.Tensor:
    """MSE between the feature and the one-hot label similarity matrices (`std`: see `similarity_matrix`)."""
    with torch.autocast(features.device.type, enabled=False):
        target = similarity_matrix(F.one_hot(labels, num_classes).float())
        return F.mse_loss(similarity_matrix(features, std), target)


__all__ = ["BETA", "LOSSES", "sim_loss", "similarity_matrix"]
