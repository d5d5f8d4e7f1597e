"""The detector architectures, one file each, behind one factory: ``create(name, variant, **overrides)``.

Each model file ends with a ``SPEC`` (:class:`DetectorSpec`): the detector's registered name, display name,
colour, Grad-CAM layer, variants (each a :class:`ModelConfig` with its input size and normalisation) and which
inference speed-ups are safe for it. The registry, the command line, the views and Grad-CAM read the specs;
nothing else names a detector.

Registering a detector (e.g. a fifth, ``sbi.py``) takes two edits:

1. ``detectors/models/sbi.py``: the model class, its ``ModelConfig`` per variant and
   ``SPEC = DetectorSpec(name="sbi", display_name=..., colour=..., variants={"small": SMALL_CONFIG, ...},
   model=TheClass, cam_layer="...")`` (or ``create=`` a function ``(config, overrides) -> model`` where the
   constructor does more than instantiate the class, such as loading pretrained weights);
2. its module name appended to :data:`DETECTOR_MODULES` below (its place there is its place on the page).

The app then loads ``assets/checkpoints/<name>`` (pinned in ``MANIFEST.json``: ``python -m detectors
manifest`` after shipping the weights; until then it is listed as unavailable and the others still run).
The ensemble rule (``ensemble.json``) only uses the detectors it was fitted on: refit it to include the new one.
"""
import importlib
from typing import Iterable

from ._base import (  # noqa: F401
    IMAGENET_MEAN,
    IMAGENET_STD,
    LABELS,
    UNIT_MEAN,
    UNIT_STD,
    Detector,
    DetectorSpec,
    ModelConfig,
    create,
    names,
    register,
    register_model,
    spec,
    specs,
    unregister,
    variants,
)

# The registered detectors, in the order pages and records list them: one module name per model file.
DETECTOR_MODULES = ("specxnet", "sficonv", "resynthesis", "mdcsd")


def register_modules(module_names: Iterable[str]) -> None:
    """Import each model file of this package by module name and register its ``SPEC``."""
    for module_name in module_names:
        register(importlib.import_module(f"{__name__}.{module_name}").SPEC)


register_modules(DETECTOR_MODULES)

# Trained but not shipped yet: creatable for training, not registered with the app.
from . import effnet  # noqa: E402,F401
