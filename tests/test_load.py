"""Load: 20 concurrent gradio_client requests against the running app (loopback, bounded count and time).

All must succeed (queued, not failed); with a small queue the excess is refused with a clear message; the
server's peak memory stays bounded; after all of it the app has written nothing outside its temp folder.
Analyses with and without Grad-CAM, robustness probes and a video analysis sent together all succeed too (Grad-CAM
runs on the models every request shares). The figures are written to ``test-output/load.json`` for the record.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detectors.registry import DETECTORS
from tests.fixtures import ROOT, write_video

pytestmark = pytest.mark.slow
REQUESTS = 20
PEAK_RSS_LIMIT_MB = 2500


@pytest.fixture(scope="module")
def face_jpg(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("load") / "portrait.jpg"
    Image.fromarray(astronaut).save(path, quality=90)
    return path


def _fire(url: str, path: Path, count: int, retries: list[str] | None = None) -> list[tuple[float, object]]:
    """``count`` /detect_image requests at once (see :func:`_fire_calls`)."""
    return _fire_calls(url, [("/detect_image", (path, False, False))] * count, retries)


def _fire_calls(url: str, calls: list[tuple[str, tuple]], retries: list[str] | None = None) -> list[tuple[float, object]]:
    """Every ``(api_name, arguments)`` call at once, one client each (a ``Path`` argument is uploaded); (seconds,
    last output or exception) per call, in order.

    Every client connects first (fetching the app's config takes a while on a busy machine), then all send
    together: "at once" is a state the test waits for, not a hope about thread timing. Each transport error
    that is retried is appended to ``retries``."""
    retries = [] if retries is None else retries
    import httpx
    from gradio_client import Client, handle_file

    count = len(calls)
    with ThreadPoolExecutor(count) as pool:
        clients = list(pool.map(lambda _: Client(url, verbose=False), range(count)))
    ready = threading.Barrier(count)

    def one(client, call):
        api_name, arguments = call
        arguments = [handle_file(str(a)) if isinstance(a, Path) else a for a in arguments]
        ready.wait(timeout=120)
        started = time.monotonic()
        for attempt in range(2):
            try:
                outcome = client.predict(*arguments, api_name=api_name)[-1]
                break
            except httpx.RemoteProtocolError as error:
                # Known Gradio race, not ours: identical outputs share one content-hashed cache file, and a
                # download can read it while another request rewrites it (h11: "Too little data for declared
                # Content-Length"). Twenty identical requests provoke it; a client retries once, as a user would.
                outcome = error
                if attempt == 0:
                    retries.append(str(error))
            except Exception as error:  # noqa: BLE001 - the test inspects what each request got
                outcome = error
                break
        return time.monotonic() - started, outcome

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, clients, calls))


def _untracked() -> set[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True).stdout
    return {line[3:] for line in out.splitlines() if "__pycache__" not in line and ".pytest_cache" not in line and not line[3:].startswith("test-output/")}


def test_twenty_concurrent_requests_are_all_served(app_server, face_jpg):
    before = _untracked()
    started = time.monotonic()
    retries: list[str] = []
    results = _fire(app_server.url, face_jpg, REQUESTS, retries)
    wall = time.monotonic() - started
    failures = [r for _, r in results if isinstance(r, Exception)]
    latencies = sorted(seconds for seconds, _ in results)
    figures = {
        "requests": REQUESTS,
        "failures": len(failures),
        "transport_retries": len(retries),
        "wall_s": round(wall, 2),
        "latency_median_s": round(float(np.median(latencies)), 2),
        "latency_p95_s": round(float(np.percentile(latencies, 95)), 2),
        "server_peak_rss_mb": round(app_server.peak_rss_mb(), 1),
    }
    (ROOT / "test-output").mkdir(exist_ok=True)
    (ROOT / "test-output" / "load.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(figures)
    assert not failures, failures[:3]
    assert all(r["faces"]["count"] == 1 and r["verdict"] in ("fake", "real", "uncertain") for _, r in results)
    reports = {json.dumps(r["scores"], sort_keys=True) for _, r in results}
    assert len(reports) == 1  # concurrency does not change a score
    assert figures["server_peak_rss_mb"] < PEAK_RSS_LIMIT_MB
    # Privacy: nothing new in the project folder, nothing in the app's HOME (uploads live in its TMPDIR) but
    # the fast-path cache, which holds models traced from the shipped checkpoints (one file per detector,
    # named by the checkpoint's hash), never anything derived from an upload.
    assert _untracked() <= before, _untracked() - before
    fast_path = app_server.home / ".cache" / "deepfake-detectors" / "fast-path"
    written = [p for p in app_server.home.rglob("*") if p.is_file()]
    assert [p for p in written if p.parent != fast_path] == []
    assert len(written) <= 4 and all(p.suffix == ".pt" and p.name.split("-")[0] in DETECTORS for p in written), written


def test_a_full_queue_refuses_the_excess_politely_and_keeps_serving(start_app, face_jpg):
    app = start_app("--max-queue", "3", "--concurrency", "1")
    results = _fire(app.url, face_jpg, REQUESTS)
    served = [r for _, r in results if isinstance(r, dict)]
    refused = [r for _, r in results if isinstance(r, Exception)]
    assert served and refused, (len(served), len(refused))
    assert all("queue is full" in str(error).lower() for error in refused), {str(e) for e in refused}
    assert _fire(app.url, face_jpg, 1)[0][1]["faces"]["count"] == 1  # still serving


def test_bad_uploads_do_not_stop_the_server(app_server, tmp_path, face_jpg):
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False)
    cases = {"empty.jpg": b"", "text.png": b"plain text, not a picture\n" * 20, "cut.jpg": face_jpg.read_bytes()[:2000]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(Exception, match="empty|neither a supported image nor a video|truncated or corrupt"):
            client.predict(handle_file(str(tmp_path / name)), False, False, api_name="/detect_image")
    assert client.predict(handle_file(str(face_jpg)), False, False, api_name="/detect_image")[-1]["faces"]["count"] == 1


def test_grad_cam_probes_and_analyses_together_are_all_served(app_server, face_jpg, tmp_path, astronaut):
    """Grad-CAM runs a backward pass through the models every request shares, beside other requests' scoring."""
    clip = write_video(tmp_path / "clip.mp4", frames=8, size=(256, 256), codec="libx264", picture=astronaut)
    calls = ([("/detect_image", (face_jpg, False, True))] * 4 + [("/detect_image", (face_jpg, False, False))] * 4
             + [("/robustness_probe", (face_jpg, False))] * 4 + [("/detect_video", (clip, 4, "mean", True))] * 2)
    results = _fire_calls(app_server.url, calls)
    failures = [(call[0], outcome) for call, (_, outcome) in zip(calls, results) if isinstance(outcome, Exception)]
    assert failures == [], failures[:3]
    reports = [outcome for call, (_, outcome) in zip(calls, results) if call[0] == "/detect_image"]
    assert len({json.dumps(r["scores"], sort_keys=True) for r in reports}) == 1  # Grad-CAM beside them changes no score
    probes = [outcome for call, (_, outcome) in zip(calls, results) if call[0] == "/robustness_probe"]
    tables = [probe.get("value", probe)["data"] for probe in probes]  # the probe's table comes as a component update
    assert all(table == tables[0] and len(table) > 0 for table in tables), probes[0]
    videos = [outcome for call, (_, outcome) in zip(calls, results) if call[0] == "/detect_video"]
    assert all(v["kind"] == "video" and len(v["frames"]) == 4 for v in videos)
