"""The one place that knows what a training stage is made of: :func:`build_stage`.

A stage is its networks (freshly initialised from the configuration's seed,
the generator started from the VAE decoder where the configuration says so),
its optimisers (Adam with the configuration's learning rate and betas,
Appendix D), their learning-rate schedules, its noise generator and its step
(:mod:`lsr_utils.steps`). Training (:mod:`lsr_utils.train`), the step
self-check, the benchmarks and the tests all build stages here, so a recipe
change is made once.

Stage 1 (``VAEConfig``): ``models = {"encoder", "decoder"}``, one Adam over
both. Stage 2 (``GANConfig``): ``models = {"generator", "discriminator"}``
(plus ``"generator_ema"`` when the recipe keeps a moving average), one Adam
each, on a frozen encoder. Several configurations that differ only in their
swept value (beta; lambda) build one stacked stage of M members.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .config import GANConfig, VAEConfig, flat_dict
from .errors import LsrError
from .nn import Encoder, build_gan, build_vae, fold_batchnorm, stack_members, unstack_member
from .runtime import adam, maybe_compile, set_seed
from .steps import CapturedStep, GANStep, Schedule, VAEStep


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


@dataclass
class Stage:
    """Everything one stage trains with (built only by :func:`build_stage`)."""

    kind: str                          # the checkpoint's kind: "vae", "gan", "vae-sweep", "gan-sweep"
    cfgs: list                         # the members' configurations (one for a plain run)
    models: dict                       # name -> network trained and checkpointed (stacked when M > 1)
    optims: dict                       # name -> optimiser, checkpointed
    step: Callable                     # step(batch, global_step) -> the values named by step.names
    noise: torch.Generator             # the step's noise (z and eps), checkpointed
    templates: dict = field(default_factory=dict)  # name -> one member's network, to cut a member out of a stack

    @property
    def m(self) -> int:
        return len(self.cfgs)

    @property
    def names(self) -> tuple[str, ...]:
        return self.step.names

    @property
    def cfg(self):
        return self.cfgs[0]

    def member_weights(self, j: int) -> dict:
        """Member ``j``'s weights (name -> state dict on the CPU), as its own run would have saved them."""
        out = {}
        for name, net in self.models.items():
            state = net.state_dict() if self.m == 1 else unstack_member(net, self.templates[name], j)
            out[name] = {k: t.contiguous().cpu() for k, t in state.items()}
        return out


def build_stage(cfgs, device, *, total_steps: int, encoders=None, decoders=None, generator=None,
                discriminator=None, channels_last: bool = True, compile: bool = False, graphs: bool = False,
                capturable: bool | None = None, dtype: torch.dtype | None = None) -> Stage:
    """The networks, optimisers, schedules, noise and step of one stage (a ``VAEConfig`` or ``GANConfig``, or a
    list of them to train stacked).

    ``total_steps``: the steps the stage will take (its learning-rate schedule
    ends there). Stage 2 needs ``encoders``: the frozen encoder(s) of its
    VAE(s), one shared by every member or one per member (each a kit
    ``Encoder``, folded for speed, or any module mapping images in [-1, 1] to
    ``(mu, logvar)``); ``decoders``: the VAE decoder(s) the generator starts
    from (when ``cfg.init == "vae"``); ``generator``/``discriminator``: other
    networks to train instead of the paper's. ``dtype``: the networks' dtype
    (the float64 tests). ``graphs``: CUDA-graph capture (constant learning rate
    only); ``capturable``: optimisers that a CUDA graph can capture (default: with ``graphs``).
    """
    cfgs = list(cfgs) if isinstance(cfgs, (list, tuple)) else [cfgs]
    cfg, m = cfgs[0], len(cfgs)
    gan = isinstance(cfg, GANConfig)
    if not gan and not isinstance(cfg, VAEConfig):
        raise LsrError(f"build_stage takes a VAEConfig or GANConfig, got {type(cfg).__name__}")
    check_members(cfgs, *(("lam", "vae.beta") if gan else ("beta",)))
    if graphs and (cfg.lr_warmup or cfg.lr_decay != "constant"):
        raise LsrError("--graphs needs a constant learning rate (a captured step replays the one it was captured "
                       "with); this recipe warms it up or decays it: drop --graphs, or train with the paper's schedule")
    if graphs and gan and cfg.ema and cfg.ema_warmup:
        raise LsrError("--graphs cannot keep a ramped moving average of the generator (ema with ema_warmup > 0): its "
                       "decay changes with every step, and a captured step replays the one it was captured with; drop "
                       "--graphs, set ema_warmup 0 (a constant decay, the quick recipe's), or train without ema (the "
                       "paper's recipe)")
    if graphs and compile:
        raise LsrError("--graphs and --compile cannot be combined; choose one")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    capturable = graphs if capturable is None else capturable

    def place(net: torch.nn.Module) -> torch.nn.Module:
        net = net.to(device) if dtype is None else net.to(device, dtype)
        return net.to(memory_format=fmt)

    def wide(nets: list) -> torch.nn.Module:
        return place(nets[0] if m == 1 else stack_members(nets))

    set_seed(cfg.seed)  # every member starts from the weights its own run would draw
    noise = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    kind = ("gan" if gan else "vae") + ("-sweep" if m > 1 else "")

    if not gan:
        encoder, decoder = build_vae(cfg)
        templates = {"encoder": encoder, "decoder": decoder}
        models = {"encoder": wide([encoder] * m), "decoder": wide([decoder] * m)}
        opt = adam(list(models["encoder"].parameters()) + list(models["decoder"].parameters()), cfg.lr,
                   cfg.adam_betas, device, capturable)
        schedule = Schedule(opt, cfg.lr, cfg.lr_warmup, cfg.lr_decay, total_steps)
        step = VAEStep(cfgs, maybe_compile(models["encoder"], compile, device),
                       maybe_compile(models["decoder"], compile, device), opt, schedule, noise, device)
        return Stage(kind, cfgs, models, {"vae": opt}, CapturedStep(step) if graphs else step, noise, templates)

    if encoders is None:
        raise LsrError("stage 2 needs the frozen encoder of its VAE (encoders=...)")
    encoders = list(encoders) if isinstance(encoders, (list, tuple)) else [encoders]
    if len(encoders) not in (1, m):
        raise LsrError(f"stage 2: {len(encoders)} encoders for {m} members; give one, or one per member")
    gen0, disc0 = build_gan(cfg)
    if (generator is None) != (cfg.generator != "custom") or (discriminator is None) != (cfg.discriminator != "custom"):
        raise LsrError("a generator or discriminator network is given exactly when the configuration says 'custom'")
    if discriminator is not None:
        disc0 = discriminator
    decoders = list(decoders) if isinstance(decoders, (list, tuple)) else [decoders] * m
    if len(decoders) == 1:
        decoders = decoders * m
    if cfg.generator == "custom":
        gens = [copy.deepcopy(generator) for _ in range(m)]
    elif cfg.generator == "vae-decoder":  # the VAE's own decoder network, started from its weights
        if any(d is None for d in decoders):
            raise LsrError("generator='vae-decoder' needs the VAE's decoder (decoders=...)")
        gens = [copy.deepcopy(d) for d in decoders]
    else:
        gens = [copy.deepcopy(gen0) for _ in range(m)]
    gen0 = gens[0]
    if cfg.generator == "paper" and cfg.init == "vae":  # each starts from its own VAE's decoder (section 2.2)
        for g, d in zip(gens, decoders):
            if d is None:
                raise LsrError("init='vae' starts the generator from the VAE decoder, and none was given; pass it "
                               "(decoders=...) or use init='scratch'")
            try:
                g.load_state_dict(d.state_dict())
            except RuntimeError as e:
                raise LsrError(f"the generator cannot start from this decoder: its weights do not fit "
                               f"({str(e).splitlines()[0][:200]}); use init='scratch' or pass a generator of the "
                               f"decoder's architecture") from None
    templates = {"generator": gen0, "discriminator": disc0}
    models = {"generator": wide(gens), "discriminator": wide([disc0] * m)}
    if cfg.g_freeze:
        freeze_leading(models["generator"], cfg.g_freeze)
    ema = None
    if cfg.ema:
        ema = copy.deepcopy(models["generator"]).requires_grad_(False)
        models["generator_ema"] = ema
        templates["generator_ema"] = gen0
    frozen = [_frozen(e) for e in encoders]
    shared = len(frozen) == 1
    encoder = place(frozen[0] if shared else stack_members(frozen)).eval().requires_grad_(False)
    opt_g = adam(models["generator"].parameters(), cfg.lr, cfg.adam_betas, device, capturable)
    d_lr = cfg.discriminator_lr
    opt_d = adam(models["discriminator"].parameters(), d_lr, cfg.adam_betas, device, capturable)
    schedules = (Schedule(opt_g, cfg.lr, cfg.lr_warmup, cfg.lr_decay, total_steps, offset=cfg.d_warmup),
                 Schedule(opt_d, d_lr, cfg.lr_warmup, cfg.lr_decay, total_steps))
    step = GANStep(cfgs, maybe_compile(encoder, compile, device), maybe_compile(models["generator"], compile, device),
                   maybe_compile(models["discriminator"], compile, device), opt_g, opt_d, schedules, noise, device,
                   shared=shared, ema=ema)
    return Stage(kind, cfgs, models, {"generator": opt_g, "discriminator": opt_d},
                 CapturedStep(step) if graphs else step, noise, templates)


def freeze_leading(generator: torch.nn.Module, stages: int) -> None:
    """Keep the first ``stages`` of a (paper) generator as they started, the VAE decoder's: their weights take no
    gradient and their BatchNorms stay in eval mode (the decoder's statistics, gathered on codes of real images),
    whatever mode the rest is put in. The later stages learn to render what the latent dropped."""
    if not (hasattr(generator, "fc") and hasattr(generator, "blocks")):
        raise LsrError("g_freeze applies to the paper's generator (Table 3's decoder); this generator has another "
                       "architecture")
    for part in [generator.fc, *generator.blocks][:stages]:
        part.requires_grad_(False)
        part.eval()
        part.train = _stay_in_eval.__get__(part)  # fit() puts the models in train mode on every step


def _stay_in_eval(self, mode: bool = True):
    """``train()`` of a frozen part: it stays in eval mode."""
    return self


def _frozen(encoder: torch.nn.Module) -> torch.nn.Module:
    """The encoder stage 2 runs: a copy in eval mode that takes no gradient (a kit Encoder with its BatchNorms
    folded into the layers before them: the same function, faster; lsr_utils.nn.fold_batchnorm)."""
    enc = copy.deepcopy(encoder).eval()
    if isinstance(enc, Encoder):
        return fold_batchnorm(enc)
    return enc.requires_grad_(False)
