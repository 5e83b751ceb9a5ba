"""Downsampled ImageNet 64x64: the official ``train_data_batch_*.npz`` and ``val_data.npz`` files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..base.errors import LsrError
from .cache import file_fingerprint


def folders(root: Path) -> list[Path]:
    """Where the npz files are looked for (the README lists the same)."""
    return [root / "imagenet64", root / "Imagenet64_train_npz", root / "Imagenet64_val_npz", root]


MAX_NPZ_ARRAY_BYTES = 4 << 30  # one array of one npz file (an official batch holds about 0.4 GB)


def _check_npz(p: Path) -> None:
    """Refuse, before anything is allocated, an npz whose arrays claim more than the limit (from each .npy header)."""
    import zipfile

    try:
        with zipfile.ZipFile(p) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read_header(f)
                claimed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if claimed > MAX_NPZ_ARRAY_BYTES or claimed > info.file_size + 4096 + 1024:
                    raise LsrError(f"{p}: its array {info.filename} claims {claimed:,} bytes (the file holds "
                                   f"{info.file_size:,}); refused before reading it (limit {MAX_NPZ_ARRAY_BYTES:,} "
                                   f"bytes, MAX_NPZ_ARRAY_BYTES in lsr_utils/data/imagenet64.py)")
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise LsrError(f"{p}: not a readable ImageNet 64x64 npz file ({type(e).__name__})") from None


def _read(p: Path):
    import torch

    _check_npz(p)
    try:
        with np.load(p, allow_pickle=False) as z:
            x = np.asarray(z["data"], np.uint8).reshape(-1, 3, 64, 64)
            y = np.asarray(z["labels"], np.int64) - 1  # the files' labels are 1-based
    except (OSError, ValueError, KeyError) as e:
        raise LsrError(f"{p}: not a readable ImageNet 64x64 npz file ({type(e).__name__})") from None
    return torch.from_numpy(x.copy()), torch.from_numpy(y)


def read(root: Path, image_size=None, progress: bool = True):
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
