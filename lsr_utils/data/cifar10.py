"""CIFAR-10: torchvision's pickled batches, or JPEG/PNG images in class folders (folders or zips)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..base.errors import LsrError
from .cache import cached, file_fingerprint
from .folders import find_split, load_folders

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def folder_sources(root: Path) -> list[Path]:
    """Where class-folder copies are looked for, in order (the README lists the same)."""
    return [root / "cifar10-jpeg", root]


def _read_batch(path: Path):
    try:
        with open(path, "rb") as f:
            # the official batches are plain dicts of bytes/arrays/lists: a restricted unpickler loads no code
            d = _NumpyOnly(f, encoding="latin1").load()
        d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}  # Python 2 or 3 pickles
        x = np.asarray(d["data"], np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(d["labels"], np.int64)
    except (pickle.UnpicklingError, OSError, EOFError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise LsrError(f"{path}: not a readable CIFAR-10 batch ({type(e).__name__}); download it again") from None
    return x, y


class _NumpyOnly(pickle.Unpickler):
    """Unpickles the CIFAR-10 batches (dicts, lists, numpy arrays) and refuses every other global."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def load_pickles(root: Path):
    folder = root / "cifar-10-batches-py"
    files = [folder / n for n in _BATCHES["train"] + _BATCHES["test"]]
    if not all(f.is_file() for f in files):
        return None
    fp = file_fingerprint(files)

    def build():
        import torch

        out = {}
        for split, names in _BATCHES.items():
            parts = [_read_batch(folder / n) for n in names]
            out[f"{split}_x"] = torch.from_numpy(np.concatenate([p[0] for p in parts]))
            out[f"{split}_y"] = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        return out

    d = cached("cifar10", f"pickle|{fp}", build)
    return d["train_x"], d["train_y"], d["test_x"], d["test_y"], CLASSES, str(folder), fp


def read(root: Path, image_size=None, progress: bool = True):
    """CIFAR-10 from ``root`` in any documented layout, or None."""
    got = load_pickles(root)
    if got is not None:
        return got
    for src in folder_sources(root):
        if find_split(src, "train") is not None:
            return load_folders(src, 32, 3, CLASSES, "cifar10", progress)
    return None


def download(root: Path) -> None:
    """torchvision's download of the python pickles (extracted into ``root/cifar-10-batches-py``)."""
    import torchvision.datasets as tvd

    tvd.CIFAR10(str(root), train=True, download=True)
