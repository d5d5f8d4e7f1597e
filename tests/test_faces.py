import numpy as np
from PIL import Image

from detectors.faces import crop_square, square_region, whole_image_crop

# Where MTCNN puts the astronaut's face (x1, y1, x2, y2); checked by eye once, kept loose.
ASTRONAUT_FACE = (181, 62, 268, 172)


def test_finds_the_face_in_a_real_photo(cropper, astronaut):
    faces = cropper.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.99
    assert np.abs(np.array(face.box) - ASTRONAUT_FACE).max() < 12
    x1, y1, x2, y2 = face.box
    assert ((face.landmarks[:, 0] > x1) & (face.landmarks[:, 0] < x2)).all()
    assert face.landmarks[0, 0] < face.landmarks[1, 0]  # left eye left of right eye in the picture


def test_no_face_in_a_blank_image(cropper):
    assert cropper.detect(np.full((240, 320, 3), 127, np.uint8)) == []
    assert cropper(np.zeros((8, 8, 3), np.uint8), 64) == []  # below MTCNN's smallest window


def test_crops_are_square_at_the_asked_size_with_landmarks_inside(cropper, astronaut):
    crops = cropper(astronaut, 128)
    assert len(crops) == 1
    crop = crops[0]
    assert crop.image.shape == (128, 128, 3) and crop.image.dtype == np.uint8
    x0, y0, side = crop.region
    x1, y1, x2, y2 = crop.face.box
    assert side == round(1.3 * max(x2 - x1, y2 - y1))
    assert ((crop.landmarks >= 0) & (crop.landmarks < 128)).all()


def test_large_pictures_are_searched_downscaled_and_boxes_mapped_back(cropper, astronaut):
    big = np.asarray(Image.fromarray(astronaut).resize((1536, 1536), Image.Resampling.BICUBIC))
    faces = cropper.detect(big)  # max_detect_side 640: searched at 5/12 scale
    assert len(faces) == 1
    assert np.abs(np.array(faces[0].box) - 3 * np.array(ASTRONAUT_FACE)).max() < 40


def test_crop_square_pads_outside_the_picture_with_black():
    image = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_square(image, (-50, -50, 100), 100)
    assert crop[:50, :50].max() == 0 and crop[50:, 50:].min() == 200


def test_square_region_is_centred_with_margin():
    x0, y0, side = square_region((10, 20, 50, 100), 1.5)
    assert side == 120
    assert (x0 + side / 2, y0 + side / 2) == (30, 60)


def test_whole_image_crop_keeps_aspect_by_padding():
    crop = whole_image_crop(np.full((50, 100, 3), 255, np.uint8), 64)
    assert crop.face is None and crop.image.shape == (64, 64, 3)
    assert crop.image[:10].max() < 30 and crop.image[32].min() > 200


def inset_frame(astronaut: np.ndarray) -> np.ndarray:
    """A talking-head frame as FLOAT makes them: the speaker large but soft, and a sharp copy of the reference
    photo inset in the lower left corner, which MTCNN finds more confidently than the speaker."""
    from PIL import ImageEnhance, ImageFilter

    soft = Image.fromarray(astronaut).resize((640, 640)).filter(ImageFilter.GaussianBlur(4))
    frame = np.asarray(ImageEnhance.Contrast(soft).enhance(0.5)).copy()
    frame[-141:, :120] = np.asarray(Image.fromarray(astronaut).crop((140, 20, 310, 220)).resize((120, 141)))
    return frame


def test_a_clip_s_cached_face_is_the_speaker_not_the_sharper_inset(cropper, astronaut, tmp_path):
    from detectors.faces import first_faces, speaker
    from detectors.media import encode_video

    frame = inset_frame(astronaut)
    faces = cropper.detect(frame)
    assert len(faces) == 2 and faces[0].box[1] > 500  # the inset is found, and found first (most confident)
    assert speaker(faces) is faces[1] and speaker([]) is None
    clip = encode_video(tmp_path / "inset.mp4", [frame] * 10, fps=5)
    kind, crops = first_faces(clip, cropper, 3, 256)
    assert kind == "video" and len(crops) == 3
    for crop in crops:  # every cached frame is cut around the speaker's face (x 220-325, y 80-210)
        x0, y0, side = crop.region
        assert 200 < x0 + side / 2 < 340 and 100 < y0 + side / 2 < 200 and side > 120


def test_a_covered_overlay_is_gone_and_the_rest_of_the_frame_untouched(astronaut):
    from detectors.faces import cover_regions

    frame = astronaut.copy()
    frame[460:500, 300:480] = (255, 64, 200)  # a pink watermark in the lower right, as DreamTalk stamps it
    covered = cover_regions(frame, [(300 / 512, 455 / 512, 485 / 512, 505 / 512)])
    pink = lambda image: ((image[..., 0] > 230) & (image[..., 1] < 90) & (image[..., 2] > 180)).sum()
    assert pink(frame) == 40 * 180 and pink(covered) == 0
    outside = np.ones(frame.shape[:2], bool)
    outside[455:505, 300:485] = False
    assert np.array_equal(covered[outside], frame[outside]) and cover_regions(frame, []) is frame
    # painted with the scene above it, mirrored: not a flat patch
    assert np.array_equal(covered[455:460, 300:485], frame[450:455, 300:485][::-1]) and covered[455:505, 300:485].std() > 10
