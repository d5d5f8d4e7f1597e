"""The real app in headless Chromium, and its named API through gradio_client.

Starts ``python app.py`` on a free loopback port with the shipped checkpoints, uploads a face picture and a
short video, and checks what a person would look for: four detector rows with numbers, the ensemble verdict
with its agreement line, both spectrum plots, the re-synthesis error map, the video timeline. Screenshots
(1280x800 and a 390x844 phone) go to ``test-output/browser/``.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.fixtures import multi_face_picture, write_video

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-output" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (see .ci/run)")]


@pytest.fixture(scope="module")
def app_url(app_server):
    return app_server.url


@pytest.fixture(scope="module")
def face_png(tmp_path_factory, astronaut):
    from PIL import Image

    path = tmp_path_factory.mktemp("upload") / "portrait.png"
    Image.fromarray(astronaut).save(path)
    return path


@pytest.fixture(scope="module")
def face_mp4(tmp_path_factory, astronaut):
    return write_video(tmp_path_factory.mktemp("upload") / "clip.mp4", frames=20, fps=10, size=(256, 256), codec="libx264", picture=astronaut)


@pytest.fixture(scope="module")
def three_faces_png(tmp_path_factory):
    """Three faces side by side, the forged one in the middle (several faces once crashed the page)."""
    from PIL import Image

    path = tmp_path_factory.mktemp("upload") / "three_faces.png"
    Image.fromarray(multi_face_picture(3, 1)).save(path)
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _screenshots(page, tab: str) -> None:
    """The page as it is (1280x800), then on a phone-sized viewport."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{tab}-1280x800.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(1000)
    page.screenshot(path=str(SHOTS / f"{tab}-mobile.png"), full_page=True)


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"\b[01](?:\.\d+)?\b", text)]


def test_image_tab(browser, app_url, face_png):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(app_url)
    page.locator("#image-analyse").wait_for(timeout=60_000)
    page.locator("#image-upload input[type=file]").set_input_files(str(face_png))
    page.wait_for_timeout(1500)
    page.locator("#image-analyse").click()
    verdict = page.locator("#image-summary .ensemble-verdict")
    verdict.wait_for(timeout=120_000)
    assert re.search(r"Ensemble: (Likely fake|Likely real|Uncertain)", verdict.inner_text())
    assert re.search(r"\d of 4 detectors agree", verdict.inner_text())
    # The verdict table: four detector rows with a probability and a threshold, plus the ensemble's row.
    cells = [c.strip() for c in page.locator("#image-verdicts").first.inner_text().splitlines() if c.strip()]
    for name in ("SpecXNet", "SFIConv", "Re-synthesis", "MD-CSDNetwork", "Ensemble"):
        row = cells[cells.index(name) + 1 : cells.index(name) + 4]  # P(fake), verdict, threshold
        assert len(_numbers(" ".join(row))) == 2 and row[1] in ("fake", "real", "uncertain"), row
    plots = page.locator(".js-plotly-plot")
    plots.first.wait_for(timeout=30_000)
    titles = " | ".join(page.locator(".js-plotly-plot .gtitle").all_text_contents())
    assert "2D FFT" in titles and "Radial profile" in titles and "Re-synthesis error" in titles, titles
    _screenshots(page, "image")
    page.close()


def test_several_faces_in_the_image_tab(browser, app_url, three_faces_png):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(app_url)
    page.locator("#image-analyse").wait_for(timeout=60_000)
    page.locator("#image-upload input[type=file]").set_input_files(str(three_faces_png))
    page.wait_for_timeout(1500)
    page.locator("#image-analyse").click()
    page.locator("#image-summary .ensemble-verdict").wait_for(timeout=120_000)
    assert page.locator("#image-summary .face-card").count() == 3
    assert "3 faces" in page.locator("#image-summary").inner_text()
    assert not page.get_by_text("truth value").count() and not page.locator(".toast-body.error").count()
    page.close()


def test_video_tab(browser, app_url, face_mp4):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(app_url)
    page.get_by_role("tab", name="Video").click()
    page.locator("#video-upload input[type=file]").set_input_files(str(face_mp4))
    page.wait_for_timeout(2000)
    page.locator("#video-analyse").click()
    page.locator("#video-summary .ensemble-verdict").wait_for(timeout=180_000)
    timeline = page.locator(".js-plotly-plot .gtitle", has_text="per sampled frame")
    timeline.first.wait_for(timeout=30_000)
    assert "Aggregation: mean" in page.locator("#video-summary").inner_text()
    _screenshots(page, "video")
    page.close()


def test_api_endpoints(app_url, face_png, face_mp4, three_faces_png):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/detect_image", "/detect_video"} <= set(endpoints)

    result = client.predict(handle_file(str(face_png)), False, False, api_name="/detect_image")
    report = result[-1]
    assert report["kind"] == "image" and report["faces"]["count"] >= 1
    assert set(report["scores"]) == {"specxnet", "sficonv", "resynthesis", "mdcsd"}
    assert all(0.0 <= p <= 1.0 for p in report["scores"].values())
    assert report["verdict"] in ("fake", "real", "uncertain")
    assert "reconstruction_error" in report["faces"]["boxes"][0]

    result = client.predict(handle_file(str(face_mp4)), 4, "confident", False, api_name="/detect_video")
    report = result[-1]
    assert report["kind"] == "video" and report["aggregation"] == "confident" and len(report["frames"]) == 4
    assert all(frame["faces"] >= 1 for frame in report["frames"])

    # Several faces, the forged one in the middle: every face reported, the most suspicious one decides.
    result = client.predict(handle_file(str(three_faces_png)), False, False, api_name="/detect_image")
    report = result[-1]
    ensembles = [box["ensemble"] for box in report["faces"]["boxes"]]
    assert report["faces"]["count"] == 3 and report["ensemble"] == max(ensembles)
    assert result[2]["value"] == ensembles.index(max(ensembles))  # the face selector shows that face

    # Bad input is a clear error for API clients too, and the server keeps serving.
    bad = face_png.with_name("not-an-image.png")
    bad.write_bytes(b"this is text, not a picture")
    with pytest.raises(Exception, match="neither a supported image nor a video"):
        client.predict(handle_file(str(bad)), False, False, api_name="/detect_image")
    assert client.predict(handle_file(str(face_png)), False, False, api_name="/detect_image")[-1]["faces"]["count"] >= 1
