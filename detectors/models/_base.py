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
    """Base of the four architectures: holds the config and the hooks the trainer calls."""

    config: ModelConfig

    def project_constraints(self) -> None:
        """Called by the trainer after every optimiser step; models with constrained weights override it."""


_REGISTRY: dict[tuple[str, str], Callable[..., Detector]] = {}


def register_model(name: str, variant: str) -> Callable:
    def wrap(fn: Callable[..., Detector]) -> Callable[..., Detector]:
        _REGISTRY[(name, variant)] = fn
        return fn

    return wrap


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
    """Build detector ``name`` (``specxnet``, ``sficonv``, ``resynthesis``, ``mdcsd``) in ``variant``."""
    try:
        constructor = _REGISTRY[(name, variant)]
    except KeyError:
        known = ", ".join(f"{n}/{v}" for n, v in sorted(_REGISTRY))
        raise ValueError(f"unknown model {name!r} variant {variant!r}; known: {known}") from None
    return constructor(**overrides)
