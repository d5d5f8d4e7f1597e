"""What the detectors saw: the re-synthesis error map and Grad-CAM heatmaps, as arrays at the crop's size.

- :func:`reconstruction_error`: ``|SR(down(x)) - x|`` from the re-synthesis detector's own super-resolution
  network (the signal its classifier reads), averaged over colour channels, with summary numbers.
- :func:`grad_cam`: Selvaraju et al.'s Grad-CAM on a detector's last spatial feature map (named per
  architecture in :data:`CAM_LAYERS`): the map's channels weighted by the mean gradient of the fake logit,
  rectified. One forward and one backward pass per face at the model's small input size, so it is cheap
  enough to offer behind a toggle.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .preprocess import crops_to_tensor, model_input

# The last feature map that still has a spatial layout, per architecture.
CAM_LAYERS = {
    "specxnet": "bn4",
    "sficonv": "layer4",
    "resynthesis": "classifier.layer4",
    "mdcsd": "spatial.stages.-1",
}


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


def grad_cam(detector, crop: np.ndarray) -> np.ndarray | None:
    """Grad-CAM of the fake logit for one crop, in [0, 1] at the crop's size; None for an unknown layout."""
    path = CAM_LAYERS.get(detector.config.architecture)
    if path is None:
        return None
    model = detector.model
    layer = _module(model, path)
    captured: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        output = output[0] if isinstance(output, tuple) else output
        output.retain_grad()
        captured["features"] = output

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            x = model_input(crops_to_tensor([crop]).to(detector.device), model.config)
            x = (x.half() if detector.half else x).requires_grad_(False)
            logit = model(x).float().sum()
            model.zero_grad(set_to_none=True)
            logit.backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    features = captured["features"].detach().float()
    gradients = captured["features"].grad.float()
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features).sum(dim=1))  # 1 x h x w
    cam = _resize_maps(cam, crop.shape[0])[0]
    peak = float(cam.max())
    return cam / peak if peak > 0 else cam
