"""Augmentation applied alike to real and fake crops, so that no detector can learn compression or framing.

Real sources differ in encoding and framing (CelebA loose JPEG crops, FFHQ tight crops, video frames); a
detector that sees every class under the same random re-framing, resizing, blur, colour change and JPEG
quality (40-100) has to find the manipulation instead. JPEG comes last, as it does on the way to a user.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


def random_reframe(image: Image.Image, rng: np.random.Generator, min_scale: float = 0.85) -> Image.Image:
    """Crop a random square of 85-100 % of the side (shifted off-centre) and resize back: framing varies."""
    size = image.width
    side = int(size * rng.uniform(min_scale, 1.0))
    x0, y0 = (int(rng.integers(0, size - side + 1)) for _ in range(2))
    return image.resize((size, size), Image.Resampling.BICUBIC, box=(x0, y0, x0 + side, y0 + side))


def random_resolution(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Down to 35-90 % and back: faces arrive at every resolution (small faces in video frames upscaled)."""
    size = image.width
    low = max(16, int(size * rng.uniform(0.35, 0.9)))
    down = rng.choice([Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS])
    return image.resize((low, low), down).resize((size, size), Image.Resampling.BILINEAR)


def random_colour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(0.8, 1.2))
    return image


def random_blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.3, 1.5)))


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def augment(crop: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """One random draw of the shared augmentation on an H x W x 3 uint8 crop (same size out).

    ``strength`` in [0, 1] is the curriculum: at 0 the destructive operations (JPEG, down-sampling, blur) are
    rare and mild, so a model trained from scratch first finds the blending and up-sampling traces while they
    are still visible; at 1 (the default, and the end of every schedule) it sees the full range, JPEG 40-100.
    """
    strength = float(np.clip(strength, 0.0, 1.0))
    image = Image.fromarray(crop)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        image = random_reframe(image, rng)
    if rng.random() < 0.1 + 0.2 * strength:
        image = random_resolution(image, rng)
    if rng.random() < 0.5:
        image = random_colour(image, rng)
    if rng.random() < 0.05 + 0.15 * strength:
        image = random_blur(image, rng)
    if rng.random() < 0.3 + 0.4 * strength:
        image = jpeg(image, rng.integers(int(round(90 - 50 * strength)), 101))
    return np.asarray(image)
