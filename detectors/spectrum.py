"""Fourier views of a face crop: the centred 2D log-magnitude spectrum and its azimuthal (radial) average.

GAN upsampling and blending leave periodic or missing high-frequency energy (Durall et al. 2020, Frank et
al. 2020); the radial profile plotted against the band that real faces occupy makes that visible. The
reference band is computed by ``python -m detectors reference-band`` over real CelebA faces, through the
same cropper and the same analysis size, and shipped as ``assets/spectrum_reference.json``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

ANALYSIS_SIZE = 256  # every crop is resized to this before its spectrum, so profiles are comparable
REFERENCE_PATH = Path(__file__).resolve().parent.parent / "assets" / "spectrum_reference.json"
_LUMA = np.array([0.299, 0.587, 0.114])


def grayscale(crop: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB (or H x W) to float luma in [0, 1]."""
    image = crop.astype(np.float64) / 255.0
    return image @ _LUMA if image.ndim == 3 else image


def log_spectrum(crop: np.ndarray, size: int | None = ANALYSIS_SIZE) -> np.ndarray:
    """Centred natural-log magnitude of the 2D DFT of the crop's luma.

    The mean is removed (the DC term would dwarf everything) and a 2D Hann window applied, so the picture's
    borders do not leak a bright cross into the spectrum. ``size`` resizes the crop first (None keeps it).
    """
    if size is not None and crop.shape[:2] != (size, size):
        crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BICUBIC))
    luma = grayscale(crop)
    luma = luma - luma.mean()
    window = np.outer(np.hanning(luma.shape[0]), np.hanning(luma.shape[1]))
    magnitude = np.abs(np.fft.fftshift(np.fft.fft2(luma * window, norm="ortho")))
    return np.log(magnitude + 1e-8)


def radial_profile(spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthal mean of a centred spectrum over rings of integer radius.

    Returns (frequency in cycles per pixel, from 0 to 0.5; mean log-magnitude in each ring).
    """
    height, width = spectrum.shape
    cy, cx = height // 2, width // 2
    yy, xx = np.indices(spectrum.shape)
    radius = np.rint(np.hypot(yy - cy, xx - cx)).astype(int)
    max_radius = min(cy, cx)
    inside = radius <= max_radius
    sums = np.bincount(radius[inside], weights=spectrum[inside], minlength=max_radius + 1)
    counts = np.bincount(radius[inside], minlength=max_radius + 1)
    profile = sums / np.maximum(counts, 1)
    frequency = np.arange(max_radius + 1) / min(height, width)
    return frequency, profile


@dataclass(frozen=True, eq=False)
class ReferenceBand:
    """Where the radial profiles of real faces lie: median and 5-95 % quantiles per frequency."""

    frequency: np.ndarray
    median: np.ndarray
    low: np.ndarray  # 5 % quantile
    high: np.ndarray  # 95 % quantile
    count: int
    source: str

    def to_dict(self) -> dict:
        return {
            "analysis_size": ANALYSIS_SIZE,
            "count": self.count,
            "source": self.source,
            "frequency": np.round(self.frequency, 6).tolist(),
            "median": np.round(self.median, 4).tolist(),
            "q05": np.round(self.low, 4).tolist(),
            "q95": np.round(self.high, 4).tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ReferenceBand":
        return cls(
            np.asarray(data["frequency"]),
            np.asarray(data["median"]),
            np.asarray(data["q05"]),
            np.asarray(data["q95"]),
            int(data["count"]),
            str(data["source"]),
        )

    @classmethod
    def from_crops(cls, crops: Iterable[np.ndarray], source: str) -> "ReferenceBand":
        profiles = [radial_profile(log_spectrum(crop))[1] for crop in crops]
        if not profiles:
            raise ValueError("no face crops to build the reference band from")
        stack = np.stack(profiles)
        frequency = radial_profile(np.zeros((ANALYSIS_SIZE, ANALYSIS_SIZE)))[0]
        low, median, high = np.quantile(stack, [0.05, 0.5, 0.95], axis=0)
        return cls(frequency, median, low, high, len(profiles), source)

    def save(self, path: Path = REFERENCE_PATH) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()) + "\n")


def load_reference_band(path: Path = REFERENCE_PATH) -> ReferenceBand | None:
    """The shipped band, or None when it has not been computed (the plots then omit it)."""
    try:
        return ReferenceBand.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError):
        return None
