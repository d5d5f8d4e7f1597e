"""Fourier views of a face crop: the centred 2D log-magnitude spectrum and its azimuthal (radial) average.

GAN upsampling and blending leave periodic or missing high-frequency energy (Durall et al. 2020, Frank et
al. 2020); the radial profile plotted against the band that real faces occupy makes that visible.

How much high-frequency energy a real face has depends mostly on how far its crop was blown up: a 150 px face
square upscaled to the 256 px crop is soft, a 512 px portrait's face is sharp. One band over all real faces would
either be too wide to say anything or put every sharp real photo above it. So the reference holds one band per
face-square size (:data:`FACE_SIDE_EDGES`), each built from real faces of several sources and resolutions
(:data:`BAND_SOURCES`) cut by the app's own cropper, and a face is drawn against the band of its own size.
``python -m detectors reference-band`` builds it from the sources' train and validation files, checks it on
their test files (which files: ``detectors.training.reference_band``, as it follows the training splits), and
writes ``assets/spectrum_reference.json``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from .faces import FaceCrop, FaceCropper

ANALYSIS_SIZE = 256  # every crop is resized to this before its spectrum, so profiles are comparable
REFERENCE_PATH = Path(__file__).resolve().parent.parent / "assets" / "spectrum_reference.json"
UPPER_HALF = 0.25  # cycles per pixel: from here to 0.5 is the upper half of the spectrum, where sharpness shows
# Face-square sides (picture pixels, the cropper's 1.3x margin included) where one band ends and the next begins:
# blown up more than 1.45x to the 256 px crop / up to 1.45x / not blown up at all.
FACE_SIDE_EDGES = (176, 256)
# The real sources of the band, as named in detectors/training/sources.csv, and as the plot names them.
BAND_SOURCES = {"celeba": "CelebA", "ffhq": "FFHQ", "unsplash": "Unsplash", "dfdc-real": "DFDC reals", "web-faces": "web faces"}
_LUMA = np.array([0.299, 0.587, 0.114])


def grayscale(crop: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB (or H x W) to float luma in [0, 1]."""
    image = crop.astype(np.float64) / 255.0
    return image @ _LUMA if image.ndim == 3 else image


def log_spectrum(crop: np.ndarray, size: int | None = ANALYSIS_SIZE) -> np.ndarray:
    """Centred natural-log magnitude of the 2D DFT of the crop's luma.

    The mean is removed (the DC term would dwarf everything) and a 2D Hann window applied, so the picture's
    borders do not leak a bright cross into the spectrum. ``size`` resizes the crop first (None keeps it).
    """
    if size is not None and crop.shape[:2] != (size, size):
        crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BICUBIC))
    luma = grayscale(crop)
    luma = luma - luma.mean()
    window = np.outer(np.hanning(luma.shape[0]), np.hanning(luma.shape[1]))
    magnitude = np.abs(np.fft.fftshift(np.fft.fft2(luma * window, norm="ortho")))
    return np.log(magnitude + 1e-8)


def radial_profile(spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthal mean of a centred spectrum over rings of integer radius.

    Returns (frequency in cycles per pixel, from 0 to 0.5; mean log-magnitude in each ring).
    """
    height, width = spectrum.shape
    cy, cx = height // 2, width // 2
    yy, xx = np.indices(spectrum.shape)
    radius = np.rint(np.hypot(yy - cy, xx - cx)).astype(int)
    max_radius = min(cy, cx)
    inside = radius <= max_radius
    sums = np.bincount(radius[inside], weights=spectrum[inside], minlength=max_radius + 1)
    counts = np.bincount(radius[inside], minlength=max_radius + 1)
    profile = sums / np.maximum(counts, 1)
    frequency = np.arange(max_radius + 1) / min(height, width)
    return frequency, profile


def face_side(crop: "FaceCrop") -> int:
    """Side of the face's square in picture pixels: how far the crop was blown up (or shrunk) to its size."""
    return int(crop.region[2])


@dataclass(frozen=True, eq=False)
class ReferenceBand:
    """Where the radial profiles of real faces with face squares of one size range lie: median and 5-95 %
    quantiles per frequency."""

    frequency: np.ndarray
    median: np.ndarray
    low: np.ndarray  # 5 % quantile
    high: np.ndarray  # 95 % quantile
    face_sides: tuple[int, int | None]  # [from, to) in picture pixels; None: no upper end
    sources: dict[str, int]  # faces per source

    @property
    def count(self) -> int:
        return sum(self.sources.values())

    @property
    def size_label(self) -> str:
        first, last = self.face_sides
        if last is None:
            return f"face {first} px and up"
        return f"face under {last} px" if first == 0 else f"face {first}-{last} px"

    @property
    def sources_label(self) -> str:
        """The sources, most faces first, by the names the plot uses."""
        ranked = sorted(self.sources.items(), key=lambda item: -item[1])
        return ", ".join(f"{BAND_SOURCES.get(name, name)} {n}" for name, n in ranked if n)

    def holds(self, side: float) -> bool:
        first, last = self.face_sides
        return side >= first and (last is None or side < last)

    def to_dict(self) -> dict:
        return {
            "face_side": list(self.face_sides),
            "sources": self.sources,
            "count": self.count,
            "median": np.round(self.median, 4).tolist(),
            "q05": np.round(self.low, 4).tolist(),
            "q95": np.round(self.high, 4).tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict, frequency: np.ndarray) -> "ReferenceBand":
        first, last = data["face_side"]
        return cls(frequency, np.asarray(data["median"]), np.asarray(data["q05"]), np.asarray(data["q95"]),
                   (int(first), None if last is None else int(last)), {str(k): int(v) for k, v in data["sources"].items()})

    @classmethod
    def from_profiles(cls, profiles: np.ndarray, face_sides: tuple[int, int | None], sources: dict[str, int]) -> "ReferenceBand":
        if not len(profiles):
            raise ValueError("no face profiles to build a reference band from")
        low, median, high = np.quantile(profiles, [0.05, 0.5, 0.95], axis=0)
        return cls(profile_frequency(), median, low, high, face_sides, sources)


@dataclass(frozen=True, eq=False)
class ReferenceBands:
    """One band per face-square size range (ascending, covering all sizes), and how their faces were chosen."""

    bands: tuple[ReferenceBand, ...]
    built_from: str

    def for_face(self, side: float) -> ReferenceBand:
        """The band of faces whose squares are the size of this one's."""
        return next(band for band in self.bands if band.holds(side))

    @property
    def count(self) -> int:
        return sum(band.count for band in self.bands)

    def to_dict(self) -> dict:
        sources: dict[str, int] = {}
        for band in self.bands:
            for name, n in band.sources.items():
                sources[name] = sources.get(name, 0) + n
        return {
            "analysis_size": ANALYSIS_SIZE,
            "statistic": "5 / 50 / 95 % quantiles of the radial profile (mean log |F| per ring) of the 256 px face crop",
            "face_side": "side of the face's square in picture pixels (the cropper's 1.3x margin included); each face "
                         "is drawn against the band whose [from, to) range holds its side",
            "built_from": self.built_from,
            "sources": {name: {"name": BAND_SOURCES.get(name, name), "faces": n} for name, n in sources.items()},
            "count": self.count,
            "frequency": np.round(profile_frequency(), 6).tolist(),
            "bands": [band.to_dict() for band in self.bands],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ReferenceBands":
        frequency = np.asarray(data["frequency"])
        return cls(tuple(ReferenceBand.from_dict(band, frequency) for band in data["bands"]), str(data["built_from"]))

    @classmethod
    def from_faces(cls, faces: Iterable[tuple[str, np.ndarray, int]], built_from: str,
                   edges: Sequence[int] = FACE_SIDE_EDGES) -> "ReferenceBands":
        """From (source, crop, face side) triples: each face's profile goes to the band of its face size."""
        ranges = list(zip([0, *edges], [*edges, None]))
        profiles: list[list[np.ndarray]] = [[] for _ in ranges]
        sources: list[dict[str, int]] = [{} for _ in ranges]
        for source, crop, side in faces:
            i = next(i for i, (first, last) in enumerate(ranges) if side >= first and (last is None or side < last))
            profiles[i].append(radial_profile(log_spectrum(crop))[1])
            sources[i][source] = sources[i].get(source, 0) + 1
        empty = [f"{first}-{last or 'up'} px" for (first, last), found in zip(ranges, profiles) if not found]
        if empty:
            raise ValueError(f"no real faces with face squares of {', '.join(empty)} to build their band from")
        return cls(tuple(ReferenceBand.from_profiles(np.stack(p), r, n) for p, r, n in zip(profiles, ranges, sources)), built_from)

    def save(self, path: Path = REFERENCE_PATH) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()) + "\n")


def profile_frequency() -> np.ndarray:
    """The frequencies of a profile at the analysis size (cycles per pixel, 0 to 0.5)."""
    return radial_profile(np.zeros((ANALYSIS_SIZE, ANALYSIS_SIZE)))[0]


def above_the_band(profile: np.ndarray, band: ReferenceBand) -> bool:
    """Whether a profile lies above the band's 95 % edge over most (more than half) of the upper half of the
    spectrum: what reads as "sharper than real faces" in the plot."""
    upper = band.frequency >= UPPER_HALF
    return bool((profile[upper] > band.high[upper]).mean() > 0.5)


def load_reference_bands(path: Path = REFERENCE_PATH) -> ReferenceBands | None:
    """The shipped bands, or None when they have not been computed (the plots then omit them)."""
    try:
        return ReferenceBands.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- the real faces a band is built from (which files: ``training.reference_band.band_files``) ---------------

def real_faces(files: Iterable[Path], cropper: "FaceCropper", count: int) -> Iterator["FaceCrop"]:
    """The most confident face of each picture, cut the way an upload is (:func:`detectors.faces.first_faces`),
    until ``count`` faces; pictures without a face or that cannot be read are passed over."""
    from .faces import first_faces
    from .media import InputError
    from .preprocess import CROP_SIZE

    found = 0
    for path in files:
        if found >= count:
            return
        try:
            _, crops = first_faces(path, cropper, 1, CROP_SIZE)
        except InputError:
            continue
        if crops[0] is not None:
            found += 1
            yield crops[0]
