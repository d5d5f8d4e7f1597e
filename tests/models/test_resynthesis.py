import pytest
import torch
from torch import nn

from detectors.models import create
from detectors.models.resynthesis import RDN, ResynthesisDetector


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def block_mean_upsampled(x: torch.Tensor, k: int = 4) -> torch.Tensor:
    """Mean of each k x k block, written back over the block (independent of avg_pool2d)."""
    b, c, h, w = x.shape
    means = x.reshape(b, c, h // k, k, w // k, k).mean(dim=(3, 5), keepdim=True)
    return means.expand(b, c, h // k, k, w // k, k).reshape(b, c, h, w)


@pytest.fixture
def small() -> ResynthesisDetector:
    torch.manual_seed(0)
    return create("resynthesis", "small")


@pytest.fixture(scope="module")
def paper() -> ResynthesisDetector:
    torch.manual_seed(0)
    return create("resynthesis", "paper")


@pytest.mark.parametrize("variant, batch", [("paper", 1), ("small", 2)])
def test_forward_at_input_size(variant: str, batch: int, request: pytest.FixtureRequest) -> None:
    torch.manual_seed(0)
    model = request.getfixturevalue(variant).eval()
    size = model.config.input_size
    assert model.config.mean == (0.0, 0.0, 0.0) and model.config.std == (1.0, 1.0, 1.0)
    with torch.no_grad():
        logits = model(torch.rand(batch, 3, size, size))
    assert logits.shape == (batch,)
    assert torch.isfinite(logits).all()


def test_paper_parameter_counts(paper: ResynthesisDetector) -> None:
    assert paper.config.input_size == 256
    assert n_params(paper.sr) == 22_271_107
    assert abs(n_params(paper.classifier) - 23.64e6) / 23.64e6 < 0.01
    assert paper.classifier.fc.out_features == 1


def test_small_is_compact_and_overridable() -> None:
    model = create("resynthesis", "small")
    assert model.config.input_size == 128
    assert n_params(model) <= 4_000_000
    shallower = create("resynthesis", "small", sr_blocks=2, cls_width=16)
    assert len(shallower.sr.rdbs) == 2 and shallower.config.arch["cls_width"] == 16
    assert n_params(shallower) < n_params(model)


def test_classifier_total_stride_32(small: ResynthesisDetector) -> None:
    maps = []
    small.classifier.layer4.register_forward_hook(lambda _m, _i, out: maps.append(out))
    small.eval()
    with torch.no_grad():
        small(torch.rand(1, 3, 128, 96))
    assert maps[0].shape == (1, 32 * 8 * 4, 4, 3)


def test_rdn_upscales_by_four_and_rejects_other_scales() -> None:
    rdn = RDN(features=8, growth=8, num_blocks=2, num_layers=2)
    assert rdn(torch.rand(2, 3, 5, 7)).shape == (2, 3, 20, 28)
    with pytest.raises(ValueError):
        RDN(scale=3)


def test_reconstruction_shapes_equal_input(small: ResynthesisDetector) -> None:
    x = torch.rand(3, 3, 32, 48)
    with torch.no_grad():
        assert small.downsample(x).shape == (3, 3, 8, 12)
        assert small.reconstruct(x).shape == x.shape
        assert small.error_map(x).shape == x.shape
        assert small.error_heatmap(x).shape == (3, 32, 48)
        assert (small.error_map(x) >= 0).all()


def test_downsample_is_4x4_box_average(small: ResynthesisDetector) -> None:
    x = torch.rand(2, 3, 16, 24)
    expected = block_mean_upsampled(x)[:, :, ::4, ::4]
    torch.testing.assert_close(small.downsample(x), expected)


def test_error_map_with_nearest_upsampling_sr(small: ResynthesisDetector) -> None:
    # With SR = nearest x4, the re-synthesis is the block mean: images constant per 4x4 block are
    # reproduced exactly, any other image leaves |x - block mean|.
    small.sr = nn.Upsample(scale_factor=4, mode="nearest")
    blocky = torch.rand(2, 3, 8, 12).repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    torch.testing.assert_close(small.error_map(blocky), torch.zeros_like(blocky))
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(small.error_map(x), (x - block_mean_upsampled(x)).abs())
    assert small.error_map(x).amax() > 0.1


def test_error_map_with_zeroed_sr_is_input(small: ResynthesisDetector) -> None:
    with torch.no_grad():
        for p in small.sr.parameters():
            p.zero_()
    x = torch.rand(2, 3, 32, 32) - 0.25
    torch.testing.assert_close(small.error_map(x), x.abs())


@pytest.mark.parametrize("shape", [(1, 3, 130, 128), (1, 3, 128, 126)])
def test_size_not_divisible_by_four_raises(small: ResynthesisDetector, shape: tuple[int, ...]) -> None:
    x = torch.rand(*shape)
    with pytest.raises(ValueError, match="divisible by 4"):
        small(x)
    with pytest.raises(ValueError, match="divisible by 4"):
        small.error_map(x)


def test_freeze_sr_routes_gradients_to_classifier_only(small: ResynthesisDetector) -> None:
    x = torch.rand(2, 3, 32, 32)
    small.freeze_sr()
    small.train()
    assert not small.sr.training and small.classifier.training
    assert not any(p.requires_grad for p in small.sr.parameters())
    small(x).sum().backward()
    assert all(p.grad is None for p in small.sr.parameters())
    assert all(p.grad is not None for p in small.classifier.parameters())
    assert small.classifier.fc.weight.grad.abs().sum() > 0

    small.zero_grad(set_to_none=True)
    small.freeze_sr(False)
    assert small.sr.training
    small(x).sum().backward()
    assert all(p.grad is not None for p in small.sr.parameters())
    assert small.sr.sfe1.weight.grad.abs().sum() > 0
