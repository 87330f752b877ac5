"""One optimiser step at a time: the only definitions of a layer-wise, an output and a global step.

A `Learner` is one network with what updates it: an optimiser (Adam unless the recipe says otherwise) per unit and one
for the output classifier, a dropout
stream per unit, and the loss sums of the epoch in progress. A `DataStream` is the training data one run sees and
the seeded stream that orders and augments it. The training loops (`_together`: the trie of candidates trained
together, of which a single run is a group of one, and the sequential loop) step through these two classes only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from ._batches import iter_batches, plan_epoch
from ._data import DataSplits, dataset_info
from ._device import autocast, layout, memory_format, resolve_precision
from ._errors import Diverged, TrainingError
from ._losses import sim_loss
from ._network import AuxNet, build_network, derive_seed
from ._recipe import REFERENCE_NORMALISATION, Recipe
from ._records import Progress
from ._schedule import Schedule
from ._state import STATE_FORMAT, TrainerState, progress_to_dict, to_cpu


def make_optimizer(params: Iterable[torch.nn.Parameter], recipe: Recipe, dev: torch.device) -> torch.optim.Optimizer:
    """Section V: "The learning solver is ADAM"; or the reference's --optim amsgrad, or sgd with --momentum. Weight
    decay is torch's coupled L2, as the reference's; fused on CUDA."""
    kwargs: dict[str, Any] = dict(lr=recipe.lr, weight_decay=recipe.weight_decay)
    if dev.type == "cuda":
        kwargs["fused"] = True
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=recipe.momentum, **kwargs)
    if recipe.optimizer == "amsgrad":
        kwargs["amsgrad"] = True
    return torch.optim.Adam(params, **kwargs)


def set_lr(opts: Sequence[torch.optim.Optimizer], lr: float) -> None:
    """Give every parameter group of `opts` the learning rate `lr` (see `Recipe.lr_at`)."""
    for opt in opts:
        for group in opt.param_groups:
            group["lr"] = lr


def dropped(h: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Which elements of `h` dropout zeroes: each independently with probability p, to within 2**-32.

    Each element gets 32 random bits, compared with round(p * 2**32); the bits come as whole 64-bit words from
    `generator` (one word per two elements), laid out in memory as `h` is (channels-last stays channels-last). On
    the CPU that is 2-3x cheaper than `bernoulli_`, which makes one float per element and resolves p to 2**-24.
    """
    n = h.numel()
    words = torch.empty((n + 1) // 2, dtype=torch.int64, device=h.device).random_(-(2**63), None, generator=generator)
    bits = words.view(torch.int32)[:n]
    dense = h.is_contiguous() or (h.dim() == 4 and h.is_contiguous(memory_format=torch.channels_last))
    bits = bits.as_strided(h.shape, h.stride()) if dense else bits.view(h.shape)
    return bits < min(round(p * 2**32), 2**32 - 1) - 2**31


def renormalised(data: DataSplits, mean: Sequence[float], std: Sequence[float]) -> DataSplits:
    """`data` (normalised with its data set's statistics) normalised with `mean`/`std` per channel instead:
    (x * std_0 + mean_0 - mean) / std, which is the [0, 1] image normalised anew to within float32 rounding."""
    info = data.info
    if len(mean) != info.in_channels or len(std) != info.in_channels:
        raise ValueError(f"{info.name} has {info.in_channels} channels, the statistics {len(mean)} and {len(std)}")

    def renorm(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None:
            return None

        def column(values: Sequence[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)

        return (x * column(info.std) + column(info.mean) - column(mean)) / column(std)

    train_x, val_x = renorm(data.train_x), renorm(data.val_x)
    assert train_x is not None and val_x is not None
    return replace(data, train_x=train_x, val_x=val_x, test_x=renorm(data.test_x))


class DataStream:
    """The training data one run sees (its first `train_limit` images, normalised as the recipe says) and the
    stream that orders and augments it.

    The stream is seeded by the recipe's seed alone and draws on the CPU, so every candidate with the same seed
    sees the same batches, on any device."""

    def __init__(self, data: DataSplits, recipe: Recipe, dev: torch.device) -> None:
        if recipe.train_limit is not None:
            data = replace(data, train_x=data.train_x[: recipe.train_limit], train_y=data.train_y[: recipe.train_limit])
        if recipe.normalisation == "reference":
            data = renormalised(data, *REFERENCE_NORMALISATION[data.info.name])
        self.data, self.recipe, self.dev = data, recipe, dev
        self.generator = torch.Generator().manual_seed(derive_seed(recipe.seed, "data"))
        self.augment = data.info.augment if recipe.augment is None else recipe.augment
        # Cutout's (side, holes), or None: random per image, so (like augment) it keeps features from being cached.
        self.cutout = (recipe.cutout, recipe.cutout_holes) if recipe.cutout > 0 else None

    def steps_per_epoch(self) -> int:
        n, b = self.data.train_x.shape[0], self.recipe.batch_size
        return n // b if n >= b else 1

    @property
    def varies(self) -> bool:
        """Whether an image differs from epoch to epoch (augmentation or Cutout): then features cannot be cached."""
        return bool(self.augment) or self.cutout is not None

    def batches(self, x: torch.Tensor, images: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of (inputs, labels): `x` is the training images, augmented (and cut out) as the recipe says,
        or with `images` False features computed from them, served as they are; in order either way."""
        augment = self.augment if images else ()
        cutout = self.cutout if images else None
        padding = self.data.info.crop_padding
        size = (self.data.info.input_size, self.data.info.input_size)
        plan = plan_epoch(x.shape[0], self.generator, augment, padding, cutout=cutout, size=size)
        return iter_batches(
            x, self.data.train_y, plan, self.recipe.batch_size, augment, padding, self.dev, cutout=cutout
        )


class Learner:
    """One network and what updates it; every update of training goes through one of its `*_step` methods."""

    def __init__(self, schedule: Schedule, recipe: Recipe, dev: torch.device) -> None:
        self.schedule, self.recipe, self.dev = schedule, recipe, dev
        self.precision = resolve_precision(recipe.precision, dev)  # fp32 or bf16 (autocast)
        self.memory_format = memory_format(dev)
        net = build_network(
            schedule,
            recipe.head,
            recipe.seed,
            activation=recipe.activation,
            zero_init_output=recipe.zero_init_output,
        )
        self.net = net.to(dev, memory_format=self.memory_format)  # type: ignore[call-overload]
        self.n_units = len(self.net.units)
        self.opts = [make_optimizer(u.parameters(), recipe, dev) for u in self.net.units]
        self.opts.append(make_optimizer(self.net.classifier.parameters(), recipe, dev))  # opts[-1]: the output
        self.dropout_gens = [
            torch.Generator(device=dev).manual_seed(derive_seed(recipe.seed, "dropout", j)) for j in range(self.n_units)
        ]
        self.loss_sums = torch.zeros(self.n_units + 1, device=dev)  # per unit, then the output; summed per step
        # InfoPro's decoders reconstruct the image before normalisation: x * std + mean per channel.
        self.image_stats: tuple[torch.Tensor, torch.Tensor] | None = None
        if recipe.aux_net == "infopro":
            if recipe.normalisation == "reference":
                mean, std = REFERENCE_NORMALISATION[recipe.dataset]
            else:
                info = dataset_info(recipe.dataset)
                mean, std = info.mean, info.std
            self.image_stats = (
                torch.tensor(mean, device=dev).view(1, -1, 1, 1),
                torch.tensor(std, device=dev).view(1, -1, 1, 1),
            )

    def share(self, j: int, other: Learner) -> None:
        """Make unit j `other`'s unit j: the same module, optimiser and dropout stream (a shared prefix)."""
        self.net.units[j] = other.net.units[j]
        self.opts[j] = other.opts[j]
        self.dropout_gens[j] = other.dropout_gens[j]

    def dropout(self, h: torch.Tensor, j: int) -> torch.Tensor:
        """Dropout on what unit j passes on, drawn from unit j's own stream (see `dropped`): of single elements,
        or with `dropout_kind` channel of whole feature maps (one draw per image and channel), as `Dropout2d`."""
        p = self.recipe.dropout
        if p == 0.0:
            return h
        where = h.new_empty(h.shape[:2] + (1,) * (h.dim() - 2)) if self.recipe.dropout_kind == "channel" else h
        return h.mul(1.0 / (1.0 - p)).masked_fill_(dropped(where, p, self.dropout_gens[j]), 0.0)

    # --------------------------------------------------------------------------------------- the steps
    def cross_entropy(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Every cross-entropy of training, with the recipe's label smoothing (0: plain)."""
        return F.cross_entropy(logits, y, label_smoothing=self.recipe.label_smoothing)

    def unit_loss(self, j: int, h: torch.Tensor, y: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """The local loss of unit j on its output h (the unit's input is already detached); `image` is the
        batch's input image, which InfoPro's decoder reconstructs."""
        unit, loss, beta = self.net.units[j], self.recipe.loss, self.recipe.beta
        if self.recipe.aux_net != "local-loss":
            return self.aux_loss(unit.pred, h, y, image)
        if loss == "pred":
            return self.cross_entropy(unit.pred(h), y)
        sim = sim_loss(unit.sim(h), y, self.schedule.num_classes, self.recipe.similarity_std)
        if loss == "sim":  # the classifier still learns, as a probe, so per-unit accuracy exists
            return sim + self.cross_entropy(unit.pred(h.detach()), y)
        return (1 - beta) * self.cross_entropy(unit.pred(h), y) + beta * sim

    def aux_loss(
        self, aux: torch.nn.Module, h: torch.Tensor, y: torch.Tensor, image: torch.Tensor | None
    ) -> torch.Tensor:
        """A later method's local loss (`_aux`): the cross-entropy of the auxiliary classifier; for InfoPro
        lambda1 * BCE(decoder(h), image in [0, 1]) + lambda2 * that cross-entropy, with the unit's lambdas."""
        assert isinstance(aux, AuxNet)
        ce = self.cross_entropy(aux(h), y)
        if aux.decoder is None:
            return ce
        if image is None or self.image_stats is None:
            raise TrainingError("InfoPro's reconstruction loss needs the batch's images (simultaneous mode)")
        reconstruction = aux.decoder(h)
        mean, std = self.image_stats
        with torch.autocast(h.device.type, enabled=False):
            target = (image.float() * std + mean).clamp(0.0, 1.0)
            bce = F.binary_cross_entropy(reconstruction.float(), target)
        w_rec, w_cls = aux.weights
        return w_rec * bce + w_cls * ce

    def unit_step(
        self, j: int, h: torch.Tensor, y: torch.Tensor, image: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One update of unit j on its detached input h (`image`: the batch's input, for InfoPro's decoder):
        (what it passes on, detached and dropped out; its loss)."""
        unit = self.net.units[j]
        with autocast(self.dev, self.precision):
            out = unit.body(h)
            loss = self.unit_loss(j, out, y, image)
        loss.backward()
        self.opts[j].step()
        self.opts[j].zero_grad(set_to_none=True)
        return unit.carry(h, self.dropout(out.detach(), j)), loss.detach()

    def output_step(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One update of the output classifier on the last unit's detached output; its loss."""
        weight = 1 - self.recipe.beta if self.recipe.loss == "predsim" else 1.0
        with autocast(self.dev, self.precision):
            loss = weight * self.cross_entropy(self.net.classifier(h), y)
        loss.backward()
        self.opts[-1].step()
        self.opts[-1].zero_grad(set_to_none=True)
        return loss.detach()

    def layerwise_step(self, x: torch.Tensor, y: torch.Tensor, first: int, last: int, train_output: bool) -> None:
        """Units first..last each update on (x, y); x arrives detached, every unit's output is detached."""
        h = x
        image = x if first == 0 else None
        for j in range(first, last + 1):
            h, loss = self.unit_step(j, h, y, image)
            self.loss_sums[j] += loss
        if train_output:
            self.loss_sums[-1] += self.output_step(h, y)

    def global_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """End-to-end back-propagation; the auxiliary classifiers learn as probes on detached features."""
        h = x
        total: torch.Tensor | float = 0.0
        with autocast(self.dev, self.precision):
            for j, unit in enumerate(self.net.units):
                f = unit.body(h)
                probe = self.cross_entropy(unit.pred(f.detach()), y)
                self.loss_sums[j] += probe.detach()
                total = total + probe
                h = unit.carry(h, self.dropout(f, j))
            out = self.cross_entropy(self.net.classifier(h), y)
            self.loss_sums[-1] += out.detach()
        (total + out).backward()
        for opt in self.opts:
            opt.step()
            opt.zero_grad(set_to_none=True)

    def read_losses(self, steps: int, indices: Iterable[int]) -> tuple[float, ...]:
        """The mean loss per step of the units (and output, index n_units) in `indices`: one host sync."""
        values = (self.loss_sums[list(indices)] / max(steps, 1)).tolist()
        if not all(math.isfinite(v) for v in values):
            raise Diverged(f"loss became {values} (not finite): lower --lr or check the data")
        return tuple(values)

    def state(
        self,
        data_generator: torch.Generator,
        position: dict[str, int],
        complete: bool,
        partial: dict[str, list[float | None]],
        history: Sequence[Progress],
        elapsed: float,
    ) -> TrainerState:
        """The trainer state (`TrainerState`) of this network at `position`, copied to the CPU: what
        `train(resume=...)` continues bitwise; the loops (`_together`) write every state through it."""
        return {
            "format": STATE_FORMAT,
            "schedule": self.schedule.to_dict(),
            "recipe": self.recipe.to_dict(),
            "device": self.dev.type,
            "position": dict(position),
            "complete": complete,
            "model": to_cpu(self.net.state_dict()),
            "optimizers": [to_cpu(opt.state_dict()) for opt in self.opts],
            "rng": {
                "data": data_generator.get_state().clone(),
                "dropout": [g.get_state().clone() for g in self.dropout_gens],
            },
            "loss_sums": self.loss_sums.detach().to("cpu", copy=True),
            "partial": {k: list(v) for k, v in partial.items()},
            "history": [progress_to_dict(p) for p in history],
            "elapsed": elapsed,
        }

    # --------------------------------------------------------------------------------------- frozen units
    def freeze(self, j: int) -> None:
        self.net.units[j].eval()
        for p in self.net.units[j].parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def frozen_prefix(self, x: torch.Tensor, j: int) -> torch.Tensor:
        """A batch through the frozen units 0..j-1."""
        with autocast(self.dev, self.precision):
            for unit in self.net.units[:j]:
                x = unit(x)
        return x.float() if self.precision == "bf16" else x

    @torch.no_grad()
    def forward_frozen(self, feats: torch.Tensor, j: int) -> torch.Tensor:
        """Advance the cached training-set features through the newly frozen unit j."""
        chunks = []
        for start in range(0, feats.shape[0], self.recipe.eval_batch_size):
            xb = layout(feats[start : start + self.recipe.eval_batch_size], self.memory_format)
            with autocast(self.dev, self.precision):
                chunks.append(self.net.units[j](xb).float())
        return torch.cat(chunks)

    @torch.no_grad()
    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, upto: int, output: bool, only: int | None = None
    ) -> tuple[list[float | None], float | None]:
        """Accuracy of units 0..upto-1's auxiliary classifiers (or unit `only`'s) and of the output when `output`,
        with one host sync at the end; all None on an empty set (a run without a validation split)."""
        if x.shape[0] == 0:
            return [None] * self.n_units, None
        modes = [(m, m.training) for m in self.net.modules()]  # frozen units must stay in eval mode afterwards
        self.net.eval()
        n_units = self.n_units
        correct = torch.zeros(n_units + 1, device=self.dev)
        for start in range(0, x.shape[0], self.recipe.eval_batch_size):
            h = x[start : start + self.recipe.eval_batch_size].contiguous(memory_format=self.memory_format)
            yb = y[start : start + self.recipe.eval_batch_size]
            with autocast(self.dev, self.precision):
                for j in range(upto):
                    unit = self.net.units[j]
                    f = unit.body(h)
                    if only is None or j == only:
                        correct[j] += (unit.pred(f).argmax(1) == yb).sum()
                    h = unit.carry(h, f)
                if output:
                    correct[-1] += (self.net.classifier(h).argmax(1) == yb).sum()
        acc = (correct / max(x.shape[0], 1)).tolist()
        for m, mode in modes:
            m.training = mode
        shown = [j < upto and (only is None or j == only) for j in range(n_units)]
        units: list[float | None] = [acc[j] if shown[j] else None for j in range(n_units)]
        return units, (acc[-1] if output else None)

    def release(self) -> None:
        """Drop the optimisers, streams and the network (a caller may still hold the network)."""
        self.opts.clear()
        self.dropout_gens.clear()
        del self.net


__all__ = ["DataStream", "Diverged", "Learner", "dropped", "make_optimizer", "renormalised", "set_lr"]
