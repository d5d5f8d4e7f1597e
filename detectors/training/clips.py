"""Clip verdicts fitted on clips: every cached clip's frames scored once, clip rules compared and fitted.

The app gives a clip one level (``pipeline.Analyzer.video_summary``). Before :class:`calibration.ClipRule` it
was the level of the frames' mean probability, with levels fitted on single faces: a level that never had a
measured meaning for clips. Here the clip rule and its levels are fitted on the validation clips of the face
cache (every source whose files are clips, each clip's sampled frames), and each level's meaning is the share
of fake clips at it.

Scoring the cached frames with every detector is the slow part (CPU); the logits are written once to a file
beside the cache (:func:`frame_logits`) and refitting reads them: a new ensemble rule needs no rescoring, new
checkpoints do (the file is keyed by the checkpoints' sha256).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..calibration import LEVELS, ClipRule, expit, fit_clip_rule, logit
from ..checkpoints import folder_digests
from ..metrics import binary_metrics
from .data import FaceSet, load_all

LOGITS_FILE = "clip_frame_logits.npz"


@dataclass
class ClipFrames:
    """Every cached clip frame with its detectors' logits: one row per frame, clips as row groups."""

    names: list[str]  # detectors, the columns of ``logits``
    logits: np.ndarray  # frames x detectors
    clip: np.ndarray  # per frame: index into ``clips``
    clips: list[str]  # "<source>/<file>"
    sources: np.ndarray  # per clip
    families: np.ndarray  # per clip: the source's family, "unseen <family>" for a source never trained on
    labels: np.ndarray  # per clip, 1 = fake
    splits: np.ndarray  # per clip
    reenacted_reals: tuple[str, ...] = ()  # the real sources the reenactment fakes look like (the talking reals)

    def frames_of(self, k: int) -> np.ndarray:
        return np.flatnonzero(self.clip == k)


def clip_frames_of(face_set: FaceSet) -> np.ndarray:
    """Indices of a source's cached clip frames (named ``file#k``; a user's folder may mix pictures and clips)."""
    return np.array([i for i, name in enumerate(face_set.names) if "#" in str(name)], dtype=int)


def clip_sets(sets: dict[str, FaceSet]) -> dict[str, FaceSet]:
    """The cached sources that hold clip frames."""
    return {name: s for name, s in sets.items() if len(clip_frames_of(s))}


def _key(detectors, cache: Path, sources) -> str:
    """What the stored logits depend on: the checkpoints and how each clip source's crops were cut."""
    digests = {d.name: folder_digests(d.source) for d in detectors}
    crops = {name: (cache / name / "source.json").read_text() if (cache / name / "source.json").is_file() else "" for name in sources}
    return hashlib.sha256(json.dumps([digests, crops], sort_keys=True).encode()).hexdigest()


def frame_logits(cache: str | Path, detectors, path: str | Path | None = None, batch: int = 64) -> ClipFrames:
    """The logits of every detector on every cached clip frame (all splits), from ``path`` (default
    ``<cache>/clip_frame_logits.npz``) when it was written for these very checkpoints, else scored and written."""
    cache = Path(cache)
    path = Path(path) if path else cache / LOGITS_FILE
    sets = clip_sets(load_all(cache))
    key = _key(detectors, cache, sorted(sets))
    clips, sources, families, labels, splits, owner = [], [], [], [], [], []
    for name, face_set in sets.items():
        family = face_set.source.family if face_set.source.role == "train" else f"unseen {face_set.source.family}"
        first = {}
        for i in clip_frames_of(face_set):
            file = str(face_set.names[i]).split("#")[0]
            if file not in first:
                first[file] = len(clips)
                clips.append(f"{name}/{file}")
                sources.append(name)
                families.append(family)
                labels.append(face_set.source.label)
                splits.append(face_set.split[i])
            owner.append((name, i, first[file]))
    names = [d.name for d in detectors]
    talking = tuple(sorted({r for s in sets.values() if s.source.family == "reenactment" for r in s.source.looks_like}))
    if path.is_file():
        stored = np.load(path, allow_pickle=False)
        if str(stored["key"]) == key and stored["clips"].tolist() == clips and len(stored["clip"]) == len(owner):
            return ClipFrames(names, stored["logits"], stored["clip"], clips, np.array(sources), np.array(families),
                              np.array(labels), np.array(splits, dtype=str), talking)
    logits = np.zeros((len(owner), len(detectors)), dtype=np.float32)
    row = 0
    for name, face_set in sets.items():
        indices = clip_frames_of(face_set)
        for start in range(0, len(indices), batch):
            crops = np.asarray(face_set.crops[indices[start : start + batch]])
            for j, detector in enumerate(detectors):
                logits[row + start : row + start + len(crops), j] = detector.logits(crops)
        row += len(indices)
    clip = np.array([k for _, _, k in owner])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, key=np.array(key), names=np.array(names), logits=logits, clip=clip, clips=np.array(clips))
    return ClipFrames(names, logits, clip, clips, np.array(sources), np.array(families), np.array(labels), np.array(splits, dtype=str),
                      talking)


def frame_probabilities(frames: ClipFrames, ensemble) -> np.ndarray:
    """Per frame, the ensemble's probability of fake (the rule's columns from the stored logits; NaN = missing)."""
    columns = np.stack([frames.logits[:, frames.names.index(n)] if n in frames.names else np.full(len(frames.clip), np.nan)
                        for n in ensemble.rule.names], axis=1)
    return ensemble.rule.probabilities(columns)


def members_mean_score(frames: ClipFrames, ensemble, k: int) -> float:
    """The rule the app used before clip rules: per detector the mean of its frame probabilities, then the
    ensemble on those (``pipeline.Analyzer.video_summary`` with ``rule="mean"``)."""
    rows = frames.frames_of(k)
    logits = {}
    for j, name in enumerate(frames.names):
        mean = float(expit(frames.logits[rows, j]).mean())
        logits[name] = float(logit(np.clip(mean, 1e-7, 1 - 1e-7)))
    return ensemble.probability(logits)


def _chosen(frames: ClipFrames, splits: Sequence[str]) -> np.ndarray:
    return np.flatnonzero(np.isin(frames.splits, list(splits)))


def fit_on_clips(frames: ClipFrames, ensemble, splits: Sequence[str] = ("val",), rule: str = "auto") -> tuple[ClipRule, dict]:
    """The clip rule fitted on the clips of ``splits`` (``rule="auto"``: the rule with the best validation AUC
    of mean, trimmed and share; the learned pool only where asked, it is measured by leave-one-out in
    :func:`compare`), and a side-by-side record of every rule on those clips."""
    p = frame_probabilities(frames, ensemble)
    chosen = _chosen(frames, splits)
    per_clip = [p[frames.frames_of(int(k))] for k in chosen]
    labels = frames.labels[chosen]
    groups = {"sources": frames.sources[chosen], "families": frames.families[chosen]}
    frame_threshold = _frame_threshold(ensemble)
    record = compare(frames, ensemble, splits)
    if rule == "auto":
        candidates = [r for r in ("mean", "trimmed", "share") if not math.isnan(record["rules"][r]["auc"])]
        rule = max(candidates, key=lambda r: (record["rules"][r]["auc"], -candidates.index(r)))
    fitted = fit_clip_rule(rule, per_clip, labels, groups["sources"], groups["families"], frame_threshold=frame_threshold)
    fitted.method = f"{fitted.method}; fitted on {len(chosen)} {'+'.join(splits)} clips ({int(labels.sum())} fake)"
    return fitted, record


def _frame_threshold(ensemble) -> float:
    """A frame counts as fake-looking at or above the frame levels' "leaning fake" edge (the single faces'
    own calibration; none fitted: the ensemble's decision threshold)."""
    levels = ensemble.rule.levels
    return float(levels.leaning_fake) if levels is not None else float(ensemble.rule.calibration.decision)


def compare(frames: ClipFrames, ensemble, splits: Sequence[str] = ("val",)) -> dict:
    """Clip-level AUC of each rule on the clips of ``splits``, all clips and the talking heads alone (reenactment
    fakes against talking reals), beside the old rule (per-detector means, then the ensemble). The learned pool
    is scored leave-one-clip-out (fitted on all other clips each time), so its AUC is not fitted on itself."""
    p = frame_probabilities(frames, ensemble)
    chosen = _chosen(frames, splits)
    labels = frames.labels[chosen]
    frame_threshold = _frame_threshold(ensemble)
    per_clip = [p[frames.frames_of(int(k))] for k in chosen]
    scores = {"before (member means, then ensemble)": np.array([members_mean_score(frames, ensemble, int(k)) for k in chosen])}
    for name in ("mean", "trimmed", "share"):
        rule = ClipRule(name, frame_threshold=frame_threshold)
        scores[name] = np.array([rule.score(q) for q in per_clip])
    pooled = np.zeros(len(chosen))
    for i in range(len(chosen)):
        others = [j for j in range(len(chosen)) if j != i]
        if len(set(labels[others].tolist())) < 2:
            pooled[i] = np.nan
            continue
        rule = ClipRule.fit_pool([per_clip[j] for j in others], labels[others], frame_threshold)
        pooled[i] = rule.score(per_clip[i])
    scores["pool (leave-one-out)"] = pooled
    # the talking heads alone: reenactment fakes against the reals they look like (no face swaps)
    talking = (np.isin(frames.sources[chosen], frames.reenacted_reals)
               | (labels == 1) & np.char.endswith(frames.families[chosen].astype(str), "reenactment"))
    result = {"splits": list(splits), "clips": int(len(chosen)), "fake": int(labels.sum()), "frame_threshold": round(frame_threshold, 4),
              "rules": {}}
    for name, s in scores.items():
        ok = np.isfinite(s)
        entry = {"auc": _auc(labels[ok], s[ok]), "auc_talking": _auc(labels[ok & talking], s[ok & talking])}
        result["rules"][name] = entry
    result["rules"]["mean"]["note"] = "mean of the frames' ensemble probabilities"
    return result


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    if len(set(y.tolist())) < 2:
        return math.nan
    return round(binary_metrics(y, s).auc, 4)


def clip_report(frames: ClipFrames, ensemble, rule: ClipRule, split: str = "test") -> str:
    """Markdown: per source of ``split``, clips, the clip rule's AUC against all real clips, and the share of
    clips at each clip level."""
    p = frame_probabilities(frames, ensemble)
    chosen = _chosen(frames, [split])
    scores = np.array([rule.score(p[frames.frames_of(int(k))]) for k in chosen])
    levels = np.array([rule.level(s) for s in scores], dtype=object)
    labels, sources = frames.labels[chosen], frames.sources[chosen]
    lines = [f"| {split} clips: source | clips | AUC vs all real clips | " + " | ".join(LEVELS) + " |", "|---|---|---|" + "---|" * len(LEVELS)]
    for label in (0, 1):
        for source in sorted(set(sources[labels == label].tolist())):
            at = sources == source
            auc = _auc(labels[at | (labels == 0)], scores[at | (labels == 0)]) if label else math.nan
            lines.append(f"| {'fake' if label else 'real'}: {source} | {at.sum()} | {'' if math.isnan(auc) else f'{auc:.3f}'} | "
                         + " | ".join(f"{np.mean(levels[at] == level):.0%}" for level in LEVELS) + " |")
    lines.append(f"\nAll {len(chosen)} {split} clips: AUC {_auc(labels, scores):.3f}")
    return "\n".join(lines)
