"""Training data: every source's images (and sampled video frames) through the inference face cropper once,
cached as 256 px crops with landmarks and the size of the region each crop was cut from.

Sources come from a table (:mod:`detectors.training.sources`). Splits are computed when a cache is read, from a
seeded hash of each crop's split unit (file, video, pair or figure), so they are stable across runs and
machines, never depend on listing order, and a table edit of roles or fractions needs no re-cropping.

Cache layout (``--cache``, never committed)::

    <cache>/<source>/crops.npy     N x 256 x 256 x 3 uint8 (memory-mapped when read)
    <cache>/<source>/meta.npz      names, units, landmarks (N x 5 x 2, crop pixels), confidence, sides
    <cache>/<source>/source.json   the source's row and the cropper settings; a source whose entry differs is rebuilt
    <cache>/manifest.json          the table of sources this cache holds
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tqdm import tqdm

from ..faces import DEFAULT_MARGIN, DEFAULT_MIN_CONFIDENCE, PAD_RETRY, first_faces
from ..media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, InputError
from ..preprocess import CROP_SIZE
from .sources import SPLITS, Source, split_of, table_for

CACHE_VERSION = 2
FRAMES_PER_VIDEO = 8  # sampled evenly from each clip unless its source says (``frames``); a clip's frames share its unit
CLIP_FACE = "speaker"  # which face of a clip's frame is cached: faces.speaker (the largest), not the most confident

__all__ = ["SPLITS", "FaceSet", "build_cache", "load_all", "default_cache", "split_of"]


@dataclass(eq=False)
class FaceSet:
    """One source's cached crops (memory-mapped) and their metadata."""

    source: Source
    crops: np.ndarray
    names: np.ndarray  # file relative to the source folder; "file#k" for the k-th sampled frame of a clip
    units: np.ndarray  # the split unit of each crop
    split: np.ndarray
    landmarks: np.ndarray
    sides: np.ndarray  # side of the square the crop was cut from, in source pixels (its native resolution)

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def default_cache(data_root: str | os.PathLike, shared_root: str | os.PathLike) -> Path:
    """``cache/faces`` for the shared data; a folder of its own for any other data root."""
    data_root = Path(data_root).resolve()
    if data_root == Path(shared_root).resolve():
        return Path("cache/faces")
    digest = hashlib.sha256(str(data_root).encode()).hexdigest()[:8]
    return Path(f"cache/faces-{data_root.name}-{digest}")


def frames_of(source: Source) -> int:
    return source.frames or FRAMES_PER_VIDEO


def _entry(data_root: Path, source: Source, files: list[Path], limit: int | None, seed: int) -> dict:
    entry = {
        "version": CACHE_VERSION,
        "crop_size": CROP_SIZE,
        "margin": DEFAULT_MARGIN,
        "min_confidence": DEFAULT_MIN_CONFIDENCE,
        "pad_retry": PAD_RETRY,
        "frames_per_video": frames_of(source),
        "data_root": str(data_root.resolve()),
        "source": {k: v for k, v in asdict(source).items() if k not in ("role", "looks_like", "split_fractions", "generator", "frames", "cover")},
        "limit": limit,
        "seed": seed,
        "files": hashlib.sha256("\n".join(str(f) for f in files).encode()).hexdigest(),
    }
    if any(f.suffix.lower() in VIDEO_SUFFIXES for f in files):  # pictures' entries (and caches) stay as they were
        entry["clip_face"] = CLIP_FACE
    if source.cover:
        entry["cover"] = [list(box) for box in source.cover]
    return entry


_worker_cropper = None


def _init_worker() -> None:
    """Each worker process: one torch thread (two threads per process on two cores thrash) and its own MTCNN."""
    global _worker_cropper
    import torch

    torch.set_num_threads(1)
    from ..faces import FaceCropper

    _worker_cropper = FaceCropper()


def _crop_one(job: tuple[str, int, tuple]) -> list[tuple[str, np.ndarray, np.ndarray, float, int]]:
    """(name suffix, crop, landmarks, confidence, region side) of the most confident face of a picture, or of the
    speaker in each of ``frames`` frames sampled from a clip, its source's overlays covered (``job``: path,
    frames, cover); empty when unreadable or faceless."""
    path, frames, cover = job
    try:
        kind, crops = first_faces(path, _worker_cropper, frames, CROP_SIZE, cover)
    except InputError:
        return []
    return [("" if kind == "image" else f"#{i}", crop.image, crop.landmarks.astype(np.float32), crop.face.score, crop.region[2])
            for i, crop in enumerate(crops) if crop is not None]


def _chosen_files(source: Source, data_root: Path, limit: int | None, seed: int) -> list[tuple[Path, str]]:
    files = source.list_files(data_root)
    if limit is not None and len(files) > limit:
        rng = np.random.default_rng(seed)
        keep = set(rng.choice(len(files), size=limit, replace=False).tolist())
        files = [f for i, f in enumerate(files) if i in keep]
    return files


def build_cache(
    data_root: str | os.PathLike,
    cache: str | os.PathLike,
    limits: dict[str, int] | None = None,
    seed: int = 0,
    workers: int = 2,
    sources: Iterable[Source] | None = None,
    table: str | os.PathLike | None = None,
) -> Path:
    """Detect and crop every source's faces once; a source already cached with the same settings is kept."""
    data_root, cache = Path(data_root), Path(cache)
    sources = tuple(sources) if sources is not None else table_for(data_root, table)
    limits = dict(limits or {})
    cache.mkdir(parents=True, exist_ok=True)
    pending = []
    for source in sources:
        files = _chosen_files(source, data_root, limits.get(source.name), seed)
        entry = _entry(data_root, source, [f for f, _ in files], limits.get(source.name), seed)
        record = cache / source.name / "source.json"
        if not (record.exists() and json.loads(record.read_text()) == entry):
            pending.append((source, files, entry))
    if pending:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker) as pool:
            for source, files, entry in pending:
                _write_source(cache / source.name, source, files, pool, data_root / source.folder)
                (cache / source.name / "source.json").write_text(json.dumps(entry, indent=2) + "\n")
    (cache / "manifest.json").write_text(json.dumps({"version": CACHE_VERSION, "seed": seed,
                                                     "sources": [asdict(s) for s in sources]}, indent=2) + "\n")
    return cache


def _write_source(folder: Path, source: Source, files: list[tuple[Path, str]], pool, root: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # Room for every possible crop (a clip gives up to its source's frames), written as they come, then trimmed.
    frames = frames_of(source)
    capacity = sum(1 if path.suffix.lower() in IMAGE_SUFFIXES else frames for path, _ in files)
    spill = np.lib.format.open_memmap(folder / "crops.tmp.npy", mode="w+", dtype=np.uint8, shape=(max(1, capacity), CROP_SIZE, CROP_SIZE, 3))
    names, units, landmarks, scores, sides = [], [], [], [], []
    results = pool.imap(_crop_one, [(str(f), frames, source.cover) for f, _ in files], chunksize=8)
    for (path, unit), faces in tqdm(zip(files, results), total=len(files), desc=f"faces {source.name}", unit="file", file=sys.stderr):
        for suffix, crop, points, score, side in faces[: capacity - len(names)]:
            spill[len(names)] = crop
            names.append(path.relative_to(root).as_posix() + suffix)
            units.append(unit)
            landmarks.append(points)
            scores.append(score)
            sides.append(side)
    spill.flush()
    final = np.lib.format.open_memmap(folder / "crops.npy", mode="w+", dtype=np.uint8, shape=(len(names), CROP_SIZE, CROP_SIZE, 3))
    for start in range(0, len(names), 512):
        stop = min(start + 512, len(names))
        final[start:stop] = spill[start:stop]
    final.flush()
    del final, spill
    (folder / "crops.tmp.npy").unlink()
    np.savez(
        folder / "meta.npz",
        names=np.array(names, dtype=str),
        units=np.array(units, dtype=str),
        landmarks=np.array(landmarks, dtype=np.float32).reshape(-1, 5, 2),
        confidence=np.array(scores, dtype=np.float32),
        sides=np.array(sides, dtype=np.int32),
        files_seen=np.array(len(files)),
    )


def cached_sources(cache: str | os.PathLike) -> tuple[Source, ...]:
    """The table of sources a cache was built from."""
    manifest = json.loads((Path(cache) / "manifest.json").read_text())
    return tuple(Source(**{**s, "looks_like": tuple(s["looks_like"]),
                           "split_fractions": tuple(s["split_fractions"]) if s.get("split_fractions") else None,
                           "frames": s.get("frames"), "cover": tuple(tuple(b) for b in s.get("cover") or ())})
                 for s in manifest["sources"])


def load_face_set(cache: str | os.PathLike, source: Source, seed: int = 0) -> FaceSet:
    folder = Path(cache) / source.name
    meta = np.load(folder / "meta.npz")
    units = meta["units"]
    split_by_unit = {u: source.split_of_unit(u, seed) for u in set(units.tolist())}
    split = np.array([split_by_unit[u] for u in units.tolist()], dtype=object)
    return FaceSet(source, np.load(folder / "crops.npy", mmap_mode="r"), meta["names"], units, split, meta["landmarks"], meta["sides"])


def load_all(cache: str | os.PathLike, names: Sequence[str] | None = None) -> dict[str, FaceSet]:
    """Every source of the cache (or those ``names``), by name, with its splits."""
    seed = json.loads((Path(cache) / "manifest.json").read_text()).get("seed", 0)
    return {s.name: load_face_set(cache, s, seed) for s in cached_sources(cache) if names is None or s.name in names}
