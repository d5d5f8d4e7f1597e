"""What the trainer sees: an endless, seeded stream of augmented 256 px crops with labels (1 = fake).

Every draw is a pair: a fake and a real that looks like it, under one and the same augmentation, so within
a pair nothing but the manipulation tells the label.

- A fake *family* (gan, faceswap, diffusion, ... from the source table) is chosen by the recipe's mix, then one
  of its training sources (weighted by the square root of its size, so small sources are neither ignored nor
  memorised), then a crop. Its real comes from the source's ``looks_like`` reals; a face swap's real is the very
  video it was made from (unit ``pair``).
- ``self-blended``: a real crop from any real training source, and the self-blended fake made from it
  (Shiohara & Yamasaki 2022: SBI's loader pairs each fake with its own real).
- Both crops are first brought to the same effective resolution: the lower of their native ones (the side of
  the square each was cut from, capped at the crop size), and half of the time lower still, down and back up
  with one kernel. Our sharpest sources are fakes (diffusion portraits) and our softest reals (CelebA), so
  without this a detector learns "sharp = fake" and calls every good phone photo fake.

Each pair's shares count both its samples: the stream is half real, half fake.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from ..preprocess import CROP_SIZE
from .augment import augment
from .data import FaceSet
from .sbi import self_blend

SELF_BLENDED = "self-blended"
# Share of each fake family; families present in the data but not named get the mean share. A mix naming a
# family with no training faces is refused (a typo would silently change the data); the default only names
# those the data has.
DEFAULT_MIX = {SELF_BLENDED: 0.35, "gan": 0.2, "faceswap": 0.2, "diffusion": 0.25}
FURTHER_DOWN = 0.5  # probability of going below the pair's common resolution (to 50-100 % of it)
RESAMPLING = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS, Image.Resampling.BOX)


@dataclass(frozen=True, eq=False)
class Sample:
    crop: np.ndarray
    label: int
    source: int = -1  # for a real crop, its index in FaceStream.reals (what the source-invariance penalty groups by)


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[rng.choice(len(names), p=p / p.sum())]


def at_resolution(crop: np.ndarray, side: int, kernel: Image.Resampling) -> np.ndarray:
    """The crop brought down to ``side`` px and back up to its size (a no-op at or above its size)."""
    size = crop.shape[0]
    if side >= size:
        return crop
    small = Image.fromarray(crop).resize((side, side), kernel)
    return np.asarray(small.resize((size, size), Image.Resampling.BICUBIC))


class FaceStream(IterableDataset):
    """Endless pairs from the ``split`` of the cached face sets; ``reals_only`` for super-resolution training."""

    def __init__(self, sets: dict[str, FaceSet], split: str = "train", seed: int = 0, mix: dict[str, float] | None = None,
                 reals_only: bool = False, rank: int = 0, augmented: bool = True,
                 curriculum: tuple[int, int] | None = None, with_sources: bool = False) -> None:
        self.sets = sets
        self.indices = {name: s.indices(split) for name, s in sets.items()}
        usable = {name for name, idx in self.indices.items() if len(idx)}
        self.reals = [n for n, s in sets.items() if s.source.label == 0 and n in usable]
        if not self.reals:
            raise ValueError(f"no {split} faces cached for any real source")
        self.fakes: dict[str, dict[str, float]] = {}  # family -> {source: weight}
        for name, face_set in sets.items():
            if face_set.source.label == 1 and name in usable and face_set.source.role == "train":
                self.fakes.setdefault(face_set.source.family, {})[name] = float(np.sqrt(len(self.indices[name])))
        if mix is None:  # the default names the shared data's families; other data has its own
            mix = {family: share for family, share in DEFAULT_MIX.items() if family in self.fakes or family == SELF_BLENDED}
        mix = dict(mix)
        unknown = set(mix) - set(self.fakes) - {SELF_BLENDED}
        if unknown:
            raise ValueError(f"the mix names fake families with no {split} faces: {', '.join(sorted(unknown))} "
                             f"(available: {', '.join(sorted(self.fakes) + [SELF_BLENDED])})")
        default = float(np.mean(list(mix.values())))
        self.mix = {family: mix.get(family, default) for family in [SELF_BLENDED, *sorted(self.fakes)]}
        self.mix = {family: share for family, share in self.mix.items() if share > 0}
        self.reals_only = reals_only
        self.pair_of = {name: self._pairs(name) for name in sets if sets[name].source.unit == "pair" and name in usable}
        self.seed, self.rank, self.augmented = seed, rank, augmented
        self.with_sources = with_sources  # yield (crop, label, real source index or -1) instead of (crop, label)
        # (samples already drawn before this stream, samples over which augmentation ramps up to full strength)
        self.curriculum = curriculum
        self.drawn, self.workers = 0, 1

    def _pairs(self, name: str) -> dict[str, np.ndarray]:
        """For a paired fake source: split unit -> indices of the real crops of that unit (its source video)."""
        source = self.sets[name].source
        if source.label == 0 or not source.looks_like:
            return {}
        real = self.sets[source.looks_like[0]]
        by_unit: dict[str, list[int]] = {}
        for i in self.indices[real.source.name]:
            by_unit.setdefault(str(real.units[i]), []).append(int(i))
        return {unit: np.array(indices) for unit, indices in by_unit.items()}

    def strength(self) -> float:
        """Augmentation strength for the next sample: ramps from 0 to 1 over the curriculum, then stays at 1."""
        if self.curriculum is None:
            return 1.0
        start, ramp = self.curriculum
        return min(1.0, (start + self.drawn) / max(1, ramp))

    def _crop(self, rng: np.random.Generator, source: str, index: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        face_set = self.sets[source]
        i = int(rng.choice(self.indices[source])) if index is None else index
        return np.asarray(face_set.crops[i]), face_set.landmarks[i], int(face_set.sides[i])

    def _real_beside(self, rng: np.random.Generator, fake_source: str, fake_index: int) -> tuple[np.ndarray, int, str]:
        """(crop, native side, real source) of a real that looks like the fake."""
        source = self.sets[fake_source].source
        pairs = self.pair_of.get(fake_source, {})
        same_unit = pairs.get(str(self.sets[fake_source].units[fake_index]))
        if same_unit is not None:
            crop, _, side = self._crop(rng, source.looks_like[0], int(rng.choice(same_unit)))
            return crop, side, source.looks_like[0]
        candidates = [r for r in source.looks_like if r in self.reals] or self.reals
        real_source = candidates[int(rng.integers(len(candidates)))]
        crop, _, side = self._crop(rng, real_source)
        return crop, side, real_source

    def draw(self, rng: np.random.Generator) -> tuple[str, list[tuple[np.ndarray, int, int, int]]]:
        """(family, [(crop, label, native side, real source index or -1), ...]): one pair, or one real for
        ``reals_only``."""
        if self.reals_only:
            which = int(rng.integers(len(self.reals)))
            crop, _, side = self._crop(rng, self.reals[which])
            return "real", [(crop, 0, side, which)]
        family = _pick(rng, self.mix)
        if family == SELF_BLENDED:
            which = int(rng.integers(len(self.reals)))
            real, landmarks, side = self._crop(rng, self.reals[which])
            return family, [(self_blend(real, landmarks, rng)[0], 1, side, -1), (real, 0, side, which)]
        source = _pick(rng, self.fakes[family])
        index = int(rng.choice(self.indices[source]))
        fake, _, fake_side = self._crop(rng, source, index)
        real, real_side, real_source = self._real_beside(rng, source, index)
        return family, [(fake, 1, fake_side, -1), (real, 0, real_side, self.reals.index(real_source))]

    def samples(self, rng: np.random.Generator) -> list[Sample]:
        """One draw, brought to a common resolution and augmented alike."""
        _, drawn = self.draw(rng)
        strength = self.strength()
        self.drawn += self.workers * len(drawn)
        side = min(CROP_SIZE, *(s for _, _, s, _ in drawn))
        if rng.random() < FURTHER_DOWN:
            side = int(side * rng.uniform(0.5, 1.0))
        kernel = RESAMPLING[int(rng.integers(len(RESAMPLING)))]
        crops = [(at_resolution(crop, side, kernel), label, real) for crop, label, _, real in drawn]
        if not self.augmented:
            return [Sample(crop, label, real) for crop, label, real in crops]
        # One seed for the pair: both crops get the same flips, framing, resampling, blur and JPEG quality.
        pair_seed = int(rng.integers(2**63))
        return [Sample(augment(crop, np.random.default_rng(pair_seed), strength), label, real) for crop, label, real in crops]

    def __iter__(self):
        worker = get_worker_info()
        worker_id = worker.id if worker is not None else 0
        if worker is not None:
            torch.set_num_threads(1)  # the loader's work is numpy/PIL; leave the cores to the model
        rng = np.random.default_rng([self.seed, self.rank, worker_id])
        # Each loader worker draws every n-th sample: count the stream's position, not the worker's.
        self.workers = worker.num_workers if worker is not None else 1
        self.drawn = worker_id
        while True:
            for sample in self.samples(rng):
                pixels = torch.from_numpy(np.array(sample.crop, copy=True))  # cache crops are read-only maps
                yield (pixels, sample.label, sample.source) if self.with_sources else (pixels, sample.label)
