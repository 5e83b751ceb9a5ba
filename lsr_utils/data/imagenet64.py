"""Downsampled ImageNet 64x64: the official ``train_data_batch_*.npz`` and ``val_data.npz`` files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import LsrError
from .cache import file_fingerprint


def folders(root: Path) -> list[Path]:
    """Where the npz files are looked for (the README lists the same)."""
    return [root / "imagenet64", root / "Imagenet64_train_npz", root / "Imagenet64_val_npz", root]


def _read(p: Path):
    import torch

    try:
        with np.load(p, allow_pickle=False) as z:
            x = np.asarray(z["data"], np.uint8).reshape(-1, 3, 64, 64)
            y = np.asarray(z["labels"], np.int64) - 1  # the files' labels are 1-based
    except (OSError, ValueError, KeyError) as e:
        raise LsrError(f"{p}: not a readable ImageNet 64x64 npz file ({type(e).__name__})") from None
    return torch.from_numpy(x.copy()), torch.from_numpy(y)


def load(root: Path, progress: bool = True):
    import torch

    dirs = [d for d in folders(root) if d.is_dir()]
    train = sorted({p for d in dirs for p in d.glob("train_data_batch_*.npz")},
                   key=lambda p: (len(p.stem), p.stem))
    val = next((d / "val_data.npz" for d in dirs if (d / "val_data.npz").is_file()), None)
    if not train or val is None:
        return None
    parts = [_read(p) for p in train]
    xte, yte = _read(val)
    fp = file_fingerprint(train + [val])
    return (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), xte, yte,
            tuple(str(i) for i in range(1000)), f"{len(train)} train batches + {val}", fp)
