"""MTCNN face search (Zhang et al., 2016) with facenet-pytorch's trained P-, R- and O-Nets, arranged for CPU speed.

facenet-pytorch's ``detect_face`` is the reference: this module computes the same cascade (image pyramid, P-Net
proposals, R-Net refinement, O-Net boxes and landmarks, the same thresholds, suppressions and box arithmetic)
and changes only how the work is done. On 5,056 pictures and frames of ../shared/data both find the same 5,057
faces with IoU 1.000 (``python -m detectors bench --compare-face-search``), 1.6-1.8x faster. Measured on a
512 x 512 portrait (2-core EPYC, torch 2.13, 2 threads), the reference spent its 45-55 ms on:

- resampling: ``interpolate(mode="area")`` once per pyramid level on the whole picture (1.4 ms each, eight
  levels) and once per candidate box (about 70 calls, 10 ms). Here every area average is a difference of four
  entries of one integer summed-area table (:class:`SummedArea`): the whole pyramid and all the candidates'
  24 / 48 px crops are a few gathers. Area resampling *is* ``adaptive_avg_pool2d``, whose window for output
  ``i`` of ``n`` over ``L`` input pixels is ``[floor(i L / n), ceil((i + 1) L / n))``; the table reproduces it
  exactly (integer sums, one division).
- one P-Net call per level, each with its own small-tensor overheads: here the levels are packed into one
  canvas (:class:`Pyramid`) and P-Net runs once per batch of pictures.
- max pooling in NCHW layout (4 ms for R-Net's first pool on 55 candidates): R- and O-Net run channels-last,
  where the same pools take a tenth of that; P-Net's 2 x 2 pool is four strided maxima.

Candidates keep the reference's order through every suppression: O-Net's probabilities often tie at 1.0 and the
order breaks the tie (in another order, 1 % of boxes moved to another of the face's O-Net boxes, IoU down to
0.9). A candidate box that lies wholly outside the picture has no pixels to crop: the reference then dropped its
crop but not the box, shifting the next boxes' scores one place; here it is dropped with its box (never seen on
the data above).

Measured and not taken: coarse-to-fine (the pyramid's coarse levels first, the fine ones only when no large face
was found) saved 2-3 ms on 256 px portraits, moved boxes down to IoU 0.90 and lost small faces; resampling with
Pillow's box filter (0.9 ms a level, 0.17 ms a crop here, and not the reference's windows) saved less than the
summed-area table.
"""
from __future__ import annotations

import importlib.util
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ._torchvision_compat import greedy_keep, nms_reference

THRESHOLDS = (0.6, 0.7, 0.7)  # P-, R-, O-Net face probability (facenet-pytorch's defaults)
PYRAMID_FACTOR = 0.709  # scale between pyramid levels (the paper's and facenet-pytorch's)
CELL, STRIDE = 12, 2  # P-Net's window and stride in pyramid pixels


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class Found:
    """Faces found in one picture: ``boxes`` K x 4 (x1, y1, x2, y2), ``scores`` K, ``landmarks`` K x 5 x 2,
    in the searched picture's pixels, in the order of the final suppression."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    @classmethod
    def none(cls) -> "Found":
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))


class SummedArea:
    """Summed-area tables of a batch of same-size pictures, for area resampling of any rectangle of any of them.

    The tables hold integers (sums stay exact): int32 while a whole picture's sum fits (any picture up to 8
    megapixels; half the time of int64 and a third of float64 on two cores), int64 beyond. They are stored
    transposed, N x 3 x (W + 1) x (H + 1): each sum runs along the last, contiguous dimension, where torch's
    cumsum is fast (along another dimension it took ten times as long). Crops read the table through one flat
    ``index_select`` (three times faster than advanced indexing)."""

    def __init__(self, pictures: torch.Tensor) -> None:  # N x H x W x 3 uint8
        count, height, width, channels = pictures.shape
        dtype = torch.int32 if height * width * 255 < 2**31 else torch.int64
        across = pictures.permute(0, 3, 1, 2).to(dtype, memory_format=torch.contiguous_format).cumsum(3, dtype=dtype)
        self.table = torch.zeros(count, channels, width + 1, height + 1, dtype=dtype)
        torch.cumsum(across.transpose(2, 3).contiguous(), 3, dtype=dtype, out=self.table[:, :, 1:, 1:])
        self.height, self.width = height, width

    def resample(self, index: torch.Tensor, top: torch.Tensor, bottom: torch.Tensor, left: torch.Tensor,
                 right: torch.Tensor, size: int) -> torch.Tensor:
        """Area averages of the rectangles ``[top, bottom) x [left, right)`` of pictures ``index`` (K each) at
        ``size`` x ``size``: K x 3 x size x size float32 in channels-last memory (R- and O-Net's), normalised for MTCNN."""
        y0, y1 = _windows(top, bottom, size)  # K x size
        x0, x1 = _windows(left, right, size)
        plane = (self.width + 1) * (self.height + 1)
        base = (index * 3 * plane)[None, :, None, None] + (torch.arange(3) * plane)[:, None, None, None]  # 3 x K x 1 x 1
        flat = self.table.view(-1)

        def corner(y, x):  # 3 x K x size (rows) x size (columns)
            return flat.index_select(0, (base + x[None, :, None, :] * (self.height + 1) + y[None, :, :, None]).view(-1)).view(
                3, len(index), size, size)

        sums = corner(y1, x1) - corner(y0, x1) - corner(y1, x0) + corner(y0, x0)
        area = (y1 - y0)[:, :, None] * (x1 - x0)[:, None, :]
        averages = ((sums.to(torch.float64) / area - 127.5) * 0.0078125).to(torch.float32)  # 3 x K x size x size
        return averages.permute(1, 2, 3, 0).contiguous().permute(0, 3, 1, 2)

    def level(self, rows: int, columns: int) -> torch.Tensor:
        """Every picture whole at ``rows`` x ``columns`` (a pyramid level): N x 3 x rows x columns."""
        (y0, y1), (x0, x1) = (_windows(torch.zeros(1, dtype=torch.long), torch.tensor([n]), size)
                              for n, size in ((self.height, rows), (self.width, columns)))
        y0, y1, x0, x1 = y0[0], y1[0], x0[0], x1[0]
        right, left = self.table.index_select(2, x1), self.table.index_select(2, x0)  # N x 3 x columns x (H + 1)
        sums = (right.index_select(3, y1) - left.index_select(3, y1) - right.index_select(3, y0) + left.index_select(3, y0))
        area = (x1 - x0)[:, None] * (y1 - y0)[None]
        averages = ((sums.to(torch.float64) / area - 127.5) * 0.0078125).to(torch.float32)  # N x 3 x columns x rows
        return averages.permute(0, 1, 3, 2)


def _windows(start: torch.Tensor, end: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """adaptive_avg_pool2d's input window of each of ``size`` outputs over ``[start, end)`` (K each): K x size."""
    length = (end - start)[:, None]
    i = torch.arange(size)[None]
    return start[:, None] + (i * length) // size, start[:, None] + -((-(i + 1) * length) // size)


def _prelu_conv(name: str, channels_in: int, channels_out: int, kernel: int) -> list[tuple[str, nn.Module]]:
    number = name[-1]
    return [(name, nn.Conv2d(channels_in, channels_out, kernel)), (f"prelu{number}", nn.PReLU(channels_out))]


def _pool(name: str, kernel: int) -> list[tuple[str, nn.Module]]:
    return [(name, nn.MaxPool2d(kernel, 2, ceil_mode=True))]


class ProposalNet(nn.Module):
    """P-Net: a fully convolutional 12 px window classifier (face probability, box offsets) run over the pyramid.

    ``valid`` (optional) marks the first convolution's outputs that lie wholly inside one pyramid level of a
    packed canvas; the others are pushed far below any activation before the max pool, so that a level's edge
    pools exactly as it would on its own (ceil-mode pooling clips a window at the level's edge). The 2 x 2 pool
    is the maximum of four strided views (even sizes, which the canvas has): a quarter of the pool layer's time
    on CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.rest = nn.Sequential(OrderedDict(_prelu_conv("conv2", 10, 16, 3) + _prelu_conv("conv3", 16, 32, 3)))
        self.face, self.box = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.prelu1(self.conv1(x))
        if valid is not None:
            x = x.masked_fill(~valid, -1e4)
        x = self.rest(_max_pool_2x2(x))
        return self.box(x), self.face(x).softmax(1)


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2 x 2, stride 2, ceil mode: an odd last row or column is a window of its own."""
    if x.shape[2] % 2 or x.shape[3] % 2:
        x = nn.functional.pad(x, (0, x.shape[3] % 2, 0, x.shape[2] % 2), value=float("-inf"))
    return torch.maximum(torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2]), torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]))


class RefineNet(nn.Module):
    """R-Net: 24 px crops -> face probability, box offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            _prelu_conv("conv1", 3, 28, 3) + _pool("pool1", 3) + _prelu_conv("conv2", 28, 48, 3) + _pool("pool2", 3)
            + _prelu_conv("conv3", 48, 64, 2)))
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.face, self.box = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.prelu4(self.dense4(_flatten(self.features(x))))
        return self.box(x), self.face(x).softmax(1)


class OutputNet(nn.Module):
    """O-Net: 48 px crops -> face probability, box offsets, five landmarks (x1..x5, y1..y5 as box fractions)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            _prelu_conv("conv1", 3, 32, 3) + _pool("pool1", 3) + _prelu_conv("conv2", 32, 64, 3) + _pool("pool2", 3)
            + _prelu_conv("conv3", 64, 64, 3) + _pool("pool3", 2) + _prelu_conv("conv4", 64, 128, 2)))
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.face, self.box, self.landmarks = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.prelu5(self.dense5(_flatten(self.features(x))))
        return self.box(x), self.landmarks(x), self.face(x).softmax(1)


def _flatten(x: torch.Tensor) -> torch.Tensor:
    """Width, height, channels order: the weights come from Caffe, which flattened that way."""
    return x.permute(0, 3, 2, 1).reshape(len(x), -1)


# facenet-pytorch's parameter names -> ours (the rest are the same after the prefix).
RENAMES = {"conv4_1": "face", "conv4_2": "box", "dense5_1": "face", "dense5_2": "box", "dense6_1": "face",
           "dense6_2": "box", "dense6_3": "landmarks"}


def load_network(net: nn.Module, file: str) -> nn.Module:
    """``net`` with facenet-pytorch's trained weights (``pnet.pt`` ...), read from the installed package's data
    folder without importing the package (its import pulls in torchvision, over a second of start-up)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("facenet-pytorch is not installed: it ships the MTCNN weights (pip install facenet-pytorch==2.5.3)")
    state = torch.load(Path(list(spec.submodule_search_locations)[0]) / "data" / file, map_location="cpu", weights_only=True)
    ours = {}
    names = set(net.state_dict())
    for key, value in state.items():
        layer, _, parameter = key.partition(".")
        layer = RENAMES.get(layer, layer)
        for prefix in ("", "rest.", "features."):  # P-Net's pool has no parameters: its layers keep their names
            if f"{prefix}{layer}.{parameter}" in names:
                ours[f"{prefix}{layer}.{parameter}"] = value
                break
    net.load_state_dict(ours)
    return net.eval()


@dataclass(frozen=True, eq=False)
class Pyramid:
    """The pyramid levels of one picture size packed into one canvas, so that P-Net runs once per batch.

    Levels sit side by side on shelves at even offsets (P-Net's stride is 2: a level's windows then fall on the
    canvas's output grid). ``valid`` marks the first convolution's outputs inside a level; ``level`` gives each
    P-Net output the level whose windows it is (-1: a window that straddles levels or lies in the gaps)."""

    scales: tuple[float, ...]
    shapes: tuple[tuple[int, int], ...]  # rows, columns of each level
    origins: tuple[tuple[int, int], ...]  # top, left of each level in the canvas
    canvas: tuple[int, int]
    valid: torch.Tensor  # 1 x 1 x (H - 2) x (W - 2) bool
    level: torch.Tensor  # outputs rows x columns, long

    @classmethod
    def build(cls, height: int, width: int, scales: Sequence[float]) -> "Pyramid":
        shapes = tuple((int(height * scale + 1), int(width * scale + 1)) for scale in scales)
        canvas_width = sum(w for _, w in shapes[:2]) + 2
        origins, x, y, shelf = [], 0, 0, 0
        for rows, columns in shapes:
            if x + columns > canvas_width:
                x, y, shelf = 0, y + shelf, 0
            origins.append((y, x))
            x, shelf = x + _even(columns), max(shelf, _even(rows))
        canvas = (_even(y + shelf), _even(canvas_width))  # even: the first convolution's output pools in whole windows
        valid = torch.zeros(1, 1, canvas[0] - 2, canvas[1] - 2, dtype=torch.bool)
        level = torch.full((_outputs(canvas[0]), _outputs(canvas[1])), -1, dtype=torch.long)
        for i, ((rows, columns), (top, left)) in enumerate(zip(shapes, origins)):
            valid[..., top:top + rows - 2, left:left + columns - 2] = True
            level[top // 2:top // 2 + _outputs(rows), left // 2:left // 2 + _outputs(columns)] = i
        return cls(tuple(scales), shapes, tuple(origins), canvas, valid, level)


def _even(n: int) -> int:
    return n + n % 2


def _outputs(side: int) -> int:
    """P-Net's outputs along a side of ``side`` pixels (3 x 3 conv, ceil-mode 2 x 2 pool, two 3 x 3 convs)."""
    return max(0, -(-(side - 2) // 2) - 4)


class FaceSearch:
    """The MTCNN cascade over a batch of same-size pictures (N x H x W x 3 uint8), faces from ``min_face_size``
    pixels. ``thresholds`` are the three stages' face probabilities."""

    def __init__(self, thresholds: Sequence[float] = THRESHOLDS, factor: float = PYRAMID_FACTOR, device="cpu") -> None:
        self.thresholds, self.factor, self.device = tuple(thresholds), factor, torch.device(device)
        # P-Net runs in NCHW (its pool is strided maxima; alone, PReLU on a one-picture channels-last map took ten
        # times as long, and the whole P-Net was as fast or faster), R- and O-Net channels-last (their 3 x 3 pools
        # took a tenth of the NCHW time).
        self.pnet = load_network(ProposalNet(), "pnet.pt").to(self.device)
        self.rnet, self.onet = (load_network(net, file).to(self.device, memory_format=torch.channels_last)
                                for net, file in ((RefineNet(), "rnet.pt"), (OutputNet(), "onet.pt")))
        self._pyramids: dict[tuple, Pyramid] = {}

    def scales(self, height: int, width: int, min_face_size: int) -> list[float]:
        """The pyramid: from the scale that brings ``min_face_size`` to P-Net's 12 px window down to the
        picture's short side at 12 px."""
        scale, side, scales = 12.0 / min_face_size, min(height, width) * 12.0 / min_face_size, []
        while side >= 12:
            scales.append(scale)
            scale, side = scale * self.factor, side * self.factor
        return scales

    def pyramid(self, height: int, width: int, min_face_size: int) -> Pyramid:
        key = (height, width, min_face_size)
        if key not in self._pyramids:
            if len(self._pyramids) > 64:
                self._pyramids.clear()
            self._pyramids[key] = Pyramid.build(height, width, self.scales(height, width, min_face_size))
        return self._pyramids[key]

    @torch.inference_mode()
    def __call__(self, pictures: np.ndarray, min_face_size: int) -> list[Found]:
        pictures = torch.from_numpy(np.require(pictures, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"]))  # copied only if need be
        count, height, width = pictures.shape[:3]
        if not self.scales(height, width, min_face_size):  # no face that size fits
            return [Found.none() for _ in range(count)]
        pyramid = self.pyramid(height, width, min_face_size)
        table = SummedArea(pictures)
        boxes, index = self._propose(table, pyramid)
        boxes, index, _ = self._refine(table, boxes, index, self.rnet, 24, self.thresholds[1])
        boxes, index, points = self._refine(table, boxes, index, self.onet, 48, self.thresholds[2])
        keep = _nms_min(boxes, index, 0.7)
        boxes, index, points = boxes[keep], index[keep], points[keep]
        found = []
        for i in range(count):
            mine = index == i
            found.append(Found(boxes[mine, :4].numpy().astype(np.float64), boxes[mine, 4].numpy().astype(np.float64),
                               points[mine].numpy().astype(np.float64)))
        return found

    def _propose(self, table: SummedArea, pyramid: Pyramid) -> tuple[torch.Tensor, torch.Tensor]:
        """P-Net over the pyramid: candidate boxes (x1, y1, x2, y2, score) and their pictures' indices."""
        count = len(table.table)
        canvas = torch.zeros(count, 3, *pyramid.canvas)
        for (rows, columns), (top, left) in zip(pyramid.shapes, pyramid.origins):
            canvas[:, :, top:top + rows, left:left + columns] = table.level(rows, columns)
        offsets, probabilities = self.pnet(canvas.to(self.device), pyramid.valid.to(self.device))
        offsets, probabilities = offsets.cpu(), probabilities[:, 1].cpu()
        where = ((probabilities >= self.thresholds[0]) & (pyramid.level >= 0)).nonzero()
        index, row, column = where.unbind(1)
        level = pyramid.level[row, column]
        origin = torch.tensor(pyramid.origins, dtype=torch.long)[level] // 2
        scale = torch.tensor(pyramid.scales, dtype=torch.float32)[level]
        corner = torch.stack([column - origin[:, 1], row - origin[:, 0]], 1).to(torch.float32)  # x, y in the level
        boxes = torch.cat([((STRIDE * corner + 1) / scale[:, None]).floor(), ((STRIDE * corner + CELL) / scale[:, None]).floor(),
                           probabilities[index, row, column][:, None], offsets[index, :, row, column]], 1)
        # Suppression within each level, then across levels, with the candidates in the reference's order (level
        # by level, by score within a level): O-Net's probabilities often tie at 1.0, and the order breaks ties.
        keep = torch.cat([mine[_batched_nms(boxes[mine, :4], boxes[mine, 4], index[mine], 0.5)]
                          for mine in (torch.nonzero(level == i).view(-1) for i in range(len(pyramid.scales)))])
        keep = keep[_batched_nms(boxes[keep, :4], boxes[keep, 4], index[keep], 0.7)]
        boxes, index = boxes[keep], index[keep]
        width_, height_ = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        regressed = torch.stack([boxes[:, 0] + boxes[:, 5] * width_, boxes[:, 1] + boxes[:, 6] * height_,
                                 boxes[:, 2] + boxes[:, 7] * width_, boxes[:, 3] + boxes[:, 8] * height_, boxes[:, 4]], 1)
        return _square(regressed), index

    def _refine(self, table: SummedArea, boxes: torch.Tensor, index: torch.Tensor, net, size: int, threshold: float):
        """R-Net (``size`` 24) or O-Net (48) on the candidates' crops: the boxes that pass, regressed (and for
        O-Net their landmarks; R-Net's boxes are also suppressed and squared, as the cascade does between stages)."""
        onet = size == 48
        landmarks = torch.zeros(0, 5, 2)
        if len(boxes) == 0:
            return boxes, index, landmarks
        top, bottom, left, right = _pixels(boxes, table.width, table.height)
        inside = (bottom > top) & (right > left)
        boxes, index, top, bottom, left, right = (t[inside] for t in (boxes, index, top, bottom, left, right))
        if len(boxes) == 0:
            return boxes, index, landmarks
        crops = table.resample(index, top, bottom, left, right, size).to(self.device)
        outputs = [output.cpu() for output in _in_batches(net, crops)]
        offsets, probabilities = outputs[0], outputs[-1]
        score = probabilities[:, 1]
        passed = score > threshold
        boxes = torch.cat([boxes[passed, :4], score[passed, None]], 1)
        index, offsets = index[passed], offsets[passed]
        if onet:
            points = outputs[1][passed]
            w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
            landmarks = torch.stack([w[:, None] * points[:, :5] + boxes[:, :1] - 1,
                                     h[:, None] * points[:, 5:] + boxes[:, 1:2] - 1], 2)
            return _regress(boxes, offsets), index, landmarks
        keep = _batched_nms(boxes[:, :4], boxes[:, 4], index, 0.7)
        return _square(_regress(boxes[keep], offsets[keep])), index[keep], landmarks


def _in_batches(net, crops: torch.Tensor, batch: int = 512) -> tuple[torch.Tensor, ...]:
    """The network's outputs over ``crops`` in batches (memory stays bounded on a picture with many candidates)."""
    parts = [net(crops[i:i + batch]) for i in range(0, len(crops), batch)]
    return tuple(torch.cat(outputs) for outputs in zip(*parts))


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    moved = boxes.clone()
    moved[:, :4] = boxes[:, :4] + offsets * torch.stack([w, h, w, h], 1)
    return moved


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Each box as the square of its longer side around the same centre."""
    h, w = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    side = torch.maximum(w, h)
    squared = boxes.clone()
    squared[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    squared[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    squared[:, 2] = squared[:, 0] + side
    squared[:, 3] = squared[:, 1] + side
    return squared


def _pixels(boxes: torch.Tensor, width: int, height: int):
    """The pixel rows and columns a box covers, clipped to the picture: top, bottom, left, right (end exclusive),
    with the reference's integer arithmetic (truncation, 1-based starts)."""
    x1, y1, x2, y2 = boxes[:, :4].trunc().to(torch.long).unbind(1)
    return y1.clamp(min=1) - 1, y2.clamp(max=height), x1.clamp(min=1) - 1, x2.clamp(max=width)


def _batched_nms(boxes: torch.Tensor, scores: torch.Tensor, index: torch.Tensor, threshold: float) -> torch.Tensor:
    """Suppression within each picture (boxes of different pictures are moved apart so they never overlap)."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long)
    shift = index.to(boxes.dtype)[:, None] * (boxes.max() + 1)
    return nms_reference(boxes + shift, scores, threshold)


def _nms_min(boxes: torch.Tensor, index: torch.Tensor, threshold: float) -> torch.Tensor:
    """O-Net's final suppression: overlap over the smaller box's area (MTCNN's "Min"), +1 pixel areas, greedy by
    decreasing score, within each picture. O-Net's probabilities often tie at 1.0: the order is the reference's
    (numpy's argsort, last first) and so is the float32 arithmetic, so that ties keep the same box."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long)
    shift = index.to(boxes.dtype)[:, None] * (boxes[:, :4].max() + 1)
    order = np.argsort(boxes[:, 4].numpy())[::-1]
    x1, y1, x2, y2 = (boxes[:, :4] + shift).numpy()[order].T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    w = np.maximum(0.0, np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]) + 1)
    h = np.maximum(0.0, np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]) + 1)
    overlap = w * h / np.minimum(area[:, None], area[None]) > threshold
    return torch.from_numpy(order[greedy_keep(overlap)].copy())
