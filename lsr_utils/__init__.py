"""lsr-kit: a reproduction kit for "Imagining the Latent Space of a Variational Auto-Encoder" (LSR-GAN).

Importing the package is cheap: submodules are imported on use
(``lsr_utils.models``, ``lsr_utils.train``, ...), and notebook-only
dependencies (ipywidgets, papermill) are imported only by the functions that
need them.
"""
__version__ = "0.1.0"

import importlib

_SUBMODULES = ("config", "data", "errors", "fid", "losses", "metrics", "models", "pixels", "plotting",
               "progress", "runs", "shapes", "train", "demo", "cli", "evaluate")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
