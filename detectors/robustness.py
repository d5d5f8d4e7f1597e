"""Robustness probe: re-score a picture after everyday degradations and flag the verdicts that flip.

A detector whose verdict changes after one JPEG save at quality 75 or a halving of the resolution (what a
messaging app does to a picture) is reading the encoding, not the face; users should see that before they
trust a verdict. The degraded picture goes through the whole pipeline again (face detection included).

One decode path: the picture is scored "before" exactly as Analyse scores it (``Analyzer.analyze_picture``,
which decodes a large JPEG reduced), and each degraded copy is scored the same way as a file of it would be
(the JPEG save is decoded like any uploaded JPEG), so a flip measures the degradation, not two decoders.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from .media import Picture


def jpeg_75(image: np.ndarray) -> Picture:
    """The picture saved once as a JPEG at quality 75 (as a messaging app re-encodes it)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=75)
    return Picture.from_bytes(buffer.getvalue(), "jpeg-75.jpg")


def half_size(image: np.ndarray) -> Picture:
    height, width = image.shape[:2]
    size = (max(1, width // 2), max(1, height // 2))
    return Picture.from_pixels(np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC)), "half-size.png")


# Each takes the picture's full-size pixels and gives the degraded picture.
PERTURBATIONS: dict[str, Callable[[np.ndarray], Picture]] = {"JPEG quality 75": jpeg_75, "0.5x resize": half_size}


@dataclass(frozen=True)
class ProbeRow:
    perturbation: str
    scorer: str  # detector name, or "ensemble"
    original: float | None
    perturbed: float | None
    original_verdict: str
    perturbed_verdict: str

    @property
    def flipped(self) -> bool:
        return self.original_verdict != self.perturbed_verdict

    def to_dict(self) -> dict:
        return {
            "perturbation": self.perturbation,
            "scorer": self.scorer,
            "original": None if self.original is None else round(self.original, 4),
            "perturbed": None if self.perturbed is None else round(self.perturbed, 4),
            "original_verdict": self.original_verdict,
            "perturbed_verdict": self.perturbed_verdict,
            "flipped": self.flipped,
        }


def probe(analyzer, picture: Picture | np.ndarray, whole_image_if_no_face: bool = False) -> list[ProbeRow]:
    """Rows comparing the most suspicious face's scores before and after each perturbation; ``picture`` is the
    upload (an array is taken as already decoded pixels)."""
    if isinstance(picture, np.ndarray):
        picture = Picture.from_pixels(picture)
    original = analyzer.analyze_picture(picture, whole_image_if_no_face).top
    rows = []
    for name, perturb in PERTURBATIONS.items():
        perturbed = analyzer.analyze_picture(perturb(picture.decoded(1)[0]), whole_image_if_no_face).top
        for detector in analyzer.detectors:
            before = original.scores.get(detector.name) if original else None
            after = perturbed.scores.get(detector.name) if perturbed else None
            rows.append(ProbeRow(name, detector.name, before, after,
                                 original.verdicts.get(detector.name, "no-face") if original else "no-face",
                                 perturbed.verdicts.get(detector.name, "no-face") if perturbed else "no-face"))
        rows.append(ProbeRow(name, "ensemble", original.ensemble if original else None, perturbed.ensemble if perturbed else None,
                             original.verdict if original else "no-face", perturbed.verdict if perturbed else "no-face"))
    return rows
