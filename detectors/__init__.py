"""Deepfake detectors side by side: SpecXNet, SFIConv, re-synthesis and MD-CSDNetwork on MTCNN face crops.

Importing the package first makes torchvision importable on CPU-only torch (see ``_torchvision_compat``).
"""
from . import _torchvision_compat  # noqa: F401  (must run before anything imports torchvision)

__version__ = "0.1.0"
