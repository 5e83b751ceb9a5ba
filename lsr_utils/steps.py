"""The training steps of the two stages, written once for M stacked members (M = 1: a plain run).

* :class:`VAEStep` (stage 1): the loss of Appendix A (log-MSE or SSE) plus
  beta * KL (eq. 2, eq. 5), for M VAEs that differ only in beta.
* :class:`GANStep` (stage 2): D by eq. 3, then G by eq. 4 (adversarial +
  lambda * LSR, eq. 1) on the frozen encoder, for M LSR-GANs over one VAE
  that differ only in lambda.
* :class:`CapturedStep`: either step replayed as a CUDA graph per batch
  shape (forward, backward, a capturable fused Adam, noise drawn on the
  device): the same math with one launch per step.

With M > 1 the networks are the members stacked side by side
(:func:`lsr_utils.nn.stack_members`): one wide network per step does the work
of M narrow ones. The losses are the kit's functions (:mod:`lsr_utils.losses`)
on each member's slice, with its own beta or lambda, summed; members share no
parameter, so each gets exactly its own gradient (``tests/test_stacked.py``).

A step takes a batch in the model range and returns, on the device and
without a host sync, the values named by ``step.names`` (M * the per-member
names, ``"loss/0"``, ... when M > 1).
"""
from __future__ import annotations

import torch

from .errors import LsrError
from .losses import discriminator_loss, generator_loss, vae_loss
from .nn import fold_batchnorm, members_of, reparameterize, stack_members
from .runtime import autocast, full_precision, maybe_compile

VAE_NAMES = ("loss", "recon", "kl_per_image", "mse_per_pixel")
GAN_NAMES = ("g_loss", "d_loss", "g_adversarial", "lsr", "d_real", "d_fake")


def member_names(names: tuple[str, ...], m: int) -> tuple[str, ...]:
    return names if m == 1 else tuple(f"{n}/{i}" for i in range(m) for n in names)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def check_members(cfgs, *swept: str) -> list:
    """The configurations of stacked members: at least one, distinct, differing only in the ``swept`` fields.

    A beta sweep's VAEs differ in ``beta``; its LSR-GANs (one per VAE) in
    ``vae.beta``; a lambda sweep's LSR-GANs (over one VAE) in ``lam``.
    """
    cfgs = list(cfgs) if isinstance(cfgs, (list, tuple)) else [cfgs]
    if not cfgs:
        raise LsrError("a sweep needs at least one configuration")
    rest = lambda c: {k: v for k, v in _flat(c.to_dict()).items() if k not in swept}  # noqa: E731
    if any(rest(c) != rest(cfgs[0]) for c in cfgs[1:]):
        raise LsrError(f"a sweep's members may differ only in {' and '.join(swept)}; these differ elsewhere too")
    values = [tuple(_flat(c.to_dict())[k] for k in swept) for c in cfgs]
    if len(set(values)) != len(values):
        raise LsrError(f"a sweep's {' and '.join(swept)} values must be distinct, got {values}")
    return cfgs


class VAEStep:
    """One optimisation step of stage 1 for M VAEs that differ only in beta (eq. 5; Appendix A).

    Per member: ``(loss, recon, kl_per_image, mse_per_pixel)``; the per-pixel
    MSE is on [0, 1] (the [-1, 1] error / 4).
    """

    def __init__(self, cfgs, encoder: torch.nn.Module, decoder: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 noise: torch.Generator, device: torch.device, compile: bool = False):
        self.cfgs = check_members(cfgs, "beta")
        self.m, self.opt, self.noise, self.device = len(self.cfgs), optimizer, noise, device
        self.encoder = maybe_compile(encoder, compile, device)
        self.decoder = maybe_compile(decoder, compile, device)
        self.names = member_names(VAE_NAMES, self.m)
        self.optimizers = (optimizer,)

    def __call__(self, x: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        m, precision = self.m, self.cfgs[0].precision
        with autocast(self.device, precision):
            mu, logvar = self.encoder(x if m == 1 else x.repeat(1, m, 1, 1))
            x_hat = self.decoder(reparameterize(mu, logvar, self.noise, members=m))
        mus, lvs, xhs = members_of(mu, m), members_of(logvar, m), members_of(x_hat, m)
        total, stats = 0.0, []
        for i, c in enumerate(self.cfgs):
            parts = vae_loss(full_precision(xhs[i]), x, full_precision(mus[i]), full_precision(lvs[i]),
                             beta=c.beta, recon_loss=c.recon_loss)
            total = total + parts.total
            sse = (full_precision(xhs[i].detach()) - x).pow(2).sum()
            stats += [parts.total.detach(), parts.recon.detach(), parts.kl.detach() / x.shape[0],
                      sse / x.numel() / 4.0]
        self.opt.zero_grad(set_to_none=True)
        total.backward()  # members share no parameter: each gets exactly its own gradient
        self.opt.step()
        return torch.stack(stats)


class GANStep:
    """One optimisation step of stage 2 for M LSR-GANs: a lambda sweep over one VAE, or one per VAE of a beta sweep.

    The encoder is frozen: the step runs a copy with its BatchNorms folded into
    the layers before them (:func:`lsr_utils.nn.fold_batchnorm`; the same
    function in eval mode), with no parameter that takes a gradient, so no
    gradient reaches the encoder and its weights and running statistics never
    change (``tests/test_train.py``). Gradients flow through it to G(z) only.

    ``encoder``: one encoder shared by all members (a lambda sweep: it sees the
    members' fakes as one batch of M * B images), or a list of M encoders, one
    per member (a beta sweep: stacked side by side like the other networks).
    Per member: ``(g_loss, d_loss, g_adversarial, lsr, d_real, d_fake)``.
    """

    def __init__(self, cfgs, encoder, generator: torch.nn.Module,
                 discriminator: torch.nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                 noise: torch.Generator, device: torch.device, compile: bool = False):
        self.cfgs = check_members(cfgs, "lam", "vae.beta")
        self.m, self.opt_g, self.opt_d, self.noise, self.device = len(self.cfgs), opt_g, opt_d, noise, device
        self.disc_params = list(discriminator.parameters())
        encoders = list(encoder) if isinstance(encoder, (list, tuple)) else [encoder]
        if len(encoders) not in (1, self.m):
            raise LsrError(f"GANStep: {len(encoders)} encoders for {self.m} members; give one, or one per member")
        self.shared = len(encoders) == 1
        folded = fold_batchnorm(encoders[0]) if self.shared else \
            stack_members([fold_batchnorm(e) for e in encoders]).eval().requires_grad_(False)
        self.encoder = maybe_compile(folded, compile, device)
        self.generator = maybe_compile(generator, compile, device)
        self.discriminator = maybe_compile(discriminator, compile, device)
        self.names = member_names(GAN_NAMES, self.m)
        self.optimizers = (opt_d, opt_g)

    def __call__(self, x_real: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        m, cfg = self.m, self.cfgs[0]
        b, latent = x_real.shape[0], cfg.vae.latent_dim
        gen, enc, disc = self.generator, self.encoder, self.discriminator
        z = torch.randn(b, latent, device=x_real.device, dtype=x_real.dtype, generator=self.noise)
        with autocast(self.device, cfg.precision):
            x_fake = gen(z if m == 1 else z.repeat(1, m))                   # (B, M*C, H, W)
            if self.shared:    # one encoder: the members' fakes as one batch of M*B images
                fakes = x_fake if m == 1 else members_of(x_fake, m).reshape(m * b, *x_real.shape[1:])
                mu, logvar = enc(fakes)            # frozen encoder; gradients flow to x_fake only
                mus, lvs = mu.view(m, b, latent), logvar.view(m, b, latent)
            else:              # one encoder per member, stacked: (B, M*C, H, W) -> (B, M*latent)
                mu, logvar = enc(x_fake)
                mus, lvs = members_of(mu, m), members_of(logvar, m)
            # (1) update D (eq. 3): fake first, then real, as in the reference
            fake_logits = disc(x_fake.detach())
            real_logits = disc(x_real if m == 1 else x_real.repeat(1, m, 1, 1))
        fl, rl = members_of(fake_logits, m), members_of(real_logits, m)
        ds = [discriminator_loss(full_precision(rl[i]), full_precision(fl[i])) for i in range(m)]
        self.opt_d.zero_grad(set_to_none=True)
        sum(d.total for d in ds).backward()
        self.opt_d.step()
        # (2) update G (eq. 4): fool D and keep E(G(z)) near z; D's weights get no gradient here
        for p in self.disc_params:
            p.requires_grad_(False)
        with autocast(self.device, cfg.precision):
            gl = members_of(disc(x_fake), m)
        gs = [generator_loss(full_precision(gl[i]), z, full_precision(mus[i]), full_precision(lvs[i]), lam=c.lam,
                             reduction=c.lsr_reduction) for i, c in enumerate(self.cfgs)]
        self.opt_g.zero_grad(set_to_none=True)
        sum(g.total for g in gs).backward()
        self.opt_g.step()
        for p in self.disc_params:
            p.requires_grad_(True)
        stats = []
        with torch.no_grad():
            for i, (g, d) in enumerate(zip(gs, ds)):
                stats += [g.total.detach(), d.total.detach(), g.adversarial.detach(), g.lsr.detach(),
                          torch.sigmoid(full_precision(rl[i])).mean(), torch.sigmoid(full_precision(fl[i])).mean()]
        return torch.stack(stats)


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
    """A step replayed as a CUDA graph, one graph per batch shape: the same math, one launch per step.

    The first ``warmup`` calls of each batch shape run eagerly (they are real
    training steps, on a side stream: cuDNN and the allocator settle, Adam's
    state is created); the next call captures the whole step (forward,
    backward, both optimiser steps, the noise drawn from the step's own device
    generator) with the batch in a static buffer, and every later call copies
    the batch into that buffer and replays. The epoch's last, smaller batch
    gets its own graph, so no image is dropped or padded and no shape breaks a
    graph. Nothing reads a value back to the host.

    Requirements (checked): CUDA, optimisers built with ``capturable=True``
    (:func:`lsr_utils.runtime.adam`), no ``torch.compile``. The returned
    values live in the graph's buffer: the caller copies them before the next
    call (:func:`lsr_utils.loop.fit` does).

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
        key = (tuple(x.shape), tuple(x.stride()), x.dtype)
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
