"""The scan record is declared once (``detectors/records.py``): the builders, the writers and the README follow it."""
import csv
import io
import json
from pathlib import Path

import pytest

from detectors import records

README = Path(__file__).resolve().parents[1] / "README.md"


def a_record(**values):
    faces = {"count": 1, "boxes": [records.face_entry(box=[1.0, 2.0, 30.0, 40.0], confidence=0.99, landmarks=[[5.0, 6.0]] * 5,
                                                      scores={"a": 0.25}, ensemble=0.3, verdict="uncertain", level="uncertain")]}
    return records.scan_record(path="x.jpg", kind="image", faces=faces, scores={"a": 0.25}, ensemble=0.3, verdict="uncertain",
                               level="uncertain", level_meaning={"fake_share": 0.5, "by_set": {"gan": 0.4}, "faces": 10},
                               provenance={"found": False}, **values)


def test_the_readme_shows_the_declared_record():
    """The README's record tables are generated from the declaration: after changing a field, paste
    ``python -c "from detectors import records; print(records.markdown_tables())"`` into the README."""
    assert records.markdown_tables() in README.read_text()


def test_a_record_has_every_field_it_carries_in_declared_order_and_nothing_undeclared():
    error = records.scan_record(path="x.jpg", kind=None, error="x.jpg: not found", provenance=None)
    assert list(error) == [f.name for f in records.RECORD_FIELDS if f.carried in ("always", "scan")]
    assert error["faces"] == {"count": 0, "boxes": []} and error["scores"] == {} and error["verdict"] is None
    assert "frames" not in error and "size" not in error  # a video's fields and the API's are not in a picture's record
    with pytest.raises(ValueError, match="clip_level"):
        records.scan_record(path="x.jpg", clip_level="likely fake")
    with pytest.raises(ValueError):
        records.face_entry(box=None, colour="red")
    api = records.api_record(kind="image", size=[640, 480])
    assert "path" not in api and "error" not in api and api["size"] == [640, 480]
    with pytest.raises(ValueError):
        records.api_record(path="/tmp/upload.jpg")


def test_the_csv_keeps_its_columns_and_reads_back():
    text = records.csv_text([a_record(), records.scan_record(path="broken.jpg", error="broken", provenance=None)])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["path", "kind", "error", "faces", "verdict", "level", "level_fake_share", "ensemble", "score_a",
                             "boxes", "frames", *records.PROVENANCE_COLUMNS, "clip_rule"]
    assert rows[0]["faces"] == "1" and rows[0]["level_fake_share"] == "0.5000" and rows[0]["score_a"] == "0.2500"
    assert json.loads(rows[0]["boxes"])[0]["confidence"] == 0.99
    assert rows[1]["error"] == "broken" and rows[1]["score_a"] == "" and rows[1]["faces"] == "0"
    clip = a_record(aggregation="mean", clip_rule={"rule": "trimmed", "method": "clip score"}, frames=[])
    assert json.loads(list(csv.DictReader(io.StringIO(records.csv_text([clip]))))[0]["clip_rule"])["rule"] == "trimmed"


def test_parquet_rows_follow_the_schema_and_read_back(tmp_path):
    pytest.importorskip("pyarrow")
    video = a_record(aggregation="mean", clip_rule={"rule": "trimmed", "method": "clip score"}, frames=[records.frame_entry(index=0, timestamp=0.0, faces=0, boxes=[], scores={},
                                                                     ensemble=None, verdict="no-face", level=None)])
    out = records.ParquetOut(tmp_path / "r.parquet")
    for record in (a_record(), video):
        out.write(record)
    out.close()
    picture, clip = records.read_parquet(tmp_path / "r.parquet")
    assert picture["faces"] == 1 and picture["boxes"][0]["scores"] == {"a": 0.25} and picture["frames"] == []
    assert picture["level_meaning"]["by_set"] == {"gan": 0.4} and json.loads(picture["provenance"]) == {"found": False}
    assert clip["aggregation"] == "mean" and clip["frames"][0]["verdict"] == "no-face"
    assert clip["clip_rule"] == {"rule": "trimmed", "method": "clip score"} and picture["clip_rule"] is None


def test_a_new_field_is_one_declaration(monkeypatch, tmp_path):
    """What the other writers need of a field comes from its declaration: a field declared without a Parquet type
    or a CSV column still reaches every output (as JSON text), and the README table names it."""
    clip = records.Field("clip_level", "the clip's level from its talking-head frames", carried="video")
    monkeypatch.setattr(records, "RECORD_FIELDS", (*records.RECORD_FIELDS, clip))
    record = a_record(clip_level={"level": "likely real"})
    assert json.loads(records.to_json(record))["clip_level"] == {"level": "likely real"}
    rows = list(csv.DictReader(io.StringIO(records.csv_text([record]))))
    assert json.loads(rows[0]["clip_level"]) == {"level": "likely real"}
    assert "| `clip_level` (videos) | the clip's level" in records.markdown_tables()
    pytest.importorskip("pyarrow")
    out = records.ParquetOut(tmp_path / "r.parquet")
    out.write(record)
    out.close()
    assert json.loads(records.read_parquet(tmp_path / "r.parquet")[0]["clip_level"]) == {"level": "likely real"}
