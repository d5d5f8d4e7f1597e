"""The bench command's structure (figures themselves come from running it, never from a test)."""
import json

import pytest

from detectors import cli


@pytest.mark.slow
def test_bench_reports_every_stage_with_ratios_and_memory(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--repeats", "1", "--video-frames", "2", "--clip-seconds", "1", "--folder-count", "4",
                     "--no-startup", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    names = [t["name"] for t in report["timings"]]
    for stage in ("decode", "face search: MTCNN", "face search: facenet-pytorch", "cropping", "detector: SpecXNet", "detector: SFIConv", "detector: Re-synthesis",
                  "detector: MD-CSDNetwork", "spectra", "error map", "plot building", "one-face image end to end",
                  "12-megapixel photo end to end", "folder scan: 4 images (4 with a face)", "video: per sampled frame"):
        assert any(name.startswith(stage) for name in names), stage
    assert report["reference"]["median_s"] > 0 and report["peak_rss_mb"] > 100
    for timing in report["timings"]:
        assert timing["median_s"] > 0 and timing["p95_s"] >= timing["median_s"]
        if "in turns with ResNet-50" in timing["name"]:  # its own ratio, from pairs of runs
            assert 0 < timing["ratio_to_reference"] < 100
        else:
            assert timing["ratio_to_reference"] == pytest.approx(timing["median_s"] / report["reference"]["median_s"])
    assert any("in turns with ResNet-50" in name for name in names)
    assert report["video_frames_per_second"] > 0
    assert "| what | median ms | p95 ms | x ResNet-50 |" in capsys.readouterr().out



def test_compare_face_search_reports_both_searches_and_refuses_nothing(tmp_path, capsys, astronaut):
    from PIL import Image

    Image.fromarray(astronaut).save(tmp_path / "portrait.jpg", quality=92)
    Image.new("RGB", (120, 90), (30, 60, 90)).save(tmp_path / "blank.png")
    assert cli.main(["bench", "--compare-face-search", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)[str(tmp_path)]
    assert report["pictures"] == 2 and report["with a face: ours"] == report["with a face: facenet-pytorch"] == 1
    assert report["matched"] == report["faces: facenet-pytorch"] == 1 and report["IoU: min"] > 0.99
    assert cli.main(["bench", "--compare-face-search", str(tmp_path / "missing.jpg")]) == 2
    assert "nothing to compare" in capsys.readouterr().err


def test_bench_provenance_only_times_the_three_reads(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--provenance-only", "--repeats", "2", "--json", str(out)]) == 0
    names = [t["name"] for t in json.loads(out.read_text())["timings"]]
    assert names == ["provenance: 12-megapixel JPEG without a manifest", "provenance: 12-megapixel JPEG with EXIF and XMP",
                     "provenance: 12-megapixel JPEG with Content Credentials (signature and whole-file hash checked)"]
    assert "without a manifest" in capsys.readouterr().out
