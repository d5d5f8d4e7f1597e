"""Self-blended images (SBI): training fakes made from one real face blended onto itself.

Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022
(https://github.com/mapooon/SelfBlendedImages). Two copies of the same real crop are made; one (the
*source*) is perturbed in colour and frequency content and slightly misaligned, then pasted back onto the
untouched copy (the *target*) through a soft face-shaped mask: ``fake = mask * source + (1 - mask) * target``.
Identity, pose and expression are unchanged, so a detector trained on (real, self-blended) pairs can only
learn the generic traces of face swapping: the blending boundary, the colour mismatch, the resampling.

The mask. The original draws the convex hull of 68 or 81 dlib landmarks (or a Face X-ray hull variant); our
crops carry MTCNN's 5 points only, so the hull is replaced by a parametric face outline in the face's own
frame: origin at the eye centre, ``u = right_eye - left_eye`` (across the face, length = eye distance),
``v = mouth_centre - eye_centre`` (down the face). In (a, b) units of (u, v) the eyes sit at (+-0.5, 0) and
the mouth at (0, 1). The outline is a super-ellipse (exponent 2-2.8: ellipse to squarer jaw) with its own
upper and lower half-heights:

* full face (probability 0.6): centre b 0.30-0.45, half-width 0.95-1.2 (cheeks), up 0.8-1.35 (forehead),
  down 1.05-1.3 (chin at b ~ 1.5);
* inner face (probability 0.4): brows, eyes, nose, mouth; no forehead, no jaw - centre b 0.40-0.50, half-width
  0.85-1.05, up 0.7-1.0, down 1.0-1.25 (the lower lip stays inside after softening).

Its radius is deformed by a random low-frequency Fourier series (harmonics 1-8, amplitude ~ 0.05 / k), the
cheap equivalent of SBI's elastic transform of the mask. It is filled, softened by an anisotropic Gaussian
(sigma 1-8 px at 256 px; half of the time SBI's blur / re-binarise / wider blur, which also shrinks it),
normalised to a peak of 1 and multiplied by a blend ratio from {0.25, 0.5, 0.75, 1, 1, 1}. Implausible
landmarks (non-finite, coincident eyes, mouth on the eye line, face off the image, wrong shape) fall back
to where a face sits in our crops (centred; eyes at 40 %, mouth at 66 % of the height). The mask is built at
<= 128 px and resized, since it holds only low frequencies.

The source perturbation, as in SBI: one affine colour change (per-channel RGB shift +-20, hue rotation
+-6 degrees about the grey axis, saturation x0.85-1.15, value x0.9-1.1, brightness +-0.1, contrast
x0.9-1.1 - a linear stand-in for HSV jitter, one C pass via PIL), then either down-up resampling (x2 or x4
down with nearest or box, back up bilinear) or an unsharp mask (3 x 3, amount 0.5-1.5), then a
misalignment (translation +-3 % of the width and +-1.5 % of the height, scale 0.95-1.05, edge-replicated).
Unlike SBI the mask is not moved with the source: it stays on the target's face, the label of where the fake
was blended. The target is left untouched; shared augmentation (JPEG, flips, crops) is the trainer's
business. Everything random comes from the caller's generator, so a seed gives the same fake. Only the
mask's bounding box is perturbed and blended (~6 ms per 256 px crop on one core).
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy.ndimage import gaussian_filter

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
INNER_FACE_PROBABILITY = 0.4
DOUBLE_BLUR_PROBABILITY = 0.5
DOWN_UP_PROBABILITY = 0.5  # otherwise sharpen
MASK_WORK_SIDE = 128  # the mask is smooth: build it at most this large, then resize
REFERENCE_SIDE = 256.0  # pixel-sized parameters below are for a 256 px crop and scale with the crop
OUTLINE_POINTS = 96
HARMONICS = np.arange(1, 9)
RGB_SHIFT = 20.0
HUE_DEGREES = 6.0
SATURATION = 0.15
VALUE = 0.1
BRIGHTNESS = 0.1
CONTRAST = 0.1
TRANSLATE = (0.03, 0.015)  # fraction of width, height
SCALE = (0.95, 1.05)
_LUMA = np.array([0.299, 0.587, 0.114])

Box = tuple[tuple[int, int], tuple[int, int]]  # (top, bottom), (left, right): picture rows and columns


# ----------------------------------------------------------------------------------------------- mask


def face_frame(shape: tuple[int, int], landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(origin, u, v) in pixel (x, y): eye centre, left-to-right eye vector, eye-centre-to-mouth vector.

    Falls back to :func:`default_frame` when the landmarks cannot describe a face in this picture.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2) or not np.all(np.isfinite(points)):
        return default_frame(shape)
    eye_centre = (points[0] + points[1]) / 2
    u = points[1] - points[0]
    v = (points[3] + points[4]) / 2 - eye_centre
    return (eye_centre, u, v) if is_plausible_frame(shape, eye_centre, u, v) else default_frame(shape)


def is_plausible_frame(shape: tuple[int, int], origin: np.ndarray, u: np.ndarray, v: np.ndarray) -> bool:
    height, width = shape
    side = min(height, width)
    eye_distance, eye_mouth = float(np.hypot(*u)), float(np.hypot(*v))
    if not (0.04 * side < eye_distance < side and 0.04 * side < eye_mouth < side):
        return False
    # u and v roughly perpendicular: a mouth on the eye line is no face (|cos| 0.7 allows strong yaw/roll)
    if abs(float(u @ v)) > 0.7 * eye_distance * eye_mouth:
        return False
    face_centre = origin + 0.5 * v
    return bool(0 <= face_centre[0] <= width and 0 <= face_centre[1] <= height)


def default_frame(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where a face sits in one of our crops (MTCNN box x 1.3, centred): eyes at 40 %, mouth at 66 % height."""
    height, width = shape
    return np.array([0.5 * width, 0.40 * height]), np.array([0.30 * width, 0.0]), np.array([0.0, 0.26 * height])


def outline_parameters(rng: np.random.Generator) -> tuple[float, float, float, float, float]:
    """(centre b, half-width, half-height up, half-height down, super-ellipse exponent) in (u, v) units."""
    if rng.random() < INNER_FACE_PROBABILITY:
        return rng.uniform(0.40, 0.50), rng.uniform(0.85, 1.05), rng.uniform(0.7, 1.0), rng.uniform(1.0, 1.25), \
            rng.uniform(2.0, 3.0)
    return rng.uniform(0.30, 0.45), rng.uniform(0.95, 1.2), rng.uniform(0.8, 1.35), rng.uniform(1.05, 1.3), \
        rng.uniform(2.0, 2.8)


def face_outline(rng: np.random.Generator) -> np.ndarray:
    """OUTLINE_POINTS x 2 closed outline in face-frame units (a across, b down), elastically wobbled."""
    centre_b, half_width, up, down, exponent = outline_parameters(rng)
    angle = np.linspace(0.0, 2 * np.pi, OUTLINE_POINTS, endpoint=False)
    cos, sin = np.cos(angle), np.sin(angle)
    # super-ellipse: |a/ra|^p + |b/rb|^p = 1, squarer than an ellipse for p > 2 (jaw, forehead corners)
    a = half_width * np.sign(cos) * np.abs(cos) ** (2 / exponent)
    b = np.where(sin < 0, up, down) * np.sign(sin) * np.abs(sin) ** (2 / exponent)
    wobble = 1 + boundary_wobble(angle, rng)
    return np.stack([a * wobble, centre_b + b * wobble], axis=1)


def boundary_wobble(angle: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Relative radius change along the outline: random low harmonics, amplitude falling as 1/k."""
    amplitude = rng.normal(0.0, 0.05 / HARMONICS)
    phase = rng.uniform(0, 2 * np.pi, HARMONICS.size)
    return np.cos(np.outer(angle, HARMONICS) + phase) @ amplitude


def fill_polygon(points_xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Binary float32 mask of a polygon given in pixel (x, y)."""
    height, width = shape
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon(points_xy.ravel().tolist(), fill=1)
    return np.asarray(canvas, dtype=np.float32)


def random_sigma(low: float, high: float, pixel_scale: float, rng: np.random.Generator) -> tuple[float, float]:
    """(sigma_y, sigma_x): SBI resizes the mask by a random per-axis factor before blurring, i.e. anisotropy."""
    sigma = rng.uniform(low, high) * pixel_scale
    return sigma * rng.uniform(1.0, 1.33), sigma * rng.uniform(1.0, 1.33)


def normalised(mask: np.ndarray) -> np.ndarray:
    peak = float(mask.max())
    return mask / peak if peak > 0 else mask


def soften(mask: np.ndarray, pixel_scale: float, rng: np.random.Generator) -> np.ndarray:
    """Blur once, or (SBI) blur, keep only the untouched core, blur wider: soft, irregular, shrunk edges."""
    if rng.random() < DOUBLE_BLUR_PROBABILITY:
        blurred = normalised(gaussian_filter(mask, random_sigma(1.0, 4.0, pixel_scale, rng), truncate=3.0))
        core = (blurred >= 0.99).astype(np.float32)
        if core.sum() > 0.25 * mask.sum():  # a thin mask would vanish: keep the first blur's input
            mask = core
        return normalised(gaussian_filter(mask, random_sigma(2.0, 8.0, pixel_scale, rng), truncate=3.0))
    return normalised(gaussian_filter(mask, random_sigma(1.0, 8.0, pixel_scale, rng), truncate=3.0))


def resized_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape == tuple(shape):
        return mask
    height, width = shape
    return np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.BILINEAR))


def face_mask(shape: tuple[int, int], landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft random face-region mask, float32 H x W in [0, 1], already multiplied by the blend ratio."""
    height, width = int(shape[0]), int(shape[1])
    origin, u, v = face_frame((height, width), landmarks)
    outline = face_outline(rng)
    work_scale = min(1.0, MASK_WORK_SIDE / max(height, width))
    work_shape = (max(1, round(height * work_scale)), max(1, round(width * work_scale)))
    outline_xy = (origin + outline[:, :1] * u + outline[:, 1:] * v) * work_scale
    binary = fill_polygon(outline_xy, work_shape)
    if binary.sum() < 0.005 * binary.size:  # face (nearly) off the picture: use the default face
        origin, u, v = default_frame((height, width))
        binary = fill_polygon((origin + outline[:, :1] * u + outline[:, 1:] * v) * work_scale, work_shape)
    work_pixels_per_reference_pixel = min(height, width) / REFERENCE_SIDE * work_scale
    soft = soften(binary, work_pixels_per_reference_pixel, rng)
    mask = np.clip(resized_mask(soft, (height, width)), 0.0, 1.0)
    return (mask * rng.choice(BLEND_RATIOS)).astype(np.float32)


# --------------------------------------------------------------------------------------------- source


def colour_matrix(rng: np.random.Generator) -> tuple[float, ...]:
    """PIL 12-tuple for out = M @ (rgb + shift) + brightness: shift, hue, saturation, value, contrast."""
    shift = rng.uniform(-RGB_SHIFT, RGB_SHIFT, 3)
    theta = math.radians(rng.uniform(-HUE_DEGREES, HUE_DEGREES))
    axis = np.ones(3) / math.sqrt(3)  # hue is a rotation about the grey diagonal
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    hue = math.cos(theta) * np.eye(3) + math.sin(theta) * cross + (1 - math.cos(theta)) * np.outer(axis, axis)
    saturation = rng.uniform(1 - SATURATION, 1 + SATURATION)
    towards_grey = saturation * np.eye(3) + (1 - saturation) * np.outer(np.ones(3), _LUMA)
    gain = rng.uniform(1 - VALUE, 1 + VALUE) * rng.uniform(1 - CONTRAST, 1 + CONTRAST)
    matrix = gain * towards_grey @ hue
    offset = matrix @ shift + 255.0 * rng.uniform(-BRIGHTNESS, BRIGHTNESS)
    return tuple(np.concatenate([matrix, offset[:, None]], axis=1).ravel().tolist())


def down_up(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Lose high frequencies the way a low-resolution swap pasted back does."""
    factor = int(rng.choice([2, 4]))
    down = Image.Resampling.NEAREST if rng.random() < 0.5 else Image.Resampling.BOX
    small = image.resize((max(1, image.width // factor), max(1, image.height // factor)), down)
    return small.resize(image.size, Image.Resampling.BILINEAR)


def sharpen(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Unsharp mask, image + amount * (image - blur(image)), folded into one 3 x 3 kernel (one C pass)."""
    amount = rng.uniform(0.5, 1.5)
    binomial = np.outer([1, 2, 1], [1, 2, 1]) / 16.0  # ~ Gaussian, sigma 0.7 px
    identity = np.zeros((3, 3))
    identity[1, 1] = 1.0
    kernel = (1 + amount) * identity - amount * binomial  # sums to 1: flat regions keep their level
    return image.filter(ImageFilter.Kernel((3, 3), kernel.ravel().tolist(), scale=1))


def misalign(patch: Image.Image, box: Box, origin: tuple[int, int], size: tuple[int, int],
             rng: np.random.Generator) -> Image.Image:
    """Scale about the centre of the (w, h) ``size`` picture and shift, rendered for ``box`` (picture pixels).

    ``patch`` holds the picture from ``origin`` (x, y) on, with room for the largest move. Output pixel p
    shows input centre + (p - centre - shift) / scale: a resize of one input rectangle (PIL's separable
    resize is ~2x faster than a general affine transform).
    """
    (top, bottom), (left, right) = box
    scale = rng.uniform(*SCALE)
    shift = rng.uniform(-1, 1, 2) * np.array(TRANSLATE) * np.array(size)
    centre = (size[0] / 2, size[1] / 2)
    in_left = centre[0] + (left - centre[0] - shift[0]) / scale - origin[0]
    in_top = centre[1] + (top - centre[1] - shift[1]) / scale - origin[1]
    rectangle = (in_left, in_top, in_left + (right - left) / scale, in_top + (bottom - top) / scale)
    return patch.resize((right - left, bottom - top), Image.Resampling.BILINEAR, box=rectangle)


def misalignment_margin(shape: tuple[int, int]) -> int:
    """Pixels a misalignment can move a picture point by (the largest scale-down, corner, plus shift)."""
    longest = max(shape)
    return int(math.ceil((longest / 2 * (1 / SCALE[0] - 1) + TRANSLATE[0] * longest) / SCALE[0])) + 2


def perturbed_source(image: np.ndarray, box: Box, rng: np.random.Generator) -> np.ndarray:
    """The SBI source inside ``box``: colour-jittered, resampled or sharpened, misaligned.

    Only the box (plus the misalignment margin) is processed: outside the mask the source is never seen.
    """
    height, width = image.shape[:2]
    (top, bottom), (left, right) = box
    margin = misalignment_margin((height, width))
    # edge-replicate beyond the picture, so a misaligned copy never brings a black border into the blend
    padded = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
    patch = Image.fromarray(padded[top : bottom + 2 * margin, left : right + 2 * margin])
    patch = patch.convert("RGB", colour_matrix(rng))
    patch = down_up(patch, rng) if rng.random() < DOWN_UP_PROBABILITY else sharpen(patch, rng)
    origin = (left - margin, top - margin)
    return np.asarray(misalign(patch, box, origin, (width, height), rng))


# ---------------------------------------------------------------------------------------------- blend


def support_box(mask: np.ndarray) -> Box | None:
    """((top, bottom), (left, right)) of the mask's non-zero pixels, or None for an all-zero mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return (int(rows[0]), int(rows[-1]) + 1), (int(cols[0]), int(cols[-1]) + 1)


def alpha_blend(source: np.ndarray, target: np.ndarray, mask: np.ndarray, box: Box) -> np.ndarray:
    """mask * source + (1 - mask) * target, with ``source`` given for ``box`` only (mask is 0 outside)."""
    (top, bottom), (left, right) = box
    blended = target.copy()
    alpha = mask[top:bottom, left:right, None]
    inside = target[top:bottom, left:right].astype(np.float32)
    blended[top:bottom, left:right] = np.clip(alpha * (source - inside) + inside + 0.5, 0, 255).astype(np.uint8)
    return blended


def self_blend(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A self-blended fake of a real H x W x 3 uint8 crop: (fake uint8 H x W x 3, mask used, float32 H x W)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    mask = face_mask(image.shape[:2], landmarks, rng)
    box = support_box(mask)
    if box is None:  # cannot happen for a real picture (the mask always has a face), but keep the contract
        return image.copy(), mask
    return alpha_blend(perturbed_source(image, box, rng), image, mask, box), mask
