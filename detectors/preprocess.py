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


def resized_unit(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (or [0, 255] float) N x 3 x H x W to float in [0, 1] at ``size`` x ``size`` (antialiased bilinear)."""
    x = pixels.float() / 255.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def normalise(x: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    mean = torch.tensor(config.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()  # NCHW whatever the crops' layout; models opt into channels-last


def model_input(pixels: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """uint8 (or [0, 255] float) N x 3 x H x W to the model's normalised float input at its size."""
    return normalise(resized_unit(pixels, config.input_size), config)


class SharedInput:
    """One batch of crops prepared once for several detectors: the uint8 tensor is built once and each input
    size is resized once (all four shipped detectors read 128 px); only the normalisation is per detector.
    Same arithmetic as :func:`model_input`, so scores are identical to scoring each detector alone."""

    def __init__(self, crops: Sequence[np.ndarray] | np.ndarray, device: torch.device | str = "cpu") -> None:
        self.crops = list(crops)  # still a sequence of crops for scorers that work on arrays
        self.pixels = crops_to_tensor(crops).to(device)
        self._resized: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index):
        return self.crops[index]

    def __iter__(self):
        return iter(self.crops)

    def prepare(self, sizes) -> None:
        """Resize for every size up front (before detectors read the batch from several threads)."""
        for size in sizes:
            if size not in self._resized:
                self._resized[size] = resized_unit(self.pixels, size)

    def for_model(self, config: ModelConfig) -> torch.Tensor:
        if config.input_size not in self._resized:
            self._resized[config.input_size] = resized_unit(self.pixels, config.input_size)
        return normalise(self._resized[config.input_size], config)
