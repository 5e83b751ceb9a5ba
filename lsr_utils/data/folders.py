"""Images in class folders, as folders or zip files: ``<split>/<class>/<image>`` (CIFAR-10 JPEG, imagefolder).

A split is found as ``<source>/<split>.zip`` or ``<source>/<split>/``; each
image's class is the name of the folder holding it. Images are decoded with
PIL, converted to RGB (or L), centre-cropped to a square and resized to the
target size. A file that is not an image, or a zip that is not a zip, is
named in the error.
"""
from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..base.errors import LsrError
from ..base.files import read_regular
from .cache import cached, file_fingerprint

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_IMAGE_BYTES = 64 << 20       # one image file (a zip member is checked against it before it is inflated)
MAX_IMAGE_PIXELS = 8192 * 8192   # one image's claimed size, checked from its header before it is decoded


def decode_image(data: bytes, size: int, channels: int, name: str) -> np.ndarray:
    """One image file's bytes -> uint8 (C, size, size); a bad file is an error naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size[0] * im.size[1] > MAX_IMAGE_PIXELS:
                raise LsrError(f"{name}: the image claims {im.size[0]:,} x {im.size[1]:,} pixels, over the kit's limit "
                               f"of {MAX_IMAGE_PIXELS:,}; refused before decoding (raise MAX_IMAGE_PIXELS in "
                               f"lsr_utils/data/folders.py for genuinely large images)")
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (size, size):
                w, h = im.size
                s = min(w, h)
                im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
                im = im.resize((size, size), Image.BICUBIC)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise LsrError(f"{name}: not a readable image ({type(e).__name__}); remove or replace this file") from None
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


class Split:
    """The images of one split, in a folder or a zip: ``entries`` are (class, key), ``read(key)`` gives bytes."""

    def __init__(self, where: Path):
        self.where = where
        if where.suffix == ".zip":
            try:
                self._zip = zipfile.ZipFile(where)
                names = self._zip.namelist()
            except (zipfile.BadZipFile, OSError, ValueError) as e:
                raise LsrError(f"{where}: not a readable zip file ({type(e).__name__}); download it again") from None
            self.entries = sorted((n.split("/")[-2], n) for n in names
                                  if n.lower().endswith(IMAGE_EXTENSIONS) and len(n.split("/")) >= 2)
            self.files = [where]
        else:
            self._zip = None
            paths = [p for p in where.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.parent != where]
            self.entries = sorted((p.parent.name, str(p)) for p in paths)
            self.files = paths

    def read(self, key: str) -> bytes:
        try:
            if self._zip:
                info = self._zip.getinfo(key)
                if info.file_size > MAX_IMAGE_BYTES:
                    raise LsrError(f"{self.where}:{key} inflates to {info.file_size:,} bytes, over the {MAX_IMAGE_BYTES:,}"
                                   f"-byte limit of one image; refused before inflating it")
                with self._zip.open(info) as f:
                    data = f.read(MAX_IMAGE_BYTES + 1)  # the header may lie about the size: never more than the limit
                if len(data) > MAX_IMAGE_BYTES:
                    raise LsrError(f"{self.where}:{key} inflates past the {MAX_IMAGE_BYTES:,}-byte limit of one image")
                return data
            return read_regular(Path(key), "image", max_bytes=MAX_IMAGE_BYTES)
        except (zipfile.BadZipFile, OSError, KeyError, RuntimeError, EOFError, zlib.error) as e:
            raise LsrError(f"{self.where}: cannot read {key} ({type(e).__name__}); the file is damaged") from None

    def name_of(self, key: str) -> str:
        return f"{self.where}:{key}" if self._zip else key


def find_split(source: Path, split: str) -> Split | None:
    """``<source>/<split>.zip`` or ``<source>/<split>/`` holding class folders, or None."""
    for cand in (source / f"{split}.zip", source / split):
        if cand.is_file() and cand.suffix == ".zip":
            s = Split(cand)
            if s.entries:
                return s
        elif cand.is_dir():
            s = Split(cand)
            if s.entries:
                return s
    return None


def decode_split(split: Split, size: int, channels: int, classes: tuple[str, ...] | None, progress: bool = True):
    """(images uint8 (N, C, size, size), labels int64 (N,), classes) of a split."""
    import torch

    from ..base.progress import progress_bar

    found = tuple(sorted({c for c, _ in split.entries}))
    classes = classes or found
    unknown = set(found) - set(classes)
    if unknown:
        raise LsrError(f"{split.where}: unexpected class folders {sorted(unknown)[:10]}; expected {list(classes)}")
    index = {c: i for i, c in enumerate(classes)}
    xs = np.empty((len(split.entries), channels, size, size), np.uint8)
    bar = progress_bar(split.entries, desc=f"decoding {split.where.name}", disable=not progress, unit="img")
    for i, (_, key) in enumerate(bar):
        xs[i] = decode_image(split.read(key), size, channels, split.name_of(key))
    ys = np.array([index[c] for c, _ in split.entries], np.int64)
    return torch.from_numpy(xs), torch.from_numpy(ys), classes


def load_folders(source: Path, size: int, channels: int, classes: tuple[str, ...] | None, name: str,
                 progress: bool = True):
    """Train and test splits under ``source`` (cached by content), or None when ``source`` holds no train split.

    Without a test split, a fixed 10 % of the training images is held out.
    Returns (train_x, train_y, test_x, test_y, classes, where, fingerprint).
    """
    import torch

    train = find_split(source, "train")
    if train is None:
        return None
    test = find_split(source, "test")
    fingerprint = file_fingerprint(train.files + (test.files if test else []), source)

    def build():
        tx, ty, cls = decode_split(train, size, channels, classes, progress)
        if test is not None:
            ex, ey, _ = decode_split(test, size, channels, cls, progress)
        else:  # hold out a deterministic 10 %
            perm = torch.randperm(len(tx), generator=torch.Generator().manual_seed(0))
            k = max(1, len(perm) // 10)
            tx, ty, ex, ey = tx[perm[k:]], ty[perm[k:]], tx[perm[:k]], ty[perm[:k]]
        return {"train_x": tx, "train_y": ty, "test_x": ex, "test_y": ey,
                "classes": torch.tensor(list("\n".join(cls).encode()), dtype=torch.uint8)}

    d = cached(name, f"{fingerprint}|{size}|{channels}|{classes}", build)
    cls = tuple(bytes(d["classes"].tolist()).decode().split("\n"))
    where = f"{train.where}" + (f", {test.where}" if test else " (10% held out)")
    return d["train_x"], d["train_y"], d["test_x"], d["test_y"], cls, where, fingerprint


def read_imagefolder(root: Path, image_size: int | None = None, progress: bool = True):
    """Your own images in class folders under ``root`` (``imagefolder``), at ``image_size`` (default 32), or None."""
    return load_folders(root, image_size or 32, 3, None, "imagefolder", progress)
