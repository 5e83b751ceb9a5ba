"""The paper's image metrics, each returning mean and standard error.

All image inputs are float batches ``(N, C, H, W)`` in the unit range [0, 1]
(:func:`lsr_utils.base.pixels.model_to_unit` converts model outputs); anything
else is refused with a message. Units:

* ``mse``: per-image **sum** of squared errors over all pixels and channels,
  on [0, 1] (the unit that matches the paper's ~55 for a beta = 1 VAE on
  CIFAR-10); ``mse_per_pixel``: the same divided by C*H*W.
* ``sharpness``: mean over pixels of |Laplacian(luminance) / local mean
  luminance| (section 2.2: San Pedro and Siersdorfer, 2009, section 3.1.2,
  with the details of its usual implementation; see :func:`sharpness_per_image`);
  dimensionless.
* ``hue_errors``/``hue_kept``: the angle, in degrees, between the hue of a rendering's mean colour over the
  object and the texture-free object's hue (``shapes``); ``hue_kept``: % of images within 30 degrees.
* ``sample_variance``: per-image sum over pixels and channels of the variance
  across K renderings of samples z ~ q(z|x), on [0, 1]; same unit as ``mse``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..base.errors import LsrError
from ..base.pixels import check_unit_images
from ..method.nn import reparameterize


@dataclass(frozen=True)
class Stat:
    """A per-image statistic summarised over images: mean, standard error, standard deviation, count."""

    mean: float
    sem: float
    std: float
    n: int
    unit: str = ""

    @classmethod
    def of(cls, values: torch.Tensor, unit: str = "") -> Stat:
        v = values.detach().double().flatten().cpu()
        n = v.numel()
        if n == 0:
            raise LsrError("cannot summarise an empty set of values")
        std = float(v.std(unbiased=True)) if n > 1 else 0.0
        return cls(float(v.mean()), std / math.sqrt(n) if n > 1 else float("nan"), std, n, unit)

    def to_dict(self) -> dict:
        return asdict(self)

    def percent(self, unit: str) -> Stat:
        """A fraction as a percentage (mean, s.e. and s.d. times 100), with its unit."""
        return Stat(100 * self.mean, 100 * self.sem, 100 * self.std, self.n, unit)

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.sem:.2g}" + (f" {self.unit}" if self.unit else "")


def _pair(a: torch.Tensor, b: torch.Tensor, names=("images", "references")):
    a = check_unit_images(a, names[0])
    b = check_unit_images(b, names[1])
    if a.shape != b.shape:
        raise LsrError(f"{names[0]} and {names[1]} must have the same shape, got {tuple(a.shape)} and "
                       f"{tuple(b.shape)}")
    return a, b


def squared_errors(images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Per-image sum of squared errors on [0, 1]: shape (N,)."""
    a, b = _pair(images, references)
    return (a - b).pow(2).flatten(1).sum(1)


def sum_squared_error(images: torch.Tensor, references: torch.Tensor) -> Stat:
    """The paper's "MSE" of Tables 1, 2 and Figure 5a: the per-image *sum* of squared errors on [0, 1] (records
    keep the paper's name, ``mse_*``)."""
    return Stat.of(squared_errors(images, references), "sum of squared errors per image, [0,1] scale")


def mse_per_pixel(images: torch.Tensor, references: torch.Tensor) -> Stat:
    """Reconstruction error per pixel and channel, on [0, 1]."""
    a, _ = _pair(images, references)
    return Stat.of(squared_errors(images, references) / a[0].numel(), "squared error per pixel value, [0,1] scale")


_LAPLACIAN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
_LUMA = (0.299, 0.587, 0.114)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) luminance 0.299 R + 0.587 G + 0.114 B on [0, 1] (grey images pass through)."""
    x = check_unit_images(images)
    if x.shape[1] == 1:
        return x
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def sharpness_per_image(images: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Luminance-normalised Laplacian of each image, shape (N,) (section 2.2).

    mean over pixels of |L(x, y) / mu(x, y)|, L the 4-neighbour Laplacian of the
    luminance and mu its 3x3 box mean, both with edge-replicated borders;
    pixels where mu = 0 are skipped.
    """
    lum = luminance(images).double()
    padded = F.pad(lum, (1, 1, 1, 1), mode="replicate")
    lap = F.conv2d(padded, _LAPLACIAN.to(lum).view(1, 1, 3, 3))
    mu = F.avg_pool2d(padded, 3, stride=1)
    valid = mu > eps
    ratio = torch.where(valid, (lap / mu.clamp_min(eps)).abs(), torch.zeros_like(lap))
    return (ratio.flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1)).float()


def sharpness(images: torch.Tensor) -> Stat:
    """Sharpness (section 2.2): Stat over images; ``std`` is the paper's "sharpness variation"."""
    return Stat.of(sharpness_per_image(images), "luminance-normalised Laplacian")


def hue_degrees(rgb: torch.Tensor) -> torch.Tensor:
    """Hue (HSV), in degrees [0, 360), of colours ``(..., 3)`` on [0, 1]; a grey colour reads 0."""
    r, g, b = rgb.unbind(-1)
    mx, mn = rgb.max(-1).values, rgb.min(-1).values
    d = (mx - mn).clamp_min(1e-12)
    h = torch.where(mx == r, ((g - b) / d) % 6, torch.where(mx == g, (b - r) / d + 2, (r - g) / d + 4))
    return (60 * h) % 360


def flat_object_masks(clean: torch.Tensor, tolerance: float = 2 / 255) -> torch.Tensor:
    """(N, H, W) masks of the object in images of one flat object on a flat background (``shapes``' texture-free
    images): the background is the most frequent colour of the border pixels, the object the most frequent colour
    of the rest; the mask holds the pixels within ``tolerance`` of the object's colour (anti-aliased edges left
    out)."""
    x = check_unit_images(clean, "texture-free images")
    if x.shape[1] != 3:
        raise LsrError(f"object colours need RGB images, got {x.shape[1]} channel(s)")
    q = (x * 255).round().long()
    key = (q[:, 0] * 256 + q[:, 1]) * 256 + q[:, 2]                       # (N, H, W) one integer per colour
    border = torch.cat([key[:, 0], key[:, -1], key[:, 1:-1, 0], key[:, 1:-1, -1]], 1)
    bg = border.mode(1).values
    inside = key.flatten(1).masked_fill(key.flatten(1) == bg[:, None], -1)
    obj = torch.stack([row[row >= 0].mode().values if (row >= 0).any() else row[0] for row in inside])
    colour = torch.stack([obj // 65536, obj // 256 % 256, obj % 256], 1).to(x.dtype) / 255
    return ((x - colour[:, :, None, None]).abs().amax(1) <= tolerance) & (key != bg[:, None, None])


def object_colours(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N, 3) mean colour of ``images`` over ``masks`` (N, H, W), e.g. :func:`flat_object_masks`."""
    m = masks.unsqueeze(1).to(images.dtype)
    return (images * m).flatten(2).sum(2) / m.flatten(1).sum(1).clamp_min(1)[:, None]


def hue_shifts(images: torch.Tensor, clean: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """Per image, the signed hue shift (degrees, in [-180, 180); positive: red -> yellow -> green) of the mean colour
    of ``images`` over the object of ``clean`` (``masks``, default :func:`flat_object_masks` of ``clean``) from the
    clean object's hue. Shape (N,)."""
    a, b = _pair(images, clean, ("images", "texture-free images"))
    m = flat_object_masks(b) if masks is None else masks
    return (hue_degrees(object_colours(a, m)) - hue_degrees(object_colours(b, m)) + 180) % 360 - 180


def hue_errors(images: torch.Tensor, clean: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """Per image, the angle (degrees, 0-180) between the hue of the mean colour of ``images`` over the object of
    ``clean`` and the hue of the clean object (:func:`hue_shifts`): whether a rendering keeps the object's
    colour. Shape (N,)."""
    return hue_shifts(images, clean, masks).abs()


HUE_TOLERANCE = 30.0  # degrees: a twelfth of the colour circle (red is 0, yellow 60, green 120)


def share_within(errors: torch.Tensor, tolerance: float = HUE_TOLERANCE) -> Stat:
    """The percentage of per-image hue ``errors`` below ``tolerance`` degrees."""
    return Stat.of((errors < tolerance).double(), "").percent(
        f"% of images, object hue within {tolerance:g} degrees of the texture-free object's")


def hue_kept(images: torch.Tensor, clean: torch.Tensor, tolerance: float = HUE_TOLERANCE) -> Stat:
    """The percentage of ``images`` whose object hue is within ``tolerance`` degrees of the clean object's."""
    return share_within(hue_errors(images, clean), tolerance)


@torch.no_grad()
def sample_variance(render: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor, logvar: torch.Tensor, *,
                    k: int = 10, generator: torch.Generator | None = None, batch_size: int = 256,
                    render_batch: int | None = None) -> Stat:
    """Variance among images rendered from K samples z ~ q(z|x) of each input (Tables 1, 2; Figure 6d).

    ``render(z)`` maps latents to images in the **unit** range. For each input,
    the per-pixel variance across the K renderings (unbiased) is summed over
    pixels and channels; the Stat is over inputs. The noise is drawn for
    ``batch_size`` inputs at a time (this fixes the random stream, so the
    value does not depend on ``render_batch``); ``render`` is called on at
    most ``render_batch`` latents at a time (default: 128 on a CPU, where small
    batches stay in cache and render about 2x faster than 2,560; a whole block
    elsewhere).
    """
    if k < 2:
        raise LsrError(f"sample_variance needs k >= 2 samples, got {k}")
    render_batch = render_batch or (128 if mu.device.type == "cpu" else batch_size * k)
    out = []
    for s in range(0, len(mu), batch_size):
        m, lv = mu[s:s + batch_size], logvar[s:s + batch_size]
        z = reparameterize(m, lv, generator, samples=k).flatten(0, 1)
        imgs = torch.cat([render(z[i:i + render_batch]) for i in range(0, len(z), render_batch)])
        imgs = check_unit_images(imgs, "rendered images")
        imgs = imgs.view(k, len(m), *imgs.shape[1:])
        out.append(imgs.var(0, unbiased=True).flatten(1).sum(1).cpu())
    return Stat.of(torch.cat(out), "sum over pixels of variance across samples, [0,1] scale")


def accuracy(predicted: torch.Tensor, target: torch.Tensor) -> Stat:
    """Fraction of matches, as a Stat over images (mean in [0, 1]; :meth:`Stat.percent` for %)."""
    if predicted.shape != target.shape:
        raise LsrError(f"predictions and targets differ in shape: {tuple(predicted.shape)} vs {tuple(target.shape)}")
    return Stat.of((predicted == target).float(), "fraction correct")


@torch.no_grad()
def latent_spread(mu: torch.Tensor, logvar: torch.Tensor, top: int = 8) -> dict:
    """How far the codes mu(x) of real images spread, against the prior N(0, I) that LSR-GAN trains on.

    The eigenvalues of the covariance of mu(x) over the images, largest first
    (the prior's are all 1), and the mean posterior variance exp(logvar). A
    converged VAE's aggregated posterior matches the prior: var(mu) + sigma^2
    is about 1 in every direction. Where the top eigenvalues are far above 1,
    prior samples z ~ N(0, I) cover only the middle of the region where real
    images' codes lie: LSR-GAN (trained on z ~ N(0, I)) then renders G(mu(x))
    from codes it was hardly trained on, and D(z) looks like an average image.
    """
    if mu.dim() != 2 or len(mu) < 2:
        raise LsrError(f"latent_spread needs codes of at least 2 images as (N, latent), got {tuple(mu.shape)}")
    ev = torch.linalg.eigvalsh(torch.cov(mu.double().T)).flip(0).clamp_min(0.0)
    return {"top_eigenvalues": [round(float(v), 4) for v in ev[:top]], "prior_eigenvalue": 1.0,
            "largest_std_ratio": round(float(ev[0].sqrt()), 4), "total_variance": round(float(ev.sum()), 4),
            "mean_posterior_variance": round(float(logvar.double().exp().mean()), 4), "n": len(mu),
            "rule": "eigenvalues of the covariance of mu(x) over the test images; the prior N(0, I) has 1 in "
                    "every direction"}
