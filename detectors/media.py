"""Reading what users upload: images with PIL, videos with PyAV, every limit checked, one error type.

Everything that enters the project (app, CLI, training) goes through :func:`load_image`,
:func:`sample_frames` or :func:`read_media`. Content decides the kind, not the file extension: a PNG named
``.mp4`` is read as an image. Unsupported, corrupt or oversized input raises :class:`InputError`, whose
message is meant to be shown to a person as it is.
"""
from __future__ import annotations

import bisect
import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv"})


def expand_inputs(paths: Iterable[str]) -> list[Path]:
    """Files as given; folders recursively (sorted), keeping files whose suffix says image or video."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(
                    Path(root) / name
                    for name in sorted(files)
                    if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
                )
        else:
            found.append(path)
    return found


def printable(text: str) -> str:
    """``text`` safe to write as UTF-8: bytes of a non-UTF-8 file name (which Python keeps as lone surrogates)
    are spelled ``\\xNN`` instead of crashing whatever writes the message or record."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class InputError(ValueError):
    """Input the project cannot read; the message says why in words a person can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))


@dataclass(frozen=True)
class Limits:
    """What one upload may be. Documented in the README; the app and the CLI use the same values."""

    max_file_bytes: int = 512 * 2**20
    max_image_pixels: int = 50_000_000
    max_video_seconds: float = 20 * 60.0
    max_sampled_frames: int = 256


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, eq=False)
class VideoFrame:
    index: int  # position among the sampled frames
    timestamp: float  # seconds from the start of the stream
    image: np.ndarray  # H x W x 3 uint8 RGB


@dataclass(frozen=True)
class VideoInfo:
    duration: float
    fps: float | None
    width: int
    height: int
    codec: str


MediaKind = Literal["image", "video"]


def _describe_size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n} bytes"


def _check_file(path: Path, limits: Limits) -> None:
    if not path.exists():
        raise InputError(f"{path.name}: file not found")
    if not path.is_file():
        raise InputError(f"{path.name}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path.name}: the file is empty (0 bytes)")
    if size > limits.max_file_bytes:
        raise InputError(
            f"{path.name}: the file is {_describe_size(size)}, over the limit of {_describe_size(limits.max_file_bytes)}"
        )


def _open_image(path: Path, limits: Limits, data: bytes | None = None) -> Image.Image:
    """Open (header only) and check the declared size before any pixel is decoded; ``data``: the file's bytes,
    held in memory (``path`` then only names it in messages)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path if data is None else io.BytesIO(data))
    except Image.DecompressionBombError:
        raise InputError(
            f"{path.name}: the image declares far more pixels than the limit of "
            f"{limits.max_image_pixels / 1e6:.0f} megapixels (possible decompression bomb)"
        ) from None
    except UnidentifiedImageError:
        raise InputError(f"{path.name}: not a recognised image format") from None
    except (OSError, ValueError) as error:  # ValueError: PIL's own limits, e.g. a PNG text chunk inflating past 1 MB
        raise InputError(f"{path.name}: cannot read the image ({error})") from None
    width, height = image.size
    if width * height > limits.max_image_pixels:
        image.close()
        raise InputError(
            f"{path.name}: the image is {width}x{height} ({width * height / 1e6:.0f} megapixels), over the "
            f"limit of {limits.max_image_pixels / 1e6:.0f} megapixels"
        )
    if width < 1 or height < 1:
        image.close()
        raise InputError(f"{path.name}: the image has no pixels ({width}x{height})")
    return image


def _high_bit_depth_to_uint8(image: Image.Image) -> np.ndarray:
    """16-bit, 32-bit integer and float greyscale to 8 bits by range, not by clipping (PIL's convert clips)."""
    values = np.asarray(image).astype(np.float64)
    if image.mode.startswith("I;16") or values.max(initial=0) > 255:
        top = 65535.0 if values.max(initial=0) <= 65535 else values.max()
    elif image.mode == "F" and values.max(initial=0) <= 1.0:
        top = 1.0
    else:
        top = 255.0
    return np.clip(np.rint(values / top * 255.0), 0, 255).astype(np.uint8)


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any PIL mode to an H x W x 3 uint8 RGB array; transparency is composited over white."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        grey = _high_bit_depth_to_uint8(image)
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    # Already RGB: no convert (it would copy a phone photo's 36 MB once more before numpy copies it again).
    return np.ascontiguousarray(np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8))


def load_image(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode an image file to H x W x 3 uint8 RGB: first frame of animations, EXIF orientation applied."""
    return Picture(path, limits).decoded(1)[0]


JPEG_REDUCTIONS = (8, 4, 2, 1)  # what a JPEG decoder can do in the DCT itself (PIL's draft mode)


class Picture:
    """An image file whose header has been checked, decoded at the size a step needs.

    A 12-megapixel phone photo takes a few hundred milliseconds to decode in full; its JPEG decoder can also
    produce 1/2, 1/4 or 1/8 of the size directly from the DCT coefficients, several times faster. Face search
    needs about 640 px and a 256 px face crop needs its face at 256 px, so neither needs every pixel. Other
    formats always decode in full. Every size is of the upright picture (EXIF orientation applied).

    Every picture the app scores is one: an upload, a re-encoded copy (:meth:`from_bytes`, e.g. the robustness
    probe's JPEG save) or pixels already decoded (:meth:`from_pixels`, e.g. a video frame), so that the same
    file is always decoded the same way.
    """

    def __init__(self, path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS, data: bytes | None = None) -> None:
        self.path, self.limits, self._data = Path(path), limits, data
        if data is None:
            _check_file(self.path, limits)
        elif len(data) > limits.max_file_bytes:
            raise InputError(f"{self.path.name}: {_describe_size(len(data))}, over the limit of {_describe_size(limits.max_file_bytes)}")
        with _open_image(self.path, limits, data) as image:
            self.is_jpeg = image.format == "JPEG"
            try:
                turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientations that swap the sides
            except Exception:  # a broken EXIF block (or a truncated file, which decoding reports): no turn
                turned = False
            self.size = image.size[::-1] if turned else image.size  # (width, height), upright
        self._decoded: dict[int, np.ndarray] = {}

    @classmethod
    def from_bytes(cls, data: bytes, name: str, limits: Limits = DEFAULT_LIMITS) -> "Picture":
        """A picture file held in memory, decoded exactly as the same file on disk would be."""
        return cls(name, limits, data)

    @classmethod
    def from_pixels(cls, pixels: np.ndarray, name: str = "pixels") -> "Picture":
        """Pixels already decoded (H x W x 3 uint8 RGB): as a lossless file of them would be, never reduced."""
        picture = cls.__new__(cls)
        picture.path, picture.limits, picture._data = Path(name), DEFAULT_LIMITS, None
        picture.is_jpeg, picture.size = False, (pixels.shape[1], pixels.shape[0])
        picture._decoded = {1: pixels}
        return picture

    def reduction_for(self, long_side: int) -> int:
        """The largest reduction that keeps the long side at least ``long_side`` (1 when not a JPEG)."""
        if not self.is_jpeg:
            return 1
        return next((k for k in JPEG_REDUCTIONS if max(self.size) / k >= long_side), 1)

    def decoded(self, reduction: int = 1) -> tuple[np.ndarray, float]:
        """(pixels, full-size pixels per pixel): the picture at 1/``reduction`` of its size, or larger where the
        decoder cannot reduce, or where a larger copy is already decoded (the factor says by how much it was):
        cutting a face from the copy face search used beats decoding the file again."""
        larger = [k for k in self._decoded if k <= reduction]
        if not larger:
            self._decoded[reduction] = self._decode(reduction)
        pixels = self._decoded[max(larger) if larger else reduction]
        return pixels, max(self.size) / max(pixels.shape[:2])

    def _decode(self, reduction: int) -> np.ndarray:
        image = _open_image(self.path, self.limits, self._data)
        with image:
            try:
                image.seek(0)
                if reduction > 1 and self.is_jpeg:
                    image.draft("RGB", (max(1, image.width // reduction), max(1, image.height // reduction)))
                image.load()
            except (OSError, ValueError, SyntaxError, EOFError) as error:
                raise InputError(f"{self.path.name}: the image is truncated or corrupt ({error})") from None
            try:
                ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of an upright picture
            except Exception:  # a broken EXIF block must not cost the picture: keep it unrotated
                pass
            return to_rgb_array(image)


def _open_video(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as error:
        raise InputError(f"{path.name}: not a readable video ({error.strerror or type(error).__name__})") from None


def _video_stream(container: av.container.InputContainer, name: str) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise InputError(f"{name}: the file has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None or stream.codec_context.width <= 0:
        raise InputError(f"{name}: the video stream cannot be decoded")
    return stream


def _stream_span(container, stream, name: str, limits: Limits) -> tuple[float, float]:
    """(start, duration) in seconds; from the header when it says, else by reading packet timestamps only."""
    base = stream.time_base
    start = float(stream.start_time * base) if stream.start_time is not None and base else 0.0
    if stream.duration and base:
        return start, float(stream.duration * base)
    if container.duration:
        return start, container.duration / av.time_base
    last = None
    try:
        for packet in container.demux(stream):
            if packet.pts is not None:
                last = float(packet.pts * base)
                if last - start > limits.max_video_seconds:
                    break
    except av.error.FFmpegError:
        pass
    if last is None:
        raise InputError(f"{name}: the video has no decodable frames")
    container.seek(0, stream=stream)
    return start, max(last - start, 0.0)


def probe_video(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> VideoInfo:
    path = Path(path)
    _check_file(path, limits)
    with _open_video(path) as container:
        stream = _video_stream(container, path.name)
        _, duration = _stream_span(container, stream, path.name, limits)
        fps = float(stream.average_rate) if stream.average_rate else None
        return VideoInfo(duration, fps, stream.codec_context.width, stream.codec_context.height, stream.codec_context.name)


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """RGB array with the stream's display rotation applied (phone videos store it as side data)."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = int(round(getattr(frame, "rotation", 0) or 0)) // 90 % 4
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def sample_frames(
    path: str | os.PathLike, count: int = 16, limits: Limits = DEFAULT_LIMITS
) -> list[VideoFrame]:
    """``count`` frames spread evenly over the whole clip (the middle of ``count`` equal slices), with timestamps.

    Frames are decoded one at a time, seeking across long gaps; only the sampled frames are kept in memory.
    A clip with fewer frames than ``count`` yields each of its frames once.
    """
    path = Path(path)
    _check_file(path, limits)
    if count < 1:
        raise InputError(f"the number of frames to sample must be at least 1 (got {count})")
    if count > limits.max_sampled_frames:
        raise InputError(f"at most {limits.max_sampled_frames} frames can be sampled (asked for {count})")
    with _open_video(path) as container:
        stream = _video_stream(container, path.name)
        stream.thread_type = "AUTO"
        start, duration = _stream_span(container, stream, path.name, limits)
        if duration > limits.max_video_seconds:
            raise InputError(
                f"{path.name}: the video lasts {duration / 60:.1f} min, over the limit of "
                f"{limits.max_video_seconds / 60:.0f} min"
            )
        targets = [start + duration * (i + 0.5) / count for i in range(count)]
        return _decode_at(container, stream, targets, path.name)


def _keyframe_times(container, stream) -> list[float]:
    """Timestamps of the keyframes, from packet headers only (no decoding), so we know where a seek lands."""
    times = []
    try:
        for packet in container.demux(stream):
            if packet.is_keyframe and packet.pts is not None:
                times.append(float(packet.pts * stream.time_base))
    except av.error.FFmpegError:
        pass  # a truncated tail: the keyframes before it still help
    container.seek(0, stream=stream)
    return sorted(times)


def _decode_at(container, stream, targets: list[float], name: str) -> list[VideoFrame]:
    """Decode forward through the clip, seeking only when the keyframe before the next target lies ahead of
    where the decoder already is (seeking back to a keyframe we already passed would decode it twice)."""
    keyframes = _keyframe_times(container, stream)
    half_frame = 0.5 / float(stream.average_rate) if stream.average_rate else 0.0
    frames: list[VideoFrame] = []
    decoded = container.decode(stream)
    position = -math.inf  # timestamp of the last decoded frame
    try:
        for target in targets:
            landing = keyframes[bisect.bisect_right(keyframes, target) - 1] if keyframes and keyframes[0] <= target else None
            if landing is not None and landing > position + half_frame:
                container.seek(int(target / stream.time_base), stream=stream, backward=True)
                decoded = container.decode(stream)
            for frame in decoded:
                if frame.time is None:
                    continue
                position = frame.time
                if frame.time + half_frame >= target:
                    frames.append(VideoFrame(len(frames), float(frame.time), _upright(frame)))
                    break
            else:
                break  # end of stream: no later target can be reached either
    except av.error.FFmpegError as error:
        if not frames:
            raise InputError(f"{name}: the video is corrupt or truncated ({error.strerror or type(error).__name__})") from None
    if not frames:
        raise InputError(f"{name}: no frame of the video could be decoded")
    return frames


# (container suffix, decoder) pairs Chromium, Firefox and Safari all play; anything else gets a preview copy.
_AV1 = ("av1", "libdav1d", "libaom-av1")
BROWSER_PLAYABLE = {(".mp4", "h264"), (".m4v", "h264"), (".mp4", "vp9"), (".webm", "vp8"), (".webm", "vp9"),
                    *((suffix, name) for suffix in (".mp4", ".webm") for name in _AV1)}


def browser_playable(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> bool:
    """Whether a browser can show the clip as it is (H.264 MP4, VP8/VP9/AV1 WebM ...; not AVI, HEVC, MPEG-4 Part 2)."""
    return (Path(path).suffix.lower(), probe_video(path, limits).codec) in BROWSER_PLAYABLE


def browser_preview(path: str | os.PathLike, target: str | os.PathLike, seconds: float = 30.0, max_side: int = 480,
                    fps: int = 15, limits: Limits = DEFAULT_LIMITS) -> Path:
    """An H.264 MP4 of the first ``seconds`` of a clip (at most ``max_side`` px, ``fps`` frames per second,
    display rotation applied): something every browser plays, for clips it cannot. Only for showing; the
    analysis always reads the original."""
    path = Path(path)
    _check_file(path, limits)

    def frames():
        with _open_video(path) as container:
            stream = _video_stream(container, path.name)
            start, shape, next_time = None, None, 0.0
            try:
                for frame in container.decode(stream):
                    if frame.time is None:
                        continue
                    start = frame.time if start is None else start
                    if frame.time - start > seconds:
                        break
                    if frame.time - start + 1e-6 < next_time:
                        continue
                    next_time += 1.0 / fps
                    rgb = _upright(frame)
                    if shape is None:  # even sides (H.264 with 4:2:0 chroma needs them), long side <= max_side
                        scale = min(1.0, max_side / max(rgb.shape[:2]))
                        shape = tuple(max(2, int(d * scale) // 2 * 2) for d in rgb.shape[1::-1])
                    yield np.asarray(Image.fromarray(rgb).resize(shape, Image.Resampling.BILINEAR))
            except av.error.FFmpegError:
                return  # a truncated tail: the frames before it make the preview

    return encode_video(target, frames(), fps)


def detect_kind(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> MediaKind:
    """'image' or 'video' by content (PIL's and FFmpeg's own probing), whatever the extension says."""
    path = Path(path)
    _check_file(path, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.open(path).close()
        return "image"
    except Image.DecompressionBombError:
        return "image"  # load_image gives the specific message
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        pass
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            # FFmpeg also "opens" stills (image2, *_pipe) and text (tty): those are not videos, and an image
            # PIL could not read is not one we can score.
            still = container.format.name in ("image2", "tty") or container.format.name.endswith("_pipe")
            if container.streams.video and not still and container.streams.video[0].codec_context.width > 0:
                return "video"
            if container.streams.audio:
                raise InputError(f"{path.name}: an audio-only file; upload an image or a video")
    except av.error.FFmpegError:
        pass
    if _looks_like_video(path):
        raise InputError(f"{path.name}: the video file is truncated or corrupt (its header says video, but it cannot be decoded)")
    raise InputError(f"{path.name}: neither a supported image nor a video (JPEG, PNG, WebP, BMP, GIF, TIFF, MP4, MOV, WebM, ...)")


# Container signatures: ISO BMFF (MP4, MOV, 3GP) has "ftyp" at byte 4; Matroska / WebM start with EBML; AVI is RIFF.
def _looks_like_video(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(12)
    return head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3" or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")


@dataclass(frozen=True, eq=False)
class Media:
    kind: MediaKind
    image: np.ndarray | None = None
    frames: tuple[VideoFrame, ...] = ()


def read_media(path: str | os.PathLike, frames: int = 16, limits: Limits = DEFAULT_LIMITS) -> Media:
    """Decode any supported file: the image itself, or ``frames`` frames sampled from the video."""
    kind = detect_kind(path, limits)
    if kind == "image":
        return Media("image", image=load_image(path, limits))
    return Media("video", frames=tuple(sample_frames(path, frames, limits)))


def encode_video(path: str | os.PathLike, frames, fps: int, codec: str = "libx264") -> Path:
    """Write H x W x 3 uint8 ``frames`` (any iterable, all one size) as a clip at ``fps``: the one encoder the
    examples, the benchmark and the tests use."""
    from fractions import Fraction

    with av.open(str(path), mode="w") as container:
        stream = None
        for i, rgb in enumerate(frames):
            if stream is None:
                stream = container.add_stream(codec, rate=fps)
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt, stream.time_base = "yuv420p", Fraction(1, fps)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return Path(path)
