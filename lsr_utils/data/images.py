"""The type every loader returns: train and test images and labels of one dataset."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class ImageData:
    """Train and test splits of one dataset (uint8 ``(N, C, H, W)`` images, int64 labels).

    ``fingerprint`` identifies the images: the source's content and the
    selection. ``factors`` (``shapes`` only) holds the generating factors and
    ``clean`` the texture-free test images.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    source: str = ""
    fingerprint: str = ""
    factors: dict = field(default_factory=dict)
    test_clean: torch.Tensor | None = None

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    def __repr__(self) -> str:
        return (f"ImageData({self.name!r}, train={tuple(self.train_x.shape)}, test={tuple(self.test_x.shape)}, "
                f"classes={len(self.classes)}, source={display_path(self.source)!r})")


class Incomplete(Exception):
    """A reader found part of a dataset only (one split without the other): what is missing, for the message that
    says which files to put where."""


def display_path(text: str) -> str:
    """``text`` with the current folder's absolute path made relative (outputs carry no machine paths)."""
    here = str(Path.cwd().resolve())
    out = str(text).replace(here + os.sep, "").replace(here, ".")
    home = str(Path.home())
    return out.replace(home + os.sep, "~/") if home not in ("/", "") else out


