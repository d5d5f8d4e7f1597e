"""The functions the app's events call, without a browser (the browser test drives the page itself)."""
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from detectors import service
from detectors.examples import build_examples
from tests.fixtures import write_video

NO_PROGRESS = dict(progress=lambda *a, **k: None)


@pytest.fixture(scope="module")
def face_file(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("upload") / "face.jpg"
    Image.fromarray(astronaut).save(path, quality=92)
    return str(path)


@pytest.fixture(scope="module")
def image_outputs(face_file):
    return service.analyse_image(face_file)


def test_image_gives_verdicts_spectra_error_map_and_a_json_report(image_outputs):
    summary, gallery, selector, table, heatmap, profile, error, cams, report, face_views = image_outputs
    detectors = service.analyzer().detectors
    assert len(gallery) == 1 and gallery[0][0].shape == (256, 256, 3)
    assert "Ensemble:" in summary and f"of {len(detectors)} detectors lean the same way" in summary
    assert heatmap.data[0].z.shape == (256, 256)
    assert any(trace.name == "this face" for trace in profile.data)
    assert [row[0] for row in table] == [d.display_name for d in detectors] + ["Ensemble"]
    assert all(0.0 <= row[1] <= 1.0 and row[2] in ("fake", "real", "uncertain") for row in table[:-1])
    assert table[-1][2] == report["level"]  # the ensemble's row gives its evidence level
    # The error map is the re-synthesis network's |SR(x/4) - x| at the crop's size, summarised in the report.
    heat = error.data[1].z
    assert heat.shape == (256, 256) and heat.min() >= 0.0
    face = report["faces"]["boxes"][0]
    assert face["reconstruction_error"]["mean"] == pytest.approx(float(heat.mean()), abs=1e-4)
    assert report["kind"] == "image" and report["verdict"] == face["verdict"] and report["level"] == face["level"]
    # the level, its measured meaning and the verdict kept for compatibility agree with the shipped rule
    rule = service.analyzer().ensemble.rule
    assert report["level"] == rule.levels.level(report["ensemble"])
    assert report["level_meaning"] == rule.levels.meaning[report["level"]]
    assert report["verdict"] == {"likely fake": "fake", "likely real": "real"}.get(report["level"], "uncertain")
    assert f'data-level="{report["level"]}"' in summary and "On validation faces" in summary
    assert set(report["scores"]) == {d.name for d in detectors}
    assert cams == []  # Grad-CAM is computed only when asked for


def test_agreement_counts_detectors_giving_the_ensemble_verdict():
    from detectors.pipeline import FaceResult

    face = FaceResult(crop=None, verdicts={"a": "fake", "b": "fake", "c": "real", "d": "uncertain"}, verdict="fake")
    assert service.agreement(face) == (2, 4)
    face.verdict = "uncertain"
    assert service.agreement(face) == (1, 4)


def test_grad_cam_gives_one_normalised_heatmap_per_detector(image_outputs):
    *_, face_views = image_outputs
    table, heatmap, profile, error, cams = service.select_face(face_views, 0, True)
    assert len(cams) == len(service.analyzer().detectors)
    from detectors import explain

    crop = face_views[0].crop
    for detector, (overlay, caption) in zip(service.analyzer().detectors, cams):
        assert overlay.shape == (256, 256, 3) and overlay.dtype == np.uint8 and detector.display_name in caption
        cam = explain.grad_cam(detector, crop)
        assert cam.shape == (256, 256) and cam.min() >= 0.0
        if cam.max() > 0:  # normalised to a peak of 1 and drawn over the crop
            assert cam.max() == pytest.approx(1.0) and "where the fake logit looks" in caption
            assert not np.array_equal(overlay, crop)
        else:  # nothing raises the fake logit: the crop itself, said in words
            assert "no region raises the fake logit" in caption and np.array_equal(overlay, crop)


def test_no_face_is_said_plainly_and_whole_image_scoring_is_labelled(tmp_path):
    path = tmp_path / "sky.png"
    Image.new("RGB", (320, 240), (120, 160, 220)).save(path)
    summary, gallery, *_, report, _ = service.analyse_image(str(path))
    assert gallery == [] and "No face found" in summary and report["verdict"] == "no-face"
    summary, gallery, *_, report, _ = service.analyse_image(str(path), True)
    assert len(gallery) == 1 and "whole image" in gallery[0][1] and "whole picture was scored" in summary
    assert report["faces"]["count"] == 0 and report["faces"]["boxes"][0]["box"] is None


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"not an image at all" * 20, "neither a supported image nor a video|not a recognised image")])
def test_bad_uploads_become_a_clear_gradio_error(tmp_path, content, message):
    path = tmp_path / "upload.jpg"
    path.write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        service.analyse_image(str(path))
    with pytest.raises(gr.Error, match=message):
        service.robustness_probe(str(path))
    with pytest.raises(gr.Error, match="Upload an image first"):
        service.analyse_image(None)


def test_uploaded_image_component_passes_the_file_through_undecoded(tmp_path):
    from gradio.data_classes import ImageData

    path = tmp_path / "garbage.png"
    path.write_bytes(b"\x89PNG but not really")
    component = service.raw_upload(gr.Image(type="filepath"))
    assert component.preprocess(ImageData(path=str(path))) == str(path)
    assert component.preprocess(None) is None
    assert not list(Path(service.__file__).parent.glob("*.pyi"))  # nothing written next to the sources


def test_video_timeline_aggregation_and_most_suspicious_frame(tmp_path, astronaut):
    path = write_video(tmp_path / "clip.mp4", frames=20, fps=10, size=(256, 256), picture=astronaut)
    summary, timeline, gallery, selector, *_, report, face_views = service.analyse_video(str(path), 4, "confident", **NO_PROGRESS)
    assert "4 frames sampled, a face in 4" in summary and "Aggregation: <b>confident</b>" in summary
    assert len(gallery) == 4 and all(label.startswith("t=") for _, label in gallery)
    names = [trace.name for trace in timeline.data]
    assert names == [d.display_name for d in service.analyzer().detectors] + ["Ensemble"]
    assert all(len(trace.x) == 4 for trace in timeline.data)
    ensemble = [frame["ensemble"] for frame in report["frames"]]
    # the most suspicious frame's face is shown (the report rounds, and rounding keeps the order, ties aside)
    assert ensemble[selector["value"]] == max(ensemble)
    assert report["aggregation"] == "confident"
    with pytest.raises(gr.Error, match="Unknown aggregation rule"):
        service.analyse_video(str(path), 4, "median", **NO_PROGRESS)


def test_robustness_probe_rows_and_flags(face_file):
    summary, table = service.robustness_probe(face_file)
    rows = table["value"]
    assert table["visible"]  # the table appears with the probe's first result
    detectors = service.analyzer().detectors
    assert len(rows) == 2 * (len(detectors) + 1)
    assert {row[0] for row in rows} == {"JPEG quality 75", "0.5x resize"}
    for row in rows:
        assert (row[6] == "FLIPPED") == (row[4] != row[5])
    assert ("flipped" in summary) == any(row[6] for row in rows)


def test_selecting_another_face_redraws_its_views(image_outputs):
    *_, face_views = image_outputs
    table, heatmap, profile, error, cams = service.select_face(face_views, 5)  # out of range: clamped to the last face
    assert heatmap is not None and profile is not None and error is not None
    table, heatmap, profile, error, cams = service.select_face([], 0)
    assert (table, heatmap, profile, error) == ([], None, None, None)


def test_examples_are_made_by_the_project(tmp_path, cropper):
    portrait, fake, clip = build_examples(tmp_path, cropper)
    real, blended = np.asarray(Image.open(portrait)), np.asarray(Image.open(fake))
    assert real.shape == blended.shape
    changed = np.abs(real.astype(int) - blended).sum(axis=2) > 30
    assert 500 < changed.sum() < 0.1 * changed.size  # a forged face, not a different picture
    from detectors.media import sample_frames

    assert len(sample_frames(clip, 4)) == 4
    summary, *_ = service.analyse_image_example(str(portrait))
    assert "Ensemble" in summary


def test_about_panel_comes_from_the_model_cards():
    text = service.about_markdown()
    for detector in service.analyzer().detectors:
        assert detector.display_name in text
        for set_name, metrics in detector.config.metrics["validation"].items():
            if "auc" in metrics:
                assert f"{set_name} AUC {metrics['auc']:.3f}" in text
