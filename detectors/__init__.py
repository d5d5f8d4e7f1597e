"""Deepfake detectors side by side: SpecXNet, SFIConv, re-synthesis and MD-CSDNetwork on MTCNN face crops.

Importing the package stays light (no torch): it only arranges that torchvision becomes importable on CPU-only
torch. ``_torchvision_compat`` registers a pure-torch ``torchvision::nms`` when torchvision's own extension cannot
load; it must run before torchvision is imported. Loading it here would load torch (a second and a half) for
every ``import detectors``, the lightest tools included, so a finder on ``sys.meta_path`` loads it at the moment
anything first imports torchvision (which loads torch anyway). Modules that use the kernel without torchvision
(``face_search``) import ``_torchvision_compat`` themselves.
"""
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"


class _CompatBeforeTorchvision(importlib.abc.MetaPathFinder):
    """Finds nothing itself: on the first import of ``torchvision``, runs ``_torchvision_compat`` and hands the
    import back to the finders (among them the one ``_torchvision_compat`` installs to patch torchvision after its
    import). Stays in ``sys.meta_path`` inert afterwards: removing itself during the import system's walk over that
    list would make the walk skip the next finder."""

    done = False

    def find_spec(self, name, path=None, target=None):
        if name != "torchvision" or self.done:
            return None
        self.done = True
        from . import _torchvision_compat  # noqa: F401  (its import registers the kernel when needed)

        # A fresh lookup, so that a finder the compat module has just put first in sys.meta_path is consulted.
        return importlib.util.find_spec(name)


if "torchvision" in sys.modules:  # already imported (by the embedding program): patch it now
    from . import _torchvision_compat  # noqa: F401
elif not any(isinstance(finder, _CompatBeforeTorchvision) for finder in sys.meta_path):
    sys.meta_path.insert(0, _CompatBeforeTorchvision())
