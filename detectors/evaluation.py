"""``python -m detectors evaluate``: detectors on a folder laid out ``real/`` and ``fake/`` (images or videos).

Every file goes through the app's own path (decode, MTCNN, crop, each detector's preprocessing). Frame level:
one score per image (its most confident face) or sampled video frame (its speaker, the largest face). Video level: the mean of a video's
frame probabilities (DeepfakeBench's convention). Files or frames without a face are counted, not scored.
Clip level (the ensemble, when videos were scored): each clip's level as the app gives it (the ensemble's clip
rule, fitted on clips), the clips' AUC, and per source the share of clips at each level.
Per source (the first sub-folder under ``real/`` or ``fake/``, as ``export-heldout`` writes them): the share of
frames each scorer calls fake, uncertain and real at its shipped thresholds (the ensemble's verdict from its
evidence level, as in the app) and, for the ensemble, the share of each of the five levels; for a fake source
its AUC against all reals; for a real source its AUC against the other real sources (near 0.5 unless the scorer
has learned where pictures come from).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from .calibration import LEVELS, expit, level_verdict
from .faces import FaceCropper, first_faces
from .media import InputError, expand_inputs
from .metrics import binary_metrics, roc_curve_points
from .preprocess import CROP_SIZE


@dataclass
class Scored:
    """Per scorer: logits of every scored frame, which file (video) each came from, and the labels."""

    logits: dict[str, list[float]] = field(default_factory=dict)
    labels: list[int] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)  # index of the file each frame belongs to
    kinds: list[str] = field(default_factory=list)  # per file
    file_labels: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # per frame: the sub-folder it came from
    no_face: int = 0
    unreadable: list[str] = field(default_factory=list)


def labelled_files(folder: str | os.PathLike) -> list[tuple[Path, int, str]]:
    """(file, label, source) under ``real/`` and ``fake/``; the source is the first sub-folder, else the label."""
    folder = Path(folder)
    found = []
    for label, name in ((0, "real"), (1, "fake")):
        if (folder / name).is_dir():
            for path in expand_inputs([str(folder / name)]):
                parts = path.relative_to(folder / name).parts
                found.append((path, label, parts[0] if len(parts) > 1 else name))
    if not found:
        raise InputError(f"{folder}: expected sub-folders real/ and fake/ with images or videos")
    return found


def score_folder(folder: str | os.PathLike, scorers: Sequence, frames: int = 16, cropper: FaceCropper | None = None) -> Scored:
    """``scorers``: objects with ``name`` and ``logits(crops) -> np.ndarray`` (loaded detectors, ensembles)."""
    cropper = cropper or FaceCropper()
    scored = Scored(logits={s.name: [] for s in scorers})
    for path, label, source in tqdm(labelled_files(folder), desc="evaluate", unit="file", file=sys.stderr):
        try:
            kind, found = first_faces(path, cropper, frames, CROP_SIZE)
        except InputError as error:
            scored.unreadable.append(str(error))
            continue
        crops = [crop.image for crop in found if crop is not None]
        scored.no_face += len(found) - len(crops)
        if not crops:
            continue
        file_index = len(scored.kinds)
        scored.kinds.append(kind)
        scored.file_labels.append(label)
        for scorer in scorers:
            scored.logits[scorer.name].extend(np.asarray(scorer.logits(crops), dtype=float).tolist())
        scored.labels.extend([label] * len(crops))
        scored.groups.extend([file_index] * len(crops))
        scored.sources.extend([source] * len(crops))
    return scored


def _levels(scored: Scored, scorers: Sequence) -> dict[str, list[str]]:
    """The ensemble's evidence level per frame, as the app gives it: from its probability and how many of its
    members say "fake" on their own (scorers with levels only)."""
    out = {}
    for scorer in scorers:
        if not hasattr(scorer, "level"):
            continue
        members = [m for m in getattr(scorer, "members", []) if m.name in scored.logits]
        votes = np.zeros(len(scored.labels), dtype=int)
        for member in members:
            votes += np.array([member.verdict(float(p)) == "fake" for p in expit(np.array(scored.logits[member.name]))], dtype=int)
        out[scorer.name] = [scorer.level(float(p), int(v)) for p, v in zip(expit(np.array(scored.logits[scorer.name])), votes)]
    return out


def _verdicts(scored: Scored, scorers: Sequence, levels: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each scorer's verdict per frame: the ensemble's from its level (fake only at "likely fake"), as in the app."""
    verdicts = {s.name: [s.verdict(float(p)) for p in expit(np.array(scored.logits[s.name]))] for s in scorers}
    verdicts.update({name: [level_verdict(level) for level in frame_levels] for name, frame_levels in levels.items()})
    return verdicts


def _source_keys(sources: Sequence[str], labels: Sequence[int]) -> list[str]:
    """Each frame's source name; ``real/<name>`` and ``fake/<name>`` where one name holds both classes (the
    self-blended set's fakes are made from the reals of the same source), so no row mixes reals and fakes."""
    pairs = set(zip(sources, labels))
    both = {name for name, label in pairs if (name, 1 - label) in pairs}
    return [f"{'fake' if label else 'real'}/{name}" if name in both else name for name, label in zip(sources, labels)]


def summarise(scored: Scored, scorers: Sequence) -> dict:
    """Frame-level and (when videos were scored) video-level metrics per scorer at its threshold, and per
    source the shares of each verdict (and, for a fake source, its AUC against all the reals)."""
    labels = np.array(scored.labels)
    groups = np.array(scored.groups)
    sources = np.array(_source_keys(scored.sources, scored.labels))
    result = {"frames": len(labels), "files": len(scored.kinds), "no_face_frames": scored.no_face, "unreadable": scored.unreadable, "scorers": {}}
    levels = _levels(scored, scorers) if len(labels) else {}
    verdicts = _verdicts(scored, scorers, levels) if len(labels) else {s.name: [] for s in scorers}
    for scorer in scorers:
        name, threshold = scorer.name, getattr(scorer, "threshold", 0.5)
        probabilities = expit(np.array(scored.logits[name]))
        if not len(labels):
            result["scorers"][name] = {}
            continue
        entry = {"frame": binary_metrics(labels, probabilities, threshold).to_dict()}
        if name in levels:  # how often a decisive level (likely fake / likely real) was given, and was right
            said = np.array(levels[name], dtype=object)
            right = ((said == "likely fake") & (labels == 1)) | ((said == "likely real") & (labels == 0))
            wrong = ((said == "likely fake") & (labels == 0)) | ((said == "likely real") & (labels == 1))
            entry["decisive"] = {"right": round(float(right.mean()), 4), "wrong": round(float(wrong.mean()), 4),
                                 "levels": {level: round(float(np.mean(said == level)), 4) for level in LEVELS}}
        if "video" in scored.kinds:
            video_scores = np.array([probabilities[groups == g].mean() for g in range(len(scored.kinds))])
            entry["video"] = binary_metrics(np.array(scored.file_labels), video_scores, threshold).to_dict()
            if name in levels:
                entry["clips"] = clip_summary(scored, scorer, probabilities)
        entry["sources"] = {}
        for source in dict.fromkeys(sources.tolist()):
            chosen = sources == source
            said = [v for v, c in zip(verdicts[name], chosen) if c]
            row = {"label": "fake" if labels[chosen][0] else "real", "frames": int(chosen.sum()),
                   **{v: round(said.count(v) / len(said), 4) for v in ("fake", "uncertain", "real")}}
            if name in levels:
                at = [level for level, c in zip(levels[name], chosen) if c]
                row["levels"] = {level: round(at.count(level) / len(at), 4) for level in LEVELS}
            if labels[chosen][0] == 1 and (labels == 0).any():
                against = chosen | (labels == 0)
                row["auc"] = round(binary_metrics(labels[against], probabilities[against]).auc, 4)
            others = (labels == 0) & ~chosen
            if labels[chosen][0] == 0 and others.any():
                # A shortcut check: 0.5 when this source's reals score like the other reals; far from it, the
                # scorer tells where a real picture comes from, which is not what it is for.
                row["auc_vs_other_reals"] = round(binary_metrics(chosen[chosen | others].astype(int), probabilities[chosen | others]).auc, 4)
            entry["sources"][source] = row
        result["scorers"][name] = entry
    return result


def clip_summary(scored: Scored, scorer, probabilities: np.ndarray) -> dict:
    """The clips' own verdicts, as the app gives a clip its level: the scorer's clip rule (``ClipRule``: a score of
    the frames' probabilities, levels fitted on clips) or without one the level of the frames' mean probability.
    Clip-level AUC over all clips, and per source its clips, the share of each level and, for a fake source, its
    AUC against all real clips."""
    rule = getattr(scorer, "clip", None)
    rule = rule if rule is not None and rule.levels is not None else None
    groups, sources = np.array(scored.groups), _source_keys(scored.sources, scored.labels)
    clips = [g for g, kind in enumerate(scored.kinds) if kind == "video"]
    labels = np.array([scored.file_labels[g] for g in clips])
    source_of = np.array([sources[int(np.flatnonzero(groups == g)[0])] for g in clips])
    frames = [probabilities[groups == g] for g in clips]
    scores = np.array([rule.score(f) if rule else float(f.mean()) for f in frames])
    said = np.array([rule.level(s) if rule else scorer.level(float(s)) for s in scores], dtype=object)
    result = {"rule": rule.rule if rule else "mean (no clip rule: the faces' levels)", "clips": len(clips)}
    if len(set(labels.tolist())) == 2:
        result["auc"] = round(binary_metrics(labels, scores).auc, 4)
    result["sources"] = {}
    for source in dict.fromkeys(source_of.tolist()):
        chosen = source_of == source
        row = {"label": "fake" if labels[chosen][0] else "real", "clips": int(chosen.sum()),
               "levels": {level: round(float(np.mean(said[chosen] == level)), 4) for level in LEVELS}}
        if labels[chosen][0] == 1 and (labels == 0).any():
            against = chosen | (labels == 0)
            row["auc"] = round(binary_metrics(labels[against], scores[against]).auc, 4)
        result["sources"][source] = row
    return result


def roc(scored: Scored, title: str):
    """The ROC curve of every scorer as one Plotly figure (``evaluate --roc``)."""
    from .views import roc_figure  # plotly only when a figure is asked for

    labels = np.array(scored.labels)
    curves = {}
    for name, logits in scored.logits.items():
        if len(set(labels)) == 2:
            fpr, tpr, _ = roc_curve_points(labels, np.array(logits))
            curves[name] = (fpr, tpr)
    return roc_figure(curves, title)
