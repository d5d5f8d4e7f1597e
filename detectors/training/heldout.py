"""Fixed held-out sets (validation during training, test for the final report), made the same way every time.

From the cache's source table, for one split:

- one set per fake family and role: the split's fakes of that family against the reals they look like
  (``looks_like``: FFHQ for StyleGAN, each swap's own source video for DFDC (the pairs kept whole), Unsplash /
  FFHQ / CelebA / DFDC reals for diffusion faces). Families of ``unseen`` (and ``test``) sources are named ``unseen <family>``:
  generators no detector trains on, the measure of what the product meets;
- ``self-blended``: the split's reals of every real source against self-blended fakes made from those very
  crops with a fixed seed;
- per real source, its reals: false alarms are counted per source (a detector must not call one source's
  reals fake much more often than another's: that would be the source, not the manipulation).

Every crop is held once (:class:`HeldOut`) and scored once; sets are index lists into it. Sets with at least
:data:`MIN_PER_CLASS` of each class choose checkpoints (:meth:`HeldOut.criterion`).

``export`` writes a split as folders for ``python -m detectors evaluate``: ``<set>/real/<source>/`` and
``<set>/fake/<source>/`` with links to the original files (a clip once, however many frames were cached), the
self-blended set as lossless PNG crops (reals and fakes alike, so both go through the same re-detection), and
``reals/real/<source>/`` with every real source's files for the per-source verdict shares, and ``all/`` with
every picture of the split once (all sources together, the self-blended fakes included).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .data import FaceSet
from .sbi import self_blend
from .stream import SELF_BLENDED

SBI_SEED = 1234
REALS_PER_SOURCE = 200  # per set and real source: the big real sources do not drown the small ones
FAKES_PER_SOURCE = 300
MIN_PER_CLASS = 20


@dataclass(eq=False)
class HeldOut:
    crops: np.ndarray  # N x 256 x 256 x 3 uint8, every crop once
    labels: np.ndarray  # N, 1 = fake
    sources: np.ndarray  # N, the source each crop came from ("self-blended" for the blended fakes)
    sets: dict[str, np.ndarray] = field(default_factory=dict)  # set name -> indices; "real:<source>" for reals

    def criterion(self) -> list[str]:
        """The sets that choose checkpoints and the ensemble: both classes, enough of each (on data too small
        for that, every set with both classes)."""
        counts = {name: min((self.labels[idx] == 0).sum(), (self.labels[idx] == 1).sum())
                  for name, idx in self.sets.items() if not name.startswith("real:")}
        enough = [name for name, count in counts.items() if count >= MIN_PER_CLASS]
        return enough or [name for name, count in counts.items() if count > 0]

    def real_sources(self) -> dict[str, np.ndarray]:
        return {name.removeprefix("real:"): idx for name, idx in self.sets.items() if name.startswith("real:")}

    def __len__(self) -> int:
        return len(self.labels)


def _chosen(face_set: FaceSet, split: str, count: int, seed: int) -> np.ndarray:
    indices = face_set.indices(split)
    if len(indices) > count:
        indices = np.sort(np.random.default_rng(seed).choice(indices, size=count, replace=False))
    return indices


def set_name(family: str, role: str) -> str:
    return family if role == "train" else f"unseen {family}"


def plan(sets: dict[str, FaceSet], split: str, sbi_count: int = 400) -> dict[str, dict[str, np.ndarray]]:
    """set name -> {source: indices into that source's crops}: which cached crops each held-out set holds."""
    chosen: dict[str, dict[str, np.ndarray]] = {}
    fakes = [s for s in sets.values() if s.source.label == 1 and len(s.indices(split))]
    for face_set in fakes:
        source = face_set.source
        members = chosen.setdefault(set_name(source.family, source.role), {})
        members[source.name] = chosen_fakes = _chosen(face_set, split, FAKES_PER_SOURCE, SBI_SEED)
        for real in source.looks_like:
            if real not in sets or not len(sets[real].indices(split)):
                continue
            if source.unit == "pair":  # each swap beside its own source video: the pairs stay whole
                units = set(face_set.units[chosen_fakes].tolist())
                paired = sets[real].indices(split)
                members[real] = paired[np.isin(sets[real].units[paired], list(units))]
            else:
                members.setdefault(real, _chosen(sets[real], split, REALS_PER_SOURCE, SBI_SEED))
    reals = [s for s in sets.values() if s.source.label == 0 and len(s.indices(split))]
    for face_set in reals:
        chosen[f"real:{face_set.source.name}"] = {face_set.source.name: _chosen(face_set, split, REALS_PER_SOURCE, SBI_SEED)}
    trained_reals = [s for s in reals if s.source.role == "train"]
    if trained_reals:
        per_source = max(1, sbi_count // len(trained_reals))
        chosen[SELF_BLENDED] = {s.source.name: _chosen(s, split, per_source, SBI_SEED + 1) for s in trained_reals}
    return {name: members for name, members in chosen.items() if members}


def heldout(sets: dict[str, FaceSet], split: str = "val", sbi_count: int = 400) -> HeldOut:
    """Every held-out set of ``split``, each crop held once."""
    layout = plan(sets, split, sbi_count)
    position: dict[tuple[str, int], int] = {}
    crops, labels, sources = [], [], []

    def place(source: str, index: int, crop: np.ndarray, label: int) -> int:
        key = (source, index)
        if key not in position:
            position[key] = len(crops)
            crops.append(crop)
            labels.append(label)
            sources.append(source)
        return position[key]

    result = HeldOut(np.empty(0), np.empty(0), np.empty(0))
    rng = np.random.default_rng(SBI_SEED)
    for name, members in layout.items():
        indices = []
        for source, chosen in members.items():
            face_set = sets[source]
            for i in chosen:
                i = int(i)
                indices.append(place(source, i, np.asarray(face_set.crops[i]), face_set.source.label))
                if name == SELF_BLENDED:
                    fake = self_blend(np.asarray(face_set.crops[i]), face_set.landmarks[i], rng)[0]
                    indices.append(place(f"{SELF_BLENDED}:{source}", i, fake, 1))
        result.sets[name] = np.array(indices)
    result.crops = np.stack(crops) if crops else np.zeros((0, 256, 256, 3), np.uint8)
    result.labels = np.array(labels, dtype=int)
    result.sources = np.array([s.split(":")[0] for s in sources])
    return result


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()
    try:
        os.symlink(source.resolve(), target)
    except OSError:
        shutil.copyfile(source, target)


def export(sets: dict[str, FaceSet], data_root: str | os.PathLike, out: str | os.PathLike, split: str = "test",
           sbi_count: int = 400) -> dict[str, Path]:
    """Write the split's held-out sets as ``<out>/<set>/{real,fake}/<source>/`` folders; returns set -> folder."""
    data_root, out = Path(data_root), Path(out)
    layout = plan(sets, split, sbi_count)
    folders = {}
    for name, members in layout.items():
        if name == SELF_BLENDED:
            continue
        folder = out / ("reals" if name.startswith("real:") else name.replace(" ", "-"))
        for source, chosen in members.items():
            face_set = sets[source]
            label = "fake" if face_set.source.label else "real"
            for relative in dict.fromkeys(str(face_set.names[i]).split("#")[0] for i in chosen):
                file = data_root / face_set.source.folder / relative
                _link_or_copy(file, folder / label / source / relative.replace("/", "__"))
                _link_or_copy(file, out / "all" / label / source / relative.replace("/", "__"))
        folders[folder.name] = folder
    if SELF_BLENDED in layout:
        rng = np.random.default_rng(SBI_SEED)
        folder = out / SELF_BLENDED
        for source, chosen in layout[SELF_BLENDED].items():
            face_set = sets[source]
            for i in chosen:
                crop = np.asarray(face_set.crops[int(i)])
                fake = self_blend(crop, face_set.landmarks[int(i)], rng)[0]
                for label, image in (("real", crop), ("fake", fake)):
                    target = folder / label / source / f"{int(i):06d}.png"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(image).save(target)
                # in all/ the blended fakes only: their reals are the sources' own files, already there
                _link_or_copy(folder / "fake" / source / f"{int(i):06d}.png", out / "all" / "fake" / SELF_BLENDED / f"{source}-{int(i):06d}.png")
        folders[SELF_BLENDED] = folder
    if (out / "all").is_dir():
        folders["all"] = out / "all"
    return folders
