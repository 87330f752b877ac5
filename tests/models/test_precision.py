"""Precision (fp32 / bf16 autocast, `auto` by device), channels-last on the CPU, and the dropout masks' draw."""

from dataclasses import replace

import pytest
import torch

import lwl.models._device as device_module
from lwl.models import (
    DeviceError,
    RecipeError,
    Schedule,
    cpu_flags,
    load_data,
    native_bf16,
    paper_recipe,
    resolve_precision,
    train,
)
from lwl.models._steps import Learner, dropped

SCHEDULE = Schedule((1, 2), widths=(4, 8), num_classes=10, in_channels=1, input_size=16)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_exactly_where_the_device_computes_it_natively(monkeypatch, native):
    monkeypatch.setattr(device_module, "native_bf16", lambda: native)
    assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("auto", torch.device("mps")) == "fp32"
    # An explicit choice is kept on the CPU either way (bf16 without native support is emulated, and slow).
    assert [resolve_precision(p, CPU) for p in ("fp32", "bf16")] == ["fp32", "bf16"]


def test_native_bf16_needs_onednn_and_the_cpus_own_bf16_instructions():
    """Checked against what the kernel says of this CPU: /proc/cpuinfo's flags (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags()
    onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if flags is None:
        assert native_bf16() == onednn
    else:
        assert native_bf16() == (onednn and bool({"avx512_bf16", "amx_bf16"} & flags))


def test_plain_avx512_is_not_native_bf16(monkeypatch):
    """Whatever oneDNN reports, a CPU that lists no bf16 instructions (a Skylake-class AVX-512 one) stays fp32."""
    monkeypatch.setattr(device_module, "cpu_flags", lambda: {"avx2", "avx512f", "avx512bw"})
    assert not native_bf16()
    assert resolve_precision("auto", CPU) == "fp32"


def test_a_precision_that_does_not_exist_is_refused():
    with pytest.raises(RecipeError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        paper_recipe("digits", precision="fp16")
    with pytest.raises(DeviceError, match="not supported on mps"):
        resolve_precision("bf16", torch.device("mps"))


def test_a_result_records_the_precision_it_trained_in(digits):
    recipe = paper_recipe("digits", "resnet", epochs=1, train_limit=128)
    result = train(SCHEDULE, recipe, digits, device="cpu")
    assert result.recipe.precision == resolve_precision("auto", CPU) != "auto"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_under_bf16_only_the_arithmetic_is_bf16(digits, precision):
    """Convolutions run in bf16; weights, optimiser state, every loss and the loss sums stay fp32."""
    recipe = paper_recipe("digits", "resnet", precision=precision, loss="predsim")
    learner = Learner(SCHEDULE, recipe, CPU)
    assert learner.memory_format == torch.channels_last
    x = digits.train_x[:32].contiguous(memory_format=torch.channels_last)
    y = digits.train_y[:32]
    out, loss = learner.unit_step(0, x, y)
    assert out.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert loss.dtype == torch.float32 and learner.loss_sums.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in learner.net.parameters())
    moments = [t for state in learner.opts[0].state.values() for t in state.values() if t.dim() > 0]
    assert moments and all(t.dtype == torch.float32 for t in moments)
    out_loss = learner.output_step(learner.frozen_prefix(x, 2), y)
    assert out_loss.dtype == torch.float32


def test_bf16_learns_as_fp32_does(digits):
    """Same seed, same data: every unit's accuracy in bf16 ends within a few points of fp32's, far above chance."""
    recipe = paper_recipe("digits", "resnet", epochs=3, train_limit=512)
    fp32, bf16 = (train(SCHEDULE, replace(recipe, precision=p), digits, device="cpu") for p in ("fp32", "bf16"))
    assert min(bf16.unit_acc) > 0.5
    assert all(abs(a - b) < 0.05 for a, b in zip(fp32.unit_acc, bf16.unit_acc)), (fp32.unit_acc, bf16.unit_acc)
    assert fp32.history[-1].train_loss != bf16.history[-1].train_loss  # they did train in two precisions


def test_dropout_drops_each_element_with_probability_p():
    g = torch.Generator().manual_seed(7)
    h = torch.ones(64, 16, 32, 32)
    for p in (0.1, 0.3, 0.5):
        rate = dropped(h, p, g).float().mean().item()
        n = h.numel()
        assert abs(rate - p) < 5 * (p * (1 - p) / n) ** 0.5, (p, rate)  # five standard errors


def test_dropout_masks_come_from_the_units_stream_laid_out_as_the_tensor():
    h = torch.randn(8, 6, 5, 5)
    first = dropped(h, 0.3, torch.Generator().manual_seed(1))
    other = dropped(h, 0.3, torch.Generator().manual_seed(2))
    assert torch.equal(first, dropped(h, 0.3, torch.Generator().manual_seed(1))) and not torch.equal(first, other)
    # Channels-last: the same draw, in memory order, so the mask keeps the layout (no copy into another format).
    cl = dropped(h.contiguous(memory_format=torch.channels_last), 0.3, torch.Generator().manual_seed(1))
    assert cl.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(cl.permute(0, 2, 3, 1).flatten(), first.flatten())
    # Odd sizes: the last 64-bit word is half used, and the mask keeps the tensor's shape.
    assert dropped(torch.ones(3, 3, 3), 0.5, torch.Generator().manual_seed(0)).shape == (3, 3, 3)


def test_dropout_resolves_p_to_two_to_the_minus_32():
    """The threshold is round(p * 2**32) among the 2**32 values of 32 bits: p = 2**-32 drops exactly one value."""
    g = torch.Generator().manual_seed(0)
    assert not dropped(torch.ones(10_000), 2**-33, g).any()  # rounds to 0: nothing dropped
    assert dropped(torch.ones(10_000), 1 - 2**-40, g).all()  # everything but one value in 2**32 is dropped


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_dropout_scales_what_it_keeps(precision):
    """Inverted dropout: kept elements are divided by 1 - p, dropped ones are zero (in the tensor's dtype)."""
    recipe = paper_recipe("digits", "resnet", precision=precision, dropout=0.25)
    learner = Learner(SCHEDULE, recipe, CPU)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    h = torch.full((4, 4, 16, 16), 3.0, dtype=dtype)
    out = learner.dropout(h, 0)
    assert out.dtype == dtype and set(out.unique().tolist()) == {0.0, 4.0}
