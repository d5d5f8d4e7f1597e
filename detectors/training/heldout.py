"""Fixed held-out sets (validation during training, test for the final report), made the same way every time.

- ``stylegan``: the split's FFHQ reals against the split's StyleGAN fakes (genuine GAN faces, same framing);
- ``sbi``: the split's CelebA reals against self-blended fakes made from those very crops with a fixed seed.

``export`` writes a split as ``real/`` and ``fake/`` folders for ``python -m detectors evaluate``: the
StyleGAN set as the original files, the self-blended set as lossless PNG crops (reals and fakes alike, so
both go through the same re-detection), and the FaceForensics++ pair as links to the two videos.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .data import FaceSet, SOURCES
from .sbi import self_blend

SBI_SEED = 1234
FFPP_PAIR = ("videos/real_ffpp_519.mp4", "videos/fake_ffpp-deepfakes_519_515.mp4")


@dataclass(eq=False)
class LabelledCrops:
    name: str
    crops: np.ndarray  # N x 256 x 256 x 3 uint8
    labels: np.ndarray  # N, 1 = fake


def stylegan_set(sets: dict[str, FaceSet], split: str) -> LabelledCrops:
    reals = sets["ffhq"].crops[sets["ffhq"].indices(split)]
    fakes = sets["stylegan"].crops[sets["stylegan"].indices(split)]
    return LabelledCrops("stylegan", np.concatenate([reals, fakes]), np.r_[np.zeros(len(reals)), np.ones(len(fakes))].astype(int))


def sbi_set(sets: dict[str, FaceSet], split: str, count: int = 400, seed: int = SBI_SEED) -> LabelledCrops:
    celeba = sets["celeba"]
    chosen = celeba.indices(split)[:count]
    rng = np.random.default_rng(seed)
    reals = np.asarray(celeba.crops[chosen])
    fakes = np.stack([self_blend(crop, celeba.landmarks[i], rng)[0] for crop, i in zip(reals, chosen)])
    return LabelledCrops("sbi", np.concatenate([reals, fakes]), np.r_[np.zeros(len(reals)), np.ones(len(fakes))].astype(int))


def heldout_sets(sets: dict[str, FaceSet], split: str = "val", sbi_count: int = 400) -> list[LabelledCrops]:
    return [stylegan_set(sets, split), sbi_set(sets, split, sbi_count)]


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
    """Write the split's held-out sets as ``<out>/<set>/{real,fake}/`` folders; returns set name -> folder."""
    data_root, out = Path(data_root), Path(out)
    folders = {}
    by_name = {s.name: s for s in SOURCES}
    stylegan = out / "stylegan"
    for source_name, label_folder in (("ffhq", "real"), ("stylegan", "fake")):
        face_set = sets[source_name]
        for name in face_set.names[face_set.indices(split)]:
            _link_or_copy(data_root / by_name[source_name].folder / str(name), stylegan / label_folder / str(name))
    folders["stylegan"] = stylegan
    sbi = sbi_set(sets, split, sbi_count)
    half = len(sbi.labels) // 2
    for i, (crop, label) in enumerate(zip(sbi.crops, sbi.labels)):
        folder = out / "sbi" / ("fake" if label else "real")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop).save(folder / f"{i % half:05d}.png")
    folders["sbi"] = out / "sbi"
    for relative, label_folder in zip(FFPP_PAIR, ("real", "fake")):
        _link_or_copy(data_root / relative, out / "ffpp" / label_folder / Path(relative).name)
    folders["ffpp"] = out / "ffpp"
    return folders
