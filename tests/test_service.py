"""The functions the app's events call, without a browser (the browser test drives the page itself)."""
import gradio as gr
import numpy as np
import pytest
from PIL import Image

from detectors import service
from tests.fixtures import write_video


@pytest.fixture(scope="module")
def face_file(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("upload") / "face.jpg"
    Image.fromarray(astronaut).save(path, quality=92)
    return str(path)


def test_image_gives_crops_table_and_both_spectrum_plots(face_file):
    gallery, selector, table, heatmap, profile, face_views, status = service.analyse_image(face_file)
    assert len(gallery) == 1 and gallery[0][0].shape == (256, 256, 3)
    assert "1 face(s) found" in status
    assert heatmap.data[0].z.shape == (256, 256)
    assert any(trace.name == "this face" for trace in profile.data)
    assert len(table) == len(service.analyzer().detectors) + (1 if service.analyzer().detectors else 0)


def test_no_face_is_said_plainly_and_whole_image_scoring_is_labelled(tmp_path):
    path = tmp_path / "sky.png"
    Image.new("RGB", (320, 240), (120, 160, 220)).save(path)
    gallery, *_, status = service.analyse_image(str(path))
    assert gallery == [] and "No face found" in status
    gallery, *_, status = service.analyse_image(str(path), True)
    assert len(gallery) == 1 and "whole image" in gallery[0][1] and "whole image" in status


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"not an image at all" * 20, "neither a supported image nor a video|not a recognised image")])
def test_bad_uploads_become_a_clear_gradio_error(tmp_path, content, message):
    path = tmp_path / "upload.jpg"
    path.write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        service.analyse_image(str(path))
    with pytest.raises(gr.Error, match="Upload an image first"):
        service.analyse_image(None)


def test_video_samples_the_asked_number_of_frames(tmp_path, astronaut):
    path = write_video(tmp_path / "clip.mp4", frames=20, fps=10, size=(256, 256), picture=astronaut)
    gallery, *_, status = service.analyse_video(str(path), 4, progress=lambda *a, **k: None)
    assert status.startswith("4 frames sampled; a face in 4")
    assert len(gallery) == 4 and all(label.startswith("t=") for _, label in gallery)


def test_selecting_another_face_redraws_its_views(face_file):
    *_, face_views, _ = service.analyse_image(face_file)
    table, heatmap, profile = service.select_face(face_views, 5)  # out of range: clamped to the last face
    assert heatmap is not None and profile is not None
    assert service.select_face([], 0) == ([], None, None)
