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
from typing import Iterator, Sequence

import numpy as np

from .records import ScanRecord, to_json

INSTALL_HINT = "--engine ray needs Ray Data: pip install -r requirements-ray.txt"
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
        records = [to_json(record) for record in self.analyzer.scan_many(paths, self.frames, self.rule)]
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
         address: str | None = None, device: str = "cpu") -> Iterator[ScanRecord]:
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
