"""The one preprocessing path from face crops to model input, shared by training and inference.

Faces are cropped once at ``CROP_SIZE`` by :mod:`detectors.faces`; each detector then resizes the crop to its
own input size (antialiased bilinear) and normalises it with its own mean and std. Training reads cached
crops of the same size through the same function, so what a detector sees in training is what it sees in
the app.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .models import ModelConfig

CROP_SIZE = 256  # side of every face crop, before each detector's own resize


def crops_to_tensor(crops: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
    """N x H x W x 3 uint8 crops to an N x 3 x H x W uint8 tensor (no copy of the pixels' values)."""
    batch = np.stack(crops) if not isinstance(crops, np.ndarray) else crops
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)


def model_input(pixels: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """uint8 (or [0, 255] float) N x 3 x H x W to the model's normalised float input at its size."""
    x = pixels.float() / 255.0
    size = config.input_size
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(config.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()  # NCHW whatever the crops' layout; models opt into channels-last
