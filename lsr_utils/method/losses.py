"""Loss functions of the paper, as pure functions that return their parts.

Every function takes tensors in the model range ([-1, 1]) and plain float
hyper-parameters, and returns a ``NamedTuple`` whose ``total`` is what the
optimiser minimises; the other fields are the terms, for logging.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..base.errors import LsrError

RECON_LOSSES = ("log_mse", "sse")
LSR_REDUCTIONS = ("mean", "sum")
_LOG_SQRT_2PI = math.log(math.sqrt(2.0 * math.pi))


class VAELoss(NamedTuple):
    total: torch.Tensor  # recon + beta * kl
    recon: torch.Tensor  # reconstruction term (see ``recon_loss``)
    kl: torch.Tensor     # KL(q(z|x) || N(0, I)), summed over batch and latent dims (unweighted)


class GeneratorLoss(NamedTuple):
    total: torch.Tensor  # adversarial + lam * lsr
    adversarial: torch.Tensor
    lsr: torch.Tensor    # -log q(z | G(z)), reduced as asked (unweighted)


class DiscriminatorLoss(NamedTuple):
    total: torch.Tensor
    real: torch.Tensor
    fake: torch.Tensor


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), summed over batch and latent dims (eq. 2, 5).

    = -1/2 * sum(1 + logvar - mu^2 - exp(logvar)).
    """
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp())


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL of each latent dimension, averaged over the batch: shape (latent_dim,)."""
    return (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())).mean(0)


def log_mse_reconstruction(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Appendix A: -log p(x|z) with the Gaussian variance set to the MSE.

    (N/2) * log(SSE), with N = number of predicted values in the batch (batch x
    channels x height x width) and SSE the sum of squared errors over the
    batch. This equals (N/2) log(MSE) + (N/2) log N: the same gradient as the
    paper's N log(E_MSE) / 2 (constants dropped, as in the reference code).
    """
    n = x.numel()
    return 0.5 * n * torch.log((x_hat - x).pow(2).sum())


def effective_beta(mse_per_value: float) -> float:
    """Appendix A: the beta of the log-MSE beta-VAE that a sum-of-squares VAE silently is.

    The gradient of (N/2) log(SSE) with respect to a pixel is (x_hat - x) / MSE,
    that of SSE is 2 (x_hat - x). So "SSE + KL" has the gradients of
    2 MSE x ["log-MSE loss" + KL / (2 MSE)]: a log-MSE beta-VAE with
    **beta_eff = 1 / (2 MSE)**, MSE per pixel value on the networks' [-1, 1]
    scale, taken at the trained model.
    """
    if not mse_per_value > 0:
        raise LsrError(f"effective_beta needs a positive mean squared error, got {mse_per_value!r}")
    return 1.0 / (2.0 * mse_per_value)


def sse_reconstruction(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The common sum-of-squares loss sum (x_hat - x)^2 (Appendix A).

    Appendix A: this silently assumes a pixel variance sigma^2 = 1/2, so it is a
    beta-VAE with an effective beta set by the data's scale.
    """
    return (x_hat - x).pow(2).sum()


def vae_loss(x_hat: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
             beta: float = 1.0, recon_loss: str = "log_mse") -> VAELoss:
    """Negative ELBO of a beta-VAE for one batch (eq. 2, and eq. 5 with beta).

    ``recon_loss="log_mse"`` (default, Appendix A and the reference) or
    ``"sse"`` (plain sum of squares, for the Appendix A comparison).
    """
    if recon_loss == "log_mse":
        recon = log_mse_reconstruction(x_hat, x)
    elif recon_loss == "sse":
        recon = sse_reconstruction(x_hat, x)
    else:
        raise LsrError(f"recon_loss must be one of {RECON_LOSSES}, got {recon_loss!r}")
    kl = kl_divergence(mu, logvar)
    return VAELoss(recon + beta * kl, recon, kl)


def gaussian_nll(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Element-wise -log N(z | mu, exp(logvar)) = (z-mu)^2/(2 e^logvar) + logvar/2 + log sqrt(2 pi)."""
    return (z - mu).pow(2) / (2.0 * logvar.exp()) + 0.5 * logvar + _LOG_SQRT_2PI


def lsr_loss(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """The latent-space-renderer term -log q_phi(z | G(z)) of eq. 1 and eq. 4.

    ``mu, logvar = Encoder(G(z))`` from the frozen encoder.

    * ``reduction="mean"`` (default, the reference's): mean over the batch *and*
      the latent dimensions. The paper's lambda values (0.01 ... 20) were run
      with this.
    * ``reduction="sum"``: the literal -log q(z|G(z)) per sample (summed over
      latent dimensions), averaged over the batch; latent_dim times larger.
    """
    nll = gaussian_nll(z, mu, logvar)
    if reduction == "mean":
        return nll.mean()
    if reduction == "sum":
        return nll.sum(1).mean()
    raise LsrError(f"lsr reduction must be one of {LSR_REDUCTIONS}, got {reduction!r}")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> DiscriminatorLoss:
    """Eq. 3: L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))].

    Binary cross-entropy against all-ones (real) and all-zeros (fake) maps,
    each averaged over its map, summed (as in the reference). Takes logits.
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return DiscriminatorLoss(real + fake, real, fake)


def generator_loss(fake_logits: torch.Tensor, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
                   lam: float = 1.0, reduction: str = "mean") -> GeneratorLoss:
    """Eq. 4 (and eq. 1): L_G = -E_z[log D(G(z))] + lam * (-log q_phi(z | G(z))).

    The adversarial part is the non-saturating BCE against all-ones, as in the
    reference; ``mu, logvar`` come from the frozen encoder applied to G(z).
    """
    adversarial = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    lsr = lsr_loss(z, mu, logvar, reduction=reduction)
    return GeneratorLoss(adversarial + lam * lsr, adversarial, lsr)
