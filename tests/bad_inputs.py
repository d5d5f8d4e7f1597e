"""The bad-input corpus, generated (nothing binary is committed): every case with what a correct answer is.

Each case is a file and an expectation: ``ok`` (a result: ``faces`` says how many faces, or None for any) or
``error`` (a regular expression the message must match, specific to what is wrong).
"""
from __future__ import annotations

import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from detectors.media import encode_video
from tests.fixtures import astronaut, multi_face_picture, write_audio_only, write_png_bomb, write_video
from tests.provenance_assets import encoded, make_credentials, png_chunk, sign, with_png_chunk


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    kind: str | None  # "image" / "video" for readable inputs
    error: str | None = None  # regex the error message must match; None: a result is expected
    faces: int | None = None  # expected face count for results (None: any)
    content: str | None = None  # what the content is even when it cannot be used: the app's tabs redirect it
    provenance: str | None = None  # regex the provenance statement and notes must match (None: not checked)


def _save(image: np.ndarray | Image.Image, path: Path, **kwargs) -> Path:
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(path, **kwargs)
    return path


def _long_video(path: Path, minutes: float = 25.0, fps: int = 1) -> Path:
    """A tiny-picture clip longer than the 20-minute limit (one frame per second keeps it fast to write)."""
    blank = np.zeros((32, 32, 3), np.uint8)
    return encode_video(path, (blank for _ in range(int(minutes * 60 * fps))), fps, codec="mpeg4")


def build_corpus(folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    face = astronaut()
    cases: list[Case] = []

    def add(name, path, kind, error=None, faces=None, content=None, provenance=None):
        cases.append(Case(name, Path(path), kind, error, faces, content or kind, provenance))

    zero = folder / "zero_byte.jpg"
    zero.write_bytes(b"")
    add("zero-byte file", zero, None, "empty")
    text = folder / "text_renamed.jpg"
    text.write_text("this is a shopping list, not a picture\n" * 20)
    add("text renamed .jpg", text, None, "neither a supported image nor a video|not a recognised image")
    for fmt in ("JPEG", "PNG"):
        buffer = io.BytesIO()
        Image.fromarray(face).save(buffer, format=fmt)
        cut = folder / f"truncated.{fmt.lower()}"
        cut.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        add(f"truncated {fmt}", cut, None, "truncated or corrupt", content="image")
    add("PNG declaring 30000x30000", write_png_bomb(folder / "bomb.png"), None, "megapixels|decompression bomb", content="image")
    sixteen = (np.asarray(Image.fromarray(face).convert("L")).astype(np.uint16) * 257)
    add("16-bit PNG", _save(Image.fromarray(sixteen, mode="I;16"), folder / "sixteen_bit.png"), "image", faces=1)
    add("palette PNG", _save(Image.fromarray(face).convert("P", palette=Image.Palette.ADAPTIVE), folder / "palette.png"), "image", faces=1)
    add("CMYK JPEG", _save(Image.fromarray(face).convert("CMYK"), folder / "cmyk.jpg", quality=90), "image", faces=1)
    frames = [Image.fromarray(face), Image.fromarray(255 - face)]
    gif = folder / "animated.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    add("animated GIF", gif, "image", faces=1)
    rotated = Image.fromarray(np.ascontiguousarray(np.rot90(face)))  # stored on its side, EXIF says turn back
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    add("EXIF-rotated JPEG", _save(rotated, folder / "exif_rotated.jpg", exif=exif, quality=90), "image", faces=1)
    add("1x1 image", _save(np.zeros((1, 1, 3), np.uint8), folder / "one_pixel.png"), "image", faces=0)
    add("5000x5000 image", _save(Image.fromarray(face).resize((5000, 5000), Image.Resampling.BILINEAR), folder / "huge.jpg", quality=85), "image", faces=1)
    add("image with no face", _save(np.full((240, 320, 3), (90, 140, 200), np.uint8), folder / "sky.png"), "image", faces=0)
    add("mp4 with no video stream", write_audio_only(folder / "audio_only.mp4"), None, "no video stream|audio-only")
    clip = write_video(folder / "clip.mp4", frames=40, fps=10, size=(256, 256), codec="libx264", picture=face)
    data = clip.read_bytes()
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 3])
    add("truncated mp4", truncated, None, "video file is truncated or corrupt")
    add("video of one frame", write_video(folder / "one_frame.mp4", frames=1, size=(256, 256), picture=face), "video", faces=1)
    add("very long video (25 min)", _long_video(folder / "very_long.mp4"), None, "over the limit", content="video")
    add("PNG named .mp4", _save(face, folder / "really_a_picture.mp4", format="PNG"), "image", faces=1)
    renamed = folder / "really_a_video.jpg"
    clip.rename(renamed)
    add("mp4 named .jpg", renamed, "video", faces=1)
    odd = Path(os.fsdecode(bytes(folder) + b"/caf\xe9_latin1_\xff.png"))  # not valid UTF-8
    add("non-UTF-8 file name", _save(face, odd, format="PNG"), "image", faces=1)
    # Several faces, the forged one not first: the case that once crashed the app's event functions.
    add("2 faces, forged one right", _save(multi_face_picture(2, 1), folder / "two_faces.png"), "image", faces=2)
    add("5 faces, forged one in the middle", _save(multi_face_picture(5, 2), folder / "five_faces.jpg", quality=90), "image", faces=5)
    pair = multi_face_picture(2, 0)
    add("clip with 2 faces per frame", write_video(folder / "two_faces.mp4", frames=20, size=pair.shape[1::-1], codec="libx264", picture=pair), "video", faces=2)
    long_name = folder / ("a_very_long_file_name_" * 10 + "end.png")[:250]
    add("250-character file name", _save(face, long_name, format="PNG"), "image", faces=1)
    _provenance_cases(folder, face, add)
    return cases


def _app11_segments(jpeg: bytes) -> list[tuple[int, int]]:
    """(offset, length) of the APP11 segments, where a JPEG carries its C2PA manifest store."""
    position, found = 2, []
    while jpeg[position + 1] != 0xDA:
        length = 2 + int.from_bytes(jpeg[position + 2 : position + 4], "big")
        if jpeg[position + 1] == 0xEB:
            found.append((position, length))
        position += length
    return found


def _provenance_cases(folder: Path, face: np.ndarray, add) -> None:
    """Broken provenance: the pixels still decode (except where said), and the panel says what is wrong."""
    signed = sign(encoded(face, "JPEG", quality=90), "image/jpeg", make_credentials())
    segments = _app11_segments(signed)
    assert len(segments) > 1, "the manifest store (with its thumbnail) spans several APP11 segments"
    start, length = segments[0]
    kept_first = signed[: start + length] + signed[sum(segments[-1]) :]  # the store's first part only
    add("truncated C2PA manifest", _write(folder / "manifest_truncated.jpg", kept_first), "image", faces=1,
        provenance="present but could not be read")
    garbled = bytearray(signed)
    garbled[start + 200 : start + 2200] = bytes(i * 7 & 0xFF for i in range(2000))  # inside the store, segment lengths kept
    add("malformed C2PA manifest", _write(folder / "manifest_malformed.jpg", bytes(garbled)), "image", faces=1,
        provenance="present but could not be read")
    add("C2PA manifest, pixels cut off", _write(folder / "manifest_pixels_cut.jpg", signed[: len(signed) * 7 // 10]), None,
        "truncated or corrupt", content="image", provenance="changed after signing")
    plain_png = encoded(face, "PNG")
    oversized = png_chunk(b"tEXt", b"parameters\x00" + b"Steps: 20, " * 200_000)  # 2.1 MB
    add("PNG text chunk over the size limit", _write(folder / "text_oversized.png", with_png_chunk(plain_png, oversized)), "image",
        faces=1, provenance="over the 1 MB limit: not read")
    inflating = png_chunk(b"zTXt", b"workflow\x00\x00" + zlib.compress(b"{}" * 2_000_000, 9))  # 4 MB from a few kB
    add("PNG text chunk inflating past the limit", _write(folder / "text_inflating.png", with_png_chunk(plain_png, inflating)), None,
        "cannot read the image|neither a supported image nor a video", provenance="inflates to over 1 MB: not read")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
