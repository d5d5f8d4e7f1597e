"""``python -m detectors evaluate``: detectors on a folder laid out ``real/`` and ``fake/`` (images or videos).

Every file goes through the app's own path (decode, MTCNN, crop, each detector's preprocessing). Frame level:
one score per image or sampled video frame (its most confident face). Video level: the mean of a video's
frame probabilities (DeepfakeBench's convention). Files or frames without a face are counted, not scored.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from .cli import expand_inputs
from .faces import FaceCropper
from .media import InputError, detect_kind, load_image, sample_frames
from .metrics import binary_metrics, roc_curve_points, roc_figure
from .preprocess import CROP_SIZE


@dataclass
class Scored:
    """Per scorer: logits of every scored frame, which file (video) each came from, and the labels."""

    logits: dict[str, list[float]] = field(default_factory=dict)
    labels: list[int] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)  # index of the file each frame belongs to
    kinds: list[str] = field(default_factory=list)  # per file
    file_labels: list[int] = field(default_factory=list)
    no_face: int = 0
    unreadable: list[str] = field(default_factory=list)


def labelled_files(folder: str | os.PathLike) -> list[tuple[Path, int]]:
    folder = Path(folder)
    pairs = [(path, label) for label, name in ((0, "real"), (1, "fake")) for path in expand_inputs([str(folder / name)]) if (folder / name).is_dir()]
    if not pairs:
        raise InputError(f"{folder}: expected sub-folders real/ and fake/ with images or videos")
    return pairs


def score_folder(folder: str | os.PathLike, scorers: Sequence, frames: int = 16, cropper: FaceCropper | None = None) -> Scored:
    """``scorers``: objects with ``name`` and ``logits(crops) -> np.ndarray`` (loaded detectors, ensembles)."""
    cropper = cropper or FaceCropper()
    scored = Scored(logits={s.name: [] for s in scorers})
    for path, label in tqdm(labelled_files(folder), desc="evaluate", unit="file", file=sys.stderr):
        try:
            kind = detect_kind(path)
            images = [load_image(path)] if kind == "image" else [f.image for f in sample_frames(path, frames)]
        except InputError as error:
            scored.unreadable.append(str(error))
            continue
        crops = []
        for faces, image in zip(cropper.detect_batch(images), images):
            if faces:
                crops.append(cropper.crop(image, faces[0], CROP_SIZE).image)
            else:
                scored.no_face += 1
        if not crops:
            continue
        file_index = len(scored.kinds)
        scored.kinds.append(kind)
        scored.file_labels.append(label)
        for scorer in scorers:
            scored.logits[scorer.name].extend(np.asarray(scorer.logits(crops), dtype=float).tolist())
        scored.labels.extend([label] * len(crops))
        scored.groups.extend([file_index] * len(crops))
    return scored


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def summarise(scored: Scored, thresholds: dict[str, float]) -> dict:
    """Frame-level and (when videos were scored) video-level metrics per scorer, at each scorer's threshold."""
    labels = np.array(scored.labels)
    groups = np.array(scored.groups)
    result = {"frames": len(labels), "files": len(scored.kinds), "no_face_frames": scored.no_face, "unreadable": scored.unreadable, "scorers": {}}
    for name, logits in scored.logits.items():
        probabilities = _sigmoid(np.array(logits))
        entry = {"frame": binary_metrics(labels, probabilities, thresholds.get(name, 0.5)).to_dict()}
        if "video" in scored.kinds:
            video_scores = np.array([probabilities[groups == g].mean() for g in range(len(scored.kinds))])
            entry["video"] = binary_metrics(np.array(scored.file_labels), video_scores, thresholds.get(name, 0.5)).to_dict()
        result["scorers"][name] = entry
    return result


def roc(scored: Scored, title: str):
    labels = np.array(scored.labels)
    curves = {}
    for name, logits in scored.logits.items():
        if len(set(labels)) == 2:
            fpr, tpr, _ = roc_curve_points(labels, np.array(logits))
            curves[name] = (fpr, tpr)
    return roc_figure(curves, title)
