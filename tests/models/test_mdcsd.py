"""MD-CSDNetwork: shapes, paper size, the DCT front end, real cross-stitch mixing, normalisation fitting."""
from __future__ import annotations


import pytest
import torch

from detectors.models import create
from detectors.models.mdcsd import DCT2d, MDCSDNetwork, SameMaxPool2d, dct_matrix

PAPER_PARAMS = 42.8e6  # Keras total incl. BN moving statistics, as the brief counts it
GRAD_SIZE = 64  # the small variant at a reduced size keeps the backward tests cheap


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def bn_running_stats(model: torch.nn.Module) -> int:
    return sum(
        m.running_mean.numel() + m.running_var.numel()
        for m in model.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    )


pytestmark = pytest.mark.usefixtures("single_thread")  # tests/models/conftest.py


@pytest.fixture()
def small_model() -> MDCSDNetwork:
    torch.manual_seed(0)
    return create("mdcsd", "small")


def test_paper_forward_size_and_keras_shapes() -> None:
    torch.manual_seed(0)
    model = create("mdcsd", "paper")
    assert model.config.input_size == 299
    keras_total = n_params(model) + bn_running_stats(model)
    assert abs(keras_total - PAPER_PARAMS) / PAPER_PARAMS < 0.05
    # Keras Xception without top: 20,861,480 in total, 54,528 of them BN moving statistics.
    assert n_params(model.spatial) == 20_861_480 - 54_528
    assert bn_running_stats(model.spatial) == 54_528
    shapes: list[tuple[int, ...]] = []
    for stage in model.frequency.stages:
        stage.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape)))
    model.eval()
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 299, 299))
    assert logits.shape == (1,)
    assert torch.isfinite(logits).all()
    # Keras Xception at 299 px: merge_1, merge_2, merge_3, block13 add, block14.
    expected = [(128, 74), (256, 37), (728, 19), (1024, 10), (2048, 10)]
    assert shapes == [(1, c, s, s) for c, s in expected]


def test_small_forward_and_size(small_model: MDCSDNetwork) -> None:
    assert small_model.config.input_size == 128
    assert n_params(small_model) <= 4_000_000
    logits = small_model(torch.rand(4, 3, 128, 128))
    assert logits.shape == (4,)
    assert torch.isfinite(logits).all()


def test_overrides_reach_the_constructor() -> None:
    model = create("mdcsd", "small", middle_blocks=1, head_width=32, input_size=96)
    assert model.config.input_size == 96
    assert len(model.spatial.stages[3].middle) == 1
    assert model.classifier[1].in_features == 64
    assert model(torch.rand(2, 3, 96, 96)).shape == (2,)


def test_same_max_pool_matches_tensorflow_padding() -> None:
    # Even size: TF pads one -inf column/row at the end only, so windows start at 0, 2, 4.
    x = torch.arange(16.0).view(1, 1, 4, 4)
    pooled = SameMaxPool2d()(x)
    assert torch.equal(pooled, torch.tensor([[[[10.0, 11.0], [14.0, 15.0]]]]))
    assert SameMaxPool2d()(torch.rand(1, 1, 147, 147)).shape[-1] == 74


@pytest.mark.parametrize("size", [8, 128, 299])
def test_dct_matrix_is_orthonormal(size: int) -> None:
    basis = dct_matrix(size, dtype=torch.float64)
    torch.testing.assert_close(basis @ basis.T, torch.eye(size, dtype=torch.float64))


def test_dct_of_constant_image_is_pure_dc() -> None:
    size = 16
    image = torch.full((2, 3, size, size), 5.0, dtype=torch.float64)
    coeffs = DCT2d()(image)
    assert torch.allclose(coeffs[..., 0, 0], torch.full((2, 3), 5.0 * size, dtype=torch.float64))
    ac = coeffs.clone()
    ac[..., 0, 0] = 0
    assert ac.abs().max() < 1e-9


def test_dct_preserves_energy_and_adapts_to_size() -> None:
    dct = DCT2d()
    for size in (12, 20):
        image = torch.randn(1, 3, size, size, dtype=torch.float64)
        coeffs = dct(image)
        torch.testing.assert_close(coeffs.pow(2).sum(), image.pow(2).sum())
        assert dct.basis.shape == (size, size)


def test_cross_stitch_init() -> None:
    model = create("mdcsd", "small")
    assert len(model.cross_stitch) == 4
    for unit in model.cross_stitch:
        torch.testing.assert_close(unit.weight.detach(), torch.tensor([[0.9, 0.1], [0.1, 0.9]]))


def test_cross_stitch_gradients_reach_every_entry(small_model: MDCSDNetwork) -> None:
    torch.manual_seed(2)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        small_model(torch.rand(2, 3, GRAD_SIZE, GRAD_SIZE)), torch.tensor([0.0, 1.0])
    )
    loss.backward()
    for unit in small_model.cross_stitch:
        assert unit.weight.grad is not None
        assert (unit.weight.grad != 0).all(), unit.weight.grad


def test_spatial_loss_reaches_frequency_branch(small_model: MDCSDNetwork) -> None:
    torch.manual_seed(3)
    spatial_embedding, _ = small_model.branch_embeddings(torch.rand(2, 3, GRAD_SIZE, GRAD_SIZE))
    spatial_embedding.sum().backward()
    first_conv = small_model.frequency.stages[0].stem[0][0]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
    assert small_model.frequency_head[3].weight.grad is None


def test_without_mixing_frequency_branch_is_unreached(small_model: MDCSDNetwork) -> None:
    # Control for the test above: the released code's diagonal-only stitching cannot reach it.
    with torch.no_grad():
        for unit in small_model.cross_stitch:
            unit.weight[0, 1] = 0.0
    spatial_embedding, _ = small_model.branch_embeddings(torch.rand(2, 3, GRAD_SIZE, GRAD_SIZE))
    spatial_embedding.sum().backward()
    first_conv = small_model.frequency.stages[0].stem[0][0]
    assert first_conv.weight.grad is None or first_conv.weight.grad.abs().sum() == 0


def test_fit_frequency_normalisation(small_model: MDCSDNetwork) -> None:
    torch.manual_seed(4)
    batches = [torch.rand(3, 3, 32, 32), torch.rand(5, 3, 32, 32) * 0.5, torch.rand(2, 3, 32, 32)]
    before = small_model.frequency_input.mean.clone(), small_model.frequency_input.var.clone()
    small_model.fit_frequency_normalisation(iter(batches))
    fitted = small_model.frequency_input
    spectra = fitted.log_spectrum(torch.cat(batches)).double()
    expected_mean = spectra.mean(dim=(0, 2, 3))
    expected_var = spectra.var(dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(fitted.mean.flatten().double(), expected_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fitted.var.flatten().double(), expected_var, rtol=1e-5, atol=1e-5)
    assert not torch.equal(fitted.mean, before[0]) and not torch.equal(fitted.var, before[1])
    normalised = fitted(torch.cat(batches)).double()
    torch.testing.assert_close(normalised.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalised.std(dim=(0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-3, rtol=0)
    # Buffers are saved with the weights.
    assert {"frequency_input.mean", "frequency_input.var"} <= set(small_model.state_dict())


def test_param_groups_boost_cross_stitch_lr(small_model: MDCSDNetwork) -> None:
    groups = small_model.param_groups(lr=2e-4)
    assert [g["lr"] for g in groups] == pytest.approx([2e-4, 1e-3])
    assert len(groups[1]["params"]) == 4
    assert sum(len(g["params"]) for g in groups) == len(list(small_model.parameters()))
    torch.optim.Adam(groups)


def test_frequency_input_ignores_autocast() -> None:
    front = create("mdcsd", "small").frequency_input
    rgb01 = torch.rand(2, 3, 32, 32)
    reference = front(rgb01)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = front(rgb01)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, reference)
