"""MNIST and Fashion-MNIST: the four IDX files (optionally gzipped) of each."""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..base.errors import LsrError
from .cache import file_fingerprint
from .images import Incomplete
from .subsets import balanced_order

_PREFIX = {"train": "train", "test": "t10k"}
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")  # where `apt-get install dataset-fashion-mnist` puts it


def folders(name: str, root: Path) -> list[Path]:
    """Where the IDX files of ``name`` are looked for, in order (the README lists the same)."""
    if name == "mnist":
        return [root / "mnist", root / "MNIST" / "raw", root]
    return [root / "fashion-mnist", root / "FashionMNIST" / "raw", DEBIAN_FASHION]


def file_name(split: str, kind: str) -> str:
    return f"{_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped); a damaged or foreign file is an error naming it."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise LsrError(f"{path}: not a readable {'gzip' if path.suffix == '.gz' else 'IDX'} file "
                       f"({type(e).__name__}); download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8 or not 1 <= raw[3] <= 4:
        raise LsrError(f"{path}: not an IDX file of bytes (bad magic number); download it again")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise LsrError(f"{path}: truncated IDX header; download it again")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise LsrError(f"{path}: truncated IDX file ({data.size} values, header says {int(np.prod(dims))}); "
                       f"download it again")
    return data.reshape(dims)


def find(name: str, root: Path, split: str, kind: str) -> Path | None:
    base = file_name(split, kind)
    for d in folders(name, root):
        for f in (base, base + ".gz"):
            if (d / f).is_file():
                return d / f
    return None


def load_split(name: str, root: Path, split: str):
    """(images uint8 (N, 1, 28, 28), labels int64, fingerprint) of one split, or None if its files are absent."""
    import torch

    imgs, labels = find(name, root, split, "images"), find(name, root, split, "labels")
    if imgs is None or labels is None:
        return None
    x = read_idx(imgs)
    y = read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise LsrError(f"{imgs}, {labels}: images {x.shape} and labels {y.shape} do not belong together")
    return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64)), \
        file_fingerprint([imgs, labels])


def classes(name: str) -> tuple[str, ...]:
    return tuple(str(i) for i in range(10)) if name == "mnist" else FASHION_CLASSES


def reader(name: str):
    """The reader of ``name`` (mnist, fashion-mnist): both splits' four files, or None where none is there."""

    def read(root: Path, image_size=None, progress: bool = True):
        tr, te = load_split(name, root, "train"), load_split(name, root, "test")
        if tr is None or te is None:
            if tr is not None or te is not None:
                raise Incomplete(f"no {'train' if tr is None else 'test'} split: found only the "
                                 f"{'test' if tr is None else 'train'} files")
            return None
        where = find(name, root, "train", "images").parent
        return tr[0], tr[1], te[0], te[1], classes(name), str(where), f"{tr[2]}-{te[2]}"

    return read


def downloader(name: str):
    """torchvision's download of ``name``'s four files into a folder."""

    def download(root: Path) -> None:
        import torchvision.datasets as tvd

        for train in (True, False):
            (tvd.MNIST if name == "mnist" else tvd.FashionMNIST)(str(root), train=train, download=True)

    return download


MNIST_TEST_SPLIT = (8000, 2000)  # mnist-test: the official test set, split into training and held-out images


def read_mnist_test(root: Path, image_size=None, progress: bool = True):
    """mnist-test: the 10,000 official MNIST test images alone, as a seeded, balanced 8,000 / 2,000 split (held out
    first, 200 per class; then the training images, balanced over what is left), or None where they are absent."""
    te = load_split("mnist", root, "test")
    if te is None:
        return None
    order = balanced_order(te[1], seed=20)
    te_i, rest = order[:MNIST_TEST_SPLIT[1]], order[MNIST_TEST_SPLIT[1]:]
    tr_i = rest[balanced_order(te[1][rest], seed=21)][:MNIST_TEST_SPLIT[0]]
    where = find("mnist", root, "test", "images").parent
    return (te[0][tr_i], te[1][tr_i], te[0][te_i], te[1][te_i], classes("mnist"), str(where),
            f"{te[2]}-split{MNIST_TEST_SPLIT[0]}/{MNIST_TEST_SPLIT[1]}")
