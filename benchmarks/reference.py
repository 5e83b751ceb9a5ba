"""The reference implementation's training steps, written out plainly: the baseline of the speed work.

This is how the authors' public code (September 2019) trains: batch 32, fp32, NCHW tensors, a ``DataLoader`` whose
dataset turns each uint8 image into a tensor through PIL, ``ToTensor`` and
``Normalize`` one item at a time (what torchvision's ``CIFAR10`` does),
``torch.optim.Adam`` with its default implementation, the discriminator's
sigmoid followed by ``binary_cross_entropy`` against 3x2x2 target maps, and a
``.item()`` host sync on every step's losses. Its decoder/generator upsamples
then convolves, literally (``literal_upsampling``), where the kit's
fuses the two (:func:`lsr_utils.method.nn.upsample_conv3x3`).

It exists for two uses only, so that neither defines it a second time:

* ``benchmarks/train_speed.py`` and ``benchmarks/gpu_speed.py`` time it
  against the kit's :class:`lsr_utils.method.steps.VAEStep` / :class:`~lsr_utils.method.steps.GANStep`;
* ``tests/test_equivalence.py`` checks that, from the same weights, data and
  noise, the kit's steps produce the same losses (the fast path changes the
  speed, not the math).

The kit never trains with it, and it is not part of the installed package.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lsr_utils.method.nn import Decoder, Discriminator, Encoder, literal_upsampling


class ReferenceStyleDataset(torch.utils.data.Dataset):
    """uint8 HWC images served one by one through PIL, ToTensor and Normalize((0.5,)*3, (0.5,)*3)."""

    def __init__(self, images_hwc: np.ndarray):
        from torchvision import transforms

        self.images = images_hwc
        self.tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return self.tf(Image.fromarray(self.images[i])), 0


def reference_loader(images_hwc: np.ndarray, batch_size: int = 32, seed: int = 0) -> torch.utils.data.DataLoader:
    """``DataLoader(dataset, batch_size, shuffle=True)`` over the per-item transforms, as the reference reads data."""
    return torch.utils.data.DataLoader(ReferenceStyleDataset(images_hwc), batch_size=batch_size, shuffle=True,
                                       generator=torch.Generator().manual_seed(seed))


class ReferenceVAEStep:
    """The reference's VAE step: log-MSE reconstruction (Appendix A) + KL, one ``.item()`` per loss."""

    def __init__(self, encoder: Encoder, decoder: Decoder, *, beta: float = 1.0, lr: float = 2e-4,
                 betas=(0.5, 0.999), noise: torch.Generator | None = None):
        self.enc, self.dec, self.beta, self.noise = encoder, literal_upsampling(decoder), beta, noise
        self.opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=lr, betas=betas)

    def __call__(self, data: torch.Tensor) -> tuple[float, float, float]:
        self.enc.train(), self.dec.train()
        self.opt.zero_grad()
        mu, logvar = self.enc(data)
        eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=self.noise)
        recon = self.dec(mu + eps * torch.exp(0.5 * logvar))
        d = data[0].numel()
        rec = torch.log((recon - data).pow(2).sum()) * 0.5 * d * data.shape[0]
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = rec + self.beta * kld
        loss.backward()
        self.opt.step()
        return loss.item(), rec.item(), kld.item()


class ReferenceGANStep:
    """The reference's LSR-GAN step: D on fake then real (eq. 3), then G on adversarial + lambda * LSR (eq. 4)."""

    def __init__(self, encoder: Encoder, generator: Decoder, discriminator: Discriminator, *, lam: float = 1.0,
                 lr: float = 2e-4, betas=(0.5, 0.999), latent_dim: int = 128, noise: torch.Generator | None = None):
        self.enc, self.disc, self.lam, self.noise = encoder.eval(), discriminator, lam, noise
        self.gen = literal_upsampling(generator)
        self.latent_dim = latent_dim
        for p in self.enc.parameters():
            p.requires_grad = False
        self.opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
        self.opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)

    def __call__(self, data: torch.Tensor) -> tuple[float, float, float]:
        self.gen.train(), self.disc.train()
        device = data.device
        sample = torch.randn(data.shape[0], self.latent_dim, device=device, dtype=data.dtype, generator=self.noise)
        g_fake = self.gen(sample)
        mu, logvar = self.enc(g_fake)
        self.opt_d.zero_grad()
        fake_out = torch.sigmoid(self.disc(g_fake.detach()))
        real_out = torch.sigmoid(self.disc(data))
        d_loss = F.binary_cross_entropy(fake_out, torch.zeros_like(fake_out)) + \
            F.binary_cross_entropy(real_out, torch.ones_like(real_out))
        d_loss.backward()
        self.opt_d.step()
        self.opt_g.zero_grad()
        g_out = torch.sigmoid(self.disc(g_fake))
        g_loss = F.binary_cross_entropy(g_out, torch.ones_like(g_out))
        log_pro = ((sample - mu) ** 2 / (2 * torch.exp(logvar)) + 0.5 * logvar
                   + math.log(math.sqrt(2 * math.pi))).mean() * self.lam
        (g_loss + log_pro).backward()
        self.opt_g.step()
        return d_loss.item(), g_loss.item(), log_pro.item()
