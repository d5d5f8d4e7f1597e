"""Self-blended images: the mask covers the face softly, the fake differs only there, all from the seed."""
from __future__ import annotations

import numpy as np
import pytest

from detectors.training.sbi import face_mask, self_blend

SIZE = 256
SEEDS = range(24)
CORNER = 24  # px: the crop corners are background in a 1.3x MTCNN crop


@pytest.fixture(scope="module")
def face(cropper, astronaut) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's 256 px crop and its MTCNN landmarks in crop pixels."""
    crops = cropper(astronaut, SIZE)
    assert crops, "MTCNN found no face in the astronaut"
    return crops[0].image, crops[0].landmarks


def corners(array: np.ndarray) -> np.ndarray:
    top, bottom = array[:CORNER], array[-CORNER:]
    return np.stack([top[:, :CORNER], top[:, -CORNER:], bottom[:, :CORNER], bottom[:, -CORNER:]])


def soft_band_width(mask: np.ndarray) -> float:
    """Pixels strictly between 5 % and 95 % of the peak per pixel of the half-peak outline (a resized hard
    mask scores ~2, a 1 px Gaussian edge ~3.3)."""
    relative = mask / mask.max()
    soft = np.count_nonzero((relative > 0.05) & (relative < 0.95))
    core = relative > 0.5
    outline = (core ^ np.roll(core, 1, axis=0)) | (core ^ np.roll(core, 1, axis=1))
    return soft / max(1, np.count_nonzero(outline))


def at(mask: np.ndarray, point: np.ndarray) -> float:
    x, y = np.rint(point).astype(int)
    return float(mask[y, x])


def test_mask_is_a_soft_face_shaped_weight(face):
    _, landmarks = face
    for seed in SEEDS:
        mask = face_mask((SIZE, SIZE), landmarks, np.random.default_rng(seed))
        assert mask.shape == (SIZE, SIZE) and mask.dtype == np.float32
        assert mask.min() >= 0.0 and mask.max() <= 1.0
        assert at(mask, landmarks[2]) > 0.2, f"seed {seed}: nose outside the mask"
        assert corners(mask).max() < 0.01, f"seed {seed}: mask reaches the crop corners"
        assert soft_band_width(mask) > 3.5, f"seed {seed}: hard edge"


def test_mask_covers_eyes_and_mouth_and_follows_the_landmarks(face):
    _, landmarks = face
    centre = landmarks.mean(axis=0)
    for seed in SEEDS:
        mask = face_mask((SIZE, SIZE), landmarks, np.random.default_rng(seed))
        peak = mask.max()
        for point in (landmarks[0], landmarks[1], (landmarks[3] + landmarks[4]) / 2):
            assert at(mask, point) > 0.3 * peak, f"seed {seed}: eye or mouth outside the mask"
        rows, cols = np.indices(mask.shape)
        centroid = np.array([(cols * mask).sum(), (rows * mask).sum()]) / mask.sum()
        assert np.linalg.norm(centroid - centre) < 0.12 * SIZE, f"seed {seed}: mask not centred on the face"
    shifted = landmarks - np.array([40.0, 0.0])  # the face moved left: so must the mask
    left = face_mask((SIZE, SIZE), shifted, np.random.default_rng(0))
    right = face_mask((SIZE, SIZE), landmarks, np.random.default_rng(0))
    columns = np.arange(SIZE)
    assert (left.sum(axis=0) @ columns) / left.sum() < (right.sum(axis=0) @ columns) / right.sum() - 30


def test_masks_vary_in_size_and_blend_ratio(face):
    _, landmarks = face
    masks = [face_mask((SIZE, SIZE), landmarks, np.random.default_rng(seed)) for seed in SEEDS]
    areas = np.array([(m > 0.5 * m.max()).mean() for m in masks])
    peaks = {round(float(m.max()), 2) for m in masks}
    assert areas.max() > 1.3 * areas.min()  # full-face and inner-face variants, random sizes
    assert len(peaks) >= 3 and 1.0 in peaks  # blend ratios from {0.25, 0.5, 0.75, 1}


def test_self_blend_changes_the_face_and_nothing_far_outside(face):
    image, landmarks = face
    for seed in SEEDS:
        fake, mask = self_blend(image, landmarks, np.random.default_rng(seed))
        assert fake.shape == image.shape and fake.dtype == np.uint8
        assert mask.shape == image.shape[:2] and mask.dtype == np.float32
        difference = np.abs(fake.astype(int) - image.astype(int)).max(axis=2)
        inside = mask > 0.5 * mask.max()
        assert difference[inside].mean() > 2.0, f"seed {seed}: the face is unchanged"
        assert np.array_equal(fake[mask == 0], image[mask == 0]), f"seed {seed}: pixels outside the mask changed"
        assert corners(difference).max() <= 1, f"seed {seed}: the corners changed"


def test_same_seed_same_fake_other_seed_other_fake(face):
    image, landmarks = face
    fake_a, mask_a = self_blend(image, landmarks, np.random.default_rng(7))
    fake_b, mask_b = self_blend(image, landmarks, np.random.default_rng(7))
    assert np.array_equal(fake_a, fake_b) and np.array_equal(mask_a, mask_b)
    others = [self_blend(image, landmarks, np.random.default_rng(seed)) for seed in (8, 9, 10)]
    for fake, mask in others:
        assert not np.array_equal(fake, fake_a) and not np.array_equal(mask, mask_a)


def test_input_is_not_modified(face):
    image, landmarks = face
    image_before, landmarks_before = image.copy(), landmarks.copy()
    self_blend(image, landmarks, np.random.default_rng(0))
    assert np.array_equal(image, image_before) and np.array_equal(landmarks, landmarks_before)


def synthetic_crop(size: int = SIZE) -> np.ndarray:
    """A flat skin-coloured disc on grey with some texture: enough for a blend to show."""
    rng = np.random.default_rng(0)
    rows, cols = np.indices((size, size))
    disc = (rows - size / 2) ** 2 + (cols - size / 2) ** 2 < (0.38 * size) ** 2
    image = np.where(disc[..., None], np.array([200, 160, 140]), np.array([90, 90, 90]))
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


# plausible MTCNN points for a 256 px crop (left_eye, right_eye, nose, mouth_left, mouth_right)
PLAUSIBLE = np.array([[92.0, 102.0], [164.0, 102.0], [128.0, 140.0], [98.0, 170.0], [158.0, 170.0]])
DEGENERATE = {
    "zeros": np.zeros((5, 2)),
    "eyes_at_one_point": np.array([[128.0, 100.0], [128.0, 100.0], [128.0, 140.0], [110.0, 170.0], [146.0, 170.0]]),
    "all_at_one_point": np.full((5, 2), 128.0),
    "outside_the_image": PLAUSIBLE + 1000.0,
    "negative": PLAUSIBLE - 1000.0,
    "mouth_on_the_eye_line": np.array([[90.0, 100.0], [160.0, 100.0], [128.0, 100.0], [60.0, 100.0], [200.0, 100.0]]),
    "huge": (PLAUSIBLE - 128.0) * 50 + 128.0,
    "nan": np.full((5, 2), np.nan),
    "inf": np.full((5, 2), np.inf),
    "wrong_shape": np.zeros((68, 2)),
}


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_degenerate_landmarks_fall_back_to_a_centred_face(name):
    image = synthetic_crop()
    for seed in range(4):
        fake, mask = self_blend(image, DEGENERATE[name], np.random.default_rng(seed))
        assert fake.shape == image.shape and fake.dtype == np.uint8
        assert np.isfinite(mask).all() and mask.min() >= 0 and mask.max() <= 1
        assert mask[SIZE // 2, SIZE // 2] > 0.2, "the fallback mask must cover the centre"
        assert corners(mask).max() < 0.01


def test_plausible_landmarks_on_a_synthetic_crop_other_sizes():
    for size in (96, 256, 384):
        image = synthetic_crop(size)
        landmarks = PLAUSIBLE * size / SIZE
        fake, mask = self_blend(image, landmarks, np.random.default_rng(1))
        assert fake.shape == image.shape and mask.shape == (size, size)
        assert at(mask, landmarks[2]) > 0.2
        assert np.array_equal(fake[mask == 0], image[mask == 0])


def test_non_square_picture():
    image = synthetic_crop()[:, 20:-20]
    fake, mask = self_blend(image, PLAUSIBLE - np.array([20.0, 0.0]), np.random.default_rng(2))
    assert fake.shape == image.shape and mask.shape == image.shape[:2]
    assert at(mask, PLAUSIBLE[2] - np.array([20.0, 0.0])) > 0.2
