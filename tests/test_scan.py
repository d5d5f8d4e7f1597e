import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from detectors.cli import expand_inputs, main
from detectors.pipeline import Analyzer
from tests.fixtures import write_video

RECORD_KEYS = {"path", "kind", "error", "faces", "scores", "ensemble", "verdict"}


class FakeDetector:
    """Scores from a rule we can predict: the crop's mean brightness. Stands in for a trained model."""

    def __init__(self, name: str, threshold: float = 0.5):
        self.name, self.threshold = name, threshold

    def logits(self, crops):
        p = np.array([crop.mean() / 255.0 for crop in crops])
        return np.log(p / (1 - p))

    def verdict(self, probability):
        return "fake" if probability >= self.threshold else "real"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, astronaut):
    folder = tmp_path_factory.mktemp("inputs")
    Image.fromarray(astronaut).save(folder / "face.jpg", quality=92)
    Image.new("RGB", (200, 150), (90, 120, 200)).save(folder / "blank.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("ignored: not a media suffix")
    nested = folder / "clips"
    nested.mkdir()
    write_video(nested / "face.mp4", frames=20, fps=10, size=(256, 256), picture=astronaut)
    return folder


@pytest.fixture
def no_checkpoints(monkeypatch, tmp_path):
    """The record shape without any detector (as before checkpoints ship)."""
    from detectors import registry

    monkeypatch.setattr(registry, "ASSETS", tmp_path / "none")


def run_scan(capsys, *args):
    status = main(["scan", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_folder_scan_writes_one_valid_record_per_media_file(capsys, inputs, no_checkpoints):
    status, out, err = run_scan(capsys, inputs, "--frames", "4")
    records = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, out.splitlines())}
    assert set(records) == {"face.jpg", "blank.png", "broken.jpg", "face.mp4"}
    for record in records.values():
        assert RECORD_KEYS <= set(record)
        assert set(record["faces"]) == {"count", "boxes"}
    assert status == 2 and "1 of 4" in err  # one unreadable input, the others still processed

    face = records["face.jpg"]
    assert face["kind"] == "image" and face["error"] is None
    assert face["faces"]["count"] == 1 and len(face["faces"]["boxes"][0]["box"]) == 4
    assert face["scores"] == {} and face["verdict"] == "uncertain"  # no detector loaded

    assert records["blank.png"]["verdict"] == "no-face" and records["blank.png"]["faces"]["count"] == 0
    assert records["broken.jpg"]["error"] and records["broken.jpg"]["verdict"] is None

    video = records["face.mp4"]
    assert video["kind"] == "video" and len(video["frames"]) == 4
    assert all(frame["faces"] == 1 for frame in video["frames"])
    assert [f["timestamp"] for f in video["frames"]] == sorted(f["timestamp"] for f in video["frames"])


def test_all_readable_inputs_exit_zero_and_csv_has_a_row_each(capsys, inputs, no_checkpoints):
    status, out, _ = run_scan(capsys, inputs / "face.jpg", inputs / "blank.png", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert status == 0
    assert [row["verdict"] for row in rows] == ["uncertain", "no-face"]
    assert rows[0]["faces"] == "1" and json.loads(rows[0]["boxes"])[0]["confidence"] > 0.9


def test_missing_path_is_an_error_record(capsys, tmp_path):
    status, out, _ = run_scan(capsys, tmp_path / "absent.png")
    record = json.loads(out)
    assert status == 2 and "not found" in record["error"]


def test_expand_inputs_recurses_and_filters_by_suffix(inputs):
    names = sorted(p.name for p in expand_inputs([str(inputs)]))
    assert names == ["blank.png", "broken.jpg", "face.jpg", "face.mp4"]


def test_records_carry_detector_scores_once_detectors_exist(cropper, inputs):
    analyzer = Analyzer([FakeDetector("bright", 0.2), FakeDetector("strict", 0.99)], cropper=cropper)
    record = analyzer.scan(inputs / "face.jpg")
    assert set(record["scores"]) == {"bright", "strict"}
    assert 0 <= record["scores"]["bright"] <= 1
    assert record["ensemble"] == pytest.approx(record["scores"]["bright"], abs=1e-4)  # both read the same mean
    assert record["verdict"] == "uncertain"  # one says fake, one says real: no majority
    assert record["faces"]["boxes"][0]["verdict"] == "uncertain"
    video = analyzer.scan(inputs / "clips" / "face.mp4", frames=3)
    assert all(set(frame["scores"]) == {"bright", "strict"} for frame in video["frames"])
    assert video["scores"]["bright"] == pytest.approx(np.mean([f["scores"]["bright"] for f in video["frames"]]), abs=1e-3)


class ThresholdEnsemble:
    """A fitted rule stand-in: the mean logit, fake above 0."""

    def probability(self, logits):
        return float(1 / (1 + np.exp(-np.mean(list(logits.values())))))

    def verdict(self, probability):
        return "fake" if probability >= 0.5 else "real"

    def level(self, probability, fake_votes=None):
        return "likely fake" if probability >= 0.5 else "likely real"


def test_an_ensemble_rule_decides_when_present(cropper, inputs):
    analyzer = Analyzer([FakeDetector("bright", 0.2), FakeDetector("strict", 0.99)], cropper=cropper, ensemble=ThresholdEnsemble())
    record = analyzer.scan(inputs / "face.jpg")
    expected = "fake" if record["scores"]["bright"] >= 0.5 else "real"
    assert record["verdict"] == expected and record["level"] == f"likely {expected}"


def test_shipped_checkpoints_give_calibrated_scores(capsys, inputs):
    from detectors import registry

    status, out, err = run_scan(capsys, inputs / "face.jpg")
    record = json.loads(out)
    shipped = [name for name in registry.DETECTORS if (registry.ASSETS / name / "model.safetensors").exists()]
    assert status == 0 and set(record["scores"]) == set(shipped)
    assert all(0 <= p <= 1 for p in record["scores"].values())
    assert record["verdict"] in {"fake", "real", "uncertain"}
    if (registry.ASSETS / registry.ENSEMBLE_FILE).exists():
        assert 0 <= record["ensemble"] <= 1
