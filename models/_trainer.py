"""One readable training loop for layer-wise (and, for comparison, global) learning.

Hyper-parameters live in `Recipe`, whose defaults are the paper's Section V. The loop never syncs with the
host inside an epoch: losses and accuracies accumulate on the device and are read once per progress record.

Randomness is split so that a unit's training depends only on itself and the units before it: the batch
order and augmentation come from one data stream seeded by `seed` alone; each unit's initialisation and the
dropout on its output come from streams seeded by (seed, unit position). Nothing couples units globally (no
global grad clipping, no learning-rate schedule that depends on depth).

Checkpointing is a hook, not file I/O: `train(checkpoint=...)` hands the caller a `TrainerState` (plain dicts,
lists and CPU tensors) at every epoch end, and `train(resume=state)` continues from one. Everything random is
in that state (the data stream's and every dropout stream's generator state), so on the CPU a resumed run ends
bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ._data import DataSplits, iter_batches, plan_epoch
from ._losses import BETA, LOSSES, sim_loss
from ._network import Complexity, HeadSpec, LocalNet, build_network, complexity, derive_seed
from ._errors import DataError, DeviceError, RecipeError, ScheduleError, TrainingError
from ._schedule import Schedule, get_preset

if TYPE_CHECKING:
    from ._prefix import PrefixSession, PrefixStore

MODES = ("simultaneous", "sequential")
# Section V: the learning rate is multiplied by 0.25 at 50/75/89/94 % of the epochs.
PAPER_MILESTONES = (0.5, 0.75, 0.89, 0.94)


class Diverged(TrainingError):
    reason = "diverged"


class ResumeError(TrainingError):
    """A state that cannot be resumed here (another schedule, recipe or format); the message names the field."""

    reason = "resume"


# What the checkpoint hook receives and `resume` takes: see `_Run.state_dict` for the keys. Only plain containers,
# numbers, strings and CPU tensors, so `torch.load(..., weights_only=True)` reads it back.
TrainerState = dict[str, Any]
CheckpointCallback = Callable[[TrainerState], Any]
STATE_FORMAT = 1


@dataclass(frozen=True)
class Recipe:
    """Every training hyper-parameter in one place (Section V of Ma et al. unless noted)."""

    dataset: str = "digits"
    loss: str = "predsim"  # predsim | pred | sim | global
    mode: str = "simultaneous"  # simultaneous: every unit on every batch; sequential: greedy, unit by unit
    epochs: int = 400  # per unit in sequential mode
    batch_size: int = 128  # "A batch size of 128 is applied to all the experiments"
    lr: float = 3e-4  # ResNets 3e-4, small VGGs 5e-4
    dropout: float = 0.1  # on what a unit passes on; 0.3 (CIFAR-10 ResNets) / 0.1 (CIFAR-100 ResNets)
    weight_decay: float = 0.0
    lr_milestones: tuple[float, ...] = PAPER_MILESTONES
    lr_gamma: float = 0.25
    beta: float = BETA  # predsim = (1 - beta) * pred + beta * sim
    aux_convs: int = 0  # extra 3x3 convs in each auxiliary classifier (Belilovsky et al. use k-1)
    dim_in_decoder: int = 2048  # pool each auxiliary input down to at most this many features
    augment: tuple[str, ...] | None = None  # None: the data set's default (CIFAR: crop + flip)
    val_fraction: float = 0.1
    seed: int = 0
    eval_batch_size: int = 1024
    train_limit: int | None = None  # train on the first N training images only: quick checks and tests

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise RecipeError(f"unknown loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        if self.mode not in MODES:
            raise RecipeError(f"unknown mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.loss == "global" and self.mode != "simultaneous":
            raise RecipeError("loss 'global' trains end to end: use --mode simultaneous with it")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise RecipeError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise RecipeError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.lr > 0:
            raise RecipeError(f"lr must be positive, got {self.lr}")
        object.__setattr__(self, "lr_milestones", tuple(float(m) for m in self.lr_milestones))
        if self.augment is not None:
            object.__setattr__(self, "augment", tuple(self.augment))

    @property
    def head(self) -> HeadSpec:
        return HeadSpec(sim=self.loss in ("sim", "predsim"), aux_convs=self.aux_convs,
                        dim_in_decoder=self.dim_in_decoder)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lr_milestones"] = list(self.lr_milestones)
        if self.augment is not None:
            data["augment"] = list(self.augment)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecipeError(f"unknown recipe field(s) {unknown}: allowed are {sorted(known)}")
        return cls(**data)


# Section V / Tables I-VI per data set and family. Digits is ours: 1,300 training images need a faster rate and
# smaller batches (64) to train in seconds; measured 97-99 % output accuracy after 4-10 epochs on the CPU.
_PAPER = {
    ("cifar10", "resnet"): dict(lr=3e-4, dropout=0.3, epochs=400),
    ("cifar100", "resnet"): dict(lr=3e-4, dropout=0.1, epochs=400),
    ("cifar10", "vgg"): dict(lr=5e-4, dropout=0.2, epochs=400),
    ("cifar100", "vgg"): dict(lr=5e-4, dropout=0.2, epochs=400),
    ("digits", "resnet"): dict(lr=2e-3, dropout=0.1, epochs=10, batch_size=64),
    ("digits", "vgg"): dict(lr=2e-3, dropout=0.1, epochs=10, batch_size=64),
}


def paper_recipe(dataset: str, family: str = "resnet", preset: str | None = None, **overrides: Any) -> Recipe:
    """The paper's recipe for a data set and family (a preset's own table values when given), then overrides."""
    key = (dataset, family)
    if key not in _PAPER:
        raise RecipeError(f"no recipe for data set {dataset!r} and family {family!r}")
    values: dict[str, Any] = dict(_PAPER[key], dataset=dataset)
    if preset is not None:
        p = get_preset(preset)
        if dataset in p.dropout:
            values.update(lr=p.lr, dropout=p.dropout[dataset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Recipe(**values)


@dataclass(frozen=True)
class Progress:
    """What the caller sees after every epoch (simultaneous) or every unit (sequential)."""

    step: int  # 1-based: epoch (simultaneous) or unit (sequential)
    total_steps: int
    unit_acc: tuple[float | None, ...]  # validation accuracy of each unit's auxiliary classifier (None: untrained)
    output_acc: float | None  # validation accuracy of the output classifier (None until it is trained)
    train_loss: tuple[float | None, ...]  # mean local loss per unit over the last epoch
    elapsed: float  # seconds since training began
    unit_epochs: int  # unit-epochs trained so far: the compute measure the search compares

    @property
    def value(self) -> float:
        """The signal a pruner judges: the output accuracy, or in sequential mode the newest unit's."""
        if self.output_acc is not None:
            return self.output_acc
        return next(a for a in reversed(self.unit_acc) if a is not None)


@dataclass
class RunResult:
    schedule: Schedule
    recipe: Recipe
    device: str
    unit_acc: tuple[float | None, ...]
    output_acc: float | None
    history: list[Progress]
    complexity: Complexity
    wall_time: float
    peak_memory: int | None  # bytes allocated at peak on an accelerator; None on the CPU
    stopped_early: bool = False
    test_unit_acc: tuple[float, ...] | None = None
    test_output_acc: float | None = None
    model: LocalNet | None = field(default=None, repr=False)
    reused_units: int = 0  # units loaded from a prefix store instead of trained (sequential mode)
    reused_seconds: float = 0.0  # what training those units took when they were first trained

    @property
    def unit_epochs(self) -> int:
        return self.history[-1].unit_epochs if self.history else 0


ProgressCallback = Callable[[Progress], Any]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """cuda, then mps, then cpu, unless the caller names one."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda asked for, but no CUDA device is visible: use --device cpu or auto")
    return dev


def check_compatible(schedule: Schedule, data: DataSplits) -> None:
    info = data.info
    if (schedule.num_classes, schedule.in_channels, schedule.input_size) != (
        info.num_classes, info.in_channels, info.input_size
    ):
        raise ScheduleError(
            f"schedule expects {schedule.in_channels}x{schedule.input_size}x{schedule.input_size} inputs with "
            f"{schedule.num_classes} classes, data set {info.name} has {info.in_channels}x{info.input_size}x"
            f"{info.input_size} with {info.num_classes}: build the schedule for the data set"
        )


def train(
    schedule: Schedule,
    recipe: Recipe,
    data: DataSplits,
    *,
    device: str | torch.device | None = "auto",
    on_progress: ProgressCallback | None = None,
    test: bool = False,
    keep_model: bool = False,
    checkpoint: CheckpointCallback | None = None,
    resume: TrainerState | None = None,
    prefix_store: PrefixStore | None = None,
) -> RunResult:
    """Train `schedule` with `recipe` on `data`, reporting a `Progress` after every epoch or unit.

    `on_progress` may return True to stop training there (the result says `stopped_early`) or raise (for
    example optuna.TrialPruned); either way everything the run holds is released.

    `checkpoint` is called with a `TrainerState` after every epoch (in sequential mode: every epoch of every
    unit, and after each unit is frozen and evaluated), after `on_progress` saw that epoch's record. `resume`
    continues from such a state; the schedule and recipe must be the ones it was written with.

    `prefix_store` (sequential mode): start from the deepest stored prefix of frozen units this run shares with
    earlier runs, replaying its progress records, and store every unit this run freezes (see `PrefixStore`).
    """
    check_compatible(schedule, data)
    dev = resolve_device(device)
    session = prefix_store.session(schedule, recipe, data, dev) if prefix_store is not None else None
    run = _Run(schedule, recipe, data.to(dev), dev)
    try:
        if resume is not None:
            run.load_state_dict(resume)
        elif session is not None:
            run.prefix = session
        run.checkpoint = checkpoint
        stopped = run.fit(on_progress)
        result = RunResult(
            schedule=schedule,
            recipe=recipe,
            device=_device_name(dev),
            unit_acc=run.history[-1].unit_acc if run.history else (),
            output_acc=run.history[-1].output_acc if run.history else None,
            history=run.history,
            complexity=complexity(schedule, recipe.head),
            wall_time=time.perf_counter() - run.t0,
            peak_memory=torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None,
            stopped_early=stopped,
            reused_units=session.reused if session is not None else 0,
            reused_seconds=session.reused_seconds if session is not None else 0.0,
        )
        if test and not stopped:
            if data.test_x is None or data.test_y is None:
                raise DataError("the test set was asked for but not loaded: load the data with with_test=True")
            units, out = run.evaluate(run.data.test_x, run.data.test_y, len(run.net.units), True)
            result.test_unit_acc, result.test_output_acc = tuple(units), out  # type: ignore[assignment]
        if keep_model:
            result.model = run.net
        return result
    finally:
        run.release()


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return dev.type


class _Run:
    """State of one training run; exists so the loop reads top to bottom in `fit`."""

    def __init__(self, schedule: Schedule, recipe: Recipe, data: DataSplits, dev: torch.device) -> None:
        if recipe.train_limit is not None:
            data = replace(data, train_x=data.train_x[: recipe.train_limit], train_y=data.train_y[: recipe.train_limit])
        self.schedule, self.recipe, self.data, self.dev = schedule, recipe, data, dev
        self.cuda = dev.type == "cuda"
        if self.cuda:
            torch.backends.cudnn.benchmark = True
        self.memory_format = torch.channels_last if self.cuda else torch.contiguous_format
        self.net = build_network(schedule, recipe.head, recipe.seed).to(dev, memory_format=self.memory_format)
        self.layerwise = recipe.loss != "global"
        n_units = len(self.net.units)
        self.opts = [self._adam(u.parameters()) for u in self.net.units] + [self._adam(self.net.classifier.parameters())]
        self.dropout_gens = [self._generator(derive_seed(recipe.seed, "dropout", j)) for j in range(n_units)]
        self.data_gen = torch.Generator().manual_seed(derive_seed(recipe.seed, "data"))
        self.augment = data.info.augment if recipe.augment is None else recipe.augment
        self.history: list[Progress] = []
        self.loss_sums = torch.zeros(n_units + 1, device=dev)
        self.t0 = time.perf_counter()
        self.checkpoint: CheckpointCallback | None = None
        self.prefix: PrefixSession | None = None  # set by train() for a fresh sequential run
        # Where training stands: `unit` (sequential only), epochs done (of that unit in sequential mode), optimiser
        # steps taken (in that unit), and the sequential run's partial record. Advanced by the loops, saved by
        # state_dict(), set by load_state_dict().
        self.position = {"unit": 0, "epoch": 0, "step": 0}
        self.partial_acc: list[float | None] = [None] * n_units
        self.partial_loss: list[float | None] = [None] * n_units
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(dev)

    # --------------------------------------------------------------------------------------- helpers
    def _adam(self, params: Any) -> torch.optim.Optimizer:
        kwargs: dict[str, Any] = dict(lr=self.recipe.lr, weight_decay=self.recipe.weight_decay)
        if self.cuda:
            kwargs["fused"] = True
        return torch.optim.Adam(params, **kwargs)

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.dev).manual_seed(seed)

    def _autocast(self) -> Any:
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda)

    def _set_lr(self, opts: Sequence[torch.optim.Optimizer], step: int, total: int) -> None:
        """Step decay at fractions of the run, per batch so that short runs decay too."""
        passed = sum(step >= math.floor(m * total) for m in self.recipe.lr_milestones)
        lr = self.recipe.lr * self.recipe.lr_gamma**passed
        for opt in opts:
            for group in opt.param_groups:
                group["lr"] = lr

    def _dropout(self, h: torch.Tensor, j: int) -> torch.Tensor:
        p = self.recipe.dropout
        if p == 0.0:
            return h
        mask = torch.empty_like(h).bernoulli_(1.0 - p, generator=self.dropout_gens[j])
        return h * mask * (1.0 / (1.0 - p))

    def _batches(self, x: torch.Tensor, augment: tuple[str, ...]) -> Any:
        plan = plan_epoch(x.shape[0], self.data_gen, augment, self.data.info.crop_padding)
        return iter_batches(x, self.data.train_y, plan, self.recipe.batch_size, augment,
                            self.data.info.crop_padding, self.dev)

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """The batch in the run's memory format with that format's own strides.

        For one-channel images (digits) the batched augmentation returns strides (HW, 1, W, 1), which count as
        contiguous, so `.contiguous()` keeps them; the CPU convolution then takes another path that was seen to
        make runs irreproducible. Checking strides is metadata only: no copy otherwise and no host sync.
        """
        x = x.contiguous(memory_format=self.memory_format)
        if x.stride() != torch.empty(x.shape, device="meta", memory_format=self.memory_format).stride():
            x = x.clone(memory_format=self.memory_format)
        return x

    def _steps_per_epoch(self) -> int:
        n, b = self.data.train_x.shape[0], self.recipe.batch_size
        return n // b if n >= b else 1

    # --------------------------------------------------------------------------------------- one unit's step
    def _unit_loss(self, j: int, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The local loss of unit j on its output h (the unit's input is already detached)."""
        unit, loss, beta = self.net.units[j], self.recipe.loss, self.recipe.beta
        if loss == "pred":
            return F.cross_entropy(unit.pred(h), y)
        sim = sim_loss(unit.sim(h), y, self.schedule.num_classes)
        if loss == "sim":  # the classifier still learns, as a probe, so per-unit accuracy exists
            return sim + F.cross_entropy(unit.pred(h.detach()), y)
        return (1 - beta) * F.cross_entropy(unit.pred(h), y) + beta * sim

    def _output_weight(self) -> float:
        return 1 - self.recipe.beta if self.recipe.loss == "predsim" else 1.0

    def _unit_step(self, j: int, h: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One update of unit j on its detached input h: (what it passes on, detached and dropped out; its loss).

        The only definition of a layer-wise step: training alone and training together (`_together`) both use it,
        which is what keeps the two bitwise equal."""
        with self._autocast():
            out = self.net.units[j].body(h)
            loss = self._unit_loss(j, out, y)
        loss.backward()
        self.opts[j].step()
        self.opts[j].zero_grad(set_to_none=True)
        return self._dropout(out.detach(), j), loss.detach()

    def _output_step(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One update of the output classifier on the last unit's detached output; its loss."""
        with self._autocast():
            loss = self._output_weight() * F.cross_entropy(self.net.classifier(h), y)
        loss.backward()
        self.opts[-1].step()
        self.opts[-1].zero_grad(set_to_none=True)
        return loss.detach()

    def _step_layerwise(self, x: torch.Tensor, y: torch.Tensor, first: int, last: int, train_output: bool) -> torch.Tensor:
        """Units first..last each update on (x, y); x arrives detached, every unit's output is detached."""
        h = x
        for j in range(first, last + 1):
            h, loss = self._unit_step(j, h, y)
            self.loss_sums[j] += loss
        if train_output:
            self.loss_sums[-1] += self._output_step(h, y)
        return h

    def _step_global(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """End-to-end back-propagation; the auxiliary classifiers learn as probes on detached features."""
        h, total = x, 0.0
        with self._autocast():
            for j, unit in enumerate(self.net.units):
                h = unit.body(h)
                probe = F.cross_entropy(unit.pred(h.detach()), y)
                self.loss_sums[j] += probe.detach()
                total = total + probe
                h = self._dropout(h, j)
            out = F.cross_entropy(self.net.classifier(h), y)
            self.loss_sums[-1] += out.detach()
        (total + out).backward()
        for opt in self.opts:
            opt.step()
            opt.zero_grad(set_to_none=True)

    # --------------------------------------------------------------------------------------- the loops
    def fit(self, on_progress: ProgressCallback | None) -> bool:
        if self.recipe.mode == "sequential":
            return self._fit_sequential(on_progress)
        return self._fit_simultaneous(on_progress)

    def _fit_simultaneous(self, on_progress: ProgressCallback | None) -> bool:
        epochs, n_units = self.recipe.epochs, len(self.net.units)
        per_epoch = self._steps_per_epoch()
        total, step = epochs * per_epoch, self.position["step"]
        x_train = self.data.train_x
        for epoch in range(self.position["epoch"] + 1, epochs + 1):
            self.net.train()
            self.loss_sums.zero_()
            for x, y in self._batches(x_train, self.augment):
                self._set_lr(self.opts, step, total)
                x = self._layout(x)
                if self.layerwise:
                    self._step_layerwise(x, y, 0, n_units - 1, True)
                else:
                    self._step_global(x, y)
                step += 1
            units, out = self.evaluate(self.data.val_x, self.data.val_y, n_units, True)
            losses = self._read_losses(per_epoch, range(n_units + 1))
            progress = Progress(epoch, epochs, tuple(units), out, losses[:-1], time.perf_counter() - self.t0,
                                epoch * n_units)
            stop = self._report(progress, on_progress)
            self.position.update(epoch=epoch, step=step)
            self._save()
            if stop:
                return True
        return False

    def _fit_sequential(self, on_progress: ProgressCallback | None) -> bool:
        """Greedy: train unit j to the end on the frozen prefix's output, freeze it, go on."""
        epochs, n_units = self.recipe.epochs, len(self.net.units)
        per_epoch = self._steps_per_epoch()
        unit_acc, losses = self.partial_acc, self.partial_loss
        if self.prefix is not None and self.position["unit"] == 0 and self._reuse_prefix(on_progress):
            return True
        start = self.position["unit"]
        cached = not self.augment
        feats = self.data.train_x  # the prefix's output on the training set, when it may be cached
        for i in range(start):  # a resumed run: freeze the finished units and rebuild the cache exactly as it was
            self._freeze(i)
            if cached and i < n_units - 1:
                feats = self._forward_frozen(feats, i)
        for j in range(start, n_units):
            last = j == n_units - 1
            opts = [self.opts[j]] + ([self.opts[-1]] if last else [])
            if self.position["epoch"] == 0:
                self.loss_sums.zero_()
            step = self.position["step"]
            t_unit = time.perf_counter()
            for epoch in range(self.position["epoch"] + 1, epochs + 1):
                self.net.units[j].train()
                self.net.classifier.train()
                for x, y in self._batches(feats, () if (cached and j > 0) else self.augment):
                    self._set_lr(opts, step, epochs * per_epoch)
                    x = self._layout(x)
                    if not cached:
                        x = self._frozen_prefix(x, j)
                    if j > 0:
                        x = self._dropout(x, j - 1)
                    self._step_layerwise(x, y, j, j, last)
                    step += 1
                if epoch < epochs:  # the unit's last epoch is saved below, once the unit is evaluated
                    self.position.update(unit=j, epoch=epoch, step=step)
                    self._save()
            self._freeze(j)
            if cached and not last:
                feats = self._forward_frozen(feats, j)
            units, out = self.evaluate(self.data.val_x, self.data.val_y, j + 1, last, only=j)
            unit_acc[j] = units[j]
            read = self._read_losses(per_epoch * epochs, [j, n_units] if last else [j])
            losses[j] = read[0]
            if self.prefix is not None and not last:  # the last unit trained the output classifier too: not shared
                self.prefix.save(j + 1, self.net.units[j].state_dict(), unit_acc[j], losses[j],
                                 self.data_gen.get_state(), [g.get_state() for g in self.dropout_gens[: j + 1]],
                                 time.perf_counter() - t_unit)
            progress = Progress(j + 1, n_units, tuple(unit_acc), out if last else None, tuple(losses),
                                time.perf_counter() - self.t0, (j + 1) * epochs)
            stop = self._report(progress, on_progress)
            self.position.update(unit=j + 1, epoch=0, step=0)
            self._save()
            if stop:
                return True
        return False

    def _reuse_prefix(self, on_progress: ProgressCallback | None) -> bool:
        """Load the deepest stored prefix (never the last unit, which trains the output classifier), then replay
        its records as if its units had just been trained; True when the caller stops during the replay."""
        assert self.prefix is not None
        n_units, epochs = len(self.net.units), self.recipe.epochs
        payloads = self.prefix.load(n_units - 1)
        for k, payload in enumerate(payloads):
            self.net.units[k].load_state_dict(payload["unit"])
            self.partial_acc[k], self.partial_loss[k] = payload["acc"], payload["loss"]
        if not payloads:
            return False
        self.data_gen.set_state(payloads[-1]["data_rng"])
        for g, state in zip(self.dropout_gens, payloads[-1]["dropout_rngs"]):
            g.set_state(state)
        self.position.update(unit=len(payloads), epoch=0, step=0)
        for k in range(1, len(payloads) + 1):
            pad = (None,) * (n_units - k)
            progress = Progress(k, n_units, tuple(self.partial_acc[:k]) + pad, None,
                                tuple(self.partial_loss[:k]) + pad, time.perf_counter() - self.t0, k * epochs)
            if self._report(progress, on_progress):
                return True
        self._save()
        return False

    def _freeze(self, j: int) -> None:
        self.net.units[j].eval()
        for p in self.net.units[j].parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def _frozen_prefix(self, x: torch.Tensor, j: int) -> torch.Tensor:
        with self._autocast():
            for unit in self.net.units[:j]:
                x = unit.body(x)
        return x.float() if self.cuda else x

    @torch.no_grad()
    def _forward_frozen(self, feats: torch.Tensor, j: int) -> torch.Tensor:
        """Advance the cached training-set features through the newly frozen unit j."""
        chunks = []
        for start in range(0, feats.shape[0], self.recipe.eval_batch_size):
            xb = feats[start : start + self.recipe.eval_batch_size].contiguous(memory_format=self.memory_format)
            with self._autocast():
                chunks.append(self.net.units[j].body(xb).float())
        return torch.cat(chunks)

    def _read_losses(self, steps: int, indices: Sequence[int]) -> tuple[float | None, ...]:
        values = (self.loss_sums[list(indices)] / max(steps, 1)).tolist()
        if not all(math.isfinite(v) for v in values):
            raise Diverged(f"loss became {values} (not finite): lower --lr or check the data")
        return tuple(values)

    def _report(self, progress: Progress, on_progress: ProgressCallback | None) -> bool:
        self.history.append(progress)
        return bool(on_progress(progress)) if on_progress is not None else False

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, upto: int, output: bool,
                 only: int | None = None) -> tuple[list[float | None], float | None]:
        """Accuracy of every unit's auxiliary classifier (and the output) with one host sync at the end."""
        modes = [(m, m.training) for m in self.net.modules()]  # frozen units must stay in eval mode afterwards
        self.net.eval()
        n_units = len(self.net.units)
        correct = torch.zeros(n_units + 1, device=self.dev)
        for start in range(0, x.shape[0], self.recipe.eval_batch_size):
            h = x[start : start + self.recipe.eval_batch_size].contiguous(memory_format=self.memory_format)
            yb = y[start : start + self.recipe.eval_batch_size]
            with self._autocast():
                for j in range(upto):
                    h = self.net.units[j].body(h)
                    if only is None or j == only:
                        correct[j] += (self.net.units[j].pred(h).argmax(1) == yb).sum()
                if output:
                    correct[-1] += (self.net.classifier(h).argmax(1) == yb).sum()
        acc = (correct / max(x.shape[0], 1)).tolist()
        for m, mode in modes:
            m.training = mode
        units: list[float | None] = [acc[j] if j < upto and (only is None or j == only) else None for j in range(n_units)]
        return units, (acc[-1] if output else None)

    # --------------------------------------------------------------------------------------- checkpoints
    def _save(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint(self.state_dict())

    def state_dict(self) -> TrainerState:
        """Everything needed to continue bitwise: weights, optimisers, generators, counters, history.

        Copies on the CPU (one host sync per call, once per epoch at most), so the caller may keep it while
        training goes on and `torch.load(weights_only=True)` can read it back on any machine.
        """
        return {
            "format": STATE_FORMAT,
            "schedule": self.schedule.to_dict(),
            "recipe": self.recipe.to_dict(),
            "device": self.dev.type,
            "position": dict(self.position),
            "complete": self._complete(),
            "model": _to_cpu(self.net.state_dict()),
            "optimizers": [_to_cpu(opt.state_dict()) for opt in self.opts],
            "rng": {
                "data": self.data_gen.get_state().clone(),
                "dropout": [g.get_state().clone() for g in self.dropout_gens],
            },
            "loss_sums": self.loss_sums.detach().to("cpu", copy=True),
            "partial": {"unit_acc": list(self.partial_acc), "train_loss": list(self.partial_loss)},
            "history": [_progress_to_dict(p) for p in self.history],
            "elapsed": time.perf_counter() - self.t0,
        }

    def _complete(self) -> bool:
        if self.recipe.mode == "sequential":
            return self.position["unit"] >= len(self.net.units)
        return self.position["epoch"] >= self.recipe.epochs

    def load_state_dict(self, state: TrainerState) -> None:
        """Continue from `state`; refuses one written for another schedule or recipe, naming what differs."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ResumeError(f"checkpoint format {found!r} is not {STATE_FORMAT}: it was written by another version")
        if state.get("device", self.dev.type) != self.dev.type:
            raise ResumeError(f"the checkpoint was written on {state['device']}, this run is on {self.dev.type}: "
                              f"resume with --device {state['device']} (the devices' random streams differ)")
        for name, mine in (("schedule", self.schedule.to_dict()), ("recipe", self.recipe.to_dict())):
            theirs = state.get(name) or {}
            diffs = [k for k in mine if _plain(mine[k]) != _plain(theirs.get(k))]
            if diffs:
                k = diffs[0]
                raise ResumeError(
                    f"the checkpoint was written for {name}.{k} = {_plain(theirs.get(k))!r}, this run has "
                    f"{_plain(mine[k])!r}: resume with the same config, or start a new run in another directory"
                )
        try:
            self.net.load_state_dict(state["model"])
            if len(state["optimizers"]) != len(self.opts):
                raise ValueError(f"{len(state['optimizers'])} optimisers saved, {len(self.opts)} here")
            for opt, saved in zip(self.opts, state["optimizers"]):
                opt.load_state_dict(_to_cpu(saved))  # a copy: Adam would update the caller's tensors in place
            self.data_gen.set_state(state["rng"]["data"])
            if len(state["rng"]["dropout"]) != len(self.dropout_gens):
                raise ValueError("the number of dropout generators differs")
            for g, saved in zip(self.dropout_gens, state["rng"]["dropout"]):
                g.set_state(saved)
            self.loss_sums.copy_(state["loss_sums"].to(self.dev))
            self.position = {k: int(state["position"][k]) for k in ("unit", "epoch", "step")}
            self.partial_acc = list(state["partial"]["unit_acc"])
            self.partial_loss = list(state["partial"]["train_loss"])
            self.history = [_progress_from_dict(p) for p in state["history"]]
            self.t0 = time.perf_counter() - float(state["elapsed"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ResumeError(f"the checkpoint does not fit this run ({reason}): start a new run") from None

    def release(self) -> None:
        """Drop every tensor this run holds so a pruned or failed trial leaves the device clean."""
        self.opts.clear()
        self.dropout_gens.clear()
        del self.net
        if self.cuda:
            torch.cuda.empty_cache()


def _to_cpu(obj: Any) -> Any:
    """A deep copy with every tensor cloned to the CPU, containers kept (tuples stay tuples)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return type(obj)((k, _to_cpu(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _plain(value: Any) -> Any:
    """Tuples and lists compare equal after a save and load (YAML and torch.load may turn one into the other)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _progress_to_dict(p: Progress) -> dict[str, Any]:
    d = asdict(p)
    d["unit_acc"], d["train_loss"] = list(p.unit_acc), list(p.train_loss)
    return d


def _progress_from_dict(d: dict[str, Any]) -> Progress:
    return Progress(int(d["step"]), int(d["total_steps"]), tuple(d["unit_acc"]), d["output_acc"],
                    tuple(d["train_loss"]), float(d["elapsed"]), int(d["unit_epochs"]))
