"""The reference code's training options (Noekland & Eidnes, anokland/local-loss train.py) as recipe fields.

The reference's formulas are re-derived here from their definitions, not taken from the engine: a unit with the same
weights and input gives the reference's loss and gradients (leaky-ReLU or ReLU, similarity with or without the
spatial std, label smoothing, predsim's beta), dropout of whole channels is the reference's `Dropout2d`, SGD with
momentum is a hand step, milestones in epochs are counted as the reference counts them, Cutout zeroes the squares it
says. Defaults are Section V: a recipe written before the options compares equal to one made now."""

import bisect
import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from lwl.models import (
    DATASETS,
    REFERENCE_NORMALISATION,
    Recipe,
    RecipeError,
    Schedule,
    TrainingConfig,
    build_network,
    load_data,
    paper_recipe,
)
from lwl.models._batches import cutout_mask, iter_batches, plan_epoch
from lwl.models._data import DataSplits

# Private on purpose: one step of one unit and its dropout are what the reference's formulas are about.
from lwl.models._steps import DataStream, Learner

CPU = torch.device("cpu")
# VGG units (3x3 conv -> BN -> nonlinearity): unit 0 sees the image, unit 1 unit 0's output, both at 16x16.
VGG = Schedule((2, 1), family="vgg", widths=(4, 8), num_classes=10, in_channels=1, input_size=16)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def _recipe(**kw):
    return Recipe(**{"dataset": "digits", "epochs": 2, "lr": 2e-3, "dropout": 0.1, "batch_size": 64, **kw})


# ------------------------------------------------------------------------------------ the reference, re-derived
def _ref_similarity(x, std=True):
    """Adjusted cosine similarity of the rows: feature maps reduced to each channel's (unbiased) spatial standard
    deviation when `std` and the maps have more than 3 channels and more than 1 row, else flattened; each row centred
    on its mean and divided by (1e-8 + its norm); the Gram matrix clamped to [-1, 1]."""
    if x.dim() == 4 and std and x.shape[1] > 3 and x.shape[2] > 1:
        n, c = x.shape[:2]
        flat = x.reshape(n, c, -1)
        mean = flat.mean(dim=2, keepdim=True)
        x = ((flat - mean) ** 2).sum(dim=2).div(flat.shape[2] - 1).sqrt()
    else:
        x = x.reshape(x.shape[0], -1)
    centred = x - x.mean(dim=1, keepdim=True)
    normed = centred / (1e-8 + (centred**2).sum(dim=1).sqrt()).unsqueeze(1)
    return (normed @ normed.T).clamp(-1, 1)


def _ref_cross_entropy(logits, y, smoothing=0.0):
    """Cross-entropy against (1 - eps) on the label plus eps spread evenly over the k classes, batch mean."""
    logp = logits - logits.logsumexp(dim=1, keepdim=True)
    k = logits.shape[1]
    target = torch.full_like(logp, smoothing / k)
    target[torch.arange(len(y)), y] += 1 - smoothing
    return -(target * logp).sum(dim=1).mean()


def _ref_unit_loss(unit, x, y, *, activation, std, smoothing, beta, num_classes):
    """One conv block of the reference trained with predsim: h = act(BN(conv(x))) in training mode; sim on a bias-
    free 3x3 conv of h; pred on h average-pooled (2x2 here, the decoder's C*H*W bound) through a linear layer."""
    conv, bn = unit.body[0], unit.body[1]
    h = F.conv2d(x, conv.weight, padding=1)
    mean = h.mean(dim=(0, 2, 3), keepdim=True)
    var = h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    h = (h - mean) / (var + bn.eps).sqrt() * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    h = torch.where(h > 0, h, 0.01 * h) if activation == "leaky_relu" else h.clamp(min=0)
    r_h = _ref_similarity(F.conv2d(h, unit.sim.weight, padding=1), std)
    r_y = _ref_similarity(torch.eye(num_classes)[y])
    sim = ((r_h - r_y) ** 2).mean()
    linear = unit.pred.net[-1]
    logits = F.avg_pool2d(h, 2).reshape(len(y), -1) @ linear.weight.T + linear.bias
    return (1 - beta) * _ref_cross_entropy(logits, y, smoothing) + beta * sim, h


def _grads(loss, params):
    return torch.autograd.grad(loss, params)


@pytest.mark.parametrize(
    ("activation", "similarity_std", "label_smoothing", "beta"),
    [
        ("leaky_relu", True, 0.0, 0.99),  # Section V, as before the options
        ("relu", True, 0.0, 0.99),
        ("relu", False, 0.0, 0.99),  # --nonlin relu --no-similarity-std
        ("leaky_relu", False, 0.1, 0.5),
    ],
)
@pytest.mark.parametrize("channel_dropout", [False, True], ids=["unit0", "unit1-after-Dropout2d"])
def test_a_unit_gives_the_references_loss_and_gradients(
    digits, activation, similarity_std, label_smoothing, beta, channel_dropout
):
    recipe = _recipe(
        loss="predsim",
        activation=activation,
        similarity_std=similarity_std,
        label_smoothing=label_smoothing,
        beta=beta,
        dim_in_decoder=256,  # 4 channels x 16 x 16 pool to 4 x 8 x 8: a 2x2 average pool
        dropout=0.5,
        dropout_kind="channel",
        precision="fp32",
    )
    learner = Learner(VGG, recipe, CPU)
    x, y = digits.train_x[:48].clone(), digits.train_y[:48]
    j = 0
    if channel_dropout:  # unit 1 learns on unit 0's output as Dropout2d passes it on
        with torch.no_grad():
            x = learner.dropout(learner.net.units[0].body(x).contiguous(), 0)
        j = 1
    unit = learner.net.units[j]
    with torch.no_grad():  # the zero-initialised decoder would hide the prediction path's gradients
        unit.pred.net[-1].weight.normal_(0, 0.1)
        unit.pred.net[-1].bias.normal_(0, 0.1)
    params = [unit.body[0].weight, unit.body[1].weight, unit.body[1].bias, unit.sim.weight, *unit.pred.parameters()]
    ours = learner.unit_loss(j, unit.body(x), y)
    ref, _ = _ref_unit_loss(
        unit,
        x,
        y,
        activation=activation,
        std=similarity_std,
        smoothing=label_smoothing,
        beta=beta,
        num_classes=10,
    )
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-7), (ours.item(), ref.item())
    for a, b in zip(_grads(ours, params), _grads(ref, params)):
        scale = float(b.abs().max())
        assert scale > 0
        # float32 rounding of sums over 12,288 terms in another order (oneDNN kernels differ by CPU): 1e-4 of the scale
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * scale), ((a - b).abs().max(), scale)


def test_the_similarity_without_std_differs_from_the_one_with_it(digits):
    learner_std = Learner(VGG, _recipe(precision="fp32"), CPU)
    learner_flat = Learner(VGG, _recipe(precision="fp32", similarity_std=False), CPU)
    x, y = digits.train_x[:32], digits.train_y[:32]
    a = learner_std.unit_loss(0, learner_std.net.units[0].body(x), y)
    b = learner_flat.unit_loss(0, learner_flat.net.units[0].body(x), y)
    assert not torch.allclose(a, b)


# ------------------------------------------------------------------------------------ dropout of whole channels
def test_channel_dropout_is_the_references_dropout2d():
    p = 0.5
    learner = Learner(VGG, _recipe(dropout=p, dropout_kind="channel"), CPU)
    h = torch.rand(64, 32, 6, 6) + 0.5  # no zeros of its own
    out = learner.dropout(h.clone(), 0)
    kept = out.flatten(2).ne(0).any(dim=2)  # (N, C): the maps that survived
    # Dropout2d: every map is either all zero or all of it scaled by 1 / (1 - p); one draw per image and channel.
    mask = kept.float()[:, :, None, None]
    assert torch.equal(out, h * mask / (1 - p))
    assert abs(1 - kept.float().mean().item() - p) < 0.05
    # Channels-last input gives the same kind of mask (whole maps), from the unit's own stream.
    out_cl = learner.dropout(h.contiguous(memory_format=torch.channels_last), 0)
    kept_cl = out_cl.flatten(2).ne(0).any(dim=2)
    assert torch.equal(out_cl, h * kept_cl.float()[:, :, None, None] / (1 - p))
    # Element-wise dropout (the default) zeroes single elements: some maps are partly zero.
    element = Learner(VGG, _recipe(dropout=p), CPU).dropout(h.clone(), 0)
    zeros = element.eq(0).flatten(2).float().mean(dim=2)
    assert ((zeros > 0) & (zeros < 1)).any()


# ------------------------------------------------------------------------------------ optimisers
def _sgd_by_hand(param, grad, buf, lr, momentum, wd):
    d = grad + wd * param
    buf = d if buf is None else momentum * buf + d
    return param - lr * buf, buf


def test_sgd_with_momentum_is_a_hand_step_and_differs_from_adam(digits):
    lr, momentum, wd = 0.05, 0.9, 1e-3
    recipe = _recipe(optimizer="sgd", momentum=momentum, weight_decay=wd, lr=lr, dropout=0.0, precision="fp32")
    learner = Learner(VGG, recipe, CPU)
    twin = Learner(VGG, recipe, CPU)  # the same initial weights: built from the same seed
    assert isinstance(learner.opts[0], torch.optim.SGD) and learner.opts[0].defaults["momentum"] == momentum
    x, y = digits.train_x[:32], digits.train_y[:32]
    unit = twin.net.units[0]
    params = list(unit.parameters())
    values = [p.detach().clone() for p in params]
    bufs = [None] * len(params)
    for _ in range(2):  # the second step uses the momentum buffer
        learner.unit_step(0, x, y)
        with torch.no_grad():
            for p, v in zip(params, values):
                p.copy_(v)
        loss = twin.unit_loss(0, unit.body(x), y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for i, (v, g) in enumerate(zip(values, grads)):
            g = torch.zeros_like(v) if g is None else g
            values[i], bufs[i] = _sgd_by_hand(v, g, bufs[i], lr, momentum, wd)
    for p, v in zip(learner.net.units[0].parameters(), values):
        assert torch.allclose(p.detach(), v, rtol=1e-5, atol=1e-7)
    adam = Learner(VGG, _recipe(lr=lr, dropout=0.0, precision="fp32"), CPU)
    adam.unit_step(0, x, y)
    adam.unit_step(0, x, y)
    assert not torch.allclose(adam.net.units[0].body[0].weight, learner.net.units[0].body[0].weight)


def test_amsgrad_is_adam_with_the_max_of_second_moments():
    learner = Learner(VGG, _recipe(optimizer="amsgrad", weight_decay=1e-4), CPU)
    opt = learner.opts[0]
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["amsgrad"] and opt.defaults["weight_decay"] == 1e-4
    assert not Learner(VGG, _recipe(), CPU).opts[0].defaults["amsgrad"]


# ------------------------------------------------------------------------------------ network options
def test_the_activation_is_visible_in_every_unit():
    leaky = build_network(VGG)
    relu = build_network(VGG, activation="relu")
    slopes = {m.negative_slope for m in leaky.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.01} and not any(isinstance(m, torch.nn.ReLU) for m in leaky.modules())
    assert any(isinstance(m, torch.nn.ReLU) for m in relu.modules())
    assert not any(isinstance(m, torch.nn.LeakyReLU) for m in relu.modules())
    resnet = Schedule((1, 1), widths=(8, 16), num_classes=10, in_channels=1, input_size=16, block="bottleneck")
    assert not any(isinstance(m, torch.nn.LeakyReLU) for m in build_network(resnet, activation="relu").modules())
    # Same parameters as drawn: the nonlinearity draws nothing.
    for a, b in zip(leaky.parameters(), relu.parameters()):
        assert torch.equal(a, b)


def test_the_zero_initialised_output_layer_keeps_every_other_draw():
    plain = build_network(VGG, seed=3)
    zero = build_network(VGG, seed=3, zero_init_output=True)
    assert torch.count_nonzero(zero.classifier[-1].weight) == 0
    assert torch.count_nonzero(plain.classifier[-1].weight) > 0
    assert torch.equal(zero.classifier[-1].bias, plain.classifier[-1].bias)  # the reference zeroes the weight only
    assert all(torch.equal(a, b) for a, b in zip(zero.units.parameters(), plain.units.parameters()))
    learner = Learner(VGG, _recipe(zero_init_output=True), CPU)
    assert torch.count_nonzero(learner.net.classifier[-1].weight) == 0


def test_label_smoothing_applies_to_the_output_loss(digits):
    recipe = _recipe(label_smoothing=0.2, loss="pred", precision="fp32")
    learner = Learner(VGG, recipe, CPU)
    h = torch.randn(16, 8, 8, 8)
    y = digits.train_y[:16]
    logits = learner.net.classifier(h)
    assert torch.allclose(learner.output_step(h, y), _ref_cross_entropy(logits, y, 0.2), rtol=1e-6)


# ------------------------------------------------------------------------------------ Cutout
def test_cutout_zeroes_the_reference_square_clipped_to_the_image():
    centres = torch.tensor([[[8, 8]], [[0, 0]], [[15, 3]]])
    mask = cutout_mask(centres, 4, 16, 16)[:, 0]
    expected = torch.zeros(3, 16, 16, dtype=torch.bool)
    expected[0, 6:10, 6:10] = True  # rows and columns [c - 2, c + 2)
    expected[1, 0:2, 0:2] = True  # clipped at the top-left corner
    expected[2, 13:16, 1:5] = True
    assert torch.equal(mask, expected)
    two = cutout_mask(torch.tensor([[[2, 2], [12, 12]]]), 4, 16, 16)
    assert two.sum() == 32


def test_cutout_in_the_stream_leaves_order_and_augmentation_as_they_were(digits):
    plain = DataStream(digits, _recipe(augment=("flip",)), CPU)
    cut = DataStream(digits, _recipe(augment=("flip",), cutout=6, cutout_holes=1), CPU)
    assert cut.varies and not DataStream(digits, _recipe(), CPU).varies
    (xa, ya), (xb, yb) = next(iter(plain.batches(digits.train_x))), next(iter(cut.batches(digits.train_x)))
    assert torch.equal(ya, yb)
    changed = (xa != xb).flatten(1)
    assert torch.equal(xb[xa != xb], torch.zeros_like(xb[xa != xb]))
    assert changed.sum(dim=1).max() <= 36 and changed.any()
    # Cached features (sequential mode) are served as they are.
    feats = torch.randn(digits.train_x.shape[0], 3, 4, 4)
    xf, _ = next(iter(cut.batches(feats, images=False)))
    assert torch.count_nonzero(xf) == xf.numel()


def test_a_plan_without_cutout_draws_what_it_drew_before():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = plan_epoch(50, g1, ("crop", "flip"), 2)
    b = plan_epoch(50, g2, ("crop", "flip"), 2, cutout=(4, 2), size=(16, 16))
    assert torch.equal(a.order, b.order) and torch.equal(a.crop_offsets, b.crop_offsets)
    assert torch.equal(a.flips, b.flips) and a.holes is None and b.holes.shape == (50, 2, 2)
    assert int(b.holes.min()) >= 0 and int(b.holes.max()) < 16
    x = torch.ones(50, 1, 16, 16)
    (xb, _), *_ = iter_batches(x, torch.zeros(50), b, 50, ("flip",), 2, "cpu", cutout=(4, 2))
    cut = (xb == 0).sum(dim=(1, 2, 3))  # two holes of at most 4 x 4, clipped at the border, perhaps overlapping
    assert int(cut.min()) >= 1 and int(cut.max()) <= 32 and int(cut.max()) > 16


# ------------------------------------------------------------------------------------ milestones in epochs
def test_milestones_in_epochs_are_counted_as_the_reference_counts_them():
    milestones, per_epoch, epochs = (2, 3, 5), 7, 6
    recipe = Recipe(lr=1.0, lr_gamma=0.25, epochs=epochs, lr_milestone_epochs=milestones)
    for step in range(epochs * per_epoch):
        epoch = step // per_epoch + 1  # the reference's 1-based epoch
        reference = 1.0 * 0.25 ** bisect.bisect_right(milestones, epoch - 1)
        assert recipe.lr_at(step, epochs * per_epoch, per_epoch) == reference
    assert [recipe.lr_at(e * per_epoch, 0, per_epoch) for e in range(epochs)] == [1, 1, 0.25, 0.25**2, 0.25**2, 0.25**3]
    assert recipe.first_decay_epoch() == 3 and Recipe(epochs=10).first_decay_epoch() == 6


# ------------------------------------------------------------------------------------ CIFAR normalisation
def test_the_reference_normalisation_renormalises_every_split():
    info = DATASETS["cifar10"]
    raw = torch.rand(20, 3, 32, 32)

    def norm(x, mean, std):
        return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)

    ours = norm(raw, info.mean, info.std)
    y = torch.arange(20) % 10
    data = DataSplits(info, ours[:12], y[:12], ours[12:16], y[12:16], ours[16:], y[16:])
    stream = DataStream(data, Recipe(dataset="cifar10", normalisation="reference"), CPU)
    mean, std = REFERENCE_NORMALISATION["cifar10"]
    expected = norm(raw, mean, std)
    got = torch.cat([stream.data.train_x, stream.data.val_x, stream.data.test_x])
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.equal(DataStream(data, Recipe(dataset="cifar10"), CPU).data.train_x, ours[:12])
    with pytest.raises(RecipeError, match="normalisation 'reference'"):
        Recipe(dataset="digits", normalisation="reference")


# ------------------------------------------------------------------------------------ validation and storage
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"optimizer": "rmsprop"}, "optimizer must be one of adam, amsgrad, sgd, got 'rmsprop'"),
        ({"momentum": 0.9}, "momentum applies to the sgd optimizer only"),
        ({"optimizer": "sgd", "momentum": 1.0}, "momentum must be in [0, 1)"),
        ({"activation": "gelu"}, "activation must be one of leaky_relu, relu, got 'gelu'"),
        ({"dropout_kind": "block"}, "dropout_kind must be one of element, channel"),
        ({"label_smoothing": 1.0}, "label_smoothing must be in [0, 1)"),
        ({"cutout": -1}, "cutout must be at least 0, got -1"),
        ({"cutout_holes": 0}, "cutout_holes must be at least 1, got 0"),
        ({"lr_milestone_epochs": (3, 2)}, "lr_milestone_epochs must be in increasing order, got [3, 2]"),
        ({"lr_milestone_epochs": (2,), "lr_milestones": (0.5,)}, "not both"),
        ({"weight_decay": -1.0}, "weight_decay must be at least 0, got -1.0"),
        ({"beta": 1.5}, "beta must be in [0, 1]"),
        ({"similarity_std": "no"}, "similarity_std must be true or false"),
    ],
)
def test_an_option_out_of_range_is_a_recipe_error_naming_the_field(fields, message):
    with pytest.raises(RecipeError) as info:
        Recipe(**fields)
    assert message in str(info.value)


# `StudySettings.to_json()` of `lwl-search --budget 8 --epochs 2 --precision fp32 --device cpu` before the options.
STORED_BEFORE = (
    '{"block": "basic", "budget": 8, "constraint": "strict", "downsample": "conv", "family": "resnet", "recipe": '
    '{"augment": null, "aux_convs": 0, "batch_size": 64, "beta": 0.99, "dataset": "digits", "dim_in_decoder": 2048, '
    '"dropout": 0.1, "epochs": 2, "eval_batch_size": 1024, "loss": "predsim", "lr": 0.002, "lr_gamma": 0.25, '
    '"lr_milestones": [0.5, 0.75, 0.89, 0.94], "mode": "simultaneous", "precision": "fp32", "seed": 0, '
    '"train_limit": null, "val_fraction": 0.2, "weight_decay": 0.0}, "shallow_stages": 2, "stages": 4, '
    '"widths": [16, 32, 64, 128]}'
)
FLAGS = ["--budget", "8", "--epochs", "2", "--precision", "fp32", "--device", "cpu"]


def test_settings_stored_before_the_options_compare_equal():
    from lwl.search import SettingsError, parse_search_flags
    from lwl.search._space.settings import StudySettings, check_same_settings

    settings, _ = parse_search_flags(FLAGS)
    assert settings.to_json() == STORED_BEFORE
    assert StudySettings.from_dict(json.loads(STORED_BEFORE)) == settings
    check_same_settings("s", STORED_BEFORE, settings)
    sgd, _ = parse_search_flags([*FLAGS, "--optimizer", "sgd", "--momentum", "0.9"])
    with pytest.raises(SettingsError, match=r"optimizer 'adam' \(stored\) vs 'sgd' \(now\)"):
        check_same_settings("s", STORED_BEFORE, sgd)
    with pytest.raises(SettingsError, match=r"optimizer 'sgd' \(stored\) vs 'adam' \(now\)"):
        check_same_settings("s", sgd.to_json(), settings)
    check_same_settings("s", sgd.to_json(), sgd)


def test_every_flag_reaches_the_recipe_in_lwl_train_and_lwl_search():
    from lwl.models.cli import Parser, add_data_args, add_recipe_args, add_schedule_args, recipe_from_args
    from lwl.search import parse_search_flags

    flags = [
        *("--optimizer", "sgd", "--momentum", "0.8", "--weight-decay", "5e-4", "--beta", "0.9"),
        *("--dim-in-decoder", "512", "--activation", "relu", "--dropout-kind", "channel", "--no-similarity-std"),
        *("--label-smoothing", "0.1", "--zero-init-output", "--cutout", "8", "--cutout-holes", "2"),
        *("--lr-milestone-epochs", "2,4", "--lr-gamma", "0.5"),
    ]
    expected = dict(
        optimizer="sgd",
        momentum=0.8,
        weight_decay=5e-4,
        beta=0.9,
        dim_in_decoder=512,
        activation="relu",
        dropout_kind="channel",
        similarity_std=False,
        label_smoothing=0.1,
        zero_init_output=True,
        cutout=8,
        cutout_holes=2,
        lr_milestone_epochs=(2, 4),
        lr_gamma=0.5,
    )
    parser = Parser(prog="lwl-train")
    add_schedule_args(parser)
    add_data_args(parser)
    add_recipe_args(parser)
    trained = recipe_from_args(parser.parse_args(flags), "resnet")
    searched = parse_search_flags([*FLAGS, *flags])[0].recipe
    for name, value in expected.items():
        assert getattr(trained, name) == value, name
        assert getattr(searched, name) == value, name
    defaults = recipe_from_args(parser.parse_args([]), "resnet")
    assert defaults == paper_recipe("digits", "resnet")


def test_the_exported_config_carries_every_option_and_old_configs_load(tmp_path):
    recipe = paper_recipe(
        "cifar10",
        "resnet",
        optimizer="amsgrad",
        activation="relu",
        dropout_kind="channel",
        similarity_std=False,
        label_smoothing=0.1,
        zero_init_output=True,
        cutout=16,
        lr_milestone_epochs=(200, 300, 350, 375),
        normalisation="reference",
    )
    schedule = Schedule((1, 1, 2, 2), num_classes=10, in_channels=3, input_size=32)
    config = TrainingConfig(schedule, recipe, {"source": "test"})
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml("c.yaml"))
    from lwl.models import load_config

    assert load_config(path).recipe == recipe
    assert "optimizer: amsgrad" in path.read_text()
    sgd = TrainingConfig(schedule, paper_recipe("cifar10", "resnet", optimizer="sgd", momentum=0.9), {})
    path.write_text(sgd.to_yaml())
    assert load_config(path).recipe.momentum == 0.9
    # A config from before the options: Section V's values, and its YAML is what it was.
    old = TrainingConfig(schedule, paper_recipe("cifar10", "resnet"), {"source": "test"})
    text = old.to_yaml()
    assert "activation" not in text and "optimizer: adam" in text
    path.write_text(text)
    assert load_config(path).recipe == paper_recipe("cifar10", "resnet")


def test_the_prefix_key_and_state_of_a_section_v_recipe_are_unchanged():
    recipe = paper_recipe("digits", "resnet")
    data = recipe.to_dict()
    assert not set(data) & {"optimizer", "activation", "cutout", "normalisation", "lr_milestone_epochs"}
    assert Recipe.from_dict(data) == recipe
    changed = dataclasses.replace(recipe, cutout=4)
    assert changed.to_dict()["cutout"] == 4 and Recipe.from_dict(changed.to_dict()) == changed


def test_median_warmup_follows_milestones_in_epochs():
    from lwl.search import median_warmup, parse_search_flags

    settings, _ = parse_search_flags([*FLAGS[:2], "--epochs", "10", "--lr-milestone-epochs", "3,7"])
    assert median_warmup(settings) == 4
    assert math.isclose(settings.recipe.lr_at(3 * 5, 50, 5), settings.recipe.lr * 0.25)


def test_lwl_export_writes_the_studys_options_into_the_config_lwl_train_reads(tmp_path):
    from lwl.models import load_config
    from lwl.search import parse_search_flags, trial_config

    flags = ["--optimizer", "sgd", "--momentum", "0.9", "--dropout-kind", "channel", "--lr-milestone-epochs", "5,8"]
    settings, _ = parse_search_flags([*FLAGS, *flags])
    config = trial_config(settings, (1, 1, 2, 4), study_name="s", trial=0, accuracy=0.5)
    path = tmp_path / "best.yaml"
    path.write_text(config.to_yaml("best.yaml"))
    read = load_config(path).recipe
    assert (read.optimizer, read.momentum, read.dropout_kind, read.lr_milestone_epochs) == (
        "sgd",
        0.9,
        "channel",
        (5, 8),
    )
    assert read == dataclasses.replace(
        settings.recipe, epochs=10, train_limit=None, val_fraction=0.0, precision=read.precision
    )
