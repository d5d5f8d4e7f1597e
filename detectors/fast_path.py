"""The CPU fast path of a detector: its TorchScript trace, frozen, cached on disk so a start does not redo it.

Tracing and freezing take seconds per detector (SpecXNet's Fourier units over ten on two cores), and every
start of the app or of ``scan`` paid for it. The frozen module is saved once per checkpoint in the user's
cache folder (``$DEEPFAKE_DETECTORS_CACHE``, else ``$XDG_CACHE_HOME/deepfake-detectors``, else
``~/.cache/deepfake-detectors``; never in the repository), keyed by the checkpoint's sha256, the torch version
and the machine, and loaded in well under a second at the next start.

Whatever it comes from (a fresh trace or the cache), a fast path is used only after it matched the eager model
on a batch other than the traced one (logits within :data:`TOLERANCE`); a cached file that does not load or
does not match is rebuilt, never trusted. The eager logits are computed when the trace is made and stored in the
cached file (whose name carries the checkpoint's sha256), so a start with a warm cache runs only the trace.

The frozen module runs without the graph executor's optimisation passes (:class:`FrozenModel`). Measured on
SpecXNet (two-core Xeon, torch 2.13, batch 1): with them, the first one or two calls after every load take
0.7-1 s each (profiling, then re-optimising a graph of thousands of nodes) and later calls 16 ms; without them
the first call takes 60 ms and later calls the same 16 ms, since freezing already removed what they would.
``optimize_for_inference`` was tried and dropped: it fails on SpecXNet's adaptive pooling, and the models it
helped run as fast eagerly in channels-last memory (see the specs' ``fast_path`` flag in ``detectors.models``).
"""
from __future__ import annotations

import io
import os
import pickle
import platform
import tempfile
import warnings
from pathlib import Path

import torch

TOLERANCE = 1e-3  # on logits
CACHE_VARIABLE = "DEEPFAKE_DETECTORS_CACHE"


def cache_folder() -> Path:
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "deepfake-detectors"


def cache_path(name: str, digest: str) -> Path:
    key = f"{name}-{digest[:16]}-torch{torch.__version__}-{platform.machine()}".replace("+", "_")
    return cache_folder() / "fast-path" / f"{key}.pt"


class FrozenModel:
    """A frozen TorchScript module called without the graph executor's optimisation passes (see above).

    The switch is set around every call: the executor reads it per thread, and detectors run in worker threads.
    """

    def __init__(self, module: torch.jit.ScriptModule) -> None:
        self.module = module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.jit.optimized_execution(False):
            return self.module(x)


def _inputs(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(2, 3, size, size, generator=generator).to(device)
    check = torch.rand(3, 3, size, size, generator=generator).to(device)  # another batch size than traced
    return example, check


def _matches(candidate, expected: torch.Tensor, check: torch.Tensor) -> bool:
    try:
        return (candidate(check) - expected).abs().max().item() <= TOLERANCE
    except RuntimeError:  # some optimisations only fail when run
        return False


def _frozen(model: torch.nn.Module, example: torch.Tensor):
    try:
        return torch.jit.freeze(torch.jit.trace(model, example, check_trace=False))
    except RuntimeError:
        return None


def _save(module, path: Path, expected: torch.Tensor, digest: str) -> None:
    """Atomically, and never fatally: a read-only home only costs the next start its trace. The eager model's
    logits on the check batch travel in the same file with the checkpoint's sha256 they come from, so a later
    start checks the trace without running the eager model (a quarter of a second for SpecXNet on two cores)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(handle)
    except OSError:
        return
    try:
        torch.jit.save(module, temporary, _extra_files={EXPECTED: _to_bytes(expected), CHECKPOINT: digest.encode()})
        os.replace(temporary, path)
    except (OSError, RuntimeError):
        Path(temporary).unlink(missing_ok=True)


EXPECTED = "expected_logits.pt"  # the eager model's logits on the check batch, inside the cached file
CHECKPOINT = "checkpoint_sha256"  # the checkpoint they come from


def _to_bytes(tensor: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    torch.save(tensor.detach().cpu(), buffer)
    return buffer.getvalue()


def _load(path: Path, device: torch.device, digest: str) -> tuple[torch.jit.ScriptModule | None, torch.Tensor | None]:
    """The cached module and the logits it must give on the check batch (None for a file without them, or with
    another checkpoint's)."""
    extra = {EXPECTED: "", CHECKPOINT: ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except (OSError, RuntimeError, ValueError):
        return None, None
    if not extra[EXPECTED] or extra[CHECKPOINT] != digest.encode():
        return module, None
    try:
        return module, torch.load(io.BytesIO(extra[EXPECTED]), map_location=device, weights_only=True)
    except (RuntimeError, ValueError, EOFError, pickle.UnpicklingError):
        return module, None


def fast_path(model: torch.nn.Module, name: str, digest: str, size: int, device: torch.device) -> FrozenModel | None:
    """The frozen module that scores like ``model`` (from the cache, else traced and cached), or None (use ``model``)."""
    example, check = _inputs(size, device)
    path = cache_path(name, digest)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cached, expected = _load(path, device, digest) if path.is_file() else (None, None)
        if cached is not None:
            recorded = expected is not None and len(expected) == len(check)
            if not recorded:  # written by an older version, or for another checkpoint: ask the model
                expected = model(check)
            if _matches(frozen := FrozenModel(cached), expected, check):
                if not recorded:
                    _save(cached, path, expected, digest)  # so that the next start need not ask
                return frozen
        expected = model(check)
        traced = _frozen(model, example)
        if traced is None or not _matches(frozen := FrozenModel(traced), expected, check):
            return None
        _save(traced, path, expected, digest)
        return frozen
