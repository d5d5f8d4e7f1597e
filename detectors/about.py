"""What the page says about each loaded detector ("About the detectors"), and the phrases the model cards share
with it: paper, what it looks at and where its weights began come from the detector's spec (``models.<name>.SPEC``),
the data and numbers from its checkpoint's ``config.json``.

Core: the app reads it, and ``training.model_card`` builds the cards from the same phrases, so the page and the
cards cannot say different things about one detector.
"""
from __future__ import annotations

import importlib

from . import models
from .models import DetectorSpec


def detector_spec(name: str) -> DetectorSpec | None:
    """The spec of detector ``name``: a registered one's, else the one its model file declares (a detector
    trained before it ships has a model file but is not registered yet); None for an unknown name."""
    found = models.spec(name)
    if found is not None:
        return found
    try:
        return getattr(importlib.import_module(f"{models.__name__}.{name}"), "SPEC", None)
    except ImportError:
        return None


def title_and_paper(name: str) -> tuple[str, str]:
    """(display name, paper citation) of detector ``name``; (name, "") for one without a spec."""
    spec = detector_spec(name)
    return (spec.display_name, spec.paper) if spec is not None else (name, "")


def pretrained_from(name: str) -> str:
    """Where detector ``name``'s starting weights came from; empty when it was trained from scratch."""
    spec = detector_spec(name)
    return spec.pretrained if spec is not None else ""


def origin_text(name: str) -> str:
    """How a detector's weights began: from scratch, or fine-tuned from named pretrained weights."""
    start = pretrained_from(name)
    return f"fine-tuned from {start}" if start else "from scratch"


def data_text(training: dict) -> str:
    """The training sources in words, from the run's record (older cards: the sources of the time)."""
    roles = training.get("roles")
    if not roles:
        return "CelebA and FFHQ reals, StyleGAN (v1) fakes, self-blended fakes"
    trained = [name for name, role in roles.items() if role == "train"]
    unseen = [name for name, role in roles.items() if role != "train"]
    return f"sources {', '.join(trained)} and self-blended fakes; never trained on {', '.join(unseen) or 'none'}"


def about_entry(detector) -> str:
    """Markdown for one loaded detector: paper, what it looks at, data, validation numbers, threshold, limits."""
    config = detector.config
    name = config.architecture
    title, paper = title_and_paper(name)
    spec = detector_spec(name)
    metrics = (config.metrics or {}).get("validation", {})
    training = config.training or {}
    minutes = training.get("seconds", 0) / 60
    numbers = ", ".join(f"{set_name} AUC {m['auc']:.3f}" for set_name, m in metrics.items() if isinstance(m, dict) and "auc" in m) or "not recorded"
    t = config.thresholds
    return f"""### {title} (`{name}/{config.variant}`)
*{paper}*

**Looks at:** {spec.looks_at if spec is not None else ""}

**Trained by us** {origin_text(name)} in {minutes:.0f} min on {training.get('hardware', 'unknown hardware')}: {data_text(training)}.
Input {config.input_size} px face crops.
**Validation** (held-out faces; "unseen" = generators it never trained on): {numbers}.
**Says fake** at or above {t.uncertain_high:.3f}, **real** below {t.uncertain_low:.3f}, uncertain in between.
**Limits:** a compact model trained on little data; it can miss generators and manipulations it never saw
and is less accurate than the paper's. Research use only (non-commercial data)."""
