"""What the detectors saw: the re-synthesis error map and Grad-CAM heatmaps, as arrays at the crop's size.

- :func:`reconstruction_error`: ``|SR(down(x)) - x|`` from the re-synthesis detector's own super-resolution
  network (the signal its classifier reads), averaged over colour channels, with summary numbers.
- :func:`grad_cam`: Selvaraju et al.'s Grad-CAM on a detector's last spatial feature map (its spec's
  ``cam_layer``, see :mod:`detectors.models`): the map's channels weighted by the mean gradient of the fake
  logit, rectified. One forward and one backward pass per face at the model's small input size, so it is cheap
  enough to offer behind a toggle.

Grad-CAM runs on the model every request shares, while other threads score faces with it: its hook keeps the
feature map of its own thread's forward only, and the gradient is taken with ``torch.autograd.grad`` (no
``retain_grad``, no ``.grad`` written into the shared parameters), so concurrent scoring and concurrent
Grad-CAMs never see each other.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import models
from .preprocess import crops_to_tensor, model_input


@dataclass(frozen=True, eq=False)
class ErrorMap:
    """Per-pixel reconstruction error (mean over RGB, in [0, 1] intensity units) at the crop's size."""

    error: np.ndarray  # H x W float32
    mean: float
    p95: float
    max: float

    def summary(self) -> dict[str, float]:
        return {"mean": round(self.mean, 5), "p95": round(self.p95, 5), "max": round(self.max, 5)}


def _resize_maps(maps: torch.Tensor, size: int) -> np.ndarray:
    """N x h x w -> N x size x size (bilinear), as float32 numpy."""
    resized = F.interpolate(maps[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)
    return resized[:, 0].cpu().numpy().astype(np.float32)


@torch.inference_mode()
def reconstruction_error(detector, crops: list[np.ndarray]) -> list[ErrorMap]:
    """The re-synthesis error map of each crop; ``detector`` is a loaded re-synthesis detector."""
    if not crops:
        return []
    model = detector.model
    x = model_input(crops_to_tensor(crops).to(detector.device), model.config)
    if detector.half:
        x = x.half()
    heat = model.error_heatmap(x).float()  # N x s x s at the model's input size, where the classifier reads it
    maps = _resize_maps(heat, crops[0].shape[0])
    return [ErrorMap(m, float(m.mean()), float(np.percentile(m, 95)), float(m.max())) for m in maps]


def _module(model: torch.nn.Module, path: str) -> torch.nn.Module:
    module = model
    for part in path.split("."):
        module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part)
    return module


def cam_layer(detector) -> str | None:
    """The dotted path of the feature map Grad-CAM reads, from the detector's spec (None: no Grad-CAM)."""
    spec = models.spec(detector.config.architecture)
    return spec.cam_layer if spec is not None else None


def grad_cam(detector, crop: np.ndarray) -> np.ndarray | None:
    """Grad-CAM of the fake logit for one crop, in [0, 1] at the crop's size; None for an unknown layout."""
    path = cam_layer(detector)
    if path is None:
        return None
    model = detector.model
    layer = _module(model, path)
    captured: dict[str, torch.Tensor] = {}
    this_thread = threading.get_ident()

    def keep(_module, _inputs, output):
        # The hook sits on the shared model while it is registered: every other thread's forward passes it too.
        if threading.get_ident() == this_thread:
            captured["features"] = output[0] if isinstance(output, tuple) else output

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            x = model_input(crops_to_tensor([crop]).to(detector.device), model.config)
            x = (x.half() if detector.half else x).requires_grad_(False)
            logit = model(x).float().sum()
            features = captured["features"]
            (gradients,) = torch.autograd.grad(logit, features)
    finally:
        handle.remove()
    weights = gradients.float().mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features.detach().float()).sum(dim=1))  # 1 x h x w
    cam = _resize_maps(cam, crop.shape[0])[0]
    peak = float(cam.max())
    return cam / peak if peak > 0 else cam
