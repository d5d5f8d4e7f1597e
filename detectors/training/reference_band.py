"""Which real faces build the spectrum reference bands (``python -m detectors reference-band``) and which check
them: the band follows the training splits, so it never sees a file the detectors are tested on. Kept with the
training code because it reads the source table and its split; the bands themselves are ``detectors.spectrum``."""
from __future__ import annotations

import os
import random
from pathlib import Path

from ..spectrum import BAND_SOURCES
from .sources import Source, read_table, split_of

# Sources not in the source table yet: their folder. Split half to build, half to check, by a seeded hash of the
# file name (the table's own split function with fractions 0.5 / 0 / 0.5).
UNTABLED_SOURCES = {"web-faces": "real/web-faces"}
SPLIT_SEED = 0  # the training splits' seed: the band never sees a file the detectors are tested on


def band_files(data_root: str | os.PathLike, source: str, part: str, seed: int = 0) -> list[Path]:
    """Pictures of a real ``source`` (a key of :data:`BAND_SOURCES`) in random order (``seed``).

    ``part`` "build": its train and validation files by the training split (:func:`detectors.training.sources.split_of`);
    "check": its test files, which neither the band nor any detector has seen."""
    if source in UNTABLED_SOURCES:
        entry = Source(source, UNTABLED_SOURCES[source], "*", 0, "real", BAND_SOURCES[source], "file", "train",
                       split_fractions=(0.5, 0.0, 0.5))
    else:
        entry = next(s for s in read_table() if s.name == source)
    wanted = {"build": ("train", "val"), "check": ("test",)}[part]
    files = [path for path, unit in entry.list_files(data_root) if split_of(unit, entry.fractions, SPLIT_SEED) in wanted]
    random.Random(seed).shuffle(files)
    return files
