"""From decoded media to a report: faces -> every detector (batched) -> ensemble -> verdicts; video aggregation.

The record this module fills in (:meth:`Analyzer.scan`; its shape is declared in ``records``) is what the scan CLI
writes and what the app's API returns; its shape does not depend on how many detectors are loaded (``scores`` is
simply empty with none).
Verdicts come from each detector's calibrated thresholds and from the fitted ensemble rule, never from a
bare 0.5. Every face, picture and clip gets an evidence ``level`` (likely fake, leaning fake, uncertain, leaning
real, likely real: the ensemble rule's levels, each with its measured meaning, see
``calibration.EvidenceLevels``) and the three-way ``verdict`` beside it (fake only at "likely fake", real only at
"likely real"); a clip's level comes from the ensemble's clip rule when it has one (``calibration.ClipRule``: a
score of the frames' ensemble probabilities and levels fitted on clips), else from its aggregated probability
and its frames (``calibration.clip_level``).
Without a fitted rule the ensemble is the mean probability and the verdict a strict majority.
"""
from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Literal, Protocol, Sequence

import numpy as np

from . import provenance, records
from .calibration import VERDICT_LEVELS, clip_level, expit, level_verdict, logit
from .faces import FaceCrop, FaceCropper, whole_image_crop
from .media import DEFAULT_LIMITS, InputError, Limits, Picture, VideoFrame, detect_kind, printable, sample_frames
from .preprocess import CROP_SIZE, SharedInput

log = logging.getLogger(__name__)
PREFETCH_FILES = 8  # files decoded and searched ahead of the scoring (bounded: memory stays small)
BATCH_FILES = 8  # prepared files whose faces are scored together
PREFETCH_THREADS = 2  # threads that decode and search ahead, one torch thread each (34.5 ms per FFHQ portrait against 36.4 with one)
Verdict = Literal["fake", "real", "uncertain", "no-face"]
AggregationRule = Literal["mean", "confident"]
AGGREGATION_RULES: dict[str, str] = {
    "mean": "mean of the frames' fake probabilities",
    "confident": "confident frames decide: if more than 40 % of the frames are confidently fake (above the "
    "uncertain band), the mean of those; else if more than 90 % are confidently real, the mean of those; "
    "else the mean of all (after the DFDC winner's rule, with our calibrated band in place of 0.8 / 0.2)",
}


class ScoringDetector(Protocol):
    name: str

    def logits(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """One logit per ``CROP_SIZE`` crop (sigmoid = probability of fake)."""

    def verdict(self, probability: float) -> Verdict: ...


def aggregate(probabilities: Sequence[float], rule: AggregationRule = "mean", low: float = 0.2, high: float = 0.8) -> float:
    """One video score from per-frame probabilities (see :data:`AGGREGATION_RULES`); ``low`` / ``high`` are
    the edges of the uncertain band, so "confident" means outside it."""
    values = np.asarray(probabilities, dtype=float)
    if values.size == 0:
        raise ValueError("no frame scores to aggregate")
    if rule == "mean":
        return float(values.mean())
    if rule != "confident":
        raise ValueError(f"unknown aggregation rule {rule!r}; choose from {', '.join(AGGREGATION_RULES)}")
    fake, real = values[values >= high], values[values <= low]
    if len(fake) > 0.4 * len(values):
        return float(fake.mean())
    if len(real) > 0.9 * len(values):
        return float(real.mean())
    return float(values.mean())


class Ensemble(Protocol):
    def probability(self, logits: dict[str, float | None]) -> float | None: ...

    def verdict(self, probability: float) -> Verdict: ...

    def level(self, probability: float, fake_votes: int | None = None) -> str: ...


def majority(verdicts: Sequence[Verdict]) -> Verdict:
    """A strict majority of the detectors' verdicts, else uncertain (used when no ensemble rule is fitted)."""
    for side in ("fake", "real"):
        if verdicts and verdicts.count(side) > len(verdicts) / 2:
            return side
    return "uncertain"


# Results hold arrays (crops, landmarks): value equality would compare them element-wise and raise, so they
# compare by identity; the report names its most suspicious face by index, never by searching with ==.
@dataclass(eq=False)
class FaceResult:
    crop: FaceCrop
    logits: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    ensemble: float | None = None
    verdict: Verdict = "uncertain"
    level: str | None = None  # one of calibration.LEVELS (None before scoring)

    @property
    def scores(self) -> dict[str, float]:
        return {name: float(expit(logit)) for name, logit in self.logits.items()}

    @property
    def suspicion(self) -> float:
        return -1.0 if self.ensemble is None else self.ensemble

    def to_dict(self, **extra) -> dict:
        """This face's entry in a record's ``faces.boxes`` (``extra``: fields the app adds, see ``records.FACE_FIELDS``)."""
        found = self.crop.face.to_dict() if self.crop.face is not None else {}  # the whole picture: no box
        return records.face_entry(**found, scores=_rounded(self.scores), ensemble=_round(self.ensemble), verdict=self.verdict,
                                  level=self.level, **extra)


@dataclass(eq=False)
class _Prepared:
    """One file made ready for the detectors by :meth:`Analyzer.scan_many`'s background thread."""

    path: Path
    kind: str | None = None
    error: str | None = None
    units: list[list[FaceCrop]] = field(default_factory=list)  # the picture's faces, or each sampled frame's
    frames: list[VideoFrame] = field(default_factory=list)
    provenance: dict | None = None  # what the file declares about its origin (read even when its pixels fail)


@dataclass(eq=False)
class ImageReport:
    faces: list[FaceResult]
    whole_image: bool = False  # no face was found and the whole picture was scored instead

    @property
    def top_index(self) -> int | None:
        """Position of the most suspicious face in ``faces`` (the first among equals); None without faces."""
        if not self.faces:
            return None
        return max(range(len(self.faces)), key=lambda i: self.faces[i].suspicion)

    @property
    def top(self) -> FaceResult | None:
        """The most suspicious face: it decides the picture's verdict."""
        return None if self.top_index is None else self.faces[self.top_index]

    @property
    def verdict(self) -> Verdict:
        return "no-face" if self.top is None else self.top.verdict

    @property
    def level(self) -> str | None:
        """The most suspicious face's level (None without a face)."""
        return None if self.top is None else self.top.level


def _band(detector) -> tuple[float, float]:
    """A detector's calibrated uncertain band, or 0.2 / 0.8 for one without calibration."""
    thresholds = getattr(getattr(detector, "config", None), "thresholds", None)
    if thresholds is None:
        return 0.2, 0.8
    return thresholds.uncertain_low, thresholds.uncertain_high


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _rounded(scores: dict[str, float | None]) -> dict[str, float | None]:
    return {name: _round(value) for name, value in scores.items()}


DETECTOR_WORKERS = 2  # on CPU: detectors side by side, one core each (fastest on two cores; see docs/speed.md)


def detector_workers(detectors: Sequence[ScoringDetector]) -> int:
    """Threads the detectors of an analyzer run in: side by side on CPU, one after another on a GPU."""
    return DETECTOR_WORKERS if detectors and all(getattr(d, "device", None) is not None and d.device.type == "cpu" for d in detectors) else 1


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


class Analyzer:
    """Holds the face cropper, the loaded detectors and the ensemble rule; turns media into reports."""

    def __init__(self, detectors: Sequence[ScoringDetector] = (), cropper: FaceCropper | None = None,
                 limits: Limits = DEFAULT_LIMITS, ensemble: Ensemble | None = None, workers: int = 1) -> None:
        self.detectors = list(detectors)
        self.cropper = cropper or FaceCropper()
        self.limits = limits
        self.ensemble = ensemble
        # workers > 1: the detectors run side by side in threads (torch releases the GIL), which beats
        # splitting each small batch-1 forward over cores when the models are overhead-bound (see bench).
        # Each worker thread runs its detector on one core; the calling thread keeps torch's thread count for
        # face search, which does gain from two cores.
        self._pool = (ThreadPoolExecutor(workers, thread_name_prefix="detector", initializer=_one_torch_thread)
                      if workers > 1 and len(self.detectors) > 1 else None)

    # -- scoring -------------------------------------------------------------------------------------------
    def score_crops(self, crops: Sequence[FaceCrop]) -> list[FaceResult]:
        """Every detector on all crops as one batch; then each face's ensemble and verdict."""
        results = [FaceResult(crop) for crop in crops]
        if not crops:
            return results
        # Crops become one tensor once, resized once per input size, shared by every detector.
        shared = SharedInput([crop.image for crop in crops], getattr(self.detectors[0], "device", "cpu") if self.detectors else "cpu")
        if self._pool is not None:
            shared.prepare({d.config.input_size for d in self.detectors if hasattr(d, "config")})
            all_logits = list(self._pool.map(lambda detector: detector.logits(shared), self.detectors))
        else:
            all_logits = [detector.logits(shared) for detector in self.detectors]
        for detector, logits in zip(self.detectors, all_logits):
            for result, value in zip(results, logits):
                result.logits[detector.name] = float(value)
        for result in results:
            self._decide(result)
        return results

    def _decide(self, result: FaceResult) -> None:
        by_name = {d.name: d for d in self.detectors}
        result.verdicts = {name: by_name[name].verdict(p) for name, p in result.scores.items()}
        if not result.logits:
            return
        if self.ensemble is not None:
            result.ensemble = self.ensemble.probability(result.logits)
            result.level = self.ensemble.level(result.ensemble, list(result.verdicts.values()).count("fake"))
        else:
            result.ensemble = float(np.mean(list(result.scores.values())))
            result.level = VERDICT_LEVELS[majority(list(result.verdicts.values()))]
        result.verdict = level_verdict(result.level)

    def analyze_image(self, image: np.ndarray, whole_image_if_no_face: bool = False) -> ImageReport:
        """As :meth:`analyze_picture`, for pixels already decoded."""
        return self.analyze_picture(Picture.from_pixels(image), whole_image_if_no_face)

    def analyze_picture(self, picture: Picture, whole_image_if_no_face: bool = False) -> ImageReport:
        """Every face of a picture scored (the one path of every picture: uploads, probes, pixels), the file
        decoded only as far as needed (see ``FaceCropper.crops_of``); with no face, the whole picture when asked."""
        crops, searched = self.cropper.crops_of(picture, CROP_SIZE)
        whole = not crops and whole_image_if_no_face
        if whole:
            crops = [whole_image_crop(searched, CROP_SIZE)]
        return ImageReport(self.score_crops(crops), whole_image=whole)

    def analyze_frames(self, frames: Sequence[VideoFrame]) -> list[ImageReport]:
        """One report per sampled frame; the faces of all frames go through each detector as one batch."""
        crops = self.cropper.crops_batch([frame.image for frame in frames], CROP_SIZE)
        flat = self.score_crops([crop for frame_crops in crops for crop in frame_crops])
        reports, start = [], 0
        for frame_crops in crops:
            reports.append(ImageReport(flat[start : start + len(frame_crops)]))
            start += len(frame_crops)
        return reports

    def video_summary(self, reports: Sequence[ImageReport], rule: AggregationRule = "mean") -> FaceResult | None:
        """The video as one pseudo-face: per detector, the frames' most suspicious faces aggregated by ``rule``
        (``mean`` is DeepfakeBench's video score), then the ensemble on those. None when no frame had a face.
        """
        tops = [r.top for r in reports if r.top is not None]
        if not tops:
            return None
        summary = FaceResult(tops[0].crop)
        for detector in self.detectors:
            values = [t.scores[detector.name] for t in tops if detector.name in t.logits]
            if values:
                low, high = _band(detector)
                summary.logits[detector.name] = float(logit(np.clip(aggregate(values, rule, low, high), 1e-7, 1 - 1e-7)))
        self._decide(summary)
        if summary.logits:
            rule = self.clip_rule
            frame_probabilities = [t.ensemble for t in tops if t.ensemble is not None]
            if rule is not None and frame_probabilities:
                # the clip's own score and levels, fitted and given their meaning on clips
                summary.ensemble = rule.score(frame_probabilities)
                summary.level = rule.level(summary.ensemble)
            else:
                summary.level = clip_level(summary.level, [t.level for t in tops])
            summary.verdict = level_verdict(summary.level)
        return summary

    @property
    def clip_rule(self):
        """The ensemble's clip rule with levels (``calibration.ClipRule``), or None."""
        rule = getattr(self.ensemble, "clip", None)
        return rule if rule is not None and rule.levels is not None else None

    # -- records -------------------------------------------------------------------------------------------
    def scan(self, path: str | os.PathLike, frames: int = 16, rule: AggregationRule = "mean") -> records.ScanRecord:
        """The scan record of one file; bad input never raises (the record's ``error`` says what went wrong)."""
        return next(self.scan_many([path], frames, rule))

    def scan_many(self, paths: Iterable[str | os.PathLike], frames: int = 16, rule: AggregationRule = "mean",
                  ahead: int = PREFETCH_FILES, batch_files: int = BATCH_FILES) -> Iterator[records.ScanRecord]:
        """The scan record of every file, in order; one bad file never stops the others.

        Files are decoded and searched for faces in background threads, at most ``ahead`` files ahead of the
        scoring, so decoding and face search overlap with the detectors; the faces of up to ``batch_files``
        prepared files go through each detector as one batch.
        """
        with ThreadPoolExecutor(PREFETCH_THREADS, thread_name_prefix="prefetch", initializer=_one_torch_thread) as prefetch:
            pending: deque = deque()
            paths = iter(paths)

            def top_up() -> None:
                while len(pending) < ahead:
                    path = next(paths, None)
                    if path is None:
                        return
                    pending.append(prefetch.submit(self._prepare, Path(path), frames))

            top_up()
            while pending:
                chunk = [pending.popleft().result()]
                while pending and len(chunk) < batch_files and pending[0].done():
                    chunk.append(pending.popleft().result())
                top_up()
                yield from self._records(chunk, rule)

    def _prepare(self, path: Path, frames: int) -> "_Prepared":
        """Everything before the detectors: kind, decoding, face search and crops (any failure is the record's)."""
        prepared = _Prepared(path, provenance=provenance.report(path) if path.is_file() else None)
        try:
            prepared.kind = detect_kind(path, self.limits)
            if prepared.kind == "image":
                crops, _ = self.cropper.crops_of(Picture(path, self.limits), CROP_SIZE)
                prepared.units = [crops]
            else:
                prepared.frames = sample_frames(path, frames, self.limits)
                prepared.units = self.cropper.crops_batch([frame.image for frame in prepared.frames], CROP_SIZE)
        except InputError as error:
            prepared.error = str(error)
        except Exception as error:  # a bug of ours, or a decoder crash: this file's record says so, the rest go on
            log.exception("scan of %s failed", printable(str(path)))
            prepared.error = printable(f"{path.name}: the analysis failed ({type(error).__name__}); please report it")
        return prepared

    def _records(self, chunk: list["_Prepared"], rule: AggregationRule) -> Iterator[records.ScanRecord]:
        """Score the faces of several prepared files as one batch, then build each file's record."""
        flat = self.score_crops([crop for item in chunk for unit in item.units for crop in unit])
        start = 0
        for item in chunk:
            reports = []
            for unit in item.units:
                reports.append(ImageReport(flat[start : start + len(unit)]))
                start += len(unit)
            analysis = {}
            if item.error is None:
                analysis = self.image_record(reports[0]) if item.kind == "image" else self.video_record(item.frames, reports, rule)
                analysis["level_meaning"] = self.level_meaning(analysis["level"], clip=item.kind == "video")
            yield records.scan_record(path=printable(str(item.path)), kind=item.kind, error=item.error,
                                      provenance=item.provenance, **analysis)

    def level_meaning(self, level: str | None, clip: bool = False) -> dict | None:
        """What ``level`` meant on validation (share of fakes overall and per held-out set), from the ensemble
        rule; for a clip (``clip``) with a clip rule, what the clip level meant on validation clips (share of fake
        clips). None without a level or a rule with levels."""
        meanings = self.clip_rule.meanings if clip and self.clip_rule is not None else getattr(self.ensemble, "meanings", None)
        return meanings.get(level) if meanings and level else None

    @staticmethod
    def image_record(report: ImageReport, face_extras: Sequence[dict] = ()) -> dict:
        """A picture's fields of the record (``records.RECORD_FIELDS``); ``face_extras``: per face, fields the app
        adds to its entry."""
        top = report.top
        extras = list(face_extras) or [{}] * len(report.faces)
        return {
            "faces": {"count": 0 if report.whole_image else len(report.faces),
                      "boxes": [face.to_dict(**extra) for face, extra in zip(report.faces, extras)]},
            "scores": _rounded(top.scores) if top else {},
            "ensemble": _round(top.ensemble) if top else None,
            "verdict": report.verdict,
            "level": report.level,
        }

    def video_record(self, frames: Sequence[VideoFrame], reports: Sequence[ImageReport], rule: AggregationRule = "mean") -> dict:
        """A video's fields of the record (``records.RECORD_FIELDS``)."""
        summary = self.video_summary(reports, rule)
        with_faces = [r for r in reports if r.faces]
        most = max(with_faces, key=lambda r: r.top.suspicion) if with_faces else None
        return {
            "faces": {"count": max((len(r.faces) for r in reports), default=0), "boxes": [f.to_dict() for f in most.faces] if most else []},
            "scores": _rounded(summary.scores) if summary else {},
            "ensemble": _round(summary.ensemble) if summary else None,
            "verdict": summary.verdict if summary else "no-face",
            "level": summary.level if summary else None,
            "aggregation": rule,
            # the clip's level: from the fitted clip rule (its score is "ensemble"), or None: the faces' levels
            "clip_rule": ({"rule": self.clip_rule.rule, "method": self.clip_rule.method}
                          if summary and self.clip_rule is not None else None),
            "frames": [
                records.frame_entry(
                    index=frame.index,
                    timestamp=round(frame.timestamp, 3),
                    faces=len(report.faces),
                    boxes=[face.to_dict() for face in report.faces],
                    scores=_rounded(report.top.scores) if report.top else {},
                    ensemble=_round(report.top.ensemble) if report.top else None,
                    verdict=report.verdict,
                    level=report.level,
                )
                for frame, report in zip(frames, reports)
            ],
        }
