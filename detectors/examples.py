"""The examples gallery: files the project makes itself, never anything from the training data.

- ``astronaut.png``: scikit-image's public-domain portrait of Eileen Collins (NASA);
- ``astronaut_self_blended.png``: a self-blended fake made from it by the training recipe (a face-swap-style
  forgery of the face onto itself);
- ``astronaut_zoom.mp4``: a 3-second H.264 clip written from the portrait with a slow zoom (a real video).

Written once into a folder (default: a cache folder in the system temp directory) and reused.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .faces import FaceCropper
from .media import encode_video
from .preprocess import CROP_SIZE

DEFAULT_FOLDER = Path(tempfile.gettempdir()) / "deepfake-detectors-examples"
FILES = ("astronaut.png", "astronaut_self_blended.png", "astronaut_zoom.mp4")


def portrait() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def self_blended(image: np.ndarray, cropper: FaceCropper, seed: int = 7) -> np.ndarray:
    """The portrait with its face replaced by a self-blended version of itself (pasted back into the picture)."""
    from .training.sbi import self_blend

    face = max(cropper.detect(image), key=lambda f: f.score)
    crop = cropper.crop(image, face, CROP_SIZE)
    fake, mask = self_blend(crop.image, crop.landmarks, np.random.default_rng(seed))
    # Paste the blended square back where it came from, so the example is a whole picture with a forged face.
    x0, y0, side = crop.region
    x1, y1 = x0 + side, y0 + side
    out = image.copy()
    patch = np.asarray(Image.fromarray(fake).resize((side, side), Image.Resampling.BICUBIC))
    weight = np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BILINEAR)) / 255.0
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(image.shape[1], x1), min(image.shape[0], y1)
    px, py = cx0 - x0, cy0 - y0
    region = out[cy0:cy1, cx0:cx1].astype(np.float32)
    w = weight[py : py + cy1 - cy0, px : px + cx1 - cx0, None]
    p = patch[py : py + cy1 - cy0, px : px + cx1 - cx0].astype(np.float32)
    out[cy0:cy1, cx0:cx1] = np.clip(w * p + (1 - w) * region, 0, 255).astype(np.uint8)
    return out


def zoom_video(image: np.ndarray, path: Path, seconds: float = 3.0, fps: int = 10, size: int = 320) -> Path:
    """A slow zoom into the portrait, H.264 (so browsers play it), ``seconds`` long."""
    frames = int(seconds * fps)
    height, width = image.shape[:2]
    picture = Image.fromarray(image)

    def frame(i: int) -> np.ndarray:
        scale = 1.0 - 0.25 * i / max(1, frames - 1)
        w, h = width * scale, height * scale
        box = ((width - w) / 2, (height - h) / 3, (width + w) / 2, (height - h) / 3 + h)
        return np.asarray(picture.resize((size, size), Image.Resampling.BICUBIC, box=box))

    return encode_video(path, (frame(i) for i in range(frames)), fps)


def build_examples(folder: str | os.PathLike | None = None, cropper: FaceCropper | None = None) -> list[Path]:
    """The example files, written on first call (atomically, so a crash never leaves half a file)."""
    folder = Path(folder or DEFAULT_FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in FILES]
    if all(p.exists() for p in paths):
        return paths
    image = portrait()
    makers = {
        FILES[0]: lambda tmp: Image.fromarray(image).save(tmp, format="PNG"),
        FILES[1]: lambda tmp: Image.fromarray(self_blended(image, cropper or FaceCropper())).save(tmp, format="PNG"),
        FILES[2]: lambda tmp: zoom_video(image, tmp),
    }
    for path in paths:
        if not path.exists():
            temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")
            makers[path.name](temporary)
            temporary.replace(path)
    return paths
