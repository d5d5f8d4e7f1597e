"""MD-CSDNetwork: two Xception branches (RGB and log-DCT) joined by cross-stitch units.

Agarwal, Agarwal, Sinha, Vatsa, Singh, "MD-CSDNetwork: Multi-Domain Cross Stitched Network for Deepfake
Detection", IEEE FG 2021 (arXiv 2109.07311); official TensorFlow/Keras code: Aayushi0008/Deepfake-Detection.

Pipeline (input = RGB in [0, 1]; the config's mean 0 / std 1 leaves it untouched):
- spatial branch: ``x * 2 - 1`` (Keras ``xception.preprocess_input`` of the 0-255 image) -> Xception;
- frequency branch: per-channel orthonormal 2D DCT-II of the 0-255 image -> ``log(|.| + 1e-12)`` -> per-channel
  standardisation with fixed buffers (Keras ``Normalization``) -> Xception with its own weights;
- both branches are the full Keras Xception topology; a cross-stitch unit (one trainable 2x2 scalar matrix,
  init [[0.9, 0.1], [0.1, 0.9]]) mixes them after merge_1, merge_2, merge_3 (the entry-flow residual adds) and
  after block13;
- head: per branch block14 -> GAP -> Dropout 0.5 -> Linear(2048, 256) + ReLU; concat -> Dropout 0.2 -> Linear(512, 1).

Keras details mirrored: SeparableConv2D = depthwise 3x3 + pointwise 1x1 with no BN and no bias in between; BN eps
1e-3, momentum 0.99 (PyTorch 0.01); stem convs 'valid'; 3x3/2 max-pools 'same' with TensorFlow's asymmetric padding
(extra row/column at the bottom/right on even sizes); Glorot-uniform init for every conv and linear, zero biases.

Deliberate differences from the released code (paper wins):
- cross-stitch: the code's off-diagonal terms sit after a ``continue`` and never run, so it only rescales each
  branch by its diagonal weight; here both branches really mix, x_s' = a_ss x_s + a_sf x_f, x_f' = a_fs x_s + a_ff x_f;
- output: the paper's sigmoid unit is returned as a logit, label 1 = FAKE (the code's label was the index of the
  sorted class folder, undocumented);
- no ImageNet weights for the spatial branch (none reachable): both branches train from scratch;
- the paper's x5 learning rate for the cross-stitch weights needed a patched Keras optimiser; here
  ``param_groups(lr)`` returns optimiser groups that apply it;
- frequency normalisation: buffers start at the statistics commented out in the authors' ``auc_per_video.py``
  (mean (0.0369, -0.0050, 0.0548), var (2.716, 2.757, 2.668); provenance unclear, plausibly FF++ log-DCT stats at
  299 px: 40 CelebA crops give mean ~0.19, var ~3.45 at 299 px but mean ~1.35, var ~2.4 at 128 px). They depend on
  the input size and the data, so the trainer should call ``fit_frequency_normalisation`` on training batches, as
  the code's ``Normalization.adapt`` intended.

Parameter count: ``parameters()`` holds only trainable tensors, while the paper's ~42.8M is Keras' total, which
also counts the BN moving mean/variance. Measured: paper 42,663,521 trainable + 109,056 BN running statistics
= 42,772,577, exactly 2 x Keras Xception-no-top (20,861,480) + 2 x 524,544 + 513 + 16.

Variants (widths = stem conv1, stem conv2, block2, block3, block4 and middle, block13, block14 sepconv1, sepconv2):

| variant | input | widths                                  | middle blocks | head | params  |
|---------|-------|-----------------------------------------|---------------|------|---------|
| paper   | 299   | 32, 64, 128, 256, 728, 1024, 1536, 2048 | 8             | 256  | 42.66M  |
| small   | 128   | 8, 16, 32, 64, 184, 256, 384, 512       | 4             | 128  | 2.01M   |

Small = paper widths / 4 (728 / 4 rounded up to a multiple of 8), half the middle blocks, half the dense width;
feature maps at 128 px: 61 (stem), 31, 16, 8 (merge_1..3), 4 (block13/14). Its CPU cost sits in the 61 px
stem/block2, not in the middle flow; running it in ``channels_last`` is ~1.5-2x faster on CPU.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._base import UNIT_MEAN, UNIT_STD, Detector, DetectorSpec, ModelConfig

KERAS_BN_EPS = 1e-3
KERAS_BN_MOMENTUM = 0.01  # Keras momentum 0.99 weighs the running value; PyTorch weighs the new batch
KERAS_NORMALIZATION_EPS = 1e-7
LOG_EPS = 1e-12
PAPER_DCT_MEAN = (0.0369, -0.0050, 0.0548)
PAPER_DCT_VAR = (2.716, 2.757, 2.668)
CROSS_STITCH_INIT = ((0.9, 0.1), (0.1, 0.9))


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)


class SeparableConv2d(nn.Module):
    """Keras ``SeparableConv2D`` 3x3 'same': depthwise then pointwise, no bias, nothing in between."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class SameMaxPool2d(nn.Module):
    """3x3 stride-2 max-pool with TensorFlow 'same' padding: the odd padding pixel goes bottom/right."""

    def __init__(self, kernel_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def _padding(self, size: int) -> tuple[int, int]:
        total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel_size - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: Tensor) -> Tensor:
        top, bottom = self._padding(x.shape[-2])
        left, right = self._padding(x.shape[-1])
        x = F.pad(x, (left, right, top, bottom), value=-math.inf)
        return F.max_pool2d(x, self.kernel_size, self.stride)


class ConvBNReLU(nn.Sequential):
    """Xception stem conv: 3x3 'valid', no bias, BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, bias=False),
            batch_norm(out_channels),
            nn.ReLU(inplace=True),
        )


class SepConvBN(nn.Sequential):
    """One Xception layer: [ReLU] -> separable conv -> BN."""

    def __init__(self, in_channels: int, out_channels: int, pre_activation: bool) -> None:
        # Not in-place: the block input is still needed by the residual branch.
        layers = [nn.ReLU()] if pre_activation else []
        super().__init__(*layers, SeparableConv2d(in_channels, out_channels), batch_norm(out_channels))


class XceptionBlock(nn.Module):
    """Residual Xception block: separable-conv layers, plus (if downsampling) a 'same' max-pool and a 1x1/2 skip."""

    def __init__(
        self, in_channels: int, widths: Sequence[int], downsample: bool, start_with_relu: bool = True
    ) -> None:
        super().__init__()
        channels = [in_channels, *widths]
        layers: list[nn.Module] = [
            SepConvBN(c_in, c_out, pre_activation=start_with_relu or i > 0)
            for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:]))
        ]
        if downsample:
            layers.append(SameMaxPool2d())
            # A 1x1 stride-2 conv needs no padding under 'same', whatever the input size.
            self.skip: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, widths[-1], 1, stride=2, bias=False), batch_norm(widths[-1])
            )
        elif in_channels == widths[-1]:
            self.skip = nn.Identity()
        else:
            raise ValueError("a block that keeps the resolution must keep the channel count")
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.skip(x)


class XceptionExit(nn.Sequential):
    """Keras block14: two separable convs, each followed by BN and ReLU."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__(
            SeparableConv2d(in_channels, mid_channels),
            batch_norm(mid_channels),
            nn.ReLU(inplace=True),
            SeparableConv2d(mid_channels, out_channels),
            batch_norm(out_channels),
            nn.ReLU(inplace=True),
        )


class XceptionBranch(nn.Module):
    """Keras Xception without top, cut into the five stages separated by the four cross-stitch points."""

    def __init__(self, widths: Sequence[int], middle_blocks: int) -> None:
        super().__init__()
        stem1, stem2, entry2, entry3, entry4, exit13, exit14a, exit14b = widths
        self.stages = nn.ModuleList([
            nn.Sequential(OrderedDict(
                stem=nn.Sequential(ConvBNReLU(3, stem1, stride=2), ConvBNReLU(stem1, stem2, stride=1)),
                block2=XceptionBlock(stem2, (entry2, entry2), downsample=True, start_with_relu=False),
            )),  # -> merge_1
            nn.Sequential(OrderedDict(block3=XceptionBlock(entry2, (entry3, entry3), downsample=True))),  # merge_2
            nn.Sequential(OrderedDict(block4=XceptionBlock(entry3, (entry4, entry4), downsample=True))),  # merge_3
            nn.Sequential(OrderedDict(
                middle=nn.Sequential(*(
                    XceptionBlock(entry4, (entry4,) * 3, downsample=False) for _ in range(middle_blocks)
                )),
                block13=XceptionBlock(entry4, (entry4, exit13), downsample=True),
            )),  # -> merge_4
            nn.Sequential(OrderedDict(block14=XceptionExit(exit13, exit14a, exit14b))),
        ])
        self.out_channels = exit14b


def dct_matrix(size: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> Tensor:
    """Orthonormal DCT-II matrix D (``D @ D.T = I``); ``D @ x`` transforms the columns of ``x``."""
    n = torch.arange(size, dtype=torch.float64, device=device)
    basis = torch.cos(math.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size)) * math.sqrt(2 / size)
    basis[0] /= math.sqrt(2)
    return basis.to(dtype)


class DCT2d(nn.Module):
    """Per-channel orthonormal 2D DCT-II over the last two (square) dimensions, as two matmuls."""

    basis: Tensor

    def __init__(self) -> None:
        super().__init__()
        # Built for the first input size seen (the constructor does not know the input size).
        self.register_buffer("basis", torch.empty(0, 0), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-1]
        if x.shape[-2] != size:
            raise ValueError(f"DCT2d expects square inputs, got {tuple(x.shape[-2:])}")
        if self.basis.shape[0] != size:
            self.basis = dct_matrix(size, device=x.device)
        basis = self.basis.to(x.dtype)
        return basis @ x @ basis.T


class FrequencyInput(nn.Module):
    """RGB in [0, 1] -> standardised log-magnitude DCT of the 0-255 image (the frequency branch's input)."""

    mean: Tensor
    var: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.dct = DCT2d()
        self.register_buffer("mean", torch.tensor(PAPER_DCT_MEAN).view(1, 3, 1, 1))
        self.register_buffer("var", torch.tensor(PAPER_DCT_VAR).view(1, 3, 1, 1))

    def log_spectrum(self, rgb01: Tensor) -> Tensor:
        return torch.log(self.dct(rgb01 * 255.0).abs() + LOG_EPS)

    def forward(self, rgb01: Tensor) -> Tensor:
        # Always float32: in half precision the 0-255 pixels lose the small high-frequency coefficients.
        with torch.autocast(rgb01.device.type, enabled=False):
            std = self.var.sqrt().clamp_min(KERAS_NORMALIZATION_EPS)
            return (self.log_spectrum(rgb01.float()) - self.mean) / std

    @torch.no_grad()
    def fit(self, batches: Iterable[Tensor]) -> None:
        """Set ``mean``/``var`` to the per-channel population statistics of the log spectra of ``batches``.

        Streams with Chan's pairwise update in float64, so any number of batches fits in memory.
        """
        count = 0
        mean = torch.zeros(3, dtype=torch.float64, device=self.mean.device)
        m2 = torch.zeros_like(mean)
        for batch in batches:
            values = self.log_spectrum(batch.to(self.mean.device)).transpose(0, 1).reshape(3, -1).double()
            batch_count = values.shape[1]
            batch_mean = values.mean(dim=1)
            batch_m2 = ((values - batch_mean[:, None]) ** 2).sum(dim=1)
            total = count + batch_count
            delta = batch_mean - mean
            mean += delta * batch_count / total
            m2 += batch_m2 + delta**2 * count * batch_count / total
            count = total
        if count == 0:
            raise ValueError("fit needs at least one non-empty batch")
        self.mean.copy_(mean.view(1, 3, 1, 1))
        self.var.copy_((m2 / count).view(1, 3, 1, 1))


class CrossStitch(nn.Module):
    """Misra et al. (2016) cross-stitch unit with one scalar per (output, input) branch pair."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(CROSS_STITCH_INIT))

    def forward(self, spatial: Tensor, frequency: Tensor) -> tuple[Tensor, Tensor]:
        (a_ss, a_sf), (a_fs, a_ff) = self.weight
        return a_ss * spatial + a_sf * frequency, a_fs * spatial + a_ff * frequency


class BranchHead(nn.Sequential):
    """GAP -> Dropout 0.5 -> Dense + ReLU, applied to each branch's block14 output."""

    def __init__(self, in_channels: int, out_features: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(0.5),
            nn.Linear(in_channels, out_features),
            nn.ReLU(inplace=True),
        )


class MDCSDNetwork(Detector):
    """Spatial and log-DCT Xception branches, cross-stitched four times, fused by a two-layer head."""

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128, 256, 728, 1024, 1536, 2048),
        middle_blocks: int = 8,
        head_width: int = 256,
    ) -> None:
        super().__init__()
        if len(widths) != 8:
            raise ValueError("widths: stem1, stem2, block2, block3, block4/middle, block13, block14a, block14b")
        self.frequency_input = FrequencyInput()
        self.spatial = XceptionBranch(widths, middle_blocks)
        self.frequency = XceptionBranch(widths, middle_blocks)
        self.cross_stitch = nn.ModuleList(CrossStitch() for _ in range(len(self.spatial.stages) - 1))
        self.spatial_head = BranchHead(self.spatial.out_channels, head_width)
        self.frequency_head = BranchHead(self.frequency.out_channels, head_width)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * head_width, 1))
        self._init_weights()

    def _init_weights(self) -> None:
        # Keras defaults: glorot_uniform kernels (its depthwise fans equal PyTorch's), zero biases.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def branch_embeddings(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The two ``head_width``-d branch features, before concatenation."""
        spatial, frequency = x * 2.0 - 1.0, self.frequency_input(x)
        for i, (spatial_stage, frequency_stage) in enumerate(zip(self.spatial.stages, self.frequency.stages)):
            spatial, frequency = spatial_stage(spatial), frequency_stage(frequency)
            if i < len(self.cross_stitch):
                spatial, frequency = self.cross_stitch[i](spatial, frequency)
        return self.spatial_head(spatial), self.frequency_head(frequency)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.cat(self.branch_embeddings(x), dim=1)).squeeze(1)

    def fit_frequency_normalisation(self, batches: Iterable[Tensor]) -> None:
        """Fit the DCT normalisation buffers on model inputs (e.g. training batches), like Keras ``adapt``."""
        self.frequency_input.fit(batches)

    def param_groups(self, lr: float, cross_stitch_lr_mult: float = 5.0) -> list[dict[str, Any]]:
        """Optimiser groups: the paper trains the cross-stitch weights with ``cross_stitch_lr_mult`` x lr."""
        stitch = {id(p) for p in self.cross_stitch.parameters()}
        return [
            {"params": [p for p in self.parameters() if id(p) not in stitch], "lr": lr},
            {"params": list(self.cross_stitch.parameters()), "lr": lr * cross_stitch_lr_mult},
        ]


PAPER = "Agarwal et al., MD-CSDNetwork: Multi-Domain Cross Stitched Network for Deepfake Detection, IEEE FG 2021"

PAPER_CONFIG = ModelConfig(
    name="mdcsd",
    variant="paper",
    input_size=299,
    mean=UNIT_MEAN,
    std=UNIT_STD,
    arch={"widths": (32, 64, 128, 256, 728, 1024, 1536, 2048), "middle_blocks": 8, "head_width": 256},
    paper=PAPER,
)

SMALL_CONFIG = ModelConfig(
    name="mdcsd",
    variant="small",
    input_size=128,
    mean=UNIT_MEAN,
    std=UNIT_STD,
    arch={"widths": (8, 16, 32, 64, 184, 256, 384, 512), "middle_blocks": 4, "head_width": 128},
    paper=PAPER,
)


# log|DCT| loses too much in float16; channels-last input beats a trace (9.2 vs 11 ms).
SPEC = DetectorSpec(
    name="mdcsd",
    display_name="MD-CSDNetwork",
    colour="#9467bd",
    variants={"small": SMALL_CONFIG, "paper": PAPER_CONFIG},
    model=MDCSDNetwork,
    cam_layer="spatial.stages.-1",  # the last feature map with a spatial layout
    channels_last_input=True,
    paper="Agarwal et al. MD-CSDNetwork: Multi-Domain Cross Stitched Network for Deepfake Detection. IEEE FG "
          "2021",
    looks_at="two Xception branches, one on pixels and one on the log-magnitude DCT spectrum, mixed by learned "
             "cross-stitch units after every stage.",
)
