"""Balanced, nested subsets of a split: the first N of a fixed, seeded round robin over the classes."""
from __future__ import annotations

import torch


def balanced_order(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A fixed, seeded order of all indices in which every prefix holds the classes in equal numbers.

    Each class's indices are shuffled (seeded); then the classes take turns
    (round robin, in a seeded class order), a class that runs out dropping
    out. The first N of this order is the kit's N-image subset of a split:
    balanced to within one image per class, the same for every run, and
    nested (the first 500 are among the first 1,000).
    """
    g = torch.Generator().manual_seed(int(seed))
    labels = torch.as_tensor(labels).long()
    classes = torch.unique(labels)
    classes = classes[torch.randperm(len(classes), generator=g)]
    per_class = []
    for c in classes.tolist():
        members = torch.nonzero(labels == c).flatten()
        per_class.append(members[torch.randperm(len(members), generator=g)])
    longest = max((len(m) for m in per_class), default=0)
    table = torch.full((longest, len(per_class)), -1, dtype=torch.long)
    for j, m in enumerate(per_class):
        table[:len(m), j] = m
    flat = table.flatten()
    return flat[flat >= 0]


def select(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int):
    """The split in :func:`balanced_order`, cut to its first n images (all when n is None).

    Every :class:`ImageData` holds its splits in this order, so any prefix of
    a split is itself the balanced selection of that size.
    """
    keep = balanced_order(y, seed)[:n]
    return x[keep], y[keep]
