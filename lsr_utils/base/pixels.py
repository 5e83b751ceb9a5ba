"""The one place that converts between pixel conventions.

* **Storage** (datasets, caches): ``uint8`` tensors, shape ``(N, C, H, W)``,
  values 0..255.
* **Model range**: ``float32`` in ``[-1, 1]`` (the reference's
  ``Normalize(0.5, 0.5)``; the decoder ends in ``tanh``).
* **Unit range**: ``float32`` in ``[0, 1]``, used by every metric and picture.

Metrics state their unit against the unit range (e.g. the per-image sum of
squared errors on ``[0, 1]``).
"""
from __future__ import annotations

import torch

from .errors import LsrError


def uint8_to_model(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 0..255 -> float in [-1, 1]."""
    if x.dtype != torch.uint8:
        raise LsrError(f"expected uint8 images, got dtype {x.dtype}")
    return x.to(dtype).mul_(2.0 / 255.0).sub_(1.0)


def uint8_to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float in [0, 1]."""
    if x.dtype != torch.uint8:
        raise LsrError(f"expected uint8 images, got dtype {x.dtype}")
    return x.float().div_(255.0)


def model_to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model range [-1, 1] -> unit range [0, 1] (clamped)."""
    return ((x.float() + 1.0) * 0.5).clamp_(0.0, 1.0)


def unit_to_model(x: torch.Tensor) -> torch.Tensor:
    """Unit range [0, 1] -> model range [-1, 1]."""
    return x.float() * 2.0 - 1.0


def unit_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Unit range [0, 1] -> uint8 (rounded, clamped)."""
    return (x.float().clamp(0.0, 1.0) * 255.0).round_().to(torch.uint8)


def check_unit_images(x: torch.Tensor, name: str = "images", channels: tuple[int, ...] = (1, 3)) -> torch.Tensor:
    """Check that ``x`` is a float batch ``(N, C, H, W)`` in [0, 1]; return it as float32.

    Metrics call this so that images in the model range or as uint8 are
    caught with a message instead of silently giving wrong numbers.
    """
    if not isinstance(x, torch.Tensor):
        raise LsrError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise LsrError(f"{name}: expected a batch of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] not in channels:
        raise LsrError(
            f"{name}: expected {' or '.join(map(str, channels))} channels in dim 1 (N, C, H, W), "
            f"got shape {tuple(x.shape)}; channels-last images must be permuted first"
        )
    if x.dtype == torch.uint8:
        raise LsrError(f"{name}: got uint8 images; convert with lsr_utils.base.pixels.uint8_to_unit first")
    if not x.is_floating_point():
        raise LsrError(f"{name}: expected floating-point images in [0, 1], got dtype {x.dtype}")
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-4 or hi > 1 + 1e-4:
            hint = (" (they look like model-range [-1, 1] images: use lsr_utils.base.pixels.model_to_unit)"
                    if lo >= -1 - 1e-4 and hi <= 1 + 1e-4 else "")
            raise LsrError(f"{name}: values must lie in [0, 1], found range [{lo:.3g}, {hi:.3g}]{hint}")
    return x.float()
