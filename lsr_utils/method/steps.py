"""One optimisation step of each stage, read top to bottom in numbered phases (as pytorch/examples' dcgan).

* :class:`VAEStep` (stage 1): encode, sample z ~ q(z|x), decode; the negative
  ELBO of eq. 2 (beta of eq. 5, Appendix A's log-MSE); one Adam step.
* :class:`GANStep` (stage 2): z ~ N(0, I) and G(z); D by eq. 3; the code
  q(z | G(z)) under the frozen encoder; G by eq. 4 (adversarial + lambda *
  LSR, eq. 1); the moving average of G where the recipe keeps one.

A step is built only by :func:`lsr_utils.method.stage.build_stage`, which gives
it its networks, optimisers, learning-rate schedule and noise generator. It
takes a batch in the model range and the global step number, and returns, on
the device and without a host sync, the values named by ``step.names``.

Each step trains one run: one beta, one lambda. How several sweep members
share a device (stacked side by side, replayed as CUDA graphs) is the speed
layer's business (:mod:`lsr_utils.speed`), built over these same losses.
"""
from __future__ import annotations

import math

import torch

from ..base.runtime import autocast, full_precision
from .losses import discriminator_loss, generator_loss, vae_loss
from .nn import reparameterize

VAE_NAMES = ("loss", "recon", "kl_per_image", "mse_per_pixel")
GAN_NAMES = ("g_loss", "d_loss", "g_adversarial", "lsr", "d_real", "d_fake")


class Schedule:
    """The learning rate of one optimiser at a global step: linear warm-up, then constant or cosine decay to 0.

    Set from the step number on every step, so a resumed run follows the same
    schedule exactly. ``offset``: steps before this optimiser starts (the
    discriminator warm-up of stage 2 holds the generator still).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, lr: float, warmup: int = 0, decay: str = "constant",
                 total: int = 1, offset: int = 0):
        self.optimizer, self.lr, self.warmup, self.decay = optimizer, lr, warmup, decay
        self.total, self.offset = max(total - offset, 1), offset

    @property
    def constant(self) -> bool:
        return self.warmup == 0 and self.decay == "constant"

    def factor(self, step: int) -> float:
        s = step - self.offset
        f = min(1.0, (s + 1) / self.warmup) if self.warmup else 1.0
        if self.decay == "cosine":
            f *= 0.5 * (1.0 + math.cos(math.pi * min(max(s, 0), self.total) / self.total))
        return f

    def apply(self, step: int) -> None:
        if self.constant:
            return
        lr = self.lr * self.factor(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def minimise(self, loss: torch.Tensor, step: int) -> None:
        """One step of the optimiser on ``loss``, at global step ``step``'s learning rate."""
        self.apply(step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


class MovingAverage:
    """An exponential moving average of the generator's weights (GANConfig.ema), which then renders the images.

    ema <- d * ema + (1 - d) * G after every G update, d = min(decay, (1 + t) / (w + t)), w = ``warmup``: the
    average follows G closely at first, then slowly (t: G updates so far; w = 0: d = decay throughout). BatchNorm
    statistics are copied."""

    def __init__(self, ema: torch.nn.Module, generator: torch.nn.Module, decay: float, warmup: int):
        self.decay, self.warmup = decay, warmup
        self.pairs = list(zip(ema.parameters(), generator.parameters()))
        self.buffers = list(zip(ema.buffers(), generator.buffers()))

    @torch.no_grad()
    def update(self, g_step: int) -> None:
        d = self.decay if self.warmup == 0 else min(self.decay, (1 + g_step) / (self.warmup + g_step))
        for e, p in self.pairs:
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in self.buffers:
            e.copy_(b)


class VAEStep:
    """One step of stage 1 (eq. 2; beta of eq. 5; Appendix A's reconstruction term).

    Returns ``(loss, recon, kl_per_image, mse_per_pixel)``; the per-pixel MSE
    is on [0, 1] (the [-1, 1] error / 4).
    """

    names = VAE_NAMES

    def __init__(self, cfg, encoder, decoder, schedule: Schedule, noise: torch.Generator):
        self.cfg, self.beta, self.recon_loss, self.precision = cfg, cfg.beta, cfg.recon_loss, cfg.precision
        self.encoder, self.decoder, self.schedule = encoder, decoder, schedule
        self.noise, self.device = noise, noise.device
        self.optimizers = (schedule.optimizer,)

    def phase(self, global_step: int) -> int:
        return 0

    def __call__(self, x: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        # (1) encode x, draw z ~ q(z|x) (section 2.1), decode
        with autocast(self.device, self.precision):
            mu, logvar = self.encoder(x)
            x_hat = self.decoder(reparameterize(mu, logvar, self.noise))
        x_hat, mu, logvar = full_precision(x_hat), full_precision(mu), full_precision(logvar)
        # (2) the negative ELBO: reconstruction (Appendix A) + beta * KL (eq. 2, eq. 5)
        loss = vae_loss(x_hat, x, mu, logvar, beta=self.beta, recon_loss=self.recon_loss)
        # (3) one Adam step at this step's learning rate
        self.schedule.minimise(loss.total, global_step)
        with torch.no_grad():
            return torch.stack([loss.total.detach(), loss.recon.detach(), loss.kl.detach() / x.shape[0],
                                (x_hat.detach() - x).pow(2).sum() / x.numel() / 4.0])


class GANStep:
    """One step of stage 2 on the frozen encoder (section 2.2; eq. 1, 3, 4).

    ``encoder``: frozen (no parameter takes a gradient; gradients flow through
    it to G(z) only). ``schedule_g``, ``schedule_d``: each network's Adam with
    its learning-rate schedule. During the first ``cfg.d_warmup`` steps only D
    trains, against the generator as it started (the VAE decoder). With ``ema``
    (a :class:`MovingAverage`), the average of G's weights follows every G update.
    Returns ``(g_loss, d_loss, g_adversarial, lsr, d_real, d_fake)``.
    """

    names = GAN_NAMES

    def __init__(self, cfg, encoder, generator, discriminator, schedule_g: Schedule, schedule_d: Schedule,
                 noise: torch.Generator, ema: MovingAverage | None = None):
        self.cfg, self.precision, self.latent = cfg, cfg.precision, cfg.vae.latent_dim
        self.lam, self.reduction, self.d_warmup = cfg.lam, cfg.lsr_reduction, cfg.d_warmup
        self.encoder, self.generator, self.discriminator = encoder, generator, discriminator
        self.schedule_g, self.schedule_d = schedule_g, schedule_d
        self.noise, self.device, self.ema = noise, noise.device, ema
        self.disc_params = list(discriminator.parameters())
        self.optimizers = (schedule_d.optimizer, schedule_g.optimizer)

    def phase(self, global_step: int) -> int:
        """0 while only D trains (its warm-up), 1 after: a captured step keeps one graph per phase."""
        return int(global_step >= self.d_warmup)

    def __call__(self, x_real: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        gen, disc, b = self.generator, self.discriminator, x_real.shape[0]
        # (1) z ~ N(0, I) and the generator's images G(z)
        z = torch.randn(b, self.latent, device=x_real.device, dtype=x_real.dtype, generator=self.noise)
        with autocast(self.device, self.precision):
            x_fake = gen(z)
            # (2) update D (eq. 3) on G(z), held fixed, and on real images: fake first, as in the reference
            fake_logits, real_logits = disc(x_fake.detach()), disc(x_real)
        fake_logits, real_logits = full_precision(fake_logits), full_precision(real_logits)
        d_loss = discriminator_loss(real_logits, fake_logits)
        self.schedule_d.minimise(d_loss.total, global_step)
        # (3) the code of G(z) under the frozen encoder: mu, logvar of q(z | G(z)). G(z) enters it through a view of
        #     its own, so that the gradients of the encoder's two uses of its input (the first block's convolution and
        #     shortcut) are summed before D's gradient joins them: the order in which every run on record summed them
        training_g = global_step >= self.d_warmup
        with torch.set_grad_enabled(training_g), autocast(self.device, self.precision):
            mu, logvar = self.encoder(x_fake.view_as(x_fake))
            for p in self.disc_params:  # D takes no gradient from G's loss
                p.requires_grad_(False)
            g_logits = disc(x_fake)
        # (4) update G (eq. 4): fool D, and keep E(G(z)) near z (the LSR term of eq. 1, weight lambda)
        g_loss = generator_loss(full_precision(g_logits), z, full_precision(mu), full_precision(logvar),
                                lam=self.lam, reduction=self.reduction)
        if training_g:
            self.schedule_g.minimise(g_loss.total, global_step)
            # (5) the moving average of G's weights (where the recipe keeps one)
            if self.ema is not None:
                self.ema.update(global_step - self.d_warmup)
        for p in self.disc_params:
            p.requires_grad_(True)
        with torch.no_grad():
            return torch.stack([g_loss.total.detach(), d_loss.total.detach(), g_loss.adversarial.detach(),
                                g_loss.lsr.detach(), torch.sigmoid(real_logits).mean(),
                                torch.sigmoid(fake_logits).mean()])
