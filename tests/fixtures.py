"""Test inputs the tests make themselves: nothing binary is committed and nothing comes from ../shared."""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from detectors.media import encode_video


def astronaut() -> np.ndarray:
    """A real face photo (NASA, public domain) shipped inside scikit-image."""
    from skimage import data

    return data.astronaut()


def write_video(path: Path, frames: int = 30, fps: int = 10, size: tuple[int, int] = (96, 64), codec: str = "mpeg4",
                picture: np.ndarray | None = None) -> Path:
    """A clip whose frame i has mean brightness ~ 6 * i (so a decoded frame tells its index), or ``picture``."""
    width, height = size

    def frame(i: int) -> np.ndarray:
        if picture is None:
            return np.full((height, width, 3), min(6 * i, 255), dtype=np.uint8)
        return np.asarray(Image.fromarray(picture).resize((width, height)))

    return encode_video(path, (frame(i) for i in range(frames)), fps, codec)


def write_audio_only(path: Path, seconds: float = 0.5) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = int(16000 * seconds)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), dtype=np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png_bomb(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb's calling card)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b""))
    return path


ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    home: Path
    temp: Path
    log: Path

    def peak_rss_mb(self) -> float:
        """The server process's high-water mark of resident memory (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def launch_app(folder: Path, args=(), timeout: float = 240.0, env: dict[str, str] | None = None) -> RunningApp:
    """``python app.py`` on a free loopback port, with its own HOME and TMPDIR and ``env`` added to the environment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home, temp = folder / "home", folder / "tmp"
    home.mkdir()
    temp.mkdir()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HOME": str(home), "TMPDIR": str(temp), **(env or {})}
    env.pop("GRADIO_TEMP_DIR", None)
    env.pop("GRADIO_EXAMPLES_CACHE", None)
    log = folder / "app.log"
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *args], cwd=ROOT, env=env,
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read(1)
            return RunningApp(url, process, home, temp, log)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"app did not start: {log.read_text()[-3000:]}")
            time.sleep(1)


TILE = 256  # side of one face tile in the multi-face pictures


def face_tiles(cropper=None) -> tuple[np.ndarray, np.ndarray]:
    """(real, fake): the public-domain portrait's face with room around it, and the same square of the
    self-blended example made from it (a forged face), both ``TILE`` px."""
    from detectors.examples import portrait, self_blended
    from detectors.faces import FaceCropper, square_region, crop_square

    cropper = cropper or FaceCropper()
    real = portrait()
    fake = self_blended(real, cropper)
    face = max(cropper.detect(real), key=lambda f: f.score)
    region = square_region(face.box, 2.0)  # MTCNN needs context around a face to find it
    return crop_square(real, region, TILE), crop_square(fake, region, TILE)


def side_by_side(tiles: list[np.ndarray], gap: int = 14) -> np.ndarray:
    """Tiles pasted left to right on a grey canvas with ``gap`` px around each (2 tiles: 540 x 284)."""
    height = max(t.shape[0] for t in tiles) + 2 * gap
    width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) + 1)
    canvas = np.full((height, width, 3), 128, np.uint8)
    x = gap
    for tile in tiles:
        canvas[gap : gap + tile.shape[0], x : x + tile.shape[1]] = tile
        x += tile.shape[1] + gap
    return canvas


def multi_face_picture(count: int, fake_at: int, cropper=None) -> np.ndarray:
    """``count`` faces side by side: the forged face at position ``fake_at``, the real one everywhere else."""
    real, fake = face_tiles(cropper)
    return side_by_side([fake if i == fake_at else real for i in range(count)])


def _display_matrix(clockwise_degrees: float) -> list[int]:
    """FFmpeg's av_display_rotation_set: the MP4 track matrix of a clockwise rotation (16.16 / 2.30 fixed point)."""
    import math

    radians = -clockwise_degrees * math.pi / 180
    c, s = math.cos(radians), math.sin(radians)
    fixed = lambda x: int(round(x * (1 << 16)))  # noqa: E731
    return [fixed(c), fixed(-s), 0, fixed(s), fixed(c), 0, 0, 0, 1 << 30]


def write_rotated_clip(path: Path, picture: np.ndarray, rotation: int, frames: int = 16, fps: int = 8) -> Path:
    """An H.264 MP4 as phones write them: frames stored on their side and a display matrix that turns them
    upright. ``rotation`` is what ffprobe and PyAV report (counter-clockwise degrees: a phone held upright
    records -90); players, Chromium included, turn the frames by it, so the clip shows ``picture`` upright."""
    stored = np.ascontiguousarray(np.rot90(picture, k=-rotation // 90))
    encode_video(path, (stored for _ in range(frames)), fps)
    data = bytearray(path.read_bytes())
    box = data.find(b"tkhd")
    version = data[box + 4]
    # tkhd after its type: version and flags (4), times and ids (20 or 32), reserved (8), layer, group,
    # volume, reserved (8), then the 3 x 3 matrix.
    offset = box + 4 + 4 + (20 if version == 0 else 32) + 8 + 8
    struct.pack_into(">9i", data, offset, *_display_matrix(-rotation))
    path.write_bytes(bytes(data))
    return path
