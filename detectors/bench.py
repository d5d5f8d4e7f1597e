"""Timing: median and p95 over repeated runs after warm-up, with a ResNet-50 reference from the same run.

Absolute seconds depend on the machine and on what else runs on it; the ratio to one torchvision ResNet-50
forward (224 px, batch 1) measured in the same process compares across machines.

:func:`pipeline_timings` times what a user waits for, stage by stage, with the shipped checkpoints: decoding,
face detection, cropping, each detector, the ensemble, spectra, the error map, plot building, then one-face
image end to end (decode + detection + crop + all detectors + ensemble, without plots) and video throughput on
a generated 10 s clip (decode and seek included). :func:`peak_rss_mb` is the process's high-water mark.
"""
from __future__ import annotations

import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import models
from .machine import cpu_name, machine_description  # noqa: F401 (cpu_name: part of bench's interface)


@dataclass
class Timing:
    name: str
    median_s: float
    p95_s: float
    runs: int
    ratio_to_reference: float | None = None
    samples: tuple[float, ...] = field(default=(), repr=False)  # seconds of each run (not reported)

    @classmethod
    def of(cls, name: str, samples: Sequence[float], ratio_to_reference: float | None = None) -> "Timing":
        """Median and p95 of ``samples`` (seconds of each run)."""
        samples = tuple(samples)
        return cls(name, float(np.median(samples)), float(np.percentile(samples, 95)), len(samples), ratio_to_reference, samples)

    def __add__(self, other: "Timing") -> "Timing":
        """One timing from the runs of both (the reference measured before and after the rest)."""
        return Timing.of(self.name, self.samples + other.samples)

    def row(self) -> str:
        ratio = "" if self.ratio_to_reference is None else f"{self.ratio_to_reference:.2f}"
        return f"| {self.name} | {self.median_s * 1000:.1f} | {self.p95_s * 1000:.1f} | {ratio} |"


def measure(name: str, run: Callable[[], object], repeats: int = 10, warmup: int = 3, budget_s: float = 60.0) -> Timing:
    """Time ``run`` ``repeats`` times after ``warmup`` calls, stopping early (at least 3 runs) past ``budget_s``."""
    for _ in range(warmup):
        run()
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < repeats and (len(samples) < 3 or time.perf_counter() - started < budget_s):
        begin = time.perf_counter()
        run()
        samples.append(time.perf_counter() - begin)
    return Timing.of(name, samples)


def paired(name: str, run: Callable[[], object], reference: Callable[[], object], repeats: int = 10, warmup: int = 3) -> Timing:
    """``run`` timed in turns with ``reference`` (one ResNet-50 forward), ``repeats`` pairs: its ratio is the median
    over pairs of run / reference, so a machine whose speed drifts within the run (a shared one does, by half)
    moves both alike."""
    for _ in range(warmup):
        run()
        reference()
    ratios, samples = [], []
    for _ in range(repeats):
        begin = time.perf_counter()
        reference()
        middle = time.perf_counter()
        run()
        end = time.perf_counter()
        samples.append(end - middle)
        ratios.append((end - middle) / (middle - begin))
    return Timing.of(name, samples, ratio_to_reference=float(np.median(ratios)))


def _synchronised(device: torch.device, fn: Callable[[], object]) -> Callable[[], object]:
    def run():
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    return run


def resnet50_forward(device: torch.device) -> Callable[[], object]:
    """One torchvision ResNet-50 forward, 224 px, batch 1, random weights (the reference unit)."""
    from torchvision.models import resnet50

    net = resnet50(weights=None).eval().to(device)
    x = torch.randn(1, 3, 224, 224, device=device)

    def forward():
        with torch.inference_mode():
            return net(x)

    return _synchronised(device, forward)


def resnet50_reference(device: torch.device) -> Timing:
    return measure("reference: torchvision ResNet-50, 224 px, batch 1", resnet50_forward(device))


def model_latency(
    device: torch.device, variants: Sequence[str] = ("small", "paper"), batches: Sequence[int] = (1, 16), repeats: int = 5
) -> list[Timing]:
    """Forward latency of every architecture and variant at its input size (random weights: speed only)."""
    timings = []
    for name in models.names():
        for variant in variants:
            net = models.create(name, variant).eval().to(device)
            size = net.config.input_size
            for batch in batches:
                x = torch.randn(batch, 3, size, size, device=device)
                with torch.inference_mode():
                    timings.append(
                        measure(f"{name}/{variant} {size} px, batch {batch}", _synchronised(device, lambda net=net, x=x: net(x)), repeats=repeats, warmup=1)
                    )
    return timings


TRAINING_MODES = {  # name -> (channels-last input and weights, bf16 autocast)
    "fp32": (False, False),
    "channels-last": (True, False),
    "bf16 autocast": (False, True),
    "bf16 autocast + channels-last": (True, True),
}


def training_steps(device: torch.device, variants: Sequence[str] = ("small",), batch: int = 32, repeats: int = 5) -> list[Timing]:
    """One optimiser step (forward, loss, backward, AdamW) of every architecture under each of
    :data:`TRAINING_MODES`, at batch ``batch`` and the variant's input size (random data: speed only). bf16
    autocast gains only where the processor has bf16 arithmetic (AVX-512 BF16 / AMX on x86, a GPU)."""
    import torch.nn.functional as F

    timings = []
    for name in models.names():
        for variant in variants:
            for mode, (channels_last, bf16) in TRAINING_MODES.items():
                torch.manual_seed(0)
                net = models.create(name, variant).to(device).train()
                size = net.config.input_size
                x = torch.randn(batch, 3, size, size, device=device)
                if channels_last:
                    net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
                y = (torch.arange(batch, device=device) % 2).float()
                optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)

                def step(net=net, x=x, y=y, optimizer=optimizer, bf16=bf16):
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                        loss = F.binary_cross_entropy_with_logits(net(x).float(), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()

                timings.append(measure(f"train step: {name}/{variant} {size} px, batch {batch}, {mode}",
                                       _synchronised(device, step), repeats=repeats, warmup=1))
    return timings


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def bench_clip(path, seconds: float = 10.0, fps: int = 25, size: tuple[int, int] = (640, 360)):
    """A 10 s H.264 clip of the astronaut portrait drifting slowly across the frame (one face per frame)."""

    from PIL import Image

    from .examples import portrait
    from .media import encode_video

    face = Image.fromarray(portrait()).resize((300, 300))
    width, _ = size
    count = int(seconds * fps)

    def frame(i: int) -> np.ndarray:
        canvas = Image.new("RGB", size, (40, 60, 80))
        canvas.paste(face, (int(20 + (width - 340) * i / count), 30))
        return np.asarray(canvas)

    return encode_video(path, (frame(i) for i in range(count)), fps)


def pipeline_timings(device: torch.device, repeats: int = 10, video_frames: int = 16, workers: int = 0,
                     clip_seconds: float = 10.0, folder_count: int = 200,
                     portrait_files: Sequence[Path] = ()) -> tuple[list[Timing], dict]:
    """Per-stage and end-to-end timings of the app's path with the shipped checkpoints (see module docstring)."""
    from PIL import Image

    from . import explain, registry, views
    from .examples import portrait
    from .media import Picture, load_image, sample_frames
    from .pipeline import Analyzer, detector_workers
    from .preprocess import CROP_SIZE
    from .spectrum import face_side, load_reference_bands, log_spectrum, radial_profile

    loaded = registry.load_all(device=device)
    workers = workers or detector_workers(loaded.detectors)
    analyzer = Analyzer(loaded.detectors, ensemble=registry.load_ensemble(loaded.detectors), workers=workers)
    folder = Path(tempfile.mkdtemp(prefix="deepfake-bench-"))
    picture = folder / "portrait.jpg"
    Image.fromarray(portrait()).save(picture, quality=90)  # 512 x 512, one face
    image = load_image(picture)
    faces = analyzer.cropper.detect(image)
    if len(faces) != 1:
        raise RuntimeError(f"the benchmark picture should hold one face, found {len(faces)}")
    crop = analyzer.cropper.crop(image, faces[0], CROP_SIZE)
    sync = lambda fn: _synchronised(device, fn)  # noqa: E731
    timings = [
        measure("decode: 512 x 512 JPEG", lambda: load_image(picture), repeats),
        measure("face search: MTCNN (detectors.face_search), 512 x 512", sync(lambda: analyzer.cropper.detect(image)), repeats),
        measure("face search: facenet-pytorch's MTCNN.detect, the search it replaced, 512 x 512",
                sync(facenet_search(device, analyzer.cropper.min_face_size, image)), repeats),
        measure("cropping: one face to 256 px", lambda: analyzer.cropper.crop(image, faces[0], CROP_SIZE), repeats),
    ]
    for detector in analyzer.detectors:
        timings.append(measure(f"detector: {detector.display_name} ({detector.config.variant}, {detector.config.input_size} px)",
                               sync(lambda d=detector: d.logits([crop.image])), repeats))
    timings.append(measure("all detectors + ensemble, one face", sync(lambda: analyzer.score_crops([crop])), repeats))
    timings.append(measure("spectra: 2D FFT + radial profile", lambda: radial_profile(log_spectrum(crop.image)), repeats))
    resynthesis = next((d for d in analyzer.detectors if hasattr(d.model, "error_heatmap")), None)  # the model that re-creates faces
    if resynthesis is not None:
        timings.append(measure("error map: re-synthesis |SR(x/4) - x|", sync(lambda: explain.reconstruction_error(resynthesis, [crop.image])), repeats))
    bands = load_reference_bands()
    spectrum, band = log_spectrum(crop.image), bands.for_face(face_side(crop)) if bands else None
    error = explain.reconstruction_error(resynthesis, [crop.image])[0] if resynthesis is not None else None

    def plots():
        views.spectrum_heatmap(spectrum).to_json()
        views.radial_profile_plot(spectrum, band).to_json()
        if error is not None:
            views.error_map_figure(crop.image, error.error, error.summary()).to_json()

    timings.append(measure("plot building: FFT, profile, error map (to JSON)", plots, repeats))
    reference_forward = resnet50_forward(device)
    timings.append(paired("one-face image end to end, in turns with ResNet-50 (ratio: median of the pairs' ratios)",
                          sync(lambda: analyzer.analyze_picture(Picture(picture))), reference_forward, repeats * 2))
    end_to_end = measure(f"one-face image end to end (decode, detect, crop, {len(analyzer.detectors)} detectors, ensemble; no plots)",
                         sync(lambda: analyzer.analyze_picture(Picture(picture))), repeats)
    timings.append(end_to_end)

    photo = large_photo(folder / "photo_12mp.jpg")
    timings.append(measure(f"12-megapixel photo end to end (decode, detect, crop, {len(analyzer.detectors)} detectors, ensemble; no plots)",
                           sync(lambda: analyzer.analyze_picture(Picture(photo))), repeats))
    timings += provenance_timings(photo, folder, repeats)
    timings.append(folder_scan(analyzer, portrait_files or portraits_folder(folder / "portraits", folder_count)))

    clip = bench_clip(folder / "clip.mp4", seconds=clip_seconds)
    def video():
        frames = sample_frames(clip, video_frames)
        analyzer.analyze_frames(frames)

    video_timing = measure(f"video: {clip_seconds:g} s 640x360 H.264, {video_frames} frames sampled (decode, detect, score)", sync(video), max(3, repeats // 3), warmup=1)
    per_frame = Timing(f"video: per sampled frame ({video_frames} frames)", video_timing.median_s / video_frames,
                       video_timing.p95_s / video_frames, video_timing.runs)
    timings += [video_timing, per_frame]
    extra = {
        "detectors": [f"{d.name}/{d.config.variant} from {d.source}" for d in analyzer.detectors],
        "video_frames_per_second": round(video_frames / video_timing.median_s, 2),
        "video_frames": video_frames,
        "detector_workers": workers,
    }
    return timings, extra


def facenet_search(device: torch.device, min_face_size: int, image: np.ndarray) -> Callable[[], object]:
    """facenet-pytorch's own MTCNN on ``image`` with the cropper's settings: what the face search replaced."""
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, min_face_size=min_face_size, select_largest=False, device=device)
    return lambda: mtcnn.detect(image, landmarks=True)


def face_search_agreement(paths: Sequence[Path], frames: int = 16, min_face_size: int = 40) -> dict:
    """The face search against facenet-pytorch's MTCNN (the search it replaced) on the same pictures: pictures and
    frames with a face, faces, faces matched (IoU >= 0.5 with one of ours) and their IoU, and each one's seconds
    per picture. Pictures larger than the cropper's search size are searched, by both, on the same reduced copy."""
    from facenet_pytorch import MTCNN

    from ._torchvision_compat import _iou as box_iou
    from .faces import FaceCropper
    from .media import InputError, Picture, detect_kind, sample_frames

    cropper = FaceCropper(min_face_size=min_face_size)
    reference = MTCNN(keep_all=True, min_face_size=min_face_size, select_largest=False)
    per_folder: dict[str, dict] = {}
    for path in paths:
        try:
            if detect_kind(path) == "image":
                picture = Picture(path)
                images = [picture.decoded(picture.reduction_for(cropper.max_detect_side))[0]]
            else:
                images = [frame.image for frame in sample_frames(path, frames)]
        except InputError:
            continue
        tally = per_folder.setdefault(str(Path(path).parent), {"pictures": 0, "with a face: facenet-pytorch": 0, "with a face: ours": 0,
                                                                "faces: facenet-pytorch": 0, "faces: ours": 0, "matched": 0, "ious": [],
                                                                "seconds: facenet-pytorch": 0.0, "seconds: ours": 0.0})
        for image in images:
            copy, scale = cropper._searchable(image)
            started = time.perf_counter()
            boxes, _ = reference.detect(copy)
            middle = time.perf_counter()
            ours = cropper.search(copy[None], max(20, round(min_face_size * scale)))[0]
            tally["seconds: facenet-pytorch"] += middle - started
            tally["seconds: ours"] += time.perf_counter() - middle
            theirs = [] if boxes is None else np.asarray(boxes, dtype=np.float64)
            tally["pictures"] += 1
            tally["with a face: facenet-pytorch"] += len(theirs) > 0
            tally["with a face: ours"] += len(ours.boxes) > 0
            tally["faces: facenet-pytorch"] += len(theirs)
            tally["faces: ours"] += len(ours.boxes)
            if len(theirs) and len(ours.boxes):
                best = box_iou(torch.as_tensor(theirs)[:, None], torch.as_tensor(ours.boxes)[None]).max(1).values.numpy()
                tally["matched"] += int((best >= 0.5).sum())
                tally["ious"] += best[best >= 0.5].tolist()
    for tally in per_folder.values():
        ious = np.array(tally.pop("ious") or [np.nan])
        tally["IoU: min"], tally["IoU: 1st percentile"] = round(float(np.min(ious)), 4), round(float(np.percentile(ious, 1)), 4)
        for key in ("seconds: facenet-pytorch", "seconds: ours"):
            tally[key.replace("seconds", "ms per picture")] = round(1000 * tally.pop(key) / max(1, tally["pictures"]), 1)
    return per_folder


def large_photo(path: Path, size: tuple[int, int] = (4000, 3000), face_side: int = 1800) -> Path:
    """A 12-megapixel JPEG (phone camera size and quality) with the portrait, one face, in its middle."""
    from PIL import Image

    from .examples import portrait

    canvas = Image.new("RGB", size, (70, 90, 110))
    canvas.paste(Image.fromarray(portrait()).resize((face_side, face_side), Image.Resampling.BICUBIC),
                 ((size[0] - face_side) // 2, (size[1] - face_side) // 2))
    canvas.save(path, quality=92)
    return path


def provenance_timings(photo: Path, folder: Path, repeats: int) -> list[Timing]:
    """What reading provenance adds to a 12-megapixel JPEG: as the encoder wrote it (no manifest, no metadata),
    with a phone's EXIF and XMP, and (in a checkout, where the tests' signing helpers are) signed with Content
    Credentials, whose hash covers the whole file and whose signer is checked against the shipped trust lists."""
    import struct

    from . import provenance

    def segment(payload: bytes) -> bytes:
        return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload

    from PIL import Image

    exif = Image.Exif()
    exif.update({0x010F: "Bench", 0x0110: "Bench Phone 12", 0x0131: "Bench Camera 1.0"})
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"/>'
           b'</rdf:RDF></x:xmpmeta>')
    data = photo.read_bytes()
    tagged = folder / "photo_12mp_metadata.jpg"
    tagged.write_bytes(data[:2] + segment(b"Exif\x00\x00" + exif.tobytes()) + segment(b"http://ns.adobe.com/xap/1.0/\x00" + xmp) + data[2:])
    timings = [measure("provenance: 12-megapixel JPEG without a manifest", lambda: provenance.read(photo), repeats),
               measure("provenance: 12-megapixel JPEG with EXIF and XMP", lambda: provenance.read(tagged), repeats)]
    try:
        from tests.provenance_assets import make_credentials, sign
    except ImportError:  # an installed copy without the tests: the unsigned figure only
        return timings
    signed = folder / "photo_12mp_signed.jpg"
    signed.write_bytes(sign(data, "image/jpeg", make_credentials()))
    timings.append(measure("provenance: 12-megapixel JPEG with Content Credentials (signature and whole-file hash checked)",
                           lambda: provenance.read(signed), repeats))
    return timings


def portraits_folder(folder: Path, count: int) -> list[Path]:
    """``count`` distinct portraits (the astronaut re-framed and recoloured), 256-512 px JPEGs."""
    from PIL import Image

    from .examples import portrait

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    picture = Image.fromarray(portrait())
    paths = []
    for i in range(count):
        side = int(rng.integers(330, 480))  # the face (x 181-268, y 62-172) stays in every crop
        x0 = int(rng.integers(max(0, 268 - side), min(181, 512 - side) + 1))
        y0 = int(rng.integers(max(0, 172 - side), min(62, 512 - side) + 1))
        tile = picture.crop((x0, y0, x0 + side, y0 + side)).resize((int(rng.integers(256, 513)),) * 2)
        shifted = np.clip(np.asarray(tile).astype(int) + rng.integers(-20, 21, 3), 0, 255).astype(np.uint8)
        paths.append(folder / f"portrait{i:03d}.jpg")
        Image.fromarray(shifted).save(paths[-1], quality=90)
    return paths


def folder_scan(analyzer, paths: Sequence[Path]) -> Timing:
    """A folder scan as the scan command runs it (prefetch, batches across files): seconds per image."""
    started = time.perf_counter()
    records = list(analyzer.scan_many(paths))
    seconds = time.perf_counter() - started
    found = sum(record["faces"]["count"] > 0 for record in records)
    return Timing(f"folder scan: {len(paths)} images ({found} with a face), per image", seconds / len(paths), seconds / len(paths), 1)


def startup_timings(folder: Path, runs: int = 3) -> list[Timing]:
    """Process start to first record: ``scan one.jpg`` with the fast-path cache warm (median of ``runs``) and
    cold (an empty cache folder: what the first run after install pays), and ``app.py`` to its first answer."""
    import os
    import socket
    import subprocess

    from PIL import Image

    from .examples import portrait
    from .fast_path import CACHE_VARIABLE

    picture = folder / "one.jpg"
    Image.fromarray(portrait()).save(picture, quality=90)
    command = [sys.executable, "-m", "detectors", "scan", str(picture)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def timed(env) -> float:
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        return time.perf_counter() - started

    timed(environment)  # fills the cache, if empty
    warm = [timed(environment) for _ in range(runs)]
    cold = timed({**environment, CACHE_VARIABLE: tempfile.mkdtemp(prefix="deepfake-cold-cache-")})
    timings = [Timing(f"cold start: scan one.jpg, warm cache ({runs} runs)", float(np.median(warm)), float(np.max(warm)), runs),
               Timing("cold start: scan one.jpg, first run after install (empty cache)", cold, cold, 1)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    started = time.perf_counter()
    app = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=root, env=environment,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from gradio_client import Client, handle_file

        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if app.poll() is not None or time.perf_counter() - started > 300:
                    raise RuntimeError("the app did not start")
                time.sleep(0.2)
        client.predict(handle_file(str(picture)), False, False, api_name="/detect_image")
        app_seconds = time.perf_counter() - started
    finally:
        app.terminate()
        app.wait(timeout=30)
    timings.append(Timing("cold start: python app.py to its first answer (warm cache)", app_seconds, app_seconds, 1))
    return timings


def report(reference: Timing, timings: list[Timing], device: torch.device, **extra) -> dict:
    """Every timing with its ratio to the reference (those timed in turns with it keep their own ratio)."""
    for timing in timings:
        if timing.ratio_to_reference is None:
            timing.ratio_to_reference = timing.median_s / reference.median_s

    def reported(timing: Timing) -> dict:
        return {key: value for key, value in asdict(timing).items() if key != "samples"}

    return {"device": str(device), "machine": machine_description(device), "reference": reported(reference),
            "timings": [reported(t) for t in timings], "peak_rss_mb": round(peak_rss_mb(), 1), **extra}


def markdown_table(reference: Timing, timings: list[Timing]) -> str:
    lines = ["| what | median ms | p95 ms | x ResNet-50 |", "|---|---|---|---|", reference.row(), *(t.row() for t in timings)]
    return "\n".join(lines)
