"""SpecXNet: both variants run, the paper variant has the paper's size, gradients reach the spectral branch."""
from __future__ import annotations

import pytest
import torch

from detectors.models import IMAGENET_MEAN, IMAGENET_STD, create
from detectors.models.specxnet import (
    DualFourierAttention,
    FourierUnit,
    LocalFourierUnit,
    SpecXNet,
)

# Brief, section 1.3: the released model with a 2-class head (fusion Linear included, it is always built).
PAPER_PARAMS_2_CLASS = 67_858_350


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def small_after_backward() -> SpecXNet:
    """A small model in training mode after one backward pass of a batch of 2.

    The residual branches start at zero (see ``SpecXNet._init_weights``), which blocks their gradients only
    until the first step moves those scales; they are set off zero here as training would.
    """
    torch.manual_seed(0)
    model = create("specxnet", "small").train()
    with torch.no_grad():
        for dfa in model.modules():
            if isinstance(dfa, DualFourierAttention) and not dfa.norm_l.weight.any():
                dfa.norm_l.weight.fill_(0.1)
                dfa.norm_g.weight.fill_(0.1)
    size = model.config.input_size
    model(torch.randn(2, 3, size, size)).sum().backward()
    return model


@pytest.mark.parametrize("variant", ["paper", "small"])
def test_variant_forward(variant: str) -> None:
    torch.manual_seed(0)
    model = create("specxnet", variant).eval()
    assert model.config.mean == IMAGENET_MEAN and model.config.std == IMAGENET_STD
    assert model.config.input_size == {"paper": 299, "small": 128}[variant]
    batch = 1 if variant == "paper" else 2
    size = model.config.input_size
    with torch.no_grad():
        logits = model(torch.randn(batch, 3, size, size))
    assert logits.shape == (batch,)
    assert torch.isfinite(logits).all()


def test_paper_param_count() -> None:
    count = n_params(create("specxnet", "paper"))
    assert abs(count - PAPER_PARAMS_2_CLASS) / PAPER_PARAMS_2_CLASS < 0.02
    # Only the head differs from the released model: Linear(1024 -> 1) instead of Linear(1024 -> 2).
    assert count == PAPER_PARAMS_2_CLASS - (1024 + 1)


def test_small_is_small_and_same_topology() -> None:
    small, paper = create("specxnet", "small"), create("specxnet", "paper")
    assert n_params(small) <= 4_000_000
    kinds = lambda model: {type(m).__name__ for m in model.modules()}  # noqa: E731
    assert kinds(small) == kinds(paper)


def test_overrides_change_the_architecture() -> None:
    model = create("specxnet", "small", middle_blocks=1, input_size=96)
    assert len(model.blocks) == 3 + 1 + 1
    assert model.config.arch["middle_blocks"] == 1 and model.config.input_size == 96
    with pytest.raises(ValueError):
        create("specxnet", "small", exit_width=250)  # halves of halves must be whole


def test_gradients_reach_spectral_branch(small_after_backward: SpecXNet) -> None:
    blocks_with_spectral_grad = 0
    lfu_grads = []
    for block in small_after_backward.blocks:
        grads = [m.conv_layer.weight.grad for m in block.modules() if isinstance(m, FourierUnit)]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        blocks_with_spectral_grad += any(g.abs().sum() > 0 for g in grads)
        lfu_grads += [m.conv_layer.weight.grad for m in block.modules() if isinstance(m, LocalFourierUnit)]
    assert blocks_with_spectral_grad == len(small_after_backward.blocks)
    assert lfu_grads and any(g.abs().sum() > 0 for g in lfu_grads)


def test_residual_branches_start_at_zero() -> None:
    torch.manual_seed(0)
    model = create("specxnet", "small").eval()
    x = torch.randn(1, 3, 128, 128)
    for block in model.blocks:
        out_l, out_g = block.rep((torch.randn(1, block_width(block), 16, 16), torch.randn(1, block_width(block), 16, 16)))
        assert out_l.abs().max() == 0 and out_g.abs().max() == 0
    assert torch.isfinite(model(x)).all()


def test_residual_init_scales_the_branch_output() -> None:
    branches, maps = [], None
    for scale in (1.0, 0.25):
        torch.manual_seed(0)
        block = create("specxnet", "small", residual_init=scale).eval().blocks[3]  # a middle block, no pooling
        if maps is None:
            maps = (torch.randn(2, block_width(block), 16, 16), torch.randn(2, block_width(block), 16, 16))
        branches.append(block.rep(maps))
    for full, quarter in zip(*branches):
        assert full.abs().max() > 0
        torch.testing.assert_close(quarter, 0.25 * full)


def test_dfa_starts_input_independent() -> None:
    """Fresh model: every DFA gate sits at 0.5 and both fusion weights at 0.5, whatever the input, so no layer
    multiplies a sample by its own random gain before training."""
    torch.manual_seed(0)
    model = create("specxnet", "small").eval()
    dfas = [m for m in model.modules() if isinstance(m, DualFourierAttention)]
    assert dfas
    for dfa in dfas:
        channels = dfa.norm_l.num_features
        pooled = torch.randn(4, channels, 1, 1) * 3
        torch.testing.assert_close(dfa.attn_local(pooled), torch.full_like(pooled, 0.5))
        torch.testing.assert_close(dfa.attn_global(pooled), torch.full_like(pooled, 0.5))
        weights = torch.softmax(dfa.fusion_weight(torch.randn(4, 2 * channels)), dim=1)
        torch.testing.assert_close(weights, torch.full_like(weights, 0.5))


def block_width(block) -> int:
    first = block.rep[1].dw.ffc.convl2l
    return first.in_channels


def test_dfa_fusion_weights_receive_gradient(small_after_backward: SpecXNet) -> None:
    fusions = [m.fusion_weight for m in small_after_backward.modules() if isinstance(m, DualFourierAttention)]
    assert fusions
    for linear in fusions:
        assert linear.weight.grad is not None and torch.isfinite(linear.weight.grad).all()
        assert linear.weight.grad.abs().sum() > 0


def test_dfa_returns_the_paper_fusion_split_over_the_streams() -> None:
    torch.manual_seed(0)
    dfa = DualFourierAttention(8, 8).eval()
    y_l, y_g = torch.randn(3, 8, 6, 6), torch.randn(3, 8, 5, 5)
    out_l, out_g = dfa(y_l, y_g)

    # The paper's figure, written out directly on the maps.
    n_l, n_g = dfa.norm_l(y_l), dfa.norm_g(y_g)
    gated_l = n_l * dfa.attn_global(n_g.mean((2, 3), keepdim=True)) + n_l
    gated_g = n_g * dfa.attn_local(n_l.mean((2, 3), keepdim=True)) + n_g
    pooled = torch.cat([gated_l.mean((2, 3)), gated_g.mean((2, 3))], dim=1)
    w = torch.softmax(dfa.fusion_weight(pooled), dim=1)
    torch.testing.assert_close(out_l, 2 * w[:, 0, None, None, None] * gated_l)
    torch.testing.assert_close(out_g, 2 * w[:, 1, None, None, None] * gated_g)
    assert not torch.allclose(w[:, 0], w[:, 1])


@pytest.mark.parametrize("height, width", [(7, 9), (6, 8), (5, 5)])
def test_fourier_units_keep_the_map_size(height: int, width: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, height, width)
    for unit in (FourierUnit(4), LocalFourierUnit(4)):
        out = unit(x)
        assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("size", [131, 127])
def test_small_odd_input_sizes(size: int) -> None:
    torch.manual_seed(0)
    model = create("specxnet", "small").train()
    logits = model(torch.randn(2, 3, size, size))
    assert logits.shape == (2,) and torch.isfinite(logits).all()
    logits.sum().backward()


def test_channels_last_input_trains_without_crashing():
    """Regression: channels-last maps made torch's CPU FFT backward corrupt memory (a double free that kills the
    process), so the check runs in a child process."""
    import subprocess
    import sys

    code = (
        "import torch; from detectors import models; torch.manual_seed(0);"
        "m = models.create('specxnet', 'small'); m.train();"
        "x = torch.randn(4, 3, 128, 128).contiguous(memory_format=torch.channels_last);"
        "m(x).sum().backward(); print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
