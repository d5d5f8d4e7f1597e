"""Pictures and clips with several faces: one card per face, the most suspicious face selected, never an error.

The pictures are made here: the public-domain portrait's face and the self-blended fake made from it, pasted
side by side, 2, 3 and 5 faces, the forged face in every position. Which face the detectors find most
suspicious is theirs to say; what is checked is that the page selects that face, wherever it is in the list.
"""
from __future__ import annotations

import logging
from itertools import permutations

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from detectors import service
from detectors.pipeline import FaceResult, ImageReport
from tests.fixtures import multi_face_picture, side_by_side, face_tiles, write_video

NO_PROGRESS = dict(progress=lambda *a, **k: None)
CASES = [(count, fake_at) for count in (2, 3, 5) for fake_at in range(count)]


@pytest.mark.parametrize("order", list(permutations([0.2, 0.9, 0.5])))
def test_the_report_names_the_most_suspicious_face_by_position(order):
    faces = [FaceResult(crop=None, logits={"a": 0.0}, ensemble=p, verdict="uncertain") for p in order]
    report = ImageReport(faces)
    assert report.top_index == order.index(0.9) and report.top is faces[order.index(0.9)]
    assert ImageReport([]).top_index is None and ImageReport([]).top is None
    # Results compare by identity: the arrays they hold never meet ==.
    assert faces[0] != FaceResult(crop=None, logits={"a": 0.0}, ensemble=order[0], verdict="uncertain")


@pytest.fixture(scope="module")
def multi_face_files(tmp_path_factory, cropper):
    folder = tmp_path_factory.mktemp("multi")
    files = {}
    for count, fake_at in CASES:
        path = folder / f"faces{count}_fake{fake_at}.png"
        Image.fromarray(multi_face_picture(count, fake_at, cropper)).save(path)
        files[count, fake_at] = str(path)
    return files


def _selected_is_most_suspicious(report: dict, selector: dict) -> int:
    ensembles = [box["ensemble"] for box in report["faces"]["boxes"]]
    assert selector["value"] == int(np.argmax(ensembles)), (selector["value"], ensembles)
    assert report["ensemble"] == max(ensembles) and report["verdict"] == report["faces"]["boxes"][selector["value"]]["verdict"]
    return selector["value"]


def test_several_faces_in_any_order_through_the_event_functions(multi_face_files):
    selected = []
    for (count, fake_at), path in multi_face_files.items():
        summary, gallery, selector, table, heatmap, profile, error, cams, report, face_views = service.analyse_image(path)
        assert report["faces"]["count"] == count and len(gallery) == count, (count, fake_at)
        assert summary.count('class="face-card') == count and f"{count} faces" in summary
        assert selector["visible"] and len(selector["choices"]) == count
        index = _selected_is_most_suspicious(report, selector)
        assert table == face_views[index].rows  # the views below are the selected face's
        selected.append(index)
        for other in range(count):  # every face can be chosen in the selector
            assert service.select_face(face_views, other)[0] == face_views[other].rows
    # The case that crashed: the most suspicious face is not the first one listed.
    assert any(index > 0 for index in selected)


def test_a_clip_with_two_faces_in_every_frame(tmp_path, cropper):
    real, fake = face_tiles(cropper)
    picture = side_by_side([real, fake])
    path = write_video(tmp_path / "two_faces.mp4", frames=20, fps=10, size=picture.shape[1::-1], codec="libx264", picture=picture)
    summary, timeline, gallery, selector, *_, report, face_views = service.analyse_video(str(path), 4, "mean", **NO_PROGRESS)
    assert "4 frames sampled, a face in 4" in summary and len(gallery) == 8
    assert all(frame["faces"] == 2 for frame in report["frames"])
    tops = [max(box["ensemble"] for box in frame["boxes"]) for frame in report["frames"]]
    shown = face_views[selector["value"]].record
    assert shown["ensemble"] == max(tops)


def test_an_unexpected_failure_is_a_short_message_and_the_next_request_works(multi_face_files, monkeypatch, caplog):
    path = multi_face_files[2, 1]
    detector = service.analyzer().detectors[0]

    def broken(crops):
        raise ValueError("The truth value of an array with more than one element is ambiguous")

    monkeypatch.setattr(detector, "logits", broken)
    with caplog.at_level(logging.ERROR, logger="detectors.service"):
        for call in (lambda: service.analyse_image(path), lambda: service.robustness_probe(path)):
            with pytest.raises(gr.Error) as caught:
                call()
            assert caught.value.message == service.FAILURE_MESSAGE and "truth value" not in caught.value.message
    assert "truth value" in caplog.text and "Traceback" in caplog.text  # the server log keeps the details
    monkeypatch.undo()
    assert service.analyse_image(path)[-2]["faces"]["count"] == 2


@pytest.mark.slow
def test_an_injected_failure_reaches_an_api_client_as_the_short_message(multi_face_files, monkeypatch):
    """The app in this process (so a detector can be broken from here), called through gradio_client."""
    import socket

    import app
    from gradio_client import Client, handle_file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.build_demo()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        path = handle_file(multi_face_files[2, 1])
        monkeypatch.setattr(service.analyzer().detectors[0], "logits", lambda crops: 1 / 0)
        with pytest.raises(Exception) as caught:
            client.predict(path, False, False, api_name="/detect_image")
        assert service.FAILURE_MESSAGE in str(caught.value) and "division" not in str(caught.value)
        monkeypatch.undo()
        assert client.predict(path, False, False, api_name="/detect_image")[-1]["faces"]["count"] == 2  # still serving
    finally:
        demo.close()
