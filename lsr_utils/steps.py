"""One optimisation step of each stage, read top to bottom in numbered phases (as pytorch/examples' dcgan).

* :class:`VAEStep` (stage 1): encode, sample z ~ q(z|x), decode; the negative
  ELBO of eq. 2 (beta of eq. 5, Appendix A's log-MSE); one Adam step.
* :class:`GANStep` (stage 2): z ~ N(0, I) and G(z); D by eq. 3; the code
  q(z | G(z)) under the frozen encoder; G by eq. 4 (adversarial + lambda *
  LSR, eq. 1); the moving average of G where the recipe keeps one.
* :class:`CapturedStep`: either step replayed as a CUDA graph per batch
  shape: the same math with one launch per step.

A step is built only by :func:`lsr_utils.stage.build_stage`, which gives it its
networks, optimisers, learning-rate schedule and noise generator. It takes a
batch in the model range and the global step number, and returns, on the
device and without a host sync, the values named by ``step.names``.

**Stacked members.** The same step serves M sweep members trained side by side
as one wide network (:func:`lsr_utils.nn.stack_members`); :class:`Members`
holds everything that differs, and at M = 1 each of its methods is the
identity. Each member's loss is the kit's loss function
(:mod:`lsr_utils.losses`) on its own slice, with its own beta or lambda; the
members' losses are summed, and since they share no parameter each gets
exactly its own gradient (``tests/test_stacked.py``).
"""
from __future__ import annotations

import math

import torch

from .errors import LsrError
from .losses import discriminator_loss, generator_loss, vae_loss
from .nn import members_of, reparameterize
from .runtime import autocast, full_precision

VAE_NAMES = ("loss", "recon", "kl_per_image", "mse_per_pixel")
GAN_NAMES = ("g_loss", "d_loss", "g_adversarial", "lsr", "d_real", "d_fake")


class Members:
    """What a step does differently for M stacked members; at M = 1 (a plain run) every method is the identity."""

    def __init__(self, m: int):
        self.m = m

    def widen(self, t: torch.Tensor) -> torch.Tensor:
        """One input for every member: (B, C, ...) -> (B, M * C, ...)."""
        return t if self.m == 1 else t.repeat(1, self.m, *([1] * (t.dim() - 2)))

    def split(self, t: torch.Tensor) -> torch.Tensor:
        """Each member's slice of a wide output: (B, M * C, ...) -> (M, B, C, ...)."""
        return t.unsqueeze(0) if self.m == 1 else members_of(t, self.m)

    def names(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return names if self.m == 1 else tuple(f"{n}/{i}" for i in range(self.m) for n in names)


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


class VAEStep:
    """One step of stage 1 (eq. 2; beta of eq. 5; Appendix A's reconstruction term).

    Per member: ``(loss, recon, kl_per_image, mse_per_pixel)``; the per-pixel
    MSE is on [0, 1] (the [-1, 1] error / 4).
    """

    def __init__(self, cfgs, encoder, decoder, optimizer: torch.optim.Optimizer, schedule: Schedule,
                 noise: torch.Generator, device: torch.device):
        self.cfgs, self.members = list(cfgs), Members(len(cfgs))
        self.m, self.precision = len(cfgs), cfgs[0].precision
        self.encoder, self.decoder, self.opt, self.schedule = encoder, decoder, optimizer, schedule
        self.noise, self.device = noise, device
        self.names = self.members.names(VAE_NAMES)
        self.optimizers = (optimizer,)

    def phase(self, global_step: int) -> int:
        return 0

    def __call__(self, x: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        mb = self.members
        # (1) encode x, draw z ~ q(z|x) (section 2.1), decode
        with autocast(self.device, self.precision):
            mu, logvar = self.encoder(mb.widen(x))
            x_hat = self.decoder(reparameterize(mu, logvar, self.noise, members=self.m))
        mus, logvars, x_hats = mb.split(mu), mb.split(logvar), mb.split(x_hat)
        # (2) each member's negative ELBO: reconstruction (Appendix A) + beta * KL (eq. 2, eq. 5)
        losses = [vae_loss(full_precision(x_hats[i]), x, full_precision(mus[i]), full_precision(logvars[i]),
                           beta=c.beta, recon_loss=c.recon_loss) for i, c in enumerate(self.cfgs)]
        # (3) one Adam step at this step's learning rate
        self.schedule.apply(global_step)
        self.opt.zero_grad(set_to_none=True)
        sum(loss.total for loss in losses).backward()
        self.opt.step()
        with torch.no_grad():
            return torch.stack([v for i, loss in enumerate(losses) for v in (
                loss.total.detach(), loss.recon.detach(), loss.kl.detach() / x.shape[0],
                (full_precision(x_hats[i].detach()) - x).pow(2).sum() / x.numel() / 4.0)])


class GANStep:
    """One step of stage 2 on the frozen encoder (section 2.2; eq. 1, 3, 4).

    ``encoder``: frozen (no parameter takes a gradient; gradients flow through
    it to G(z) only). One encoder shared by all members (a lambda sweep: it
    sees the members' fakes as one batch of M * B images), or the members'
    encoders stacked side by side (``shared=False``: an LSR-GAN per VAE of a
    beta sweep). During the first ``cfg.d_warmup`` steps only D trains, against
    the generator as it started (the VAE decoder). With ``ema``, a moving
    average of G's weights follows every G update (it renders the images).
    Per member: ``(g_loss, d_loss, g_adversarial, lsr, d_real, d_fake)``.
    """

    def __init__(self, cfgs, encoder, generator, discriminator, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, schedules: tuple[Schedule, Schedule], noise: torch.Generator,
                 device: torch.device, *, shared: bool = True, ema: torch.nn.Module | None = None):
        self.cfgs, self.members = list(cfgs), Members(len(cfgs))
        cfg = self.cfgs[0]
        self.m, self.precision, self.latent = len(cfgs), cfg.precision, cfg.vae.latent_dim
        self.encoder, self.generator, self.discriminator = encoder, generator, discriminator
        self.opt_g, self.opt_d, (self.schedule_g, self.schedule_d) = opt_g, opt_d, schedules
        self.noise, self.device, self.shared, self.ema = noise, device, shared, ema
        self.d_warmup = cfg.d_warmup
        self.disc_params = list(discriminator.parameters())
        self.names = self.members.names(GAN_NAMES)
        self.optimizers = (opt_d, opt_g)
        if ema is not None:
            self._ema_pairs = [(e, p) for e, p in zip(ema.parameters(), generator.parameters())]
            self._ema_buffers = [(e, b) for e, b in zip(ema.buffers(), generator.buffers())]

    def phase(self, global_step: int) -> int:
        """0 while only D trains (its warm-up), 1 after: a captured step keeps one graph per phase."""
        return int(global_step >= self.d_warmup)

    def encode(self, x_fake: torch.Tensor, b: int):
        """(mu, logvar) of each member's G(z) under the frozen encoder, each (M, B, latent)."""
        mb = self.members
        if self.shared:  # one encoder: the members' fakes as one batch of M * B images
            fakes = mb.split(x_fake).flatten(0, 1)
            mu, logvar = self.encoder(fakes)
            return mu.view(self.m, b, self.latent), logvar.view(self.m, b, self.latent)
        mu, logvar = self.encoder(x_fake)  # stacked encoders: (B, M*C, H, W) -> (B, M*latent)
        return mb.split(mu), mb.split(logvar)

    def __call__(self, x_real: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        mb, b = self.members, x_real.shape[0]
        gen, disc = self.generator, self.discriminator
        # (1) z ~ N(0, I) and the generator's images G(z)
        z = torch.randn(b, self.latent, device=x_real.device, dtype=x_real.dtype, generator=self.noise)
        with autocast(self.device, self.precision):
            x_fake = gen(mb.widen(z))
            # (2) update D (eq. 3) on G(z), held fixed, and on real images: fake first, as in the reference
            fake_logits, real_logits = disc(x_fake.detach()), disc(mb.widen(x_real))
        fake_logits, real_logits = mb.split(fake_logits), mb.split(real_logits)
        d_losses = [discriminator_loss(full_precision(real_logits[i]), full_precision(fake_logits[i]))
                    for i in range(self.m)]
        self.schedule_d.apply(global_step)
        self.opt_d.zero_grad(set_to_none=True)
        sum(d.total for d in d_losses).backward()
        self.opt_d.step()
        # (3) the code of G(z) under the frozen encoder: mu, logvar of q(z | G(z))
        training_g = global_step >= self.d_warmup
        with torch.set_grad_enabled(training_g), autocast(self.device, self.precision):
            mus, logvars = self.encode(x_fake, b)
            for p in self.disc_params:  # D takes no gradient from G's loss
                p.requires_grad_(False)
            g_logits = mb.split(disc(x_fake))
        # (4) update G (eq. 4): fool D, and keep E(G(z)) near z (the LSR term of eq. 1, weight lambda)
        g_losses = [generator_loss(full_precision(g_logits[i]), z, full_precision(mus[i]), full_precision(logvars[i]),
                                   lam=c.lam, reduction=c.lsr_reduction) for i, c in enumerate(self.cfgs)]
        if training_g:
            self.schedule_g.apply(global_step)
            self.opt_g.zero_grad(set_to_none=True)
            sum(g.total for g in g_losses).backward()
            self.opt_g.step()
            # (5) the moving average of G's weights (where the recipe keeps one)
            if self.ema is not None:
                self._update_ema(global_step - self.d_warmup)
        for p in self.disc_params:
            p.requires_grad_(True)
        with torch.no_grad():
            return torch.stack([v for g, d, rl, fl in zip(g_losses, d_losses, real_logits, fake_logits) for v in (
                g.total.detach(), d.total.detach(), g.adversarial.detach(), g.lsr.detach(),
                torch.sigmoid(full_precision(rl)).mean(), torch.sigmoid(full_precision(fl)).mean())])

    @torch.no_grad()
    def _update_ema(self, g_step: int) -> None:
        """ema <- d * ema + (1 - d) * G, d = min(decay, (1 + t) / (w + t)), w = ``ema_warmup``: the average
        follows G closely at first, then slowly (t: G updates so far; w = 0: d = decay throughout); BatchNorm
        statistics are copied."""
        cfg = self.cfgs[0]
        decay = cfg.ema if cfg.ema_warmup == 0 else min(cfg.ema, (1 + g_step) / (cfg.ema_warmup + g_step))
        for e, p in self._ema_pairs:
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in self._ema_buffers:
            e.copy_(b)


# ----------------------------------------------------------------------------- CUDA graphs
class _CudaGraphs:
    """The real backend of :class:`CapturedStep`: torch.cuda graphs, warm-up on a side stream."""

    def __init__(self, noise: torch.Generator):
        self.noise = noise
        self.stream = torch.cuda.Stream()

    def eager(self, fn):
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out = fn()
        torch.cuda.current_stream().wait_stream(self.stream)
        return out

    def capture(self, fn):
        graph = torch.cuda.CUDAGraph()
        if self.noise is not None:
            graph.register_generator_state(self.noise)  # the step's own noise generator advances on every replay
        with torch.cuda.graph(graph):
            out = fn()
        return graph, out

    def replay(self, graph) -> None:
        graph.replay()  # the outputs appear in the buffers captured with the graph


class CapturedStep:
    """A step replayed as a CUDA graph, one graph per batch shape and phase: the same math, one launch per step.

    The first ``warmup`` calls of each batch shape run eagerly (they are real
    training steps, on a side stream: cuDNN and the allocator settle, Adam's
    state is created); the next call captures the whole step (forward,
    backward, both optimiser steps, the noise drawn from the step's own device
    generator) with the batch in a static buffer, and every later call copies
    the batch into that buffer and replays. The epoch's last, smaller batch
    gets its own graph, so no image is dropped or padded and no shape breaks a
    graph; so does each phase of the step (stage 2's discriminator warm-up).
    Nothing reads a value back to the host.

    Requirements (checked by :func:`lsr_utils.stage.build_stage`): CUDA,
    optimisers built with ``capturable=True``, a constant learning rate, no
    ``torch.compile``. The returned values live in the graph's buffer: the
    caller copies them before the next call (:func:`lsr_utils.loop.fit` does).

    ``backend`` replaces the CUDA-graph machinery: an object with ``eager(fn)``,
    ``capture(fn) -> (graph, outputs)`` and ``replay(graph)`` (which returns
    None, the outputs being in the captured buffers, or the outputs). The
    tests use one that runs the captured function again at each replay, to
    check the warm-up, the static buffers and the per-shape graphs on the CPU.
    """

    def __init__(self, step, warmup: int = 3, backend=None):
        if backend is None:
            if not torch.cuda.is_available() or step.device.type != "cuda":
                raise LsrError("captured steps (CUDA graphs) need a CUDA device; drop --graphs on this machine")
            for opt in step.optimizers:
                if not all(g.get("capturable") for g in opt.param_groups):
                    raise LsrError("captured steps need optimisers built with capturable=True")
            backend = _CudaGraphs(step.noise)
        self.step, self.warmup, self.backend = step, warmup, backend
        self.names, self.device, self.noise = step.names, step.device, step.noise
        self.graphs: dict[tuple, tuple] = {}
        self.calls: dict[tuple, int] = {}

    def __call__(self, x: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        key = (tuple(x.shape), tuple(x.stride()), x.dtype, self.step.phase(global_step))
        entry = self.graphs.get(key)
        if entry is None:
            self.calls[key] = self.calls.get(key, 0) + 1
            if self.calls[key] <= self.warmup:
                return self.backend.eager(lambda: self.step(x, global_step))
            static_x = x.clone()
            graph, out = self.backend.capture(lambda: self.step(static_x, global_step))
            entry = self.graphs[key] = (graph, static_x, out)
        graph, static_x, out = entry
        static_x.copy_(x)
        replayed = self.backend.replay(graph)
        return out if replayed is None else replayed
