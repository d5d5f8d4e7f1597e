"""The table of labelled data sources: what each folder holds, how it is split, what it is drawn beside.

One row per source (``sources.csv`` next to this file is the table for ``../shared/data``; a user folder laid
out ``real/`` and ``fake/`` becomes a two-row table, see :func:`folder_table`):

- ``name``, ``folder`` (relative to the data root), ``files`` (a glob inside it, ``**`` searches sub-folders);
- ``label`` (real / fake), ``family`` (real, gan, diffusion, faceswap, reenactment, ...), ``generator``;
- ``unit``: what must never straddle train / val / test: ``file`` (a video's sampled frames always go together);
  ``video`` (the same, said of a source of clips);
  ``person`` (every picture of one person: the file name up to its last ``_``, as ``will_smith_00000003.jpg``);
  ``pair`` (a face swap and the source video it was made from: the ``groups`` CSV has columns ``fake,real`` of
  file stems); ``figure`` (tiles cut from one figure: the ``groups`` CSV has columns ``file,figure``);
  ``identity`` (every clip showing one person, in every source: the ``groups`` CSV has columns ``file,identity``
  (the shared ``clips.csv``), and ``identities.csv`` next to this file says whom each identity shows and in
  which split that person is, see :func:`read_identities`);
- ``role``: ``train`` (split train / val / test by a seeded hash of the unit), ``unseen`` (a generator the
  detectors must never train on: split val / test only), ``test`` (test only);
- ``fractions`` (optional): train / val / test shares in place of the role's (CelebA, FFHQ and StyleGAN keep the
  splits the earlier checkpoints were trained with, so their test files stay unseen by every checkpoint);
- ``frames`` (optional): frames sampled evenly from each clip of the source (default ``data.FRAMES_PER_VIDEO``);
- ``cover`` (optional): a generator's overlays to paint over before the face is found and cut, as rectangles
  ``x0,y0,x1,y1`` in fractions of the frame, space-separated (DreamTalk's watermark: a shortcut, not a
  manipulation; see :func:`detectors.faces.cover_regions`);
- ``looks_like``: for fakes, the real sources with the same framing, resolution and encoding. The training
  stream draws each fake beside one of them, and the held-out sets score the fakes against them, so that
  neither can be told apart by where a picture comes from.
"""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

TABLE = Path(__file__).with_name("sources.csv")
IDENTITIES = Path(__file__).with_name("identities.csv")
SPLITS = ("train", "val", "test")
UNITS = ("file", "video", "pair", "figure", "person", "identity")
ROLES = {"train": (0.7, 0.15, 0.15), "unseen": (0.0, 0.5, 0.5), "test": (0.0, 0.0, 1.0)}
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


@dataclass(frozen=True)
class Source:
    name: str
    folder: str
    files: str
    label: int  # 1 = fake
    family: str
    generator: str
    unit: str
    role: str
    looks_like: tuple[str, ...] = ()
    groups: str = ""  # CSV (relative to the data root) naming each file's pair or figure
    split_fractions: tuple[float, float, float] | None = None  # train / val / test; None: the role's
    frames: int | None = None  # frames sampled per clip; None: data.FRAMES_PER_VIDEO
    cover: tuple[tuple[float, float, float, float], ...] = ()  # overlays painted over before the face is cut (frame fractions)

    @property
    def fractions(self) -> tuple[float, float, float]:
        return self.split_fractions or ROLES[self.role]

    def split_of_unit(self, unit: str, seed: int = 0) -> str:
        """The split of one of this source's units: a seeded hash (:func:`split_of`), or for ``identity`` units the
        person's split in ``identities.csv`` (the same in every source that shows them). ValueError when that
        split is one the source's role forbids (an ``unseen`` generator's person listed for training)."""
        if self.unit != "identity":
            return split_of(unit, self.fractions, seed)
        split = person_splits()[unit]
        if ROLES[self.role][SPLITS.index(split)] == 0:
            raise ValueError(f"source {self.name!r} ({self.role}) shows {unit!r}, whom identities.csv puts in {split}")
        return split

    def list_files(self, data_root: str | os.PathLike) -> list[tuple[Path, str]]:
        """(file, split unit) for every image or video of this source, sorted by path."""
        folder = Path(data_root) / self.folder
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder {folder} of source {self.name!r} is missing")
        files = sorted(p for p in folder.glob(self.files) if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        unit_of = self._units(Path(data_root))
        return [(path, unit) for path, unit in ((path, unit_of(path)) for path in files) if unit is not None]

    def _units(self, data_root: Path):
        """file -> split unit; None for a file the source leaves out (a clip of a painting or a statue)."""
        if self.unit == "identity":
            with open(data_root / self.groups, newline="") as handle:
                identity = {Path(row["file"]).name: row["identity"] for row in csv.DictReader(handle)}
            shown = read_identities()

            def person(path: Path) -> str | None:
                if path.name not in identity or identity[path.name] not in shown:
                    # an unchecked clip could put one person on both sides of a split: classify it first
                    raise ValueError(f"source {self.name!r}: {path.name} has no row in {self.groups} or its identity none in {IDENTITIES.name}")
                entry = shown[identity[path.name]]
                return entry.person if entry.shows == "person" else None
            return person
        if self.unit in ("file", "video"):
            return lambda path: path.relative_to(data_root / self.folder).as_posix()
        if self.unit == "person":  # several photos of one public figure must not straddle splits
            return lambda path: path.stem.rsplit("_", 1)[0]
        with open(data_root / self.groups, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if self.unit == "pair":  # a fake belongs with its real; the real is its own pair's name
            pair = {row["fake"]: row["real"] for row in rows}
            return lambda path: pair.get(path.stem, path.stem)
        figure = {Path(row["file"]).name: row["figure"] for row in rows}
        return lambda path: figure.get(path.name, path.name)


def split_of(unit: str, fractions: Sequence[float], seed: int = 0) -> str:
    """train / val / test from a hash of the split unit: stable, seeded, independent of listing order."""
    digest = hashlib.sha256(f"{seed}:{unit}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edges = np.cumsum(fractions)
    return SPLITS[int(np.searchsorted(edges, u, side="right"))] if u < edges[-1] else SPLITS[-1]


@dataclass(frozen=True)
class Shown:
    """Whom a clip identity (``clips.csv``) shows: the split unit, whether a person or an artwork, and the split."""

    person: str
    shows: str  # "person" or "artwork"
    split: str  # train / val / test; empty for an artwork (never used)


def read_identities(path: str | os.PathLike = IDENTITIES) -> dict[str, Shown]:
    """``identities.csv``: per identity of the shared ``clips.csv``, the person it shows (the split unit), whether
    a person or an artwork (a painting or a statue: its clips are left out, no real painting stands beside them),
    and that person's split.

    The clips' own identities name clips, not faces, for some generators (EDTalk renders one face in seven clips
    named apart; AniTalker names the driving audio too): ``person`` merges them, checked by eye. DreamTalk's
    outputs carry MEAD subject M030's speaking style, so they go with M030's recordings. Splits are set by hand,
    not hashed: with 6 to 11 people per source a hash is a coin toss (it gave the held-out generator one
    validation person of six); by hand, validation and test each hold lab (MEAD) and interview reals and about
    half of the held-out generator's people. ValueError when one person is given two splits."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    shown = {row["identity"]: Shown(row["person"].strip(), row["shows"].strip(), row["split"].strip()) for row in rows}
    splits: dict[str, set[str]] = {}
    for entry in shown.values():
        if entry.shows not in ("person", "artwork") or (entry.shows == "person" and entry.split not in SPLITS):
            raise ValueError(f"{Path(path).name}: {entry.person!r} needs shows person or artwork and a split of a person")
        if entry.shows == "person":
            splits.setdefault(entry.person, set()).add(entry.split)
    straddling = sorted(person for person, seen in splits.items() if len(seen) > 1)
    if straddling:
        raise ValueError(f"{Path(path).name}: people in more than one split: {', '.join(straddling)}")
    return shown


def person_splits(path: str | os.PathLike = IDENTITIES) -> dict[str, str]:
    """person -> split, from ``identities.csv``."""
    return {entry.person: entry.split for entry in read_identities(path).values() if entry.shows == "person"}


def _row(row: dict[str, str]) -> Source:
    label = row["label"].strip()
    if label not in ("real", "fake"):
        raise ValueError(f"source {row['name']!r}: label must be real or fake, not {label!r}")
    source = Source(name=row["name"].strip(), folder=row["folder"].strip(), files=row.get("files", "").strip() or "**/*",
                    label=int(label == "fake"), family=row["family"].strip(), generator=row.get("generator", "").strip(),
                    unit=row.get("unit", "").strip() or "file", role=row.get("role", "").strip() or "train",
                    looks_like=tuple((row.get("looks_like") or "").split()), groups=(row.get("groups") or "").strip(),
                    split_fractions=tuple(float(f) for f in row["fractions"].split()) if (row.get("fractions") or "").strip() else None,
                    frames=int(row["frames"]) if (row.get("frames") or "").strip() else None,
                    cover=tuple(tuple(float(v) for v in box.split(",")) for box in (row.get("cover") or "").split()))
    if any(len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1) for box in source.cover):
        raise ValueError(f"source {source.name!r}: cover takes rectangles x0,y0,x1,y1 in fractions of the frame")
    if source.unit not in UNITS or source.role not in ROLES:
        raise ValueError(f"source {source.name!r}: unit must be one of {UNITS} and role one of {tuple(ROLES)}")
    if source.unit in ("pair", "figure", "identity") and not source.groups:
        raise ValueError(f"source {source.name!r}: unit {source.unit} needs a groups CSV")
    return source


def read_table(path: str | os.PathLike = TABLE) -> tuple[Source, ...]:
    with open(path, newline="") as handle:
        sources = tuple(_row(row) for row in csv.DictReader(handle))
    names = {s.name for s in sources}
    for source in sources:
        unknown = set(source.looks_like) - {s.name for s in sources if s.label == 0}
        if unknown:
            raise ValueError(f"source {source.name!r} looks like unknown real sources: {', '.join(sorted(unknown))}")
    if len(names) != len(sources):
        raise ValueError(f"{path}: source names must be unique")
    return sources


def folder_table(root: str | os.PathLike) -> tuple[Source, ...]:
    """A user's folder laid out ``real/`` and ``fake/`` (images or videos, searched recursively): two sources.

    Split by file, so all frames of a clip stay in one split; the fakes are drawn beside the user's reals."""
    return (
        Source("real", "real", "**/*", 0, "real", "your reals", "file", "train"),
        Source("fake", "fake", "**/*", 1, "fake", "your fakes", "file", "train", looks_like=("real",)),
    )


def is_folder_layout(root: str | os.PathLike) -> bool:
    return (Path(root) / "real").is_dir() and (Path(root) / "fake").is_dir()


def table_for(data_root: str | os.PathLike, table: str | os.PathLike | None = None) -> tuple[Source, ...]:
    """The sources of a data root: an explicit table, a ``real/`` + ``fake/`` folder, or the shared data's table."""
    if table is not None:
        return read_table(table)
    if is_folder_layout(data_root):
        return folder_table(data_root)
    return read_table(TABLE)
