"""What a first visitor meets, through the app's event functions (the browser test clicks the same in the page):
examples, tiny pictures and frames, rotated clips, faces filling the picture, files on the wrong tab, the
probe on a faceless picture, clips the browser cannot play, the verdict table's band."""
from __future__ import annotations

from pathlib import Path

import av
import gradio as gr
import numpy as np
import pytest
from PIL import Image

from detectors import service
from detectors.examples import build_examples
from detectors.media import browser_playable, probe_video, sample_frames
from tests.odd_inputs import PYTHON_WORDS, build, marker_corner, tight_face, upright_portrait
from tests.fixtures import write_rotated_clip, write_video

NO_PROGRESS = dict(progress=lambda *a, **k: None)


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return {case.name: case for case in build(tmp_path_factory.mktemp("odd"))}


def _no_update_dicts(values) -> bool:
    return not any(isinstance(v, dict) and v.get("__type__") == "update" for v in values)


def test_examples_give_cacheable_values_for_their_outputs(tmp_path, cropper):
    portrait, fake, clip = build_examples(tmp_path, cropper)
    outputs = service.analyse_image_example(str(fake))
    # Gradio 6 cannot cache a component update: the examples' outputs are plain values, one per output
    assert len(outputs) == len(service.EXAMPLE_OUTPUTS) and _no_update_dicts(outputs)
    summary, gallery, table, heatmap, profile, error, report = outputs
    assert "Ensemble" in summary and len(gallery) == 1 and report["kind"] == "image"
    outputs = service.analyse_video_example(str(clip))
    assert len(outputs) == len(service.VIDEO_EXAMPLE_OUTPUTS) and _no_update_dicts(outputs)
    assert outputs[-1]["kind"] == "video"


@pytest.mark.parametrize("name", ["square_1px.png", "square_12px.png", "square_13px.png", "square_20px.png", "square_30px.png",
                                  "square_39px.png", "square_40px.png", "square_79px.png", "strip_200x30.png", "strip_1000x30.png",
                                  "strip_30x400.png"])
def test_tiny_pictures_and_strips_are_analysed_not_crashed(odd, name):
    path = str(odd[name].path)
    for whole in (False, True):
        summary, gallery, *_, report, _ = service.analyse_image(path, whole)
        assert report["verdict"] in ("no-face", "fake", "real", "uncertain")
        assert whole == bool(gallery) or report["faces"]["count"] > 0  # whole-image scoring works at any size
    summary, table = service.robustness_probe(path, True)
    assert "flipped" in summary or "Stable" in summary or "Nothing" in summary


def test_a_32_pixel_clip_is_analysed(odd):
    summary, timeline, gallery, *_, report, _ = service.analyse_video(str(odd["clip_32x32.mp4"].path), 4, **NO_PROGRESS)
    assert report["verdict"] == "no-face" and "No face found" in summary


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_clips_decode_upright(tmp_path, rotation):
    """Frames come out as players show them (checked against Chromium in the browser test): upright, taller
    than wide, the marked corner top-left, a face in every sampled frame."""
    path = write_rotated_clip(tmp_path / "clip.mp4", upright_portrait(), rotation)
    with av.open(str(path)) as container:
        assert next(container.decode(video=0)).rotation % 360 == rotation % 360  # the flag is what PyAV reads
    frames = sample_frames(path, 8)
    assert all(f.image.shape == (512, 384, 3) for f in frames)
    assert marker_corner(frames[0].image) == (True, True)
    summary, timeline, gallery, *_, report, _ = service.analyse_video(str(path), 8, **NO_PROGRESS)
    assert [frame["faces"] for frame in report["frames"]] == [1] * 8


def test_a_face_filling_the_picture_is_found(tmp_path):
    path = tmp_path / "tight.png"
    Image.fromarray(tight_face()).save(path)
    summary, gallery, *_, report, _ = service.analyse_image(str(path))
    assert report["faces"]["count"] == 1
    x1, y1, x2, y2 = report["faces"]["boxes"][0]["box"]
    assert x2 - x1 > 600 and y2 - y1 > 600  # the box is in the picture's own pixels, not the padded copy's


def test_files_on_the_wrong_tab_are_pointed_to_the_right_one(odd, tmp_path):
    with pytest.raises(gr.Error, match="is a picture, not a video: analyse it in the Image tab"):
        service.analyse_video(str(odd["picture_on_the_video_tab.png"].path), 4, **NO_PROGRESS)
    with pytest.raises(gr.Error, match="is a video: analyse it in the Video tab"):
        service.analyse_image(str(odd["rotated_+90.mp4"].path))


def test_the_probe_says_nothing_was_probed_without_a_face(odd):
    summary, table = service.robustness_probe(str(odd["strip_200x30.png"].path))
    assert "Nothing probed" in summary and "Stable" not in summary
    assert table["visible"] is False
    summary, table = service.robustness_probe(str(odd["face_fills_the_picture.png"].path))
    assert table["visible"] is True and len(table["value"]) == 2 * (len(service.analyzer().detectors) + 1)


@pytest.mark.parametrize("name", ["clip_mpeg4.avi", "clip_hevc.mp4"])
def test_the_player_only_ever_gets_a_clip_browsers_can_play(odd, tmp_path, name):
    original = tmp_path / name
    original.write_bytes(odd[name].path.read_bytes())
    assert not browser_playable(original)
    shown, note = service.video_preview(str(original))
    assert browser_playable(shown) and probe_video(shown).codec == "h264" and Path(shown) != original and "original" in note
    # a playable clip is shown as it is; anything else leaves the player empty (Analyse says what is wrong)
    playable = write_video(tmp_path / "fine.mp4", frames=6, size=(64, 64), codec="libx264")
    assert service.video_preview(str(playable)) == (str(playable), "")
    assert service.video_preview(str(odd["picture_on_the_video_tab.png"].path)) == (None, "")
    assert service.video_preview(None) == (None, "")


def test_the_verdict_table_shows_each_detectors_band(odd):
    *_, table, heatmap, profile, error, cams, report, views = service.analyse_image(str(odd["face_fills_the_picture.png"].path))
    assert len(table) == len(service.analyzer().detectors) + 1
    for name, p, verdict, fake_from, real_below in table:
        assert real_below <= fake_from
        assert verdict == ("fake" if p >= fake_from else "real" if p < real_below else "uncertain") or name == "Ensemble"


def test_one_sampled_frame_is_said_in_the_singular(tmp_path, astronaut):
    path = write_video(tmp_path / "one.mp4", frames=1, size=(256, 256), picture=astronaut)
    summary, *_ = service.analyse_video(str(path), 1, **NO_PROGRESS)
    assert "1 frame sampled" in summary


def test_a_new_file_or_analysis_starts_from_empty_results():
    assert service.forget_faces()[1] == [] and service.forget_faces()[0]["choices"] == []
    image, video = service.empty_image_outputs(), service.empty_video_outputs()
    assert len(image) == 10 and len(video) == 11  # one value per output of analyse_image / analyse_video
    assert image[0] == "" and image[-1] == [] and video[1] is None


def test_no_odd_input_shows_python_words(odd):
    """Every odd input, on the tab it was meant for: a result or a message a person can act on."""
    for case in odd.values():
        try:
            if case.tab == "image":
                service.analyse_image(str(case.path))
                service.robustness_probe(str(case.path))
            else:
                service.video_preview(str(case.path))
                service.analyse_video(str(case.path), 4, **NO_PROGRESS)
        except gr.Error as error:
            assert not PYTHON_WORDS.search(error.message), (case.name, error.message)
