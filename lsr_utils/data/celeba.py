"""CelebA: the aligned JPEGs and the official partition file (torchvision's layout), 140x140 centre crop -> 64x64."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..base.errors import LsrError
from ..base.files import open_regular
from .cache import cached, file_fingerprint
from .folders import MAX_IMAGE_BYTES

SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")


def folder(root: Path) -> Path:
    return root / "celeba"


def read(root: Path, image_size=None, progress: bool = True):
    base = folder(root)
    imgs, parts = base / "img_align_celeba", base / "list_eval_partition.txt"
    if not imgs.is_dir() or not parts.is_file():
        return None
    try:
        rows = [line.split() for line in parts.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise LsrError(f"{parts}: not readable ({type(e).__name__})") from None
    if not rows or any(len(r) != 2 or r[1] not in ("0", "1", "2") for r in rows):
        raise LsrError(f"{parts}: expected lines '<image name> <0|1|2>' (the official partition file)")
    for r in rows:  # a name is a file of img_align_celeba/, never a path out of it
        if not SAFE_NAME.match(r[0]):
            raise LsrError(f"{parts}: the image name {r[0][:80]!r} is not a plain file name in img_align_celeba/; "
                           f"refused (the official partition names files like 000001.jpg)")
    fp = file_fingerprint([parts]) + "-" + str(len(rows))  # the images themselves are named by the partition

    def build():
        import torch
        from PIL import Image

        from ..base.progress import progress_bar

        out = {}
        for split, code in (("train", "0"), ("test", "2")):
            names = [r[0] for r in rows if r[1] == code]
            xs = np.empty((len(names), 3, 64, 64), np.uint8)
            for i, n in enumerate(progress_bar(names, desc=f"decoding celeba {split}", disable=not progress)):
                try:
                    with open_regular(imgs / n, "image", max_bytes=MAX_IMAGE_BYTES) as f, Image.open(f) as im:
                        w, h = im.size
                        im = im.convert("RGB").crop(((w - 140) // 2, (h - 140) // 2, (w + 140) // 2,
                                                     (h + 140) // 2))
                        xs[i] = np.asarray(im.resize((64, 64), Image.BICUBIC)).transpose(2, 0, 1)
                except (OSError, ValueError, SyntaxError) as e:
                    raise LsrError(f"{imgs / n}: not a readable image ({type(e).__name__})") from None
            out[f"{split}_x"], out[f"{split}_y"] = torch.from_numpy(xs), torch.zeros(len(names), dtype=torch.int64)
        return out

    d = cached("celeba", fp, build)
    return d["train_x"], d["train_y"], d["test_x"], d["test_y"], ("face",), str(base), fp


def download(root: Path) -> None:
    """torchvision's download of CelebA (its training split brings the images and the partition file)."""
    import torchvision.datasets as tvd

    tvd.CelebA(str(root), split="train", download=True)
