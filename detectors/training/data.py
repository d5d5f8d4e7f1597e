"""Training data: every image through the inference face cropper once, cached as 256 px crops with landmarks.

Sources under ``../shared/data`` (see its README): CelebA reals, FFHQ reals and StyleGAN fakes. Each file is
assigned to train / val / test by a seeded hash of its name, so splits are stable across runs and machines
and never depend on listing order. The FFHQ reals are split the same way as the StyleGAN fakes, so the
held-out StyleGAN split comes with held-out reals of the same framing and encoding.

Cache layout (``--cache``, never committed)::

    <cache>/<source>/crops.npy     N x 256 x 256 x 3 uint8 (memory-mapped when read)
    <cache>/<source>/meta.npz      names, split, label, landmarks (N x 5 x 2, crop pixels), confidence
    <cache>/manifest.json          cropper settings; a cache made with other settings is rebuilt
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tqdm import tqdm

from ..faces import DEFAULT_MARGIN, DEFAULT_MIN_CONFIDENCE
from ..media import IMAGE_SUFFIXES, InputError, load_image
from ..preprocess import CROP_SIZE

CACHE_VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Source:
    name: str
    folder: str  # relative to the data root
    label: int  # 1 = fake
    fractions: tuple[float, float, float]  # train, val, test


SOURCES = (
    Source("celeba", "real/celeba", 0, (0.8, 0.1, 0.1)),
    Source("ffhq", "gan/ffhq-real", 0, (0.6, 0.2, 0.2)),
    Source("stylegan", "gan/stylegan", 1, (0.6, 0.2, 0.2)),
)


def split_of(name: str, fractions: Sequence[float], seed: int = 0) -> str:
    """train / val / test from a hash of the file name: stable, seeded, independent of listing order."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edges = np.cumsum(fractions)
    return SPLITS[int(np.searchsorted(edges, u, side="right"))] if u < edges[-1] else SPLITS[-1]


@dataclass(eq=False)
class FaceSet:
    """One source's cached crops (memory-mapped) and their metadata."""

    source: Source
    crops: np.ndarray
    names: np.ndarray
    split: np.ndarray
    landmarks: np.ndarray

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def _manifest(data_root: Path, limits: dict[str, int], seed: int) -> dict:
    return {
        "version": CACHE_VERSION,
        "crop_size": CROP_SIZE,
        "margin": DEFAULT_MARGIN,
        "min_confidence": DEFAULT_MIN_CONFIDENCE,
        "data_root": str(data_root.resolve()),
        "limits": limits,
        "seed": seed,
    }


_worker_cropper = None


def _init_worker() -> None:
    """Each worker process: one torch thread (two threads per process on two cores thrash) and its own MTCNN."""
    global _worker_cropper
    import torch

    torch.set_num_threads(1)
    from ..faces import FaceCropper

    _worker_cropper = FaceCropper()


def _crop_one(path: str):
    try:
        image = load_image(path)
    except InputError:
        return None
    faces = _worker_cropper.detect(image)
    if not faces:
        return None
    crop = _worker_cropper.crop(image, faces[0], CROP_SIZE)
    return crop.image, crop.landmarks.astype(np.float32), faces[0].score


def _list_files(folder: Path, limit: int | None, seed: int) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit is not None and len(files) > limit:
        rng = np.random.default_rng(seed)
        files = sorted(rng.choice(np.array(files, dtype=object), size=limit, replace=False).tolist())
    return files


def build_cache(
    data_root: str | os.PathLike,
    cache: str | os.PathLike,
    limits: dict[str, int] | None = None,
    seed: int = 0,
    workers: int = 2,
    sources: Iterable[Source] = SOURCES,
) -> Path:
    """Detect and crop every image once (skipped when an identical cache exists). Returns the cache folder."""
    data_root, cache = Path(data_root), Path(cache)
    limits = dict(limits or {})
    manifest = _manifest(data_root, limits, seed)
    manifest_path = cache / "manifest.json"
    if manifest_path.exists() and json.loads(manifest_path.read_text()) == manifest:
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker) as pool:
        for source in sources:
            folder = data_root / source.folder
            if not folder.is_dir():
                raise FileNotFoundError(f"training data folder {folder} is missing (see ../shared/data/README.md)")
            files = _list_files(folder, limits.get(source.name), seed)
            _write_source(cache / source.name, source, files, pool, seed)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return cache


def _write_source(folder: Path, source: Source, files: list[Path], pool, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    crops = np.lib.format.open_memmap(folder / "crops.tmp.npy", mode="w+", dtype=np.uint8, shape=(len(files), CROP_SIZE, CROP_SIZE, 3))
    names, landmarks, scores = [], [], []
    results = pool.imap(_crop_one, [str(f) for f in files], chunksize=16)
    for path, result in tqdm(zip(files, results), total=len(files), desc=f"faces {source.name}", unit="img", file=sys.stderr):
        if result is None:
            continue
        crops[len(names)] = result[0]
        names.append(path.name)
        landmarks.append(result[1])
        scores.append(result[2])
    crops.flush()
    del crops
    kept = len(names)
    # Shrink to the faces found: rewrite the header-sized prefix as a properly shaped array.
    full = np.load(folder / "crops.tmp.npy", mmap_mode="r")
    final = np.lib.format.open_memmap(folder / "crops.npy", mode="w+", dtype=np.uint8, shape=(kept, CROP_SIZE, CROP_SIZE, 3))
    for start in range(0, kept, 512):
        stop = min(start + 512, kept)
        final[start:stop] = full[start:stop]
    final.flush()
    del final, full
    (folder / "crops.tmp.npy").unlink()
    np.savez(
        folder / "meta.npz",
        names=np.array(names),
        split=np.array([split_of(n, source.fractions, seed) for n in names]),
        landmarks=np.array(landmarks, dtype=np.float32).reshape(-1, 5, 2),
        confidence=np.array(scores, dtype=np.float32),
        files_seen=np.array(len(files)),
    )


def load_face_set(cache: str | os.PathLike, source: Source) -> FaceSet:
    folder = Path(cache) / source.name
    meta = np.load(folder / "meta.npz")
    return FaceSet(source, np.load(folder / "crops.npy", mmap_mode="r"), meta["names"], meta["split"], meta["landmarks"])


def load_all(cache: str | os.PathLike) -> dict[str, FaceSet]:
    return {source.name: load_face_set(cache, source) for source in SOURCES}
