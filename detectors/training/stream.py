"""What the trainer sees: an endless, seeded stream of augmented 256 px crops with labels (1 = fake).

Fakes are StyleGAN faces (cached) and self-blended images made on the fly from the real crops; reals are
CelebA and FFHQ. FFHQ reals and StyleGAN fakes share framing and encoding, and the self-blended fakes are
made from the same reals they are contrasted with, so neither source nor framing tells the label.

The kind ``sbi_pair`` is SBI's own loader (Shiohara & Yamasaki 2022): a self-blended fake followed at once by
the real crop it was made from, both under one and the same random augmentation. The two then differ only in
the blend and sit in the same batch: within a pair, nothing but the blending traces tells the label. Its share in
a mix counts both samples of the pair (half fakes, half reals).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .augment import augment
from .data import FaceSet
from .sbi import self_blend

# Share of each kind of sample in the stream; half real, half fake.
DEFAULT_MIX = {"celeba": 0.3, "ffhq": 0.2, "sbi": 0.25, "stylegan": 0.25}
SBI_SOURCES = {"celeba": 0.7, "ffhq": 0.3}
PAIRED = "sbi_pair"
KINDS = ("celeba", "ffhq", "sbi", PAIRED, "stylegan")


@dataclass(frozen=True, eq=False)
class Sample:
    crop: np.ndarray
    label: int


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[rng.choice(len(names), p=p / p.sum())]


class FaceStream(IterableDataset):
    """Endless samples from the ``split`` of the cached face sets; ``reals_only`` for super-resolution training."""

    def __init__(self, sets: dict[str, FaceSet], split: str = "train", seed: int = 0, mix: dict[str, float] | None = None,
                 reals_only: bool = False, rank: int = 0, augmented: bool = True,
                 curriculum: tuple[int, int] | None = None) -> None:
        self.sets = sets
        self.indices = {name: s.indices(split) for name, s in sets.items()}
        empty = [name for name, idx in self.indices.items() if len(idx) == 0]
        if empty:
            raise ValueError(f"no {split} faces cached for: {', '.join(empty)}")
        self.mix = {k: v for k, v in (mix or DEFAULT_MIX).items() if not reals_only or k in SBI_SOURCES}
        unknown = set(self.mix) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown kinds of training sample: {', '.join(sorted(unknown))} (known: {', '.join(KINDS)})")
        # Shares count samples; a pair is one draw of two samples.
        self.draw_weights = {k: v / 2 if k == PAIRED else v for k, v in self.mix.items()}
        self.seed, self.rank, self.augmented = seed, rank, augmented
        # (samples already drawn before this stream, samples over which augmentation ramps up to full strength)
        self.curriculum = curriculum
        self.drawn, self.workers = 0, 1

    def strength(self) -> float:
        """Augmentation strength for the next sample: ramps from 0 to 1 over the curriculum, then stays at 1."""
        if self.curriculum is None:
            return 1.0
        start, ramp = self.curriculum
        return min(1.0, (start + self.drawn) / max(1, ramp))

    def _real(self, rng: np.random.Generator, source: str) -> tuple[np.ndarray, np.ndarray]:
        i = rng.choice(self.indices[source])
        face_set = self.sets[source]
        return np.asarray(face_set.crops[i]), face_set.landmarks[i]

    def samples(self, rng: np.random.Generator) -> list[Sample]:
        """One draw: one sample, or for ``sbi_pair`` a self-blended fake and its real, augmented alike."""
        kind = _pick(rng, self.draw_weights)
        if kind in ("sbi", PAIRED):
            real, landmarks = self._real(rng, _pick(rng, SBI_SOURCES))
            drawn = [(self_blend(real, landmarks, rng)[0], 1)]
            if kind == PAIRED:
                drawn.append((real, 0))
        else:
            crop, _ = self._real(rng, kind)
            drawn = [(crop, self.sets[kind].source.label)]
        strength = self.strength()
        self.drawn += self.workers * len(drawn)
        if not self.augmented:
            return [Sample(crop, label) for crop, label in drawn]
        if len(drawn) == 1:  # straight from the stream's generator, so unpaired recipes draw what they always drew
            return [Sample(augment(drawn[0][0], rng, strength), drawn[0][1])]
        # One seed for the pair: both crops get the same flips, framing, resampling, blur and JPEG quality.
        pair_seed = int(rng.integers(2**63))
        return [Sample(augment(crop, np.random.default_rng(pair_seed), strength), label) for crop, label in drawn]

    def sample(self, rng: np.random.Generator) -> Sample:
        """One sample (the first of a pair): for statistics that need single crops."""
        return self.samples(rng)[0]

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
                yield torch.from_numpy(np.array(sample.crop, copy=True)), sample.label  # cache crops are read-only maps
