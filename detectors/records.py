"""The scan record: one per file, the same from ``scan`` (JSON lines, CSV, Parquet), its Ray engine and the app's API.

Its shape is declared here once: :data:`RECORD_FIELDS` (the record), :data:`FACE_FIELDS` (one entry of
``faces.boxes``), :data:`FRAME_FIELDS` (one entry of a video's ``frames``). Each field says what it means (the
README's record table is generated from these: :func:`markdown_tables`), which records carry it, and its Parquet
type. The pipeline and the app build records with :func:`scan_record` / :func:`api_record` (which refuse a field
not declared here), and the writers below read the declarations, so adding a field is one entry in one of the
three lists: a field without a declared Parquet type is written as JSON text, and one without a CSV column gets
a JSON column at the end of the CSV.

Records are plain dicts (what JSON, Gradio and Ray carry); :data:`ScanRecord` is their declared type.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Sequence, TypedDict

PARQUET_HINT = "Parquet output needs pyarrow: pip install -r requirements-ray.txt"

# Which records carry a field:
#   "always": every record (None / empty when the file could not be analysed);
#   "scan": every record of the scan command (JSON lines, CSV, Parquet, Ray), never the API's;
#   "video": records of videos (absent from pictures' records and from files that could not be read);
#   "api": the app's API only, where the analysis gives it.
Carried = Literal["always", "scan", "video", "api"]
CARRIED_WORDS = {"always": "", "scan": "scan only", "video": "videos", "api": "API only"}


@dataclass(frozen=True)
class Field:
    """One field of the record (or of a face or frame entry)."""

    name: str
    meaning: str  # Markdown, as the README's table shows it
    carried: Carried = "always"
    default: Callable[[], Any] = lambda: None  # its value where the analysis gives none
    arrow: Callable[[], Any] | None = None  # its Parquet type (pyarrow is imported only when writing); None: JSON text
    # Parquet: a struct field written as one column per member (member -> column name), not as one struct column.
    flatten: tuple[tuple[str, str], ...] = ()
    json_type: Any = Any  # its type in :data:`ScanRecord`


def _arrow():
    import pyarrow as pa

    return pa


def _scores_type():
    pa = _arrow()
    return pa.map_(pa.string(), pa.float64())


def _struct(fields: Sequence[Field]):
    """A Parquet struct of the entry fields the scan writes (not the API-only ones)."""
    pa = _arrow()
    return pa.struct([(f.name, f.arrow() if f.arrow else pa.string()) for f in fields if f.carried != "api"])


FACE_FIELDS: tuple[Field, ...] = (
    Field("box", "x1, y1, x2, y2 in picture pixels", arrow=lambda: _arrow().list_(_arrow().float64())),
    Field("confidence", "MTCNN's probability that it is a face", arrow=lambda: _arrow().float64()),
    Field("landmarks", "5 landmarks (eyes, nose, mouth corners) as x, y", arrow=lambda: _arrow().list_(_arrow().list_(_arrow().float64()))),
    Field("scores", "`{detector: probability of fake}` for this face", arrow=_scores_type),
    Field("ensemble", "the ensemble's probability of fake for this face", arrow=lambda: _arrow().float64()),
    Field("verdict", "this face's verdict", arrow=lambda: _arrow().string()),
    Field("level", "this face's evidence level", arrow=lambda: _arrow().string()),
    Field("reconstruction_error", "the re-synthesis error map's `mean`, `p95` and `max` over the face", carried="api"),
)

FRAME_FIELDS: tuple[Field, ...] = (
    Field("index", "the frame's position in the clip", arrow=lambda: _arrow().int32()),
    Field("timestamp", "its time in seconds", arrow=lambda: _arrow().float64()),
    Field("faces", "faces found in it", arrow=lambda: _arrow().int32()),
    Field("boxes", "its faces, each as in `faces.boxes`", arrow=lambda: _arrow().list_(_struct(FACE_FIELDS))),
    Field("scores", "`{detector: probability of fake}` of its most suspicious face", arrow=_scores_type),
    Field("ensemble", "the ensemble's probability of fake for that face", arrow=lambda: _arrow().float64()),
    Field("verdict", "the frame's verdict", arrow=lambda: _arrow().string()),
    Field("level", "the frame's evidence level", arrow=lambda: _arrow().string()),
)


def _faces_type():
    pa = _arrow()
    return pa.struct([("count", pa.int32()), ("boxes", pa.list_(_struct(FACE_FIELDS)))])


def _level_meaning_type():
    pa = _arrow()
    return pa.struct([("fake_share", pa.float64()), ("by_set", _scores_type()), ("faces", pa.int64())])


def _clip_rule_type():
    pa = _arrow()
    return pa.struct([("rule", pa.string()), ("method", pa.string())])


RECORD_FIELDS: tuple[Field, ...] = (
    Field("path", "the input file", carried="scan", arrow=lambda: _arrow().string(), json_type=str),
    Field("kind", "`image` or `video` (decided by content, not by extension); `null` when unreadable",
          arrow=lambda: _arrow().string(), json_type=str | None),
    Field("error", "`null`, or a message saying why the file could not be read", carried="scan",
          arrow=lambda: _arrow().string(), json_type=str | None),
    Field("size", "the picture's width and height in pixels", carried="api", json_type=list),
    Field("faces", "`count` (for a video: most faces in one sampled frame) and `boxes`, one entry per face (below; for a "
          "video, the faces of the most suspicious frame)", default=lambda: {"count": 0, "boxes": []},
          arrow=_faces_type, flatten=(("count", "faces"), ("boxes", "boxes")), json_type=dict),
    Field("scores", "`{detector: probability of fake in [0, 1]}` of the most suspicious face; for a video the frames "
          "with a face aggregated by `--rule` (default the mean); `{}` without a face or a detector",
          default=dict, arrow=_scores_type, json_type=dict),
    Field("ensemble", "the detectors combined: the ensemble rule's probability of fake (`null` without a face)",
          arrow=lambda: _arrow().float64(), json_type=float | None),
    Field("verdict", "`fake` (only at \"likely fake\"), `real` (only at \"likely real\"), `uncertain` or `no-face`; kept "
          "for compatibility, `level` says more", arrow=lambda: _arrow().string(), json_type=str | None),
    Field("level", "the evidence level: `likely fake`, `leaning fake`, `uncertain`, `leaning real`, `likely real` "
          "(`null` without a face); also per face in `boxes` and per frame in `frames`",
          arrow=lambda: _arrow().string(), json_type=str | None),
    Field("level_meaning", "what that level meant on validation: `fake_share` (share of fakes among validation faces "
          "at that level, every held-out set alike at even odds of real and fake), `by_set` (the same per held-out "
          "set: `gan`, `faceswap`, `diffusion`, `unseen diffusion`, `unseen gan`, `self-blended`, and `reenactment`, "
          "`unseen reenactment` for a rule fitted with the talking-head sources), `faces` "
          "(validation faces at that level); for a video with a `clip_rule`, what the clip level meant on validation clips",
          arrow=_level_meaning_type, json_type=dict | None),
    Field("provenance", "what the file declares about its origin, read even when its pixels cannot be: `found`; "
          "`kind` (where the leading statement comes from: `c2pa`, `xmp`, `iptc`, `png-text`, `exif`, or `null`); "
          "`declares` (`generated`, `composite`, `enhanced`, `captured`, `other` or `null`, from the whole manifest "
          "chain) and the IPTC term behind it (`source_type`); `generator` (tool or camera named); `signer` "
          "(`subject`, `issuer` of the active manifest's signing certificate); `signed_at`; `validation` "
          "(`trusted` = signature valid, signer on the C2PA trust list; `valid` = signature valid, signer not on the "
          "trust list; `expired` = signature valid, certificate expired; `off-profile` = signature valid, "
          "certificate not valid for C2PA signing; `mismatch` = content changed after signing; `invalid` = "
          "signature broken; `malformed`; `revoked`; `failed` = a failure code c2pa has no family for here; "
          "`unreadable`; `null` without a manifest); `chain` (the manifest chain in one line, oldest first, or "
          "`null`); `statement` (the panel's lead sentence); `c2pa` (claim generator, title, the active manifest's "
          "actions and ingredients, `chain`, `manifests` (how many in the chain), `validation_state` as c2pa gives "
          "it, `validation_codes` (the raw failure codes), `findings` (per family: `family`, `sentence`, `codes`), "
          "`ingredient_codes`, `trust_list` (the lists the signer was checked against)); `metadata` (EXIF, XMP, "
          "credit lines and the one that declares AI (`ai_credit`), generator text previews); `notes` (what could "
          "not be read, in words). Never part of `scores` or `ensemble`. Parquet: JSON text",
          json_type=dict | None),
    Field("aggregation", "the rule that made the frames one score per detector (`scores`; also `ensemble` and `level` "
          "when `clip_rule` is `null`): `mean` or `confident`", carried="video",
          arrow=lambda: _arrow().string(), json_type=str),
    Field("clip_rule", "`{rule, method}` of the clip rule that gave the clip its `ensemble` score and `level` (fitted on "
          "validation clips; `level_meaning` is then the clip level's meaning: `fake_share` of validation clips, `faces` "
          "counts clips, `by_set` is per fake family), or `null`: the faces' levels of the aggregated probability", carried="video",
          arrow=_clip_rule_type, json_type=dict | None),
    Field("frames", "per sampled frame, one entry (below)", carried="video",
          arrow=lambda: _arrow().list_(_struct(FRAME_FIELDS)), json_type=list),
)

ScanRecord = TypedDict("ScanRecord", {f.name: f.json_type for f in RECORD_FIELDS}, total=False)


# -- building -------------------------------------------------------------------------------------------------

def _entry(fields: Sequence[Field], values: dict[str, Any], carries: Callable[[Field], bool], what: str) -> dict:
    unknown = set(values) - {f.name for f in fields}
    if unknown:
        raise ValueError(f"{what} has no field {', '.join(sorted(unknown))}: declare it in detectors/records.py")
    return {f.name: values[f.name] if f.name in values else f.default() for f in fields if f.name in values or carries(f)}


def scan_record(**values: Any) -> ScanRecord:
    """A scan command's record: every field it carries (defaults where ``values`` gives none), in declared order."""
    return _entry(RECORD_FIELDS, values, lambda f: f.carried in ("always", "scan"), "a scan record")


def api_record(**values: Any) -> ScanRecord:
    """The record the app's API returns: the scan record without ``path`` and ``error`` (an upload's temporary path
    means nothing to the client, and a file that cannot be read is an error message, not a record)."""
    if any(name in values for name in ("path", "error")):
        raise ValueError("the API's record carries no path and no error")
    return _entry(RECORD_FIELDS, values, lambda f: f.carried == "always", "an API record")


def face_entry(**values: Any) -> dict:
    """One entry of ``faces.boxes``."""
    return _entry(FACE_FIELDS, values, lambda f: f.carried == "always", "a face entry")


def frame_entry(**values: Any) -> dict:
    """One entry of a video record's ``frames``."""
    return _entry(FRAME_FIELDS, values, lambda f: f.carried == "always", "a frame entry")


# -- writing --------------------------------------------------------------------------------------------------

def to_json(record: ScanRecord) -> str:
    """One JSON line (non-ASCII kept as is)."""
    return json.dumps(record, ensure_ascii=False)


def _share(record: ScanRecord) -> str:
    share = (record.get("level_meaning") or {}).get("fake_share")
    return "" if share is None else f"{share:.4f}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


PROVENANCE_COLUMNS = ("provenance_kind", "provenance_declares", "provenance_generator", "provenance_signer", "provenance_validation")


def _provenance_cells(found: dict | None) -> list[str]:
    if not found:
        return [""] * len(PROVENANCE_COLUMNS)
    signer = (found.get("signer") or {}).get("subject")
    return [found.get(key) or "" for key in ("kind", "declares", "generator")] + [signer or "", found.get("validation") or ""]


SCORE_COLUMNS = "score_*"  # stands for one column per detector, ``score_<name>``, sorted by name
# The CSV's columns in order: (header, the record field it comes from, its cell). Fields named in no column and
# not left out below get a JSON column of their own after these.
CSV_COLUMNS: tuple[tuple[str, str, Callable[[ScanRecord], Any]], ...] = (
    ("path", "path", lambda r: r["path"]),
    ("kind", "kind", lambda r: r["kind"] or ""),
    ("error", "error", lambda r: r["error"] or ""),
    ("faces", "faces", lambda r: r["faces"]["count"]),
    ("verdict", "verdict", lambda r: r["verdict"] or ""),
    ("level", "level", lambda r: r.get("level") or ""),
    ("level_fake_share", "level_meaning", _share),
    ("ensemble", "ensemble", lambda r: _number(r["ensemble"])),
    (SCORE_COLUMNS, "scores", None),
    ("boxes", "faces", lambda r: json.dumps(r["faces"]["boxes"])),
    ("frames", "frames", lambda r: json.dumps(r.get("frames", []))),
    *((column, "provenance", lambda r, i=i: _provenance_cells(r.get("provenance"))[i]) for i, column in enumerate(PROVENANCE_COLUMNS)),
)
CSV_LEAVES_OUT = {"aggregation": "the --rule the scan was given", "size": "API only"}


def _extra_csv_fields() -> list[str]:
    named = {field for _, field, _ in CSV_COLUMNS} | set(CSV_LEAVES_OUT)
    return [f.name for f in RECORD_FIELDS if f.name not in named and f.carried != "api"]


def csv_text(records: Sequence[ScanRecord]) -> str:
    """The records as CSV: one row per file, nested parts as JSON text."""
    detector_names = sorted({name for record in records for name in record["scores"]})
    extra = _extra_csv_fields()
    header: list[str] = []
    for column, _, _ in CSV_COLUMNS:
        header += [f"score_{n}" for n in detector_names] if column == SCORE_COLUMNS else [column]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header + extra)
    for record in records:
        row = []
        for column, _, cell in CSV_COLUMNS:
            if column == SCORE_COLUMNS:
                row += [_number(record["scores"].get(n)) for n in detector_names]
            else:
                row.append(cell(record))
        writer.writerow(row + [json.dumps(record.get(name), ensure_ascii=False) for name in extra])
    return buffer.getvalue()


def _parquet_fields() -> list[Field]:
    """The fields in Parquet's column order: typed ones in declared order, then those kept as JSON text (so a new
    untyped field lands at the end, as ``provenance`` always has)."""
    fields = [f for f in RECORD_FIELDS if f.carried != "api"]
    return [f for f in fields if f.arrow is not None] + [f for f in fields if f.arrow is None]


def parquet_schema():
    """One column per field (a flattened field: one per member; a field without a Parquet type: JSON text)."""
    pa = _arrow()
    columns = []
    for f in _parquet_fields():
        if f.flatten:
            members = {member.name: member.type for member in f.arrow()}
            columns += [(column, members[member]) for member, column in f.flatten]
        else:
            columns.append((f.name, f.arrow() if f.arrow else pa.string()))
    return pa.schema(columns)


def _to_arrow(value: Any, kind) -> Any:
    """A JSON value shaped for its Parquet type: maps as (key, value) pairs, structs and lists member by member."""
    pa = _arrow()
    if value is None:
        return None
    if isinstance(kind, pa.MapType):
        return [(k, _to_arrow(v, kind.item_type)) for k, v in value.items()]
    if isinstance(kind, pa.StructType):
        return {member.name: _to_arrow(value.get(member.name), member.type) for member in kind}
    if isinstance(kind, (pa.ListType, pa.LargeListType)):
        return [_to_arrow(v, kind.value_type) for v in value]
    return value


def parquet_row(record: ScanRecord) -> dict:
    """A scan record as a Parquet row of :func:`parquet_schema`."""
    row = {}
    for f in _parquet_fields():
        value = record.get(f.name)
        if f.arrow is None:
            row[f.name] = json.dumps(value, ensure_ascii=False)  # nested and open-ended: kept as JSON text
        elif f.flatten:
            kind = f.arrow()
            for member, column in f.flatten:
                row[column] = _to_arrow((value or {}).get(member), kind.field(member).type)
        else:
            kind = f.arrow()
            if f.name not in record and isinstance(kind, _arrow().ListType):
                value = []  # a picture's record has no frames: an empty list in its row
            row[f.name] = _to_arrow(value, kind)
    return row


class ParquetOut:
    """Records written as Parquet rows, a row group every ``rows`` records (memory stays bounded)."""

    def __init__(self, path: str | os.PathLike, rows: int = 1024) -> None:
        import pyarrow.parquet as pq

        self.schema = parquet_schema()
        self.writer = pq.ParquetWriter(str(path), self.schema)
        self.pending: list[dict] = []
        self.rows = rows

    def write(self, record: ScanRecord) -> None:
        self.pending.append(parquet_row(record))
        if len(self.pending) >= self.rows:
            self.flush()

    def flush(self) -> None:
        pa = _arrow()
        if self.pending:
            self.writer.write_table(pa.Table.from_pylist(self.pending, schema=self.schema))
            self.pending = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


def read_parquet(path: str | os.PathLike) -> list[dict]:
    """The rows of a scan's Parquet file as plain dicts (maps as dicts), for tests and quick looks."""
    import pyarrow.parquet as pq

    def plain(value, key: str = ""):
        if key in ("scores", "by_set"):  # a map column arrives as (key, value) tuples
            return {k: v for k, v in value}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v, k) for k, v in value.items()}
        return value

    return [plain(row) for row in pq.read_table(str(path)).to_pylist()]


# -- documenting ----------------------------------------------------------------------------------------------

def _table(fields: Iterable[Field]) -> str:
    rows = ["| field | meaning |", "|---|---|"]
    for f in fields:
        where = CARRIED_WORDS[f.carried]
        rows.append(f"| `{f.name}`{f' ({where})' if where else ''} | {f.meaning} |")
    return "\n".join(rows)


def markdown_tables() -> str:
    """The README's record tables: the record, one face entry, one frame entry."""
    return (f"{_table(RECORD_FIELDS)}\n\nEach entry of `faces.boxes` (and of a frame's `boxes`):\n\n{_table(FACE_FIELDS)}"
            f"\n\nEach entry of `frames` (videos):\n\n{_table(FRAME_FIELDS)}\n")
