"""From decoded media to a report: faces -> every detector (batched) -> verdicts; video sampling and aggregation.

The record this module builds (``*.to_record()``) is what the scan CLI writes and what the app's API returns;
its shape does not depend on how many detectors are loaded (``scores`` is simply empty with none).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, Sequence

import numpy as np

from .faces import FaceCrop, FaceCropper, whole_image_crop
from .media import DEFAULT_LIMITS, InputError, Limits, detect_kind, load_image, sample_frames
from .preprocess import CROP_SIZE
Verdict = Literal["fake", "real", "uncertain", "no-face"]


class ScoringDetector(Protocol):
    """What the pipeline needs from a loaded detector."""

    name: str

    def probabilities(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """P(fake) in [0, 1] for each ``CROP_SIZE`` crop, one batch."""

    def verdict(self, probability: float) -> Verdict: ...


@dataclass
class FaceResult:
    crop: FaceCrop
    scores: dict[str, float | None] = field(default_factory=dict)

    @property
    def ensemble(self) -> float | None:
        values = [v for v in self.scores.values() if v is not None]
        return float(np.mean(values)) if values else None

    @property
    def suspicion(self) -> float:
        return -1.0 if self.ensemble is None else self.ensemble


@dataclass
class ImageReport:
    faces: list[FaceResult]
    whole_image: bool = False  # True when no face was found and the whole picture was scored instead
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    @property
    def top(self) -> FaceResult | None:
        """The most suspicious face: it decides the picture's verdict."""
        return max(self.faces, key=lambda face: face.suspicion) if self.faces else None

    def verdict(self) -> Verdict:
        top = self.top
        if top is None or (self.whole_image and not top.scores):
            return "no-face"
        return _majority([self.verdicts.get(name, "uncertain") for name in top.scores]) if top.scores else "uncertain"


def _majority(verdicts: Sequence[Verdict]) -> Verdict:
    """Interim ensemble rule (until calibration lands): a strict majority of decided detectors, else uncertain."""
    fake, real = verdicts.count("fake"), verdicts.count("real")
    if fake > len(verdicts) / 2:
        return "fake"
    if real > len(verdicts) / 2:
        return "real"
    return "uncertain"


def _face_entry(face: FaceResult) -> dict:
    entry = face.crop.face.to_dict() if face.crop.face is not None else {"box": None, "confidence": None}
    return {**entry, "scores": face.scores, "ensemble": face.ensemble}


class Analyzer:
    """Holds the face cropper and the loaded detectors; turns files into reports and records."""

    def __init__(
        self,
        detectors: Sequence[ScoringDetector] = (),
        cropper: FaceCropper | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.detectors = list(detectors)
        self.cropper = cropper or FaceCropper()
        self.limits = limits

    def _score(self, crops: Sequence[FaceCrop]) -> list[FaceResult]:
        results = [FaceResult(crop) for crop in crops]
        if not crops:
            return results
        images = [crop.image for crop in crops]
        for detector in self.detectors:
            for result, p in zip(results, detector.probabilities(images)):
                result.scores[detector.name] = float(p)
        return results

    def _verdicts(self, face: FaceResult | None) -> dict[str, Verdict]:
        if face is None:
            return {}
        by_name = {d.name: d for d in self.detectors}
        return {name: by_name[name].verdict(p) for name, p in face.scores.items() if p is not None}

    def analyze_image(self, image: np.ndarray, whole_image_if_no_face: bool = False) -> ImageReport:
        crops = [self.cropper.crop(image, face, CROP_SIZE) for face in self.cropper.detect(image)]
        whole = not crops and whole_image_if_no_face
        if whole:
            crops = [whole_image_crop(image, CROP_SIZE)]
        report = ImageReport(self._score(crops), whole_image=whole)
        report.verdicts = self._verdicts(report.top)
        return report

    def analyze_frames(self, frames: Sequence) -> list[ImageReport]:
        """One report per sampled frame; all frames' faces go through each detector as one batch."""
        detections = self.cropper.detect_batch([frame.image for frame in frames])
        crops = [[self.cropper.crop(frame.image, face, CROP_SIZE) for face in faces] for frame, faces in zip(frames, detections)]
        flat = self._score([crop for frame_crops in crops for crop in frame_crops])
        reports, start = [], 0
        for frame_crops in crops:
            report = ImageReport(flat[start : start + len(frame_crops)])
            report.verdicts = self._verdicts(report.top)
            reports.append(report)
            start += len(frame_crops)
        return reports

    def scan(self, path: str | os.PathLike, frames: int = 16) -> dict:
        """The scan record of one file; never raises for bad input (the record's ``error`` says what went wrong)."""
        path = Path(path)
        record: dict = {"path": str(path), "kind": None, "error": None, "faces": {"count": 0, "boxes": []}, "scores": {}, "ensemble": None, "verdict": None}
        try:
            record["kind"] = detect_kind(path, self.limits)
            if record["kind"] == "image":
                self._image_record(record, load_image(path, self.limits))
            else:
                self._video_record(record, sample_frames(path, frames, self.limits))
        except InputError as error:
            record["error"] = str(error)
        return record

    def _image_record(self, record: dict, image: np.ndarray) -> None:
        report = self.analyze_image(image)
        top = report.top
        record["faces"] = {"count": len(report.faces), "boxes": [_face_entry(face) for face in report.faces]}
        record["scores"] = dict(top.scores) if top else {}
        record["ensemble"] = top.ensemble if top else None
        record["verdict"] = report.verdict()

    def _video_record(self, record: dict, frames: Sequence) -> None:
        reports = self.analyze_frames(frames)
        record["frames"] = [
            {
                "index": frame.index,
                "timestamp": round(frame.timestamp, 3),
                "faces": len(report.faces),
                "boxes": [_face_entry(face) for face in report.faces],
                "scores": dict(report.top.scores) if report.top else {},
                "ensemble": report.top.ensemble if report.top else None,
            }
            for frame, report in zip(frames, reports)
        ]
        with_faces = [(frame, report) for frame, report in zip(frames, reports) if report.faces]
        record["faces"] = {"count": max((len(r.faces) for _, r in with_faces), default=0), "boxes": []}
        record["scores"] = {
            d.name: _mean([r.top.scores.get(d.name) for _, r in with_faces]) for d in self.detectors
        } if with_faces else {}
        means = [r.top.ensemble for _, r in with_faces if r.top.ensemble is not None]
        record["ensemble"] = float(np.mean(means)) if means else None
        if not with_faces:
            record["verdict"] = "no-face"
        else:
            most = max(with_faces, key=lambda pair: pair[1].top.suspicion)
            record["faces"]["boxes"] = [_face_entry(face) for face in most[1].faces]
            record["verdict"] = _majority(
                [self.detectors_by_name[name].verdict(p) for name, p in record["scores"].items() if p is not None]
            ) if record["scores"] else "uncertain"

    @property
    def detectors_by_name(self) -> dict[str, ScoringDetector]:
        return {d.name: d for d in self.detectors}


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None
