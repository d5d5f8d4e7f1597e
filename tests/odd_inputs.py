"""What a first visitor uploads that is not a plain portrait, generated (nothing binary is committed).

Each case names the tab it is meant for (``image`` / ``video``), whether a face should be found, and the file.
None of them may produce an error message with Python's or a library's words in it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from detectors.examples import portrait
from detectors.faces import FaceCropper, crop_square, square_region
from detectors.media import encode_video
from tests.fixtures import write_rotated_clip

# Words that only appear in a programmer's error: none may reach a user.
PYTHON_WORDS = re.compile(r"Traceback|torch|numpy|tensor|ambiguous|attribute|NoneType|index out of|KeyError|TypeError|"
                          r"ValueError|RuntimeError|expected a non-empty|list index", re.IGNORECASE)


MARKER = (0, 255, 0)


def marker_corner(image: np.ndarray) -> tuple[bool, bool]:
    """(in the top half, in the left half) of the marker's pixels."""
    ys, xs = np.nonzero((image[..., 1] > 200) & (image[..., 0] < 90) & (image[..., 2] < 90))
    return bool(ys.mean() < image.shape[0] / 2), bool(xs.mean() < image.shape[1] / 2)


@dataclass(frozen=True)
class Odd:
    name: str
    path: Path
    tab: str  # the tab it belongs in
    faces: bool | None  # a face should be found (None: either)


def upright_portrait() -> np.ndarray:
    """The portrait cut to 384 x 512 (taller than wide), so a wrong rotation changes the shape too; a green
    square (a colour nowhere else in the photo) marks its top-left corner."""
    picture = portrait()[:, 64:448].copy()
    picture[:32, :32] = MARKER
    return picture


def tight_face(side: int = 1024, margin: float = 0.7) -> np.ndarray:
    """The portrait's face filling the picture edge to edge (forehead and chin cut), as people crop them."""
    image = portrait()
    face = FaceCropper().detect(image)[0]
    return crop_square(image, square_region(face.box, margin), side)


def build(folder: Path) -> list[Odd]:
    folder.mkdir(parents=True, exist_ok=True)
    picture = portrait()
    cases: list[Odd] = []

    def image(name: str, array: np.ndarray, faces: bool | None, tab: str = "image") -> None:
        path = folder / name
        Image.fromarray(array).save(path)
        cases.append(Odd(name, path, tab, faces))

    for side in (1, 11, 12, 13, 20, 30, 39, 40, 41, 60, 79, 80):
        image(f"square_{side}px.png", np.asarray(Image.fromarray(picture).resize((side, side))), None)
    for width, height in ((200, 30), (1000, 30), (30, 400)):
        image(f"strip_{width}x{height}.png", np.asarray(Image.fromarray(picture).resize((width, height))), False)
    image("face_fills_the_picture.png", tight_face(), True)
    tiny_clip = folder / "clip_32x32.mp4"
    encode_video(tiny_clip, (np.asarray(Image.fromarray(picture).resize((32, 32))) for _ in range(12)), 6)
    cases.append(Odd(tiny_clip.name, tiny_clip, "video", False))
    upright = upright_portrait()
    for rotation in (90, -90, 180):
        path = write_rotated_clip(folder / f"rotated_{rotation:+d}.mp4", upright, rotation)
        cases.append(Odd(path.name, path, "video", True))
    for codec, name in (("mpeg4", "clip_mpeg4.avi"), ("libx265", "clip_hevc.mp4")):
        path = encode_video(folder / name, (picture for _ in range(12)), 6, codec)
        cases.append(Odd(name, path, "video", True))
    image("picture_on_the_video_tab.png", picture, True, tab="video")
    return cases
