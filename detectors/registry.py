"""Which checkpoints the app and the CLI load, from where, onto which device; loaded lazily and once.

Default: the checkpoints shipped in ``assets/checkpoints/<name>``. To use Hub repos instead, set
``DEEPFAKE_CHECKPOINTS`` to comma-separated ``name=source`` pairs, a source being a folder or
``user/repo@<revision>`` (pin the revision: an unpinned repo can change under you), e.g.
``DEEPFAKE_CHECKPOINTS="specxnet=me/specxnet-small@3f2a...,sficonv=/data/my-sficonv"``. A source that cannot
be loaded (no network and not cached, missing, corrupt) falls back to the shipped checkpoint, with a message
saying so; a detector with no usable checkpoint at all is reported unavailable and the others still load.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import checkpoints, models
from .calibration import VERDICT_LEVELS, EnsembleRule, expit
from .checkpoints import CheckpointConfig, CheckpointError, Thresholds
from .fast_path import fast_path as fast_path_of
from .preprocess import SharedInput

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "checkpoints"
SOURCES_VARIABLE = "DEEPFAKE_CHECKPOINTS"
ENSEMBLE_FILE = "ensemble.json"
MANIFEST_FILE = "MANIFEST.json"  # sha256 of every shipped checkpoint file, checked at load
# What each detector's spec (detectors.models) switches on, and why it is per detector:
# - half_precision_safe: float16 on a GPU; FFTs (SpecXNet) and log|DCT| (MD-CSD) lose too much in it.
# - fast_path: CPU fast path (detectors.fast_path): TorchScript trace -> freeze (weights become constants, Python
#   overhead gone), cached on disk per checkpoint, checked against the eager model at every load on another batch
#   size than traced. Only SpecXNet gains from it (16 ms frozen vs 29 ms eager, one thread, batch 1: its Fourier
#   units are many small operations); the other three run about as fast eagerly (SFIConv 8.8 ms vs 7.5 frozen) or
#   faster with a channels-last input (re-synthesis 11.5 vs 14, MD-CSD 9.2 vs 11), and so start without any trace
#   or cache.
# - channels_last_input: only the input is channels-last: weights in that layout crash Grad-CAM's backward pass.


def detector_names() -> tuple[str, ...]:
    """The registered detectors (``detectors.models.DETECTOR_MODULES``), in the order pages list them."""
    return tuple(spec.name for spec in models.specs())


def display_name(name: str) -> str:
    spec = models.spec(name)
    return spec.display_name if spec is not None else name


def __getattr__(attribute: str):
    # DETECTORS and DISPLAY_NAMES are read from the specs on every access, so that a detector registered at
    # run time (a test's stand-in) is known everywhere at once; the names stay for the code that imports them.
    if attribute == "DETECTORS":
        return detector_names()
    if attribute == "DISPLAY_NAMES":
        return {name: display_name(name) for name in detector_names()}
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def gpu_entry(function: Callable) -> Callable:
    """``spaces.GPU`` on Hugging Face ZeroGPU Spaces (where the package exists); unchanged everywhere else."""
    try:
        import spaces
    except ImportError:
        return function
    return spaces.GPU(function)


@dataclass
class LoadedDetector:
    """A checkpoint ready to score face crops: the pipeline's ``ScoringDetector``."""

    name: str
    model: torch.nn.Module
    config: CheckpointConfig
    source: str
    device: torch.device
    half: bool = False
    fast: Callable[[torch.Tensor], torch.Tensor] | None = None  # the frozen model (fast_path.FrozenModel), when it matches
    channels_last: bool = False  # feed the model channels-last input (faster convolutions; see the specs' flags)

    @property
    def display_name(self) -> str:
        return display_name(self.config.architecture)

    @torch.inference_mode()
    def logits(self, crops: Sequence[np.ndarray] | SharedInput) -> np.ndarray:
        """One logit per crop; pass a :class:`SharedInput` to share decoding and resizing between detectors."""
        shared = crops if isinstance(crops, SharedInput) else SharedInput(crops, self.device)
        x = shared.for_model(self.model.config)
        if self.half:
            x = x.half()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return (self.fast or self.model)(x).float().cpu().numpy()

    def probabilities(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return expit(self.logits(crops))

    def verdict(self, probability: float) -> str:
        return self.config.thresholds.verdict(probability)

    @property
    def threshold(self) -> float:
        return self.config.thresholds.decision


@dataclass
class EnsembleScorer:
    """The fitted ensemble rule over loaded detectors, scoring crops like one more detector."""

    rule: EnsembleRule
    members: list[LoadedDetector]
    name: str = "ensemble"

    def probability(self, logits: dict[str, float | None]) -> float | None:
        return self.rule.probability(logits)

    def logits(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        by_name = {d.name: d.logits(crops) for d in self.members}
        columns = [by_name.get(name, np.full(len(crops), np.nan)) for name in self.rule.names]
        p = np.clip(self.rule.probabilities(np.stack(columns, axis=1)), 1e-7, 1 - 1e-7)
        return np.log(p / (1 - p))

    @property
    def thresholds(self) -> Thresholds:
        return self.rule.calibration

    def verdict(self, probability: float) -> str:
        return self.thresholds.verdict(probability)

    def level(self, probability: float, fake_votes: int | None = None) -> str:
        """The evidence level of an ensemble probability, with ``fake_votes`` detectors saying "fake" on their own
        (the corroboration rule); a rule fitted before levels: its verdict's level."""
        if self.rule.levels is not None:
            return self.rule.levels.level(probability, fake_votes)
        return VERDICT_LEVELS.get(self.verdict(probability), "uncertain")

    @property
    def meanings(self) -> dict[str, dict] | None:
        """Per level, what it meant on validation (:class:`calibration.EvidenceLevels`); None without levels."""
        return self.rule.levels.meaning if self.rule.levels is not None else None

    @property
    def threshold(self) -> float:
        return self.rule.calibration.decision

    @property
    def clip(self):
        """How a clip's frames make one level, fitted on clips (``calibration.ClipRule``); None when the rule has
        none (a clip then takes the level of its frames' mean, with the faces' levels)."""
        return self.rule.clip


ENSEMBLE_VARIABLE = "DEEPFAKE_ENSEMBLE"  # a refitted rule to try before shipping it (not checked against the manifest)


def load_ensemble(members: Sequence[LoadedDetector], path: Path | None = None) -> EnsembleScorer | None:
    """The ensemble rule shipped beside the checkpoints (or the file ``$DEEPFAKE_ENSEMBLE`` names), or None when
    it has not been fitted yet or the shipped file does not match its pinned sha256 (the pipeline then falls
    back to the mean and a majority vote)."""
    if path is None and os.environ.get(ENSEMBLE_VARIABLE):
        path = Path(os.environ[ENSEMBLE_VARIABLE])
    shipped = path is None
    path = path or ASSETS / ENSEMBLE_FILE
    if shipped and path.is_file():
        try:
            pinned = json.loads((ASSETS / MANIFEST_FILE).read_text()).get("ensemble")
        except (OSError, ValueError):
            pinned = None
        if pinned is None or checkpoints.sha256(path) != pinned:
            return None
    try:
        rule = EnsembleRule.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError):
        return None
    return EnsembleScorer(rule, list(members))


def configured_sources(environ: dict[str, str] | None = None) -> dict[str, str]:
    """name -> source: the shipped folder unless ``DEEPFAKE_CHECKPOINTS`` names another."""
    environ = os.environ if environ is None else environ
    sources = {name: str(ASSETS / name) for name in detector_names()}
    for item in filter(None, (part.strip() for part in environ.get(SOURCES_VARIABLE, "").split(","))):
        name, _, source = item.partition("=")
        if name.strip() not in sources or not source.strip():
            raise ValueError(f"{SOURCES_VARIABLE}: expected name=source with name in {', '.join(detector_names())}, got {item!r}")
        source = source.strip()
        if not Path(source).is_dir() and "@" not in source:
            raise ValueError(f"{SOURCES_VARIABLE}: pin the Hub repo {source!r} to a revision (user/repo@<commit>): an unpinned repo can change under you")
        sources[name.strip()] = source
    return sources


def manifest(path: Path | None = None) -> dict[str, dict[str, str]]:
    """name -> {file: sha256} for the shipped checkpoints (empty when there is no manifest)."""
    try:
        return json.loads((path or ASSETS / MANIFEST_FILE).read_text())["checkpoints"]
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError) as error:
        raise CheckpointError(f"{MANIFEST_FILE} is unreadable ({error})") from None


def write_manifest(path: Path | None = None) -> Path:
    """Pin the sha256 of every shipped checkpoint (run after shipping new checkpoints)."""
    path = path or ASSETS / MANIFEST_FILE
    entries = {name: checkpoints.folder_digests(path.parent / name) for name in detector_names() if (path.parent / name / checkpoints.WEIGHTS_FILE).is_file()}
    content = {"about": "sha256 of the shipped checkpoints and ensemble rule; checked at every load", "checkpoints": entries}
    if (path.parent / ENSEMBLE_FILE).is_file():
        content["ensemble"] = checkpoints.sha256(path.parent / ENSEMBLE_FILE)
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path


def load_detector(name: str, source: str, device: torch.device, fast_path: bool = True) -> LoadedDetector:
    # The shipped checkpoints are checked against the manifest; other local folders are the user's own, and
    # Hub sources are pinned by revision (see configured_sources).
    pinned = manifest().get(name) if Path(source).resolve() == (ASSETS / name).resolve() else None
    if Path(source).resolve() == (ASSETS / name).resolve() and pinned is None:
        raise CheckpointError(f"{source}: not in {MANIFEST_FILE}; refusing an unpinned shipped checkpoint (after shipping new weights, run `python -m detectors manifest`)")
    checkpoint = checkpoints.load(source, device=device, expected_sha256=pinned)
    spec = models.spec(checkpoint.config.architecture)
    half = device.type == "cuda" and spec is not None and spec.half_precision_safe
    model = checkpoint.model.half() if half else checkpoint.model
    fast = None
    if fast_path and device.type == "cpu" and spec is not None and spec.fast_path:
        digest = (pinned or {}).get(checkpoints.WEIGHTS_FILE) or checkpoints.sha256(checkpoints.resolve(source) / checkpoints.WEIGHTS_FILE)
        fast = fast_path_of(model, name, digest, checkpoint.config.input_size, device)
    channels_last = device.type == "cpu" and spec is not None and spec.channels_last_input
    return LoadedDetector(name, model, checkpoint.config, checkpoint.source, device, half, fast, channels_last)


@dataclass
class LoadResult:
    detectors: list[LoadedDetector]
    messages: list[str]  # fallbacks and failures, worded for a person

    @property
    def unavailable(self) -> list[str]:
        loaded = {d.name for d in self.detectors}
        return [name for name in detector_names() if name not in loaded]


def load_all(sources: dict[str, str] | None = None, device: torch.device | None = None) -> LoadResult:
    """Every configured detector that can be loaded; what could not is explained in ``messages``."""
    sources = configured_sources() if sources is None else sources
    device = device or default_device()
    loaded, messages = [], []
    for name in detector_names():
        if name not in sources:
            continue
        shipped = str(ASSETS / name)
        try:
            loaded.append(load_detector(name, sources[name], device))
            continue
        except CheckpointError as error:
            if sources[name] == shipped:
                messages.append(f"{display_name(name)} unavailable: {error}")
                continue
            messages.append(f"{display_name(name)}: {error}; using the shipped checkpoint instead")
        try:
            loaded.append(load_detector(name, shipped, device))
        except CheckpointError as error:
            messages.append(f"{display_name(name)} unavailable: {error}")
    return LoadResult(loaded, messages)


@functools.lru_cache(maxsize=1)
def shared() -> LoadResult:
    """The process-wide detectors, loaded on first use."""
    return load_all()
