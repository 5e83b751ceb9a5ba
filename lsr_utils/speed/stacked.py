"""Sweep members sharing a device: M runs of one stage trained side by side as one wide network.

A beta sweep (VAEs that differ only in beta) or a lambda sweep (LSR-GANs over
one VAE that differ only in lambda; or one LSR-GAN per VAE of a beta sweep)
trains M networks from the same initial weights (same seed), on the same
batches in the same order (same shuffle seed), with the same noise (same noise
seed). This module stacks the M members *side by side along the channels*:

* every ``Conv2d`` becomes one grouped convolution (``groups`` x M) whose
  weight is the members' weights concatenated;
* every ``BatchNorm`` holds the members' channels one after another (batch
  statistics are per channel, so per member: the same arithmetic);
* every ``Linear`` becomes a :class:`GroupedLinear` (one batched matmul);
* Adam is element-wise, so one Adam over the stacked tensors is M Adams.

One wide step then does the work of M narrow ones with M times fewer, M times
larger kernels, which is what a GPU at batch 32 needs (1.41-1.52x over one
captured member on an H200; 0.94x on a CPU, where the kit trains members one by
one: benchmarks/RESULTS.md). :class:`StackedVAEStep` and
:class:`StackedGANStep` are adapters over the single-member losses of
:mod:`lsr_utils.method.losses`: each member's loss is the kit's loss function
on its own slice, with its own beta or lambda; their sum is minimised (the
members share no parameter, so each gets exactly its own gradient). At the
end the wide networks are cut back into M ordinary networks
(:meth:`StackedStage.member_weights`) and each member's run folder is written
as its own run would write it (``tests/test_stacked.py`` checks losses and
weights against separate runs in float64).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..base.errors import LsrError
from ..base.runtime import adam, autocast, full_precision, maybe_compile
from ..method.config import GANConfig, flat_dict
from ..method.losses import discriminator_loss, generator_loss, vae_loss
from ..method.stage import Build, fresh_networks, frozen_encoder, gan_optimisers, generator_setup
from ..method.steps import GAN_NAMES, VAE_NAMES, MovingAverage, Schedule


class GroupedLinear(nn.Module):
    """M independent ``Linear(in, out)`` layers on a (B, M * in) input -> (B, M * out)."""

    def __init__(self, linears: list[nn.Linear]):
        super().__init__()
        self.members = len(linears)
        self.in_features, self.out_features = linears[0].in_features, linears[0].out_features
        self.weight = nn.Parameter(torch.stack([lin.weight.detach() for lin in linears]).clone())
        self.bias = nn.Parameter(torch.stack([lin.bias.detach() for lin in linears]).clone()) \
            if linears[0].bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        y = torch.einsum("bmi,moi->bmo", x.reshape(b, self.members, self.in_features), self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(b, self.members * self.out_features)


def _stack_conv(convs: list[nn.Conv2d]) -> nn.Conv2d:
    c, m = convs[0], len(convs)
    wide = nn.Conv2d(c.in_channels * m, c.out_channels * m, c.kernel_size, c.stride, c.padding, c.dilation,
                     c.groups * m, c.bias is not None, c.padding_mode, device=c.weight.device,
                     dtype=c.weight.dtype)
    with torch.no_grad():
        wide.weight.copy_(torch.cat([k.weight for k in convs]))
        if c.bias is not None:
            wide.bias.copy_(torch.cat([k.bias for k in convs]))
    return wide


def _stack_bn(bns: list[nn.modules.batchnorm._BatchNorm]) -> nn.Module:
    b, m = bns[0], len(bns)
    ref = b.weight if b.affine else b.running_mean
    wide = type(b)(b.num_features * m, b.eps, b.momentum, b.affine, b.track_running_stats, device=ref.device,
                   dtype=ref.dtype)
    with torch.no_grad():
        if b.affine:
            wide.weight.copy_(torch.cat([k.weight for k in bns]))
            wide.bias.copy_(torch.cat([k.bias for k in bns]))
        if b.track_running_stats:
            wide.running_mean.copy_(torch.cat([k.running_mean for k in bns]))
            wide.running_var.copy_(torch.cat([k.running_var for k in bns]))
            wide.num_batches_tracked.copy_(b.num_batches_tracked)
    return wide


def stack_members(members: list[nn.Module]) -> nn.Module:
    """One wide network equal to ``members`` side by side (input and output channels concatenated).

    The members must be the same architecture. The wide network's input is the
    members' inputs concatenated along dim 1 (images: channels; latents:
    features); so is its output.
    """
    if len(members) < 1:
        raise LsrError("stack_members needs at least one network")
    names = [n for n, _ in members[0].named_modules()]
    for m in members[1:]:
        if [n for n, _ in m.named_modules()] != names or type(m) is not type(members[0]):
            raise LsrError("stack_members: the networks differ in architecture")
    wide = copy.deepcopy(members[0])
    mods = [dict(m.named_modules()) for m in members]
    for name, module in list(wide.named_modules()):
        same = [d[name] for d in mods]
        if isinstance(module, nn.Conv2d):
            new = _stack_conv(same)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            new = _stack_bn(same)
        elif isinstance(module, nn.Linear):
            new = GroupedLinear(same)
        elif isinstance(module, (nn.ConvTranspose2d, nn.LayerNorm, nn.GroupNorm, nn.Embedding)):
            raise LsrError(f"stack_members: {type(module).__name__} is not supported")
        else:
            continue
        parent, _, attr = name.rpartition(".")
        setattr(wide.get_submodule(parent) if parent else wide, attr, new)
    wide.members = len(members)
    return wide


def unstack_member(wide: nn.Module, template: nn.Module, i: int) -> dict:
    """Member ``i``'s state dict, cut from the wide network, in the layout of ``template``."""
    m = wide.members
    wide_state = wide.state_dict()
    out = {}
    for name, t in template.state_dict().items():
        w = wide_state[name]
        if w.dim() == 0 or w.shape == t.shape and name.endswith("num_batches_tracked"):
            out[name] = w.clone()
        elif w.dim() == t.dim() + 1 and w.shape[0] == m:  # GroupedLinear: (M, out, in), (M, out)
            out[name] = w[i].clone()
        elif w.shape[0] == m * t.shape[0]:  # conv / batch-norm: members concatenated along dim 0
            out[name] = w.chunk(m, 0)[i].clone().contiguous()
        else:
            raise LsrError(f"unstack_member: cannot cut {name} {tuple(w.shape)} into {m} x {tuple(t.shape)}")
        if out[name].shape != t.shape:
            raise LsrError(f"unstack_member: {name} is {tuple(out[name].shape)}, expected {tuple(t.shape)}")
    return out


def members_of(x: torch.Tensor, m: int) -> torch.Tensor:
    """(B, M * C, ...) -> (M, B, C, ...): each member's slice, members first."""
    b = x.shape[0]
    return x.reshape(b, m, x.shape[1] // m, *x.shape[2:]).transpose(0, 1)


# ----------------------------------------------------------------------------- the stacked stage
def check_members(cfgs, *swept: str) -> list:
    """The configurations of stacked members: at least one, distinct, differing only in the ``swept`` fields.

    A beta sweep's VAEs differ in ``beta``; its LSR-GANs (one per VAE) in
    ``vae.beta``; a lambda sweep's LSR-GANs (over one VAE) in ``lam``.
    """
    cfgs = list(cfgs)
    if not cfgs:
        raise LsrError("a sweep needs at least one configuration")

    def rest(c):
        return {k: v for k, v in flat_dict(c.to_dict()).items() if k not in swept}

    if any(rest(c) != rest(cfgs[0]) for c in cfgs[1:]):
        raise LsrError(f"a sweep's members may differ only in {' and '.join(swept)}; these differ elsewhere too")
    values = [tuple(flat_dict(c.to_dict())[k] for k in swept) for c in cfgs]
    if len(set(values)) != len(values):
        raise LsrError(f"a sweep's {' and '.join(swept)} values must be distinct, got {values}")
    return cfgs


def swept_fields(cfg) -> tuple[str, ...]:
    """The fields in which a sweep's members of this stage may differ."""
    return ("lam", "vae.beta") if isinstance(cfg, GANConfig) else ("beta",)


@dataclass
class StackedStage:
    """M members of one stage as one stacked network (built only by :func:`build_stacked_stage`)."""

    kind: str                          # the checkpoint's kind: "vae-sweep" or "gan-sweep"
    cfgs: list                         # the members' configurations
    models: dict                       # name -> stacked network, trained and checkpointed
    optims: dict                       # name -> optimiser over the stacked network, checkpointed
    step: Callable
    noise: torch.Generator
    templates: dict = field(default_factory=dict)  # name -> one member's network, to cut a member out

    @property
    def m(self) -> int:
        return len(self.cfgs)

    @property
    def cfg(self):
        return self.cfgs[0]

    @property
    def names(self) -> tuple[str, ...]:
        return self.step.names

    def member_weights(self, j: int) -> dict:
        """Member ``j``'s weights (name -> state dict on the CPU), as its own run would have saved them."""
        return {name: {k: t.contiguous().cpu() for k, t in unstack_member(net, self.templates[name], j).items()}
                for name, net in self.models.items()}


def build_stacked_stage(cfgs, device, *, total_steps: int, encoders=None, decoders=None,
                        how: Build = Build()) -> StackedStage:
    """The stacked stage of several members (``VAEConfig`` or ``GANConfig`` that differ only in their swept value):
    each member's networks as its own run starts them (:func:`lsr_utils.method.stage.fresh_networks`), stacked.

    Stage 2: ``encoders``, one frozen encoder shared by every member (a lambda sweep) or one per member (the
    LSR-GANs of a beta sweep); ``decoders``, the VAE decoder each member's generator starts from (one for all, or
    one each).
    """
    cfgs = check_members(cfgs, *swept_fields(cfgs[0] if cfgs else None))
    cfg, m = cfgs[0], len(cfgs)
    gan = isinstance(cfg, GANConfig)
    noise = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    compiled = lambda net: maybe_compile(net, how.compile, device)
    if not gan:
        members = [fresh_networks(c) for c in cfgs]
        templates = dict(members[0])
        nets = {name: how.place(stack_members([mem[name] for mem in members]), device) for name in templates}
        opt = adam(list(nets["encoder"].parameters()) + list(nets["decoder"].parameters()), cfg.lr, cfg.adam_betas,
                   device, how.capturable)
        schedule = Schedule(opt, cfg.lr, cfg.lr_warmup, cfg.lr_decay, total_steps)
        step = StackedVAEStep(cfgs, compiled(nets["encoder"]), compiled(nets["decoder"]), schedule, noise)
        return StackedStage("vae-sweep", cfgs, nets, {"vae": opt}, step, noise, templates)
    if encoders is None:
        raise LsrError("stage 2 needs the frozen encoder of its VAE (encoders=...)")
    encoders, decoders = list(encoders), list(decoders or [None])
    if len(encoders) not in (1, m) or len(decoders) not in (1, m):
        raise LsrError(f"stage 2: {len(encoders)} encoders and {len(decoders)} decoders for {m} members; give one, "
                       f"or one per member")
    decoders = decoders * m if len(decoders) == 1 else decoders
    members = [fresh_networks(c, decoder=d) for c, d in zip(cfgs, decoders)]
    templates = dict(members[0])
    nets = {name: how.place(stack_members([mem[name] for mem in members]), device) for name in templates}
    ema = generator_setup(cfg, nets)
    if ema is not None:
        templates["generator_ema"] = templates["generator"]
    frozen = [frozen_encoder(e) for e in encoders]
    shared = len(frozen) == 1
    encoder = how.place(frozen[0] if shared else stack_members(frozen), device).eval().requires_grad_(False)
    schedule_g, schedule_d = gan_optimisers(cfg, nets, device, total_steps, how.capturable)
    step = StackedGANStep(cfgs, compiled(encoder), compiled(nets["generator"]), compiled(nets["discriminator"]),
                          schedule_g, schedule_d, noise, ema=ema)
    step.shared = shared
    return StackedStage("gan-sweep", cfgs, nets, {"generator": schedule_g.optimizer,
                                                  "discriminator": schedule_d.optimizer}, step, noise, templates)


# ----------------------------------------------------------------------------- the stacked steps
class Members:
    """What a stacked step does with M members side by side."""

    def __init__(self, m: int):
        self.m = m

    def widen(self, t: torch.Tensor) -> torch.Tensor:
        """One input for every member: (B, C, ...) -> (B, M * C, ...)."""
        return t.repeat(1, self.m, *([1] * (t.dim() - 2)))

    def split(self, t: torch.Tensor) -> torch.Tensor:
        """Each member's slice of a wide output: (B, M * C, ...) -> (M, B, C, ...)."""
        return members_of(t, self.m)

    def names(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(f"{n}/{i}" for i in range(self.m) for n in names)

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        """z ~ q(z|x) for every member, (B, M * D): one eps of shape (B, D) drawn, as each member's own run would
        draw it (lsr_utils.method.nn.reparameterize), and shared by all members."""
        eps = torch.randn(mu.shape[0], mu.shape[1] // self.m, device=mu.device, dtype=mu.dtype, generator=noise)
        return mu + torch.exp(0.5 * logvar) * eps.repeat(1, self.m)


class StackedVAEStep:
    """M steps of stage 1 at once (:class:`lsr_utils.method.steps.VAEStep`'s phases); per member ``(loss, recon,
    kl_per_image, mse_per_pixel)`` as ``name/i``."""

    def __init__(self, cfgs, encoder, decoder, schedule: Schedule, noise: torch.Generator):
        self.cfgs, self.members = list(cfgs), Members(len(cfgs))
        self.precision = self.cfgs[0].precision
        self.encoder, self.decoder, self.schedule = encoder, decoder, schedule
        self.noise, self.device = noise, noise.device
        self.names = self.members.names(VAE_NAMES)
        self.optimizers = (schedule.optimizer,)

    def phase(self, global_step: int) -> int:
        return 0

    def __call__(self, x: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        mb = self.members
        # (1) encode x, draw z ~ q(z|x), decode: every member at once
        with autocast(self.device, self.precision):
            mu, logvar = self.encoder(mb.widen(x))
            x_hat = self.decoder(mb.sample(mu, logvar, self.noise))
        mus, logvars, x_hats = mb.split(mu), mb.split(logvar), mb.split(x_hat)
        # (2) each member's negative ELBO on its own slice, with its own beta
        losses = [vae_loss(full_precision(x_hats[i]), x, full_precision(mus[i]), full_precision(logvars[i]),
                           beta=c.beta, recon_loss=c.recon_loss) for i, c in enumerate(self.cfgs)]
        # (3) one Adam step over all members (they share no parameter)
        self.schedule.minimise(sum(loss.total for loss in losses), global_step)
        with torch.no_grad():
            return torch.stack([v for i, loss in enumerate(losses) for v in (
                loss.total.detach(), loss.recon.detach(), loss.kl.detach() / x.shape[0],
                (full_precision(x_hats[i].detach()) - x).pow(2).sum() / x.numel() / 4.0)])


class StackedGANStep:
    """M steps of stage 2 at once (:class:`lsr_utils.method.steps.GANStep`'s phases).

    ``encoder``: one frozen encoder shared by every member (``shared``, the
    default: a lambda sweep; it sees the members' fakes as one batch of M * B
    images), or the members' encoders stacked side by side (``shared = False``:
    an LSR-GAN per VAE of a beta sweep). Per member ``(g_loss, d_loss,
    g_adversarial, lsr, d_real, d_fake)`` as ``name/i``.
    """

    shared = True

    def __init__(self, cfgs, encoder, generator, discriminator, schedule_g: Schedule, schedule_d: Schedule,
                 noise: torch.Generator, ema: MovingAverage | None = None):
        self.cfgs, self.members = list(cfgs), Members(len(cfgs))
        cfg = self.cfgs[0]
        self.m, self.precision, self.latent, self.d_warmup = len(cfgs), cfg.precision, cfg.vae.latent_dim, cfg.d_warmup
        self.encoder, self.generator, self.discriminator = encoder, generator, discriminator
        self.schedule_g, self.schedule_d = schedule_g, schedule_d
        self.noise, self.device, self.ema = noise, noise.device, ema
        self.disc_params = list(discriminator.parameters())
        self.names = self.members.names(GAN_NAMES)
        self.optimizers = (schedule_d.optimizer, schedule_g.optimizer)

    def phase(self, global_step: int) -> int:
        return int(global_step >= self.d_warmup)

    def encode(self, x_fake: torch.Tensor, b: int):
        """(mu, logvar) of each member's G(z) under the frozen encoder, each (M, B, latent)."""
        mb = self.members
        if self.shared:  # one encoder: the members' fakes as one batch of M * B images
            mu, logvar = self.encoder(mb.split(x_fake).flatten(0, 1))
            return mu.view(self.m, b, self.latent), logvar.view(self.m, b, self.latent)
        mu, logvar = self.encoder(x_fake)  # stacked encoders: (B, M*C, H, W) -> (B, M*latent)
        return mb.split(mu), mb.split(logvar)

    def __call__(self, x_real: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        mb, b = self.members, x_real.shape[0]
        gen, disc = self.generator, self.discriminator
        # (1) z ~ N(0, I), one draw shared by all members, and each member's G(z)
        z = torch.randn(b, self.latent, device=x_real.device, dtype=x_real.dtype, generator=self.noise)
        with autocast(self.device, self.precision):
            x_fake = gen(mb.widen(z))
            # (2) update each D (eq. 3) on its G(z), held fixed, and on real images
            fake_logits, real_logits = disc(x_fake.detach()), disc(mb.widen(x_real))
        fake_logits, real_logits = mb.split(fake_logits), mb.split(real_logits)
        d_losses = [discriminator_loss(full_precision(real_logits[i]), full_precision(fake_logits[i]))
                    for i in range(self.m)]
        self.schedule_d.minimise(sum(d.total for d in d_losses), global_step)
        # (3) the code of each G(z) under the frozen encoder
        training_g = global_step >= self.d_warmup
        with torch.set_grad_enabled(training_g), autocast(self.device, self.precision):
            mus, logvars = self.encode(x_fake, b)
            for p in self.disc_params:
                p.requires_grad_(False)
            g_logits = mb.split(disc(x_fake))
        # (4) update each G (eq. 4) with its own lambda
        g_losses = [generator_loss(full_precision(g_logits[i]), z, full_precision(mus[i]), full_precision(logvars[i]),
                                   lam=c.lam, reduction=c.lsr_reduction) for i, c in enumerate(self.cfgs)]
        if training_g:
            self.schedule_g.minimise(sum(g.total for g in g_losses), global_step)
            if self.ema is not None:  # (5) the moving average of every member's G
                self.ema.update(global_step - self.d_warmup)
        for p in self.disc_params:
            p.requires_grad_(True)
        with torch.no_grad():
            return torch.stack([v for g, d, rl, fl in zip(g_losses, d_losses, real_logits, fake_logits) for v in (
                g.total.detach(), d.total.detach(), g.adversarial.detach(), g.lsr.detach(),
                torch.sigmoid(full_precision(rl)).mean(), torch.sigmoid(full_precision(fl)).mean())])
