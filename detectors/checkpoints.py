"""The one checkpoint format and the one loader: a folder laid out like a Hugging Face Hub model repo.

    <folder>/model.safetensors   the weights (safetensors only: loading never unpickles anything)
    <folder>/config.json         how to rebuild and feed the model, how to read its output, where it came from
    <folder>/README.md           the model card (written by the training command)

A *source* is a local folder, or a Hub repo id with an optional pinned revision (``user/name@<commit>``). Hub
files go through ``hf_hub_download`` and its cache, so a repo fetched once works offline afterwards.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import models
from .calibration import Thresholds  # the one thresholds type (training imports it from here too)
from .faces import DEFAULT_MARGIN

FORMAT = "deepfake-detectors/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
HUB_HOST = ("huggingface.co", 443)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the source and the reason."""


@dataclass
class CheckpointConfig:
    """Everything ``config.json`` holds."""

    architecture: str
    variant: str
    overrides: dict[str, Any]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_margin: float = DEFAULT_MARGIN
    crop_size: int = 256
    thresholds: Thresholds = field(default_factory=Thresholds)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "architecture": self.architecture,
            "variant": self.variant,
            "overrides": self.overrides,
            "input_size": self.input_size,
            "normalisation": {"mean": list(self.mean), "std": list(self.std)},
            "crop": {"detector": "facenet-pytorch MTCNN", "margin": self.crop_margin, "size": self.crop_size},
            "labels": {str(k): v for k, v in models.LABELS.items()},
            "output": "one logit; sigmoid(logit) = probability that the face is fake",
            "thresholds": self.thresholds.to_dict(),
            "training": self.training,
            "metrics": self.metrics,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CheckpointConfig":
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown checkpoint format {data.get('format')!r} (expected {FORMAT!r})")
        return cls(
            architecture=data["architecture"],
            variant=data["variant"],
            overrides=dict(data.get("overrides", {})),
            input_size=int(data["input_size"]),
            mean=tuple(data["normalisation"]["mean"]),
            std=tuple(data["normalisation"]["std"]),
            crop_margin=float(data["crop"]["margin"]),
            crop_size=int(data["crop"]["size"]),
            thresholds=Thresholds.from_dict(data["thresholds"]) if "thresholds" in data else Thresholds(),
            training=dict(data.get("training", {})),
            metrics=dict(data.get("metrics", {})),
        )

    @classmethod
    def for_model(cls, model: models.Detector, **fields: Any) -> "CheckpointConfig":
        config = model.config
        return cls(
            architecture=config.name,
            variant=config.variant,
            overrides=dict(config.overrides),
            input_size=config.input_size,
            mean=tuple(config.mean),
            std=tuple(config.std),
            **fields,
        )

    def build(self) -> models.Detector:
        return models.create(self.architecture, self.variant, **{**self.overrides, "input_size": self.input_size})


@dataclass
class Checkpoint:
    model: models.Detector
    config: CheckpointConfig
    source: str


def save(model: models.Detector, folder: str | os.PathLike, config: CheckpointConfig | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = config or CheckpointConfig.for_model(model)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT, "architecture": config.architecture})
    (folder / CONFIG_FILE).write_text(json.dumps(config.to_json(), indent=2) + "\n")
    return folder


def hub_reachable(timeout: float = 1.5) -> bool:
    """A quick TCP probe, so that a machine without network falls back at once instead of retrying for ~24 s."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(HUB_HOST, timeout=timeout).close()
    except OSError:
        return False
    return True


def _split_source(source: str) -> tuple[str, str | None]:
    repo, _, revision = source.partition("@")
    return repo, revision or None


def resolve(source: str | os.PathLike) -> Path:
    """The local folder holding ``source``'s files: the folder itself, or the Hub cache snapshot."""
    path = Path(source)
    if path.is_dir():
        return path
    repo, revision = _split_source(str(source))
    if repo.count("/") != 1 or repo.startswith((".", "/")):
        raise CheckpointError(f"{source}: no such checkpoint folder, and not a Hub repo id (user/name[@revision])")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = not hub_reachable()
    try:
        config = hf_hub_download(repo, CONFIG_FILE, revision=revision, local_files_only=offline)
        hf_hub_download(repo, WEIGHTS_FILE, revision=revision, local_files_only=offline)
    except LocalEntryNotFoundError:
        raise CheckpointError(f"{source}: the Hub is not reachable and the repo is not in the local cache") from None
    except (RepositoryNotFoundError, HfHubHTTPError, OSError) as error:
        raise CheckpointError(f"{source}: cannot download from the Hub ({type(error).__name__})") from None
    return Path(config).parent


def _read_config(folder: Path, source) -> CheckpointConfig:
    try:
        return CheckpointConfig.from_json(json.loads((folder / CONFIG_FILE).read_text()))
    except FileNotFoundError:
        raise CheckpointError(f"{source}: {CONFIG_FILE} is missing") from None
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{source}: {CONFIG_FILE} is invalid ({error})") from None


def load_config(source: str | os.PathLike) -> CheckpointConfig:
    """Only the checkpoint's ``config.json`` (no weights read)."""
    return _read_config(resolve(source), source)


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digests(folder: str | os.PathLike) -> dict[str, str]:
    """sha256 of the files that make a checkpoint (weights and config)."""
    return {name: sha256(Path(folder) / name) for name in (WEIGHTS_FILE, CONFIG_FILE)}


def verify(folder: Path, expected: dict[str, str], source) -> None:
    """Raise unless every file's sha256 is the pinned one (a tampered, truncated or swapped checkpoint)."""
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{source}: {name} is missing")
        actual = sha256(path)
        if actual != digest:
            raise CheckpointError(f"{source}: {name} does not match its pinned sha256 (expected {digest[:12]}..., found {actual[:12]}...): "
                                  "the file was modified or damaged")


def load(source: str | os.PathLike, device: str | torch.device = "cpu", expected_sha256: dict[str, str] | None = None) -> Checkpoint:
    """Rebuild the model from ``config.json`` and load ``model.safetensors`` strictly (every tensor, right shape).

    With ``expected_sha256`` (file name -> digest; the shipped checkpoints' manifest) the files are checked
    before anything is parsed.
    """
    folder = resolve(source)
    if expected_sha256:
        verify(folder, expected_sha256, source)
    config = _read_config(folder, source)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{source}: {WEIGHTS_FILE} is missing")
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{source}: {WEIGHTS_FILE} is unreadable or truncated ({error})") from None
    model = config.build()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first_line = str(error).splitlines()[1] if len(str(error).splitlines()) > 1 else str(error)
        raise CheckpointError(f"{source}: weights do not fit {config.architecture}/{config.variant} ({first_line.strip()})") from None
    return Checkpoint(model.to(device).eval(), config, str(source))
