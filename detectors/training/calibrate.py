"""Fit the ensemble rule (logistic regression on the four detectors' logits) on the validation sets."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .. import registry
from ..calibration import fit_ensemble
from ..metrics import binary_metrics
from .data import build_cache, load_all
from .heldout import heldout_sets


def fit_and_save_ensemble(data: str, cache: str, limits: dict, device: str = "cpu", path: Path | None = None) -> Path:
    build_cache(data, cache, limits)
    result = registry.load_all(device=torch.device(device))
    if not result.detectors:
        raise SystemExit("calibrate: no detector checkpoint could be loaded: " + "; ".join(result.messages))
    sets = heldout_sets(load_all(cache), "val")
    labels = np.concatenate([s.labels for s in sets])
    names = [d.name for d in result.detectors]
    logits = np.stack([np.concatenate([d.logits(s.crops[i : i + 64]) for s in sets for i in range(0, len(s.crops), 64)]) for d in result.detectors], axis=1)
    rule = fit_ensemble(names, logits, labels)
    probabilities = rule.probabilities(logits)
    report = rule.to_dict()
    report["validation"] = {"sets": {s.name: len(s.labels) for s in sets}, "all": binary_metrics(labels, probabilities, rule.calibration.decision).to_dict()}
    path = path or registry.ASSETS / registry.ENSEMBLE_FILE
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
