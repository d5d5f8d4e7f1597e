"""The one face cropper, used by inference and by training: MTCNN boxes, square crop with a margin.

A crop is the square of side ``margin * max(box width, box height)`` centred on the detector's box, padded
with black where it leaves the picture (so the face keeps its place and scale in every crop), then resized
to the size the caller asks for. Finding no face is a normal outcome (an empty list); callers decide whether
to skip the input or to score the whole picture with :func:`whole_image_crop`, labelled as such.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .face_search import FaceSearch

DEFAULT_MARGIN = 1.3
DEFAULT_MIN_CONFIDENCE = 0.9
PAD_RETRY = 0.25  # border added on each side (share of the long side) when a picture is searched again
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity (value equality would raise)
class Face:
    """One detection in picture coordinates."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float  # MTCNN confidence
    landmarks: np.ndarray  # 5 x 2 (x, y), in LANDMARK_NAMES order

    def scaled(self, factor: float) -> "Face":
        """The same detection in pixels ``factor`` times larger (from a reduced copy to the full picture)."""
        return Face(tuple(float(v) * factor for v in self.box), self.score, self.landmarks * factor)

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "confidence": round(float(self.score), 4),
            "landmarks": np.round(self.landmarks, 1).tolist(),
        }


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """A square crop resized to ``image.shape[0]``; ``face`` is None for a whole-picture crop."""

    image: np.ndarray  # size x size x 3 uint8
    region: tuple[int, int, int]  # x0, y0, side of the square in picture pixels (may leave the picture)
    face: Face | None

    @property
    def landmarks(self) -> np.ndarray | None:
        """The face's landmarks in crop pixels."""
        if self.face is None:
            return None
        x0, y0, side = self.region
        return (self.face.landmarks - np.array([x0, y0])) * (self.image.shape[0] / side)


def square_region(box: Sequence[float], margin: float) -> tuple[int, int, int]:
    x1, y1, x2, y2 = box
    side = max(1, int(round(margin * max(x2 - x1, y2 - y1))))
    x0 = int(round((x1 + x2) / 2 - side / 2))
    y0 = int(round((y1 + y2) / 2 - side / 2))
    return x0, y0, side


def crop_square(image: np.ndarray, region: tuple[int, int, int], size: int) -> np.ndarray:
    """The square ``region`` of ``image``, black outside the picture, resized to ``size`` x ``size``."""
    x0, y0, side = region
    height, width = image.shape[:2]
    canvas = np.zeros((side, side, 3), dtype=np.uint8)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, width), min(y0 + side, height)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    if side == size:
        return canvas
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.Resampling.BICUBIC))


def whole_image_crop(image: np.ndarray, size: int) -> FaceCrop:
    """The whole picture as one square (padded), for scoring when no face was found."""
    height, width = image.shape[:2]
    side = max(height, width)
    region = ((width - side) // 2, (height - side) // 2, side)
    return FaceCrop(crop_square(image, region, size), region, None)


class FaceCropper:
    """MTCNN face search (:mod:`detectors.face_search`) with our confidence threshold, margin and downscaling of
    large pictures.

    Speed (the fast path measured by ``python -m detectors bench``): large pictures are searched at most
    ``max_detect_side`` pixels on their long side (boxes are mapped back), and faces smaller than
    ``min_face_size`` picture pixels are not searched for: the image pyramid MTCNN scans shrinks with the square
    of both. Neither loses a face a detector could judge: a 40 px face is blown up over 6x to reach the 256 px
    crop, and the detectors read 128 px. In a searched (downscaled) picture the smallest face is 20 px.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        margin: float = DEFAULT_MARGIN,
        min_face_size: int = 40,
        max_detect_side: int = 640,
    ) -> None:
        self.min_confidence = min_confidence
        self.margin = margin
        self.max_detect_side = max_detect_side
        self.min_face_size = min_face_size
        self.search = FaceSearch(device=device)

    def _searchable(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        long_side = max(image.shape[:2])
        if long_side <= self.max_detect_side:
            return image, 1.0
        scale = self.max_detect_side / long_side
        height, width = (max(1, round(d * scale)) for d in image.shape[:2])
        return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)), scale

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces in each picture, most confident first. Pictures of one size go through MTCNN together.

        A picture where no face is found is searched once more with a black border around it: MTCNN's
        windows need some context around a face, so a face that fills the picture edge to edge (a tight crop,
        as people often upload) is otherwise missed. Boxes are mapped back to the picture (they may run past
        its edges; the crop pads there).
        """
        searched = [self._searchable(image) for image in images]
        results = self._search([(copy, scale, 0) for copy, scale in searched])
        missing = [i for i, faces in enumerate(results) if not faces]
        if missing:
            padded = []
            for i in missing:
                copy, scale = searched[i]
                border = round(PAD_RETRY * max(copy.shape[:2]))
                padded.append((np.pad(copy, ((border, border), (border, border), (0, 0))), scale, border))
            for i, faces in zip(missing, self._search(padded)):
                results[i] = faces
        return results

    def _search(self, prepared: Sequence[tuple[np.ndarray, float, int]]) -> list[list[Face]]:
        """Face search on (searched copy, its scale, its border) triples; faces in original picture pixels."""
        results: list[list[Face]] = [[] for _ in prepared]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (copy, scale, _) in enumerate(prepared):
            groups.setdefault(copy.shape, []).append(i)
        for indices in groups.values():
            scale = prepared[indices[0]][1]
            min_face_size = max(20, round(self.min_face_size * scale))  # the smallest face, in searched pixels
            found = self.search(np.stack([prepared[i][0] for i in indices]), min_face_size)
            for i, faces in zip(indices, found):
                results[i] = self._faces(faces, prepared[i][1], prepared[i][2])
        return results

    def _faces(self, found, scale: float, border: int = 0) -> list[Face]:
        boxes = (found.boxes - border) / scale
        points = (found.landmarks - border) / scale
        faces = [Face(tuple(float(v) for v in box), float(score), pts)
                 for box, score, pts in zip(boxes, found.scores, points) if score >= self.min_confidence]
        return sorted(faces, key=lambda face: -face.score)

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detect_batch([image])[0]

    def crop(self, image: np.ndarray, face: Face, size: int, scale: float = 1.0) -> FaceCrop:
        """The face's square, resized to ``size``. ``image`` may be the picture reduced ``scale`` times (full-size
        pixels per pixel of ``image``); ``face`` and the crop's region are in full-size pixels either way."""
        region = square_region(face.box, self.margin)
        x0, y0, side = region
        reduced = region if scale == 1.0 else (round(x0 / scale), round(y0 / scale), max(1, round(side / scale)))
        return FaceCrop(crop_square(image, reduced, size), region, face)

    def crops_of(self, picture, size: int) -> tuple[list[FaceCrop], np.ndarray]:
        """Every face of a :class:`detectors.media.Picture` as a ``size`` crop, most confident first, and the copy
        faces were searched on (for scoring the whole picture when there is none).

        The search runs on the least decode that still gives ``max_detect_side`` pixels; each crop is cut from the
        least decode that still gives the smallest face's square at least ``size`` pixels (often the same one),
        so a phone photo is never decoded in full. A picture at most ``max_detect_side`` wide is decoded once.
        """
        search, factor = picture.decoded(picture.reduction_for(self.max_detect_side))
        faces = [face.scaled(factor) for face in self.detect(search)]
        if not faces:
            return [], search
        smallest = min(square_region(face.box, self.margin)[2] for face in faces)
        source, scale = picture.decoded(picture.reduction_for(round(max(picture.size) * size / smallest)))
        return [self.crop(source, face, size, scale) for face in faces], search

    def crops_batch(self, images: Sequence[np.ndarray], size: int) -> list[list[FaceCrop]]:
        """Every face of each picture (decoded pixels, e.g. a clip's frames) as a ``size`` crop, most confident
        first; the pictures are searched together (:meth:`detect_batch`). A picture file: :meth:`crops_of`."""
        return [[self.crop(image, face, size) for face in faces] for image, faces in zip(images, self.detect_batch(images))]

    def __call__(self, image: np.ndarray, size: int) -> list[FaceCrop]:
        """Every face above the confidence threshold as a ``size`` x ``size`` crop, most confident first."""
        return self.crops_batch([image], size)[0]


def cover_regions(image: np.ndarray, regions: Sequence[Sequence[float]]) -> np.ndarray:
    """``image`` with each region (``x0, y0, x1, y1`` in fractions of its size) painted over with the rows next to
    it, mirrored: the band above for a region in the lower half, below for one in the upper half. For a
    generator's overlay (a watermark) in training data: what stays is the scene around it, not a flat patch that
    would be a mark of its own."""
    if not regions:
        return image
    out = np.array(image, copy=True)
    height, width = out.shape[:2]
    for x0, y0, x1, y1 in regions:
        left, right = int(round(x0 * width)), int(round(x1 * width))
        top, bottom = int(round(y0 * height)), int(round(y1 * height))
        rows = bottom - top
        if rows <= 0 or right <= left:
            continue
        if top >= height - bottom:  # lower half: mirror the band above it downwards
            band = out[max(0, top - rows) : top, left:right][::-1]
        else:
            band = out[bottom : min(height, bottom + rows), left:right][::-1]
        reps = int(np.ceil(rows / max(1, len(band))))
        out[top:bottom, left:right] = np.concatenate([band] * reps)[:rows] if len(band) else out[top:bottom, left:right]
    return out


def speaker(faces: Sequence[Face]) -> Face | None:
    """The face a clip is about: the largest (the most confident among equals). A talking-head generator may
    show a second, smaller face: FLOAT insets its reference photo in a corner of every frame, a sharp still
    that MTCNN can find more confidently than the moving face it is there to explain."""
    if not faces:
        return None
    return max(faces, key=lambda face: ((face.box[2] - face.box[0]) * (face.box[3] - face.box[1]), face.score))


def speaker_crop(crops: Sequence[FaceCrop]) -> FaceCrop | None:
    """The crop of the speaker (:func:`speaker`) among one frame's crops (:meth:`FaceCropper.crops_batch`)."""
    face = speaker([crop.face for crop in crops])
    return next((crop for crop in crops if crop.face is face), None)


def first_faces(path, cropper: FaceCropper, frames: int, size: int,
                cover: Sequence[Sequence[float]] = ()) -> tuple[str, list[FaceCrop | None]]:
    """(kind, the most confident face of the picture, or the speaker (:func:`speaker`) of each of ``frames``
    frames sampled from the clip): what evaluation scores and training caches, cut the way the app cuts them.
    ``cover``: regions of a clip's frames painted over first (:func:`cover_regions`; training data only).
    None where there is no face. InputError for a file that cannot be read."""
    from .media import Picture, detect_kind, sample_frames

    kind = detect_kind(path)
    if kind == "image":
        crops, _ = cropper.crops_of(Picture(path), size)
        return kind, [crops[0] if crops else None]
    images = [cover_regions(frame.image, cover) for frame in sample_frames(path, frames)]
    return kind, [speaker_crop(crops) for crops in cropper.crops_batch(images, size)]
