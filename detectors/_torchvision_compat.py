"""Make ``import torchvision`` work with the CPU-only torch wheel.

The PyPI torchvision wheel is a CUDA build: with CPU torch its C extension cannot load, and torchvision's
import then fails on ``operator torchvision::nms does not exist`` (facenet-pytorch imports it). When, and
only when, the extension cannot load, we define ``torchvision::nms`` (and ``qnms``) with a pure-torch kernel
before torchvision is imported, then tell torchvision its ops are present. On a machine where the extension
loads (CUDA torch), this module does nothing.

Imported once, first thing, by ``detectors/__init__.py``.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

import numpy as np
import torch

_library: torch.library.Library | None = None  # kept alive: dropping it unregisters the op


PAIRWISE_LIMIT = 2048  # boxes up to which all IoUs are computed at once (16 MB); MTCNN's stages stay far below


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; indices of kept boxes sorted by decreasing score (torchvision's contract).

    All pairwise IoUs in one tensor operation, then the greedy pass over a boolean matrix: face search calls this
    a dozen times per picture, and a torch call per kept box cost more than the networks' small stages.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    if len(boxes) > PAIRWISE_LIMIT:
        return _nms_box_by_box(boxes, scores, iou_threshold)
    order = scores.argsort(descending=True)
    ranked = boxes[order]
    overlaps = (_iou(ranked[:, None], ranked[None]) > iou_threshold).cpu().numpy()
    return order[torch.from_numpy(np.flatnonzero(greedy_keep(overlaps))).to(order.device)]


def greedy_keep(overlaps: np.ndarray) -> np.ndarray:
    """Greedy suppression over boxes ranked best first, given which pairs overlap too much (a boolean matrix):
    which boxes are kept."""
    kept = np.ones(len(overlaps), dtype=bool)
    for i in range(len(overlaps)):
        if kept[i]:
            kept[i + 1:] &= ~overlaps[i, i + 1:]
    return kept


def _nms_box_by_box(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """The same suppression one kept box at a time (memory linear in the number of boxes)."""
    order = scores.argsort(descending=True)
    keep = []
    while order.numel() > 0:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        order = rest[_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return torch.stack(keep)


def _iou(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Intersection over union of (x1, y1, x2, y2) boxes, broadcast over the leading dimensions."""
    x1, y1, x2, y2 = first.unbind(-1)
    u1, v1, u2, v2 = second.unbind(-1)
    inter = (torch.minimum(x2, u2) - torch.maximum(x1, u1)).clamp(min=0) * (torch.minimum(y2, v2) - torch.maximum(y1, v1)).clamp(min=0)
    union = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0) + (u2 - u1).clamp(min=0) * (v2 - v1).clamp(min=0) - inter
    return inter / union.clamp(min=torch.finfo(first.dtype).tiny)


def _qnms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    return nms_reference(boxes.dequantize(), scores.dequantize(), iou_threshold)


def _extension_loads() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return True  # no torchvision at all: nothing to patch
    folder = os.path.dirname(spec.origin)
    candidates = [f for f in os.listdir(folder) if f.startswith("_C.") and f.endswith((".so", ".pyd"))]
    if not candidates:
        return False
    try:
        torch.ops.load_library(os.path.join(folder, candidates[0]))
    except (OSError, RuntimeError):
        return False
    return True


def _nms_defined() -> bool:
    try:
        torch.ops.torchvision.nms
    except (AttributeError, RuntimeError):
        return False
    return True


def install() -> bool:
    """Register the fallback ``torchvision::nms`` if needed. Returns True when the fallback is in use.

    torchvision itself is not imported here (its import takes over a second: it pulls in ``torch._dynamo``, and
    the app's face search does not need it); it is patched when something imports it (:class:`_PatchTorchvision`).
    """
    global _library
    if _library is not None:
        return True
    if _extension_loads() or _nms_defined():
        return False
    _library = torch.library.Library("torchvision", "DEF")
    # torchvision's import registers fake kernels for exactly these two schemas, so both must exist.
    for op in ("nms", "qnms"):
        _library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _library.impl("nms", nms_reference, "CompositeExplicitAutograd")
    _library.impl("qnms", _qnms_reference, "CompositeExplicitAutograd")
    if "torchvision" in sys.modules:
        _declare_ops(sys.modules["torchvision"])
    else:
        sys.meta_path.insert(0, _PatchTorchvision())
    return True


def _declare_ops(module) -> None:
    """torchvision.ops.nms refuses to run while the extension is missing; our kernel stands in for its nms (the
    other C++ ops stay missing and still fail loudly if anything calls them). Only once torchvision's own import
    has finished: during it, a present extension would make it look up ops that are not there."""
    import torchvision.extension

    torchvision.extension._has_ops = lambda: True


class _PatchTorchvision(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``torchvision`` is first imported, wraps its loading so that
    :func:`_declare_ops` runs right after, then steps aside."""

    def find_spec(self, name, path, target=None):
        if name != "torchvision":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _declare_ops(module)

        spec.loader.exec_module = exec_module
        return spec


install()
