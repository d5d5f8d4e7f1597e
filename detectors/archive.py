"""``scan --engine ray``: the scan command on Ray Data, for archives too big for one machine.

The driver lists the inputs (paths only: the files are read by the workers, never shipped through the
driver) and writes the records; the work runs in ``map_batches`` with a callable class, so each worker loads
the detectors, the face cropper and the ensemble once and reuses them for every batch (:class:`ScanWorker`).
Each record is exactly the local scan's (:meth:`detectors.pipeline.Analyzer.scan`): same fields, same values.

- Locally (no ``--address`` and no ``RAY_ADDRESS``) Ray starts on this machine; with either it joins a
  cluster. Every worker needs the same install and the checkpoints (the shipped ones come with the code).
- A file that cannot be read becomes its error record, as locally. A worker that dies is restarted and its
  batch retried by Ray; a batch's records are produced whole or not at all, so no file is lost or counted
  twice. Records come back in input order.
- Memory per worker is bounded: a batch holds a few files, and videos are sampled, never read whole.

Ray is an optional extra (``requirements-ray.txt``); without it ``--engine ray`` says what to install.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

INSTALL_HINT = "--engine ray needs Ray Data: pip install -r requirements-ray.txt"
PARQUET_HINT = "Parquet output needs pyarrow: pip install -r requirements-ray.txt"
BATCH_FILES = 4  # files per batch: small enough that a retried batch costs little, big enough to amortise calls


class RayMissing(RuntimeError):
    pass


class ScanWorker:
    """One Ray worker: loads the detectors once, then scans the files of every batch it is given."""

    def __init__(self, frames: int, rule: str, device: str = "cpu", threads: int = 1) -> None:
        import torch

        from . import registry
        from .faces import FaceCropper
        from .pipeline import Analyzer

        torch.set_num_threads(threads)  # workers share a machine's cores: one thread each does not thrash
        loaded = registry.load_all(device=torch.device(device))
        self.analyzer = Analyzer(loaded.detectors, FaceCropper(device=device), ensemble=registry.load_ensemble(loaded.detectors))
        self.frames, self.rule = frames, rule

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Paths travel as bytes (os.fsencode): a file name that is not valid UTF-8 survives the trip.
        paths = [os.fsdecode(bytes(path)) for path in batch["path"]]
        records = [json.dumps(record, ensure_ascii=False) for record in self.analyzer.scan_many(paths, self.frames, self.rule)]
        return {"index": batch["index"], "record": np.array(records, dtype=object)}


def ray_module():
    """Ray, or :class:`RayMissing` saying what to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayMissing(INSTALL_HINT) from None
    return ray


def scan(paths: Sequence[str | os.PathLike], frames: int = 16, rule: str = "mean", workers: int = 2,
         address: str | None = None, device: str = "cpu") -> Iterator[dict]:
    """The scan record of every path, in order, computed by ``workers`` Ray workers."""
    ray = ray_module()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        # Locally: a private instance with as many CPUs as asked for, no dashboard; on a cluster, join it.
        options = {"address": address} if address else {"num_cpus": max(workers, os.cpu_count() or 1), "include_dashboard": False}
        ray.init(**options, log_to_driver=False, ignore_reinit_error=True)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # records come back in input order
    items = [{"index": i, "path": os.fsencode(str(path))} for i, path in enumerate(paths)]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), max(workers * 4, len(items) // 64))))
    dataset = dataset.map_batches(
        ScanWorker,
        fn_constructor_kwargs={"frames": frames, "rule": rule, "device": device},
        batch_size=BATCH_FILES,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
        max_restarts=3,  # a worker that dies (out of memory, a crashing decoder) is replaced ...
        max_task_retries=3,  # ... and its batch run again
    )
    for row in dataset.iter_rows():
        yield json.loads(row["record"])


def parquet_schema():
    import pyarrow as pa

    scores = pa.map_(pa.string(), pa.float64())
    box = pa.struct([("box", pa.list_(pa.float64())), ("confidence", pa.float64()), ("landmarks", pa.list_(pa.list_(pa.float64()))),
                     ("scores", scores), ("ensemble", pa.float64()), ("verdict", pa.string()), ("level", pa.string())])
    frame = pa.struct([("index", pa.int32()), ("timestamp", pa.float64()), ("faces", pa.int32()), ("boxes", pa.list_(box)),
                       ("scores", scores), ("ensemble", pa.float64()), ("verdict", pa.string()), ("level", pa.string())])
    meaning = pa.struct([("fake_share", pa.float64()), ("by_set", scores), ("faces", pa.int64())])
    return pa.schema([("path", pa.string()), ("kind", pa.string()), ("error", pa.string()), ("faces", pa.int32()),
                      ("boxes", pa.list_(box)), ("scores", scores), ("ensemble", pa.float64()), ("verdict", pa.string()),
                      ("level", pa.string()), ("level_meaning", meaning), ("aggregation", pa.string()), ("frames", pa.list_(frame)),
                      ("provenance", pa.string())])


def _row(record: dict) -> dict:
    """A scan record as a Parquet row: ``faces`` becomes the count, ``boxes`` and ``frames`` nested columns."""
    def pairs(scores: dict) -> list:
        return list(scores.items())

    def boxes(items: list) -> list:
        return [{**box, "scores": pairs(box.get("scores", {}))} for box in items]

    return {
        "path": record["path"], "kind": record["kind"], "error": record["error"], "faces": record["faces"]["count"],
        "boxes": boxes(record["faces"]["boxes"]), "scores": pairs(record["scores"]), "ensemble": record["ensemble"],
        "verdict": record["verdict"], "level": record.get("level"),
        "level_meaning": ({**record["level_meaning"], "by_set": pairs(record["level_meaning"].get("by_set", {}))}
                          if record.get("level_meaning") else None),
        "aggregation": record.get("aggregation"),
        "frames": [{**frame, "boxes": boxes(frame["boxes"]), "scores": pairs(frame["scores"])} for frame in record.get("frames", [])],
        "provenance": json.dumps(record.get("provenance"), ensure_ascii=False),  # nested and open-ended: kept as JSON text
    }


class ParquetOut:
    """Records written as Parquet rows, a row group every ``rows`` records (memory stays bounded)."""

    def __init__(self, path: str | os.PathLike, rows: int = 1024) -> None:
        import pyarrow.parquet as pq

        self.schema = parquet_schema()
        self.writer = pq.ParquetWriter(str(path), self.schema)
        self.pending: list[dict] = []
        self.rows = rows

    def write(self, record: dict) -> None:
        self.pending.append(_row(record))
        if len(self.pending) >= self.rows:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

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
