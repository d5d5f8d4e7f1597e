"""Beyond the Spectrum: detecting deepfakes via re-synthesis (He, Yu, Keuper, Fritz; IJCAI 2021, arXiv 2105.14376).

A super-resolution network trained on real faces only re-synthesises the image from its 4x box-downsampled
copy; GAN images are re-synthesised less faithfully, so a classifier looks at the reconstruction error::

    x in [0, 1] -> down = 4x4 average pool -> sr = RDN x4 (down) -> error = |sr - x| -> deep-stem ResNet -> logit

Training is two-stage: (1) the RDN on real images alone (L1 + perceptual loss in the paper); (2) the classifier
on the error map with the RDN frozen (``freeze_sr()``). Input side lengths must be divisible by 4.

Choices and deviations (authors' repo SSAW14/BeyondtheSpectrum):
- Only the **pixel-level** artifact map ``|sr - x|`` is implemented. The stage-k maps ``|phi_k(sr) - phi_k(x)|``
  (VGG19 features; the released StyleGAN model uses stage5 = relu5_1) need ImageNet VGG19 weights, which we do
  not have, so that path is left out.
- Labels: the authors' 2-way head puts REAL at index 1; ours is one logit with 1 = FAKE. A released classifier
  converts as ``w = fc.weight[0] - fc.weight[1]``, ``b = fc.bias[0] - fc.bias[1]`` (softmax index 0 = fake).
- Input: face crops at 256 px ("paper") instead of the paper's whole 1024x1024 CelebA-HQ images; no mean/std
  normalisation (mean 0, std 1), as in the paper.
- RDN follows the RDN paper: each block's local fusion returns ``features`` (G0) channels and the global fusion
  concatenates ``blocks * features``; the authors' code uses ``growth`` (G) there, identical when G0 = G as in
  every configuration they ship. Module names match the authors' RDN and classifier, so the released RDN
  state dict loads into ``sr`` as is.
- The classifier returns only its logit (the authors' also returns the layer4 map, unused by the detector).
- The authors scale classifier gradients by ``lr_sr`` during training; that is a trainer setting, not part of
  the model.

Variants (parameters measured with ``sum(p.numel())``)::

    variant | input | RDN G0/G, blocks D, layers C       | classifier width, blocks        | params
    paper   | 256   | 64/64, 16, 8   (22,271,107)        | 64, [3, 4, 6, 3]  (23,633,857)  | 45.90M
    small   | 128   | 32/32, 4, 4    (   488,131)        | 32, [1, 1, 1, 1]  ( 2,041,313)  |  2.53M
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._base import UNIT_MEAN, UNIT_STD, Detector, DetectorSpec, ModelConfig

SCALE = 4


class DenseLayer(nn.Module):
    """3x3 conv + ReLU whose ``growth`` output channels are appended to its input."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, growth, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.relu(self.conv(x))], dim=1)


class ResidualDenseBlock(nn.Module):
    """RDB: ``num_layers`` densely connected layers, 1x1 local feature fusion, local residual."""

    def __init__(self, features: int, growth: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(DenseLayer(features + i * growth, growth) for i in range(num_layers)))
        self.lff = nn.Conv2d(features + num_layers * growth, features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.lff(self.layers(x))


class RDN(nn.Module):
    """Residual Dense Network for super-resolution (Zhang et al., CVPR 2018); convs with bias, no normalisation.

    ``scale`` must be a power of two: the upsampler is one ``conv 3x3 -> PixelShuffle(2)`` stage per factor 2.
    The output is not clamped.
    """

    def __init__(
        self,
        scale: int = SCALE,
        channels: int = 3,
        features: int = 64,
        growth: int = 64,
        num_blocks: int = 16,
        num_layers: int = 8,
    ) -> None:
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"RDN scale must be a power of two >= 2, got {scale}")
        self.sfe1 = nn.Conv2d(channels, features, 3, padding=1)
        self.sfe2 = nn.Conv2d(features, features, 3, padding=1)
        self.rdbs = nn.ModuleList(ResidualDenseBlock(features, growth, num_layers) for _ in range(num_blocks))
        self.gff = nn.Sequential(
            nn.Conv2d(num_blocks * features, features, 1),
            nn.Conv2d(features, features, 3, padding=1),
        )
        upscale: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            upscale += [nn.Conv2d(features, 4 * features, 3, padding=1), nn.PixelShuffle(2)]
        self.upscale = nn.Sequential(*upscale)
        self.output = nn.Conv2d(features, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.sfe1(x)
        h = self.sfe2(shallow)
        block_outputs = []
        for rdb in self.rdbs:
            h = rdb(h)
            block_outputs.append(h)
        h = self.gff(torch.cat(block_outputs, dim=1)) + shallow
        return self.output(self.upscale(h))


class Bottleneck(nn.Module):
    """torchvision-style bottleneck (stride on the 3x3 conv), expansion 4."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class DeepStemResNet(nn.Module):
    """Bottleneck ResNet with a three-conv stem (PyTorch-Encoding ``deep_base``), total stride 32.

    Stem: 3x3/2 ``width``, 3x3/2 ``width``, 3x3 ``2*width``, max-pool 3/2; stage strides 2, 2, 1, 1 (the
    undilated setting the authors train with); global average pool -> linear.
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        blocks: tuple[int, int, int, int] = (3, 4, 6, 3),
        num_outputs: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
        )
        self.bn1 = nn.BatchNorm2d(2 * width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 2 * width
        stages = []
        for i, (num_blocks, stride) in enumerate(zip(blocks, (2, 2, 1, 1))):
            planes = width * 2**i
            stage = [Bottleneck(channels, planes, stride)]
            channels = planes * Bottleneck.expansion
            stage += [Bottleneck(channels, planes) for _ in range(num_blocks - 1)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(channels, num_outputs)
        self._init_weights()

    def _init_weights(self) -> None:
        # He-normal with fan-out, BN to identity: the authors' from-scratch init.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ResynthesisDetector(Detector):
    """Re-synthesis detector: ``sr`` (RDN x4) re-creates the image, ``classifier`` scores ``|sr - x|``.

    Input ``x``: ``[B, 3, H, W]`` RGB in [0, 1] with ``H`` and ``W`` divisible by 4.
    """

    def __init__(
        self,
        sr_features: int = 64,
        sr_growth: int = 64,
        sr_blocks: int = 16,
        sr_layers: int = 8,
        cls_width: int = 64,
        cls_blocks: tuple[int, int, int, int] = (3, 4, 6, 3),
    ) -> None:
        super().__init__()
        self.sr = RDN(SCALE, 3, sr_features, sr_growth, sr_blocks, sr_layers)
        self.classifier = DeepStemResNet(3, cls_width, tuple(cls_blocks), num_outputs=1)
        self.sr_frozen = False

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """Non-overlapping 4x4 box average: the low-resolution input of the re-synthesis."""
        height, width = x.shape[-2:]
        if height % SCALE or width % SCALE:
            raise ValueError(f"input height and width must be divisible by {SCALE}, got {height}x{width}")
        return F.avg_pool2d(x, SCALE)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolved re-synthesis of ``x`` from its downsampled copy, same shape as ``x``."""
        return self.sr(self.downsample(x))

    def error_map(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel-level artifact map ``|reconstruct(x) - x|``, shape ``[B, 3, H, W]``."""
        return (self.reconstruct(x) - x).abs()

    def error_heatmap(self, x: torch.Tensor) -> torch.Tensor:
        """Channel mean of ``error_map``, shape ``[B, H, W]``, for display."""
        return self.error_map(x).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.error_map(x)).squeeze(1)

    def freeze_sr(self, frozen: bool = True) -> None:
        """Stage 2 of training: stop gradients into ``sr`` and keep it in eval mode while ``frozen``."""
        self.sr_frozen = frozen
        self.sr.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> ResynthesisDetector:
        super().train(mode)
        if self.sr_frozen:
            self.sr.eval()
        return self


_PAPER_REF = "He, Yu, Keuper, Fritz. Beyond the Spectrum: Detecting Deepfakes via Re-synthesis. IJCAI 2021"

PAPER_CONFIG = ModelConfig(
    name="resynthesis",
    variant="paper",
    input_size=256,
    mean=UNIT_MEAN,
    std=UNIT_STD,
    arch=dict(sr_features=64, sr_growth=64, sr_blocks=16, sr_layers=8, cls_width=64, cls_blocks=(3, 4, 6, 3)),
    paper=_PAPER_REF,
)

SMALL_CONFIG = ModelConfig(
    name="resynthesis",
    variant="small",
    input_size=128,
    mean=UNIT_MEAN,
    std=UNIT_STD,
    arch=dict(sr_features=32, sr_growth=32, sr_blocks=4, sr_layers=4, cls_width=32, cls_blocks=(1, 1, 1, 1)),
    paper=_PAPER_REF,
)


# Plain convolutions: float16 keeps the scores; channels-last input beats a trace (11.5 vs 14 ms).
SPEC = DetectorSpec(
    name="resynthesis",
    display_name="Re-synthesis",
    colour="#2ca02c",
    variants={"small": SMALL_CONFIG, "paper": PAPER_CONFIG},
    model=ResynthesisDetector,
    cam_layer="classifier.layer4",  # the last feature map with a spatial layout
    half_precision_safe=True,
    channels_last_input=True,
    paper="He, Yu, Keuper, Fritz. Beyond the Spectrum: Detecting Deepfakes via Re-synthesis. IJCAI 2021",
    looks_at="the error of a super-resolution network trained on real faces only: it re-creates a face from a 4x "
             "smaller copy, and a classifier reads where the re-creation fails (shown as the error map).",
)
