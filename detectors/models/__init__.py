"""The four detector architectures, one file each, behind one factory: ``create(name, variant, **overrides)``."""
from ._base import (  # noqa: F401
    IMAGENET_MEAN,
    IMAGENET_STD,
    LABELS,
    Detector,
    ModelConfig,
    create,
    names,
    register_model,
    variants,
)

# Importing the modules registers their constructors.
from . import effnet, mdcsd, resynthesis, sficonv, specxnet  # noqa: E402,F401
