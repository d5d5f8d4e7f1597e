"""Robustness probe: re-score a picture after everyday degradations and flag the verdicts that flip.

A detector whose verdict changes after one JPEG save at quality 75 or a halving of the resolution (what a
messaging app does to a picture) is reading the encoding, not the face; users should see that before they
trust a verdict. The degraded picture goes through the whole pipeline again (face detection included).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from .training.augment import jpeg


def jpeg_75(image: np.ndarray) -> np.ndarray:
    return np.asarray(jpeg(Image.fromarray(image), 75))


def half_size(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    size = (max(1, width // 2), max(1, height // 2))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"JPEG quality 75": jpeg_75, "0.5x resize": half_size}


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


def probe(analyzer, image: np.ndarray, whole_image_if_no_face: bool = False) -> list[ProbeRow]:
    """Rows comparing the most suspicious face's scores before and after each perturbation."""
    original = analyzer.analyze_image(image, whole_image_if_no_face).top
    rows = []
    for name, perturb in PERTURBATIONS.items():
        perturbed = analyzer.analyze_image(perturb(image), whole_image_if_no_face).top
        for detector in analyzer.detectors:
            before = original.scores.get(detector.name) if original else None
            after = perturbed.scores.get(detector.name) if perturbed else None
            rows.append(ProbeRow(name, detector.name, before, after,
                                 original.verdicts.get(detector.name, "no-face") if original else "no-face",
                                 perturbed.verdicts.get(detector.name, "no-face") if perturbed else "no-face"))
        rows.append(ProbeRow(name, "ensemble", original.ensemble if original else None, perturbed.ensemble if perturbed else None,
                             original.verdict if original else "no-face", perturbed.verdict if perturbed else "no-face"))
    return rows
