import io

import numpy as np
import pytest
from PIL import Image

from detectors.media import InputError, Limits, detect_kind, load_image, probe_video, read_media, sample_frames
from tests.fixtures import write_audio_only, write_png_bomb, write_video

RGB = (200, 40, 90)


def solid(mode="RGB", size=(40, 30), color=RGB) -> Image.Image:
    return Image.new(mode, size, color)


@pytest.mark.parametrize(
    "suffix, save_kwargs, tolerance",
    [
        (".jpg", {"quality": 95}, 6),
        (".png", {}, 0),
        (".webp", {"lossless": True}, 0),
        (".bmp", {}, 0),
        (".tif", {}, 0),
        (".gif", {}, 12),  # palette quantisation
    ],
)
def test_each_image_format_decodes_to_rgb_uint8(tmp_path, suffix, save_kwargs, tolerance):
    path = tmp_path / f"picture{suffix}"
    solid().save(path, **save_kwargs)
    image = load_image(path)
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - RGB).max() <= tolerance


def test_sixteen_bit_greyscale_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    image = load_image(path)
    assert image[0, :, 0].tolist() == [0, 128, 255]
    assert (image[..., 0] == image[..., 2]).all()


def test_palette_png_with_transparency_is_composited_on_white(tmp_path):
    palette_image = Image.new("P", (8, 8), 0)
    palette_image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette_image.putpixel((0, 0), 1)
    path = tmp_path / "palette.png"
    palette_image.save(path, transparency=0)
    image = load_image(path)
    assert image[0, 0].tolist() == [0, 0, 255]
    assert image[4, 4].tolist() == [255, 255, 255]  # transparent red became the white background


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [solid(color=(255, 0, 0)), solid(color=(0, 255, 0)), solid(color=(0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    image = load_image(path)
    assert image[5, 5, 0] > 200 and image[5, 5, 1] < 50


def test_exif_orientation_is_applied(tmp_path):
    picture = Image.new("RGB", (60, 20), (0, 0, 0))
    picture.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    picture.save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.shape[:2] == (60, 20)
    assert image[:10].mean() > 200 and image[-10:].mean() < 50  # the left band is now on top


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    solid().convert("CMYK").save(path, quality=95)
    image = load_image(path)
    assert image.shape == (30, 40, 3)
    assert np.abs(image.astype(int) - RGB).max() < 30


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty"),
        (b"this is plain text, not a picture\n" * 10, "not a recognised image"),
    ],
)
def test_unreadable_images_raise_input_error(tmp_path, content, expected):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError, match=expected):
        load_image(path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_raises_input_error(tmp_path, fmt, astronaut):
    buffer = io.BytesIO()
    Image.fromarray(astronaut).save(buffer, format=fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = write_png_bomb(tmp_path / "bomb.png")
    with pytest.raises(InputError, match="(megapixels|decompression bomb)"):
        load_image(path)


def test_pixel_and_file_size_limits(tmp_path):
    path = tmp_path / "big.png"
    solid(size=(200, 100)).save(path)
    with pytest.raises(InputError, match="200x100"):
        load_image(path, Limits(max_image_pixels=10_000))
    with pytest.raises(InputError, match="over the limit"):
        load_image(path, Limits(max_file_bytes=10))
    assert load_image(path, Limits(max_image_pixels=20_000)).shape == (100, 200, 3)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_video_frames_are_spread_evenly_with_timestamps(tmp_path):
    path = write_video(tmp_path / "clip.mp4", frames=40, fps=10)
    info = probe_video(path)
    assert info.duration == pytest.approx(4.0, abs=0.15)
    frames = sample_frames(path, 8)
    assert len(frames) == 8
    times = [f.timestamp for f in frames]
    assert times == sorted(times)
    expected = [4.0 * (i + 0.5) / 8 for i in range(8)]
    assert np.abs(np.array(times) - expected).max() <= 0.1
    # frame i was painted with brightness 6 * i: the decoded pixels confirm which frame we got
    brightness = [f.image.mean() / 6 for f in frames]
    assert np.abs(np.array(brightness) - np.array(times) * 10).max() < 1.5
    assert frames[0].image.shape == (64, 96, 3)


def test_h264_video_and_sixteen_frames_by_default(tmp_path):
    path = write_video(tmp_path / "clip.mp4", frames=50, fps=25, codec="libx264")
    assert len(sample_frames(path)) == 16


def test_short_video_yields_each_frame_once(tmp_path):
    path = write_video(tmp_path / "five.mp4", frames=5, fps=10)
    frames = sample_frames(path, 16)
    assert 1 <= len(frames) <= 5
    assert len({f.timestamp for f in frames}) == len(frames)


def test_single_frame_video(tmp_path):
    frames = sample_frames(write_video(tmp_path / "one.mp4", frames=1), 16)
    assert len(frames) == 1


def test_video_limits(tmp_path):
    path = write_video(tmp_path / "clip.mp4", frames=40, fps=10)
    with pytest.raises(InputError, match="over the limit"):
        sample_frames(path, 4, Limits(max_video_seconds=2.0))
    with pytest.raises(InputError, match="at most 8 frames"):
        sample_frames(path, 9, Limits(max_sampled_frames=8))
    with pytest.raises(InputError, match="at least 1"):
        sample_frames(path, 0)


def test_video_without_video_stream(tmp_path):
    path = write_audio_only(tmp_path / "sound.mp4")
    with pytest.raises(InputError, match="(no video stream|audio-only)"):
        read_media(path)


def test_truncated_video(tmp_path):
    path = write_video(tmp_path / "clip.mp4", frames=40, fps=10)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError):
        sample_frames(cut, 4)


def test_kind_comes_from_content_not_extension(tmp_path):
    png_named_mp4 = tmp_path / "really_a_picture.mp4"
    solid().save(png_named_mp4, format="PNG")
    assert detect_kind(png_named_mp4) == "image"
    video_named_jpg = write_video(tmp_path / "clip.mp4", frames=5)
    renamed = video_named_jpg.rename(tmp_path / "really_a_video.jpg")
    assert detect_kind(renamed) == "video"
    media = read_media(renamed, frames=2)
    assert media.kind == "video" and len(media.frames) == 2
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(InputError, match="neither a supported image nor a video"):
        detect_kind(text)
