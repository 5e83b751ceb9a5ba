"""Evaluation of a trained VAE + LSR-GAN pair on held-out test images.

Computes the paper's image metrics (see :mod:`lsr_utils.metrics` for units):
reconstruction error of the VAE decoder D(mu(x)) and of the LSR-GAN
rendering G(mu(x)) (Figure 5a, Tables 1-2), their sharpness (section 2.2),
the variance among renderings of samples z ~ q(z|x) (Tables 1-2), and the
sharpness of random samples D(z), G(z) with z ~ N(0, I).
"""
from __future__ import annotations

import torch

from .metrics import mse, sample_variance, sharpness
from .pixels import model_to_unit, uint8_to_model, uint8_to_unit
from .train import GANRun


@torch.no_grad()
def _batched(fn, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def render_test_set(run: GANRun, test_x: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Inputs, mu, logvar, VAE reconstructions D(mu) and LSR-GAN renderings G(mu); images in [0, 1] on the CPU."""
    dev = run.vae.device
    mus, lvs = [], []
    for i in range(0, len(test_x), batch_size):
        m, lv = run.vae.encode(uint8_to_model(test_x[i:i + batch_size].to(dev)))
        mus.append(m)
        lvs.append(lv)
    mu, logvar = torch.cat(mus), torch.cat(lvs)
    return {"input": uint8_to_unit(test_x), "mu": mu, "logvar": logvar,
            "vae": _batched(lambda z: model_to_unit(run.vae.decode(z)).cpu(), mu, batch_size),
            "gan": _batched(lambda z: model_to_unit(run.generate(z)).cpu(), mu, batch_size)}


@torch.no_grad()
def image_metrics(run: GANRun, test_x: torch.Tensor, *, clean: torch.Tensor | None = None, k: int = 10,
                  n_variance: int = 500, n_random: int = 1000, seed: int = 0) -> dict:
    """The paper's image metrics for one VAE + LSR-GAN pair on uint8 test images.

    ``clean`` (shapes only): the texture-free test images, to measure how far
    each output is from the compressible content alone.
    """
    r = render_test_set(run, test_x)
    g = torch.Generator(device=run.vae.device).manual_seed(seed)
    out = {
        "n_test": len(test_x),
        "mse_vae": mse(r["vae"], r["input"]).to_dict(),
        "mse_lsr_gan": mse(r["gan"], r["input"]).to_dict(),
        "sharpness_input": sharpness(r["input"]).to_dict(),
        "sharpness_vae": sharpness(r["vae"]).to_dict(),
        "sharpness_lsr_gan": sharpness(r["gan"]).to_dict(),
    }
    nv = min(n_variance, len(test_x))
    mu, lv = r["mu"][:nv], r["logvar"][:nv]
    out["variance_vae"] = sample_variance(lambda z: model_to_unit(run.vae.decode(z)), mu, lv, k=k,
                                          generator=g).to_dict()
    out["variance_lsr_gan"] = sample_variance(lambda z: model_to_unit(run.generate(z)), mu, lv, k=k,
                                              generator=g).to_dict()
    out["variance_n"], out["variance_k"] = nv, k
    z = torch.randn(n_random, run.vae.config.latent_dim, generator=g, device=run.vae.device)
    out["sharpness_random_vae"] = sharpness(_batched(lambda t: model_to_unit(run.vae.decode(t)).cpu(), z)).to_dict()
    out["sharpness_random_lsr_gan"] = sharpness(_batched(lambda t: model_to_unit(run.generate(t)).cpu(), z)).to_dict()
    if clean is not None:
        c = uint8_to_unit(clean)
        out["mse_input_to_clean"] = mse(r["input"], c).to_dict()
        out["mse_vae_to_clean"] = mse(r["vae"], c).to_dict()
        out["mse_lsr_gan_to_clean"] = mse(r["gan"], c).to_dict()
        out["sharpness_clean"] = sharpness(c).to_dict()
    return out
