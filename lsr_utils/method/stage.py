"""The one place that knows what a training stage is made of: :func:`build_stage`.

A stage is its networks (freshly initialised from the configuration's seed,
the generator started from the VAE decoder where the configuration says so:
:func:`fresh_networks`), its optimisers (Adam with the configuration's
learning rate and betas, Appendix D), their learning-rate schedules, its noise
generator and its step (:mod:`lsr_utils.method.steps`). Training, the step
self-check, the benchmarks and the tests all build stages here, so a recipe
change is made once; the speed layer's stacked stages
(:mod:`lsr_utils.speed.stacked`) are made of the same networks.

Stage 1 (``VAEConfig``): ``models = {"encoder", "decoder"}``, one Adam over
both. Stage 2 (``GANConfig``): ``models = {"generator", "discriminator"}``
(plus ``"generator_ema"`` when the recipe keeps a moving average), one Adam
each, on a frozen encoder.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..base.errors import LsrError
from ..base.runtime import adam, maybe_compile, set_seed
from .config import GANConfig, VAEConfig
from .nn import Encoder, build_gan, build_vae, fold_batchnorm
from .steps import GANStep, MovingAverage, Schedule, VAEStep


@dataclass(frozen=True)
class Build:
    """How a stage is built (never what it trains): the memory format, torch.compile, optimisers a CUDA graph can
    capture, and the networks' dtype (the float64 tests)."""

    channels_last: bool = True
    compile: bool = False
    capturable: bool = False
    dtype: torch.dtype | None = None

    def place(self, net: torch.nn.Module, device) -> torch.nn.Module:
        net = net.to(device) if self.dtype is None else net.to(device, self.dtype)
        return net.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)


@dataclass
class Stage:
    """Everything one run's stage trains with (built only by :func:`build_stage`)."""

    kind: str                          # the checkpoint's kind: "vae" or "gan"
    cfg: object                        # its configuration
    models: dict                       # name -> network trained and checkpointed
    optims: dict                       # name -> optimiser, checkpointed
    step: Callable                     # step(batch, global_step) -> the values named by step.names
    noise: torch.Generator             # the step's noise (z and eps), checkpointed

    @property
    def names(self) -> tuple[str, ...]:
        return self.step.names

    def weights(self) -> dict:
        """The weights as the run saves them (name -> state dict on the CPU)."""
        return {name: {k: t.contiguous().cpu() for k, t in net.state_dict().items()}
                for name, net in self.models.items()}


def fresh_networks(cfg, *, decoder=None, generator=None, discriminator=None) -> dict:
    """One run's networks as its stage starts them, on the CPU: drawn from ``cfg.seed``, the generator started
    from ``decoder``, the VAE's (section 2.2), where ``cfg.init`` says so. ``generator``/``discriminator``: other
    networks to train instead of the paper's (a configuration that says ``"custom"``)."""
    set_seed(cfg.seed)  # every run, and every stacked member, starts from the weights its seed draws
    if isinstance(cfg, VAEConfig):
        encoder, dec = build_vae(cfg)
        return {"encoder": encoder, "decoder": dec}
    if not isinstance(cfg, GANConfig):
        raise LsrError(f"a stage takes a VAEConfig or GANConfig, got {type(cfg).__name__}")
    gen, disc = build_gan(cfg)
    if (generator is None) != (cfg.generator != "custom") or (discriminator is None) != (cfg.discriminator != "custom"):
        raise LsrError("a generator or discriminator network is given exactly when the configuration says 'custom'")
    if discriminator is not None:
        disc = discriminator
    if cfg.generator == "custom":
        gen = copy.deepcopy(generator)
    elif cfg.generator == "vae-decoder":  # the VAE's own decoder network, started from its weights
        if decoder is None:
            raise LsrError("generator='vae-decoder' needs the VAE's decoder (decoder=...)")
        gen = copy.deepcopy(decoder)
    else:
        gen = copy.deepcopy(gen)
    if cfg.generator == "paper" and cfg.init == "vae":  # G starts from the VAE's decoder (section 2.2)
        if decoder is None:
            raise LsrError("init='vae' starts the generator from the VAE decoder, and none was given; pass it "
                           "(decoder=...) or use init='scratch'")
        try:
            gen.load_state_dict(decoder.state_dict())
        except RuntimeError as e:
            raise LsrError(f"the generator cannot start from this decoder: its weights do not fit "
                           f"({str(e).splitlines()[0][:200]}); use init='scratch' or pass a generator of the "
                           f"decoder's architecture") from None
    return {"generator": gen, "discriminator": disc}


def build_stage(cfg, device, *, total_steps: int, encoder=None, decoder=None, generator=None, discriminator=None,
                how: Build = Build()) -> Stage:
    """The networks, optimisers, schedules, noise and step of one run's stage (a ``VAEConfig`` or ``GANConfig``).

    ``total_steps``: the steps the stage will take (its learning-rate schedule
    ends there). Stage 2 needs ``encoder``: the frozen encoder of its VAE (a
    kit ``Encoder``, folded for speed, or any module mapping images in [-1, 1]
    to ``(mu, logvar)``) and ``decoder``, the VAE decoder the generator starts
    from (when ``cfg.init == "vae"``); ``generator``/``discriminator``: other
    networks to train instead of the paper's. ``how``: memory format, compile,
    capturable optimisers, dtype.
    """
    noise = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    nets = {name: how.place(net, device)
            for name, net in fresh_networks(cfg, decoder=decoder, generator=generator,
                                            discriminator=discriminator).items()}
    compiled = lambda net: maybe_compile(net, how.compile, device)
    if isinstance(cfg, VAEConfig):
        opt = adam(list(nets["encoder"].parameters()) + list(nets["decoder"].parameters()), cfg.lr, cfg.adam_betas,
                   device, how.capturable)
        schedule = Schedule(opt, cfg.lr, cfg.lr_warmup, cfg.lr_decay, total_steps)
        step = VAEStep(cfg, compiled(nets["encoder"]), compiled(nets["decoder"]), schedule, noise)
        return Stage("vae", cfg, nets, {"vae": opt}, step, noise)
    if encoder is None:
        raise LsrError("stage 2 needs the frozen encoder of its VAE (encoder=...)")
    gen_setup = generator_setup(cfg, nets)
    frozen = how.place(frozen_encoder(encoder), device).eval().requires_grad_(False)
    schedule_g, schedule_d = gan_optimisers(cfg, nets, device, total_steps, how.capturable)
    step = GANStep(cfg, compiled(frozen), compiled(nets["generator"]), compiled(nets["discriminator"]), schedule_g,
                   schedule_d, noise, ema=gen_setup)
    return Stage("gan", cfg, nets, {"generator": schedule_g.optimizer, "discriminator": schedule_d.optimizer}, step,
                 noise)


def generator_setup(cfg: GANConfig, nets: dict) -> MovingAverage | None:
    """What the recipe does to the placed generator before training: its leading stages frozen (``g_freeze``), and
    a moving average of its weights kept (``ema``; added to ``nets`` as ``generator_ema``, returned)."""
    if cfg.g_freeze:
        freeze_leading(nets["generator"], cfg.g_freeze)
    if not cfg.ema:
        return None
    nets["generator_ema"] = copy.deepcopy(nets["generator"]).requires_grad_(False)
    return MovingAverage(nets["generator_ema"], nets["generator"], cfg.ema, cfg.ema_warmup)


def gan_optimisers(cfg: GANConfig, nets: dict, device, total_steps: int, capturable: bool):
    """Stage 2's two Adams, each with its schedule: G's at ``lr`` (starting after D's warm-up), D's at
    ``discriminator_lr``."""
    opt_g = adam(nets["generator"].parameters(), cfg.lr, cfg.adam_betas, device, capturable)
    opt_d = adam(nets["discriminator"].parameters(), cfg.discriminator_lr, cfg.adam_betas, device, capturable)
    return (Schedule(opt_g, cfg.lr, cfg.lr_warmup, cfg.lr_decay, total_steps, offset=cfg.d_warmup),
            Schedule(opt_d, cfg.discriminator_lr, cfg.lr_warmup, cfg.lr_decay, total_steps))


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


def frozen_encoder(encoder: torch.nn.Module) -> torch.nn.Module:
    """The encoder stage 2 runs: a copy in eval mode that takes no gradient (a kit Encoder with its BatchNorms
    folded into the layers before them: the same function, faster; lsr_utils.method.nn.fold_batchnorm)."""
    enc = copy.deepcopy(encoder).eval()
    if isinstance(enc, Encoder):
        return fold_batchnorm(enc)
    return enc.requires_grad_(False)
