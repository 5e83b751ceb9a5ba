"""The training set on the training device, served as shuffled batches without per-item Python work."""
from __future__ import annotations

import torch

from ..base.errors import LsrError
from ..base.pixels import uint8_to_model


class DeviceBatches:
    """A training set held as one uint8 tensor on ``device``, served as shuffled batches.

    Each epoch draws a permutation from ``generator`` (a CPU ``torch.Generator``
    whose state the trainer checkpoints), gathers batches by index on the
    device and converts them to the model range there. Every batch has
    ``batch_size`` images but the last, which keeps the remainder when it has
    at least 2 images (BatchNorm needs 2), as the reference's
    ``DataLoader(shuffle=True)`` does: so there are at most two batch shapes,
    :attr:`shapes`, which is what a captured (CUDA-graph) step needs.
    """

    def __init__(self, images: torch.Tensor, batch_size: int, device: torch.device | str,
                 channels_last: bool = False, dtype: torch.dtype = torch.float32,
                 labels: torch.Tensor | None = None):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise LsrError(f"DeviceBatches needs uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if batch_size < 2:
            raise LsrError(f"batch_size must be at least 2 (BatchNorm), got {batch_size}")
        if len(images) < batch_size:
            raise LsrError(f"{len(images)} images cannot fill one batch of {batch_size}")
        self.images = images.to(device)
        self.labels = labels.to(device) if labels is not None else None
        self.batch_size, self.device = batch_size, torch.device(device)
        self.channels_last, self.dtype = channels_last, dtype

    def __len__(self) -> int:
        n, b = len(self.images), self.batch_size
        return n // b + (1 if n % b >= 2 else 0)

    def size(self, i: int) -> int:
        """Images in batch ``i`` of an epoch."""
        return min(self.batch_size, len(self.images) - i * self.batch_size)

    @property
    def shapes(self) -> list[int]:
        """The distinct batch sizes of an epoch: the full size and, if kept, the last batch's."""
        return sorted({self.size(i) for i in range(len(self))}, reverse=True)

    def permutation(self, generator: torch.Generator) -> torch.Tensor:
        return torch.randperm(len(self.images), generator=generator).to(self.device)

    def batch(self, perm: torch.Tensor, i: int):
        idx = perm[i * self.batch_size:i * self.batch_size + self.size(i)]
        x = uint8_to_model(self.images.index_select(0, idx), self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x if self.labels is None else (x, self.labels.index_select(0, idx))
