"""The evaluate command on a folder the test makes, with a checkpoint saved from an untrained model."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from detectors import checkpoints, models
from detectors.cli import main
from detectors.evaluation import labelled_files
from detectors.media import InputError
from tests.fixtures import write_video


@pytest.fixture(scope="module")
def folder(tmp_path_factory, astronaut):
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(0)
    for label in ("real", "fake"):
        (root / label).mkdir()
        for i in range(3):
            shifted = np.clip(astronaut.astype(int) + rng.integers(-30, 31, 3), 0, 255).astype(np.uint8)
            Image.fromarray(shifted).save(root / label / f"{i}.jpg", quality=90)
        write_video(root / label / "clip.mp4", frames=12, fps=6, size=(256, 256), picture=astronaut)
    (root / "real" / "blank.png").write_bytes(b"")  # unreadable: counted, not fatal
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return checkpoints.save(models.create("sficonv", "small", input_size=64), tmp_path_factory.mktemp("ckpt") / "sficonv")


def test_evaluate_reports_frame_and_video_metrics(folder, checkpoint, tmp_path, capsys):
    status = main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(folder), "--frames", "3",
                   "--json", str(tmp_path / "m.json"), "--roc", str(tmp_path / "roc.html")])
    assert status == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["files"] == 8 and result["frames"] == 6 + 2 * 3
    assert len(result["unreadable"]) == 1
    metrics = result["scorers"]["sficonv"]
    for level in ("frame", "video"):
        m = metrics[level]
        assert 0 <= m["auc"] <= 1 and 0 <= m["eer"] <= 1 and m["n_real"] + m["n_fake"] > 0
    assert metrics["frame"]["n_real"] == 3 + 3 and metrics["video"]["n_real"] == 4
    assert "<html>" in (tmp_path / "roc.html").read_text()[:500].lower()


def test_folder_without_real_and_fake_is_a_clear_error(tmp_path, checkpoint, capsys):
    with pytest.raises(InputError, match="real/ and fake/"):
        labelled_files(tmp_path)
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(tmp_path)]) == 2
    assert "real/ and fake/" in capsys.readouterr().err


def test_a_source_holding_both_classes_gets_one_row_per_class(tmp_path, astronaut, checkpoint):
    # As in the self-blended set: fake/celeba holds fakes made from the reals in real/celeba.
    for label in ("real", "fake"):
        (tmp_path / label / "celeba").mkdir(parents=True)
        for i in range(2 if label == "real" else 3):
            Image.fromarray(np.roll(astronaut, 7 * i, axis=1)).save(tmp_path / label / "celeba" / f"{i}.jpg", quality=90)
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(tmp_path), "--json", str(tmp_path / "m.json")]) == 0
    sources = json.loads((tmp_path / "m.json").read_text())["scorers"]["sficonv"]["sources"]
    assert set(sources) == {"real/celeba", "fake/celeba"}
    assert (sources["real/celeba"]["label"], sources["real/celeba"]["frames"]) == ("real", 2)
    assert (sources["fake/celeba"]["label"], sources["fake/celeba"]["frames"]) == ("fake", 3) and "auc" in sources["fake/celeba"]
