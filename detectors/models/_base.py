"""Shared pieces of every detector architecture: the config each model carries and the name registry.

Conventions every model in this package follows (stated once, here):
- input: a float tensor ``[B, 3, S, S]`` with ``S = config.input_size``, already normalised as
  ``(rgb01 - config.mean) / config.std`` where ``rgb01`` is the RGB face crop scaled to [0, 1];
- output: one logit per image, shape ``[B]``; ``sigmoid(logit)`` is the probability that the face is
  **fake** (label 1 = fake, 0 = real), whatever label order the original paper used.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UNIT_MEAN = (0.0, 0.0, 0.0)
UNIT_STD = (1.0, 1.0, 1.0)

LABELS = {0: "real", 1: "fake"}


@dataclass(frozen=True)
class ModelConfig:
    """What a caller needs to feed a model and to rebuild it: carried by every model as ``model.config``."""

    name: str
    variant: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    arch: dict[str, Any] = field(default_factory=dict)  # constructor keyword arguments, overrides applied
    overrides: dict[str, Any] = field(default_factory=dict)  # what ``create`` was asked to change in ``arch``
    hub_id: str | None = None
    paper: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Detector(nn.Module):
    """Base of every detector architecture: holds the config and the hooks the trainer calls."""

    config: ModelConfig

    def project_constraints(self) -> None:
        """Called by the trainer after every optimiser step; models with constrained weights override it."""


@dataclass(frozen=True)
class DetectorSpec:
    """Everything the project knows about one detector apart from its weights, written once beside its model.

    The registry (loading), the command line (choices), the views (colours), Grad-CAM (layer) and the pages
    (names, counts) read it; nothing else names a detector. ``variants`` give each variant's input size,
    normalisation and constructor arguments (:class:`ModelConfig`).
    """

    name: str  # the registered name: checkpoint folder, config.json "architecture", CLI choice, record key
    display_name: str
    colour: str  # its line in the video timeline
    variants: dict[str, ModelConfig]
    model: type[Detector] | None = None  # the class ``build`` instantiates; or give ``create``
    cam_layer: str | None = None  # dotted path of the last feature map with a spatial layout; None: no Grad-CAM
    # Inference speed-ups that are only safe for some architectures (see detectors.registry for what they do):
    half_precision_safe: bool = False  # float16 on a GPU keeps its scores
    fast_path: bool = False  # TorchScript trace + freeze on the CPU gains enough to be worth its cache
    channels_last_input: bool = False  # channels-last input is faster on the CPU
    create: Callable[[ModelConfig, dict[str, Any]], Detector] | None = None  # a custom constructor (e.g. pretrained weights)
    # What the page's "About the detectors" panel and the model cards say about it (optional: a stand-in has none).
    paper: str = ""  # the citation of the paper it re-implements
    looks_at: str = ""  # what it looks at, in one sentence
    pretrained: str = ""  # where its starting weights came from; empty: trained from scratch

    def build(self, variant: str, overrides: dict[str, Any]) -> Detector:
        if self.create is not None:
            return self.create(self.variants[variant], overrides)
        return build(self.model, self.variants[variant], overrides)


_REGISTRY: dict[tuple[str, str], Callable[..., Detector]] = {}
_SPECS: dict[str, DetectorSpec] = {}  # in registration order: the order pages and records list detectors in


def register_model(name: str, variant: str) -> Callable:
    """Register one constructor (a model without a :class:`DetectorSpec` can be created and trained, but the
    app, the CLI and the registry only know detectors registered with :func:`register`)."""

    def wrap(fn: Callable[..., Detector]) -> Callable[..., Detector]:
        _REGISTRY[(name, variant)] = fn
        return fn

    return wrap


def register(spec: DetectorSpec) -> DetectorSpec:
    """Make a detector known everywhere: its variants become constructors of :func:`create`."""
    if (spec.model is None) == (spec.create is None):
        raise ValueError(f"{spec.name}: a DetectorSpec needs exactly one of model and create")
    for variant, config in spec.variants.items():
        if (config.name, config.variant) != (spec.name, variant):
            raise ValueError(f"{spec.name}/{variant}: its ModelConfig says {config.name}/{config.variant}")
        _REGISTRY[(spec.name, variant)] = _constructor(spec, variant)
    _SPECS[spec.name] = spec
    return spec


def _constructor(spec: DetectorSpec, variant: str) -> Callable[..., Detector]:
    def construct(**overrides: Any) -> Detector:
        return spec.build(variant, overrides)

    return construct


def unregister(name: str) -> None:
    """Forget a detector (for tests that register a stand-in)."""
    _SPECS.pop(name, None)
    for key in [key for key in _REGISTRY if key[0] == name]:
        del _REGISTRY[key]


def specs() -> list[DetectorSpec]:
    """Every registered detector's spec, in registration order."""
    return list(_SPECS.values())


def spec(name: str) -> DetectorSpec | None:
    """The spec of detector ``name``, or None for a name registered without one."""
    return _SPECS.get(name)


def build(cls: type[Detector], default: ModelConfig, overrides: dict[str, Any]) -> Detector:
    """Instantiate ``cls`` from a default config with keyword overrides; the model keeps the merged config.

    ``input_size`` is a config field; every other override is a constructor argument of ``cls``.
    """
    overrides = dict(overrides)
    input_size = int(overrides.pop("input_size", default.input_size))
    arch = {**default.arch, **overrides}
    model = cls(**arch)
    model.config = dataclasses.replace(default, input_size=input_size, arch=arch, overrides=overrides)
    return model


def names() -> list[str]:
    return sorted({name for name, _ in _REGISTRY})


def variants(name: str) -> list[str]:
    return sorted(variant for n, variant in _REGISTRY if n == name)


def create(name: str, variant: str = "small", **overrides: Any) -> Detector:
    """Build detector ``name`` (any registered name: :func:`names`) in ``variant``."""
    try:
        constructor = _REGISTRY[(name, variant)]
    except KeyError:
        known = ", ".join(f"{n}/{v}" for n, v in sorted(_REGISTRY))
        raise ValueError(f"unknown model {name!r} variant {variant!r}; known: {known}") from None
    return constructor(**overrides)
