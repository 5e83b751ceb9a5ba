"""The two stages: :func:`train_vae` (stage 1), then :func:`train_lsr_gan` (stage 2).

Each takes one configuration and its data (the caller loads them: the
``lsr`` command, a notebook, ``lsr reproduce``) and returns one finished run.
A finished run with the same configuration and data is reused, never
retrained; an unfinished one resumes from its checkpoint. What a stage is made
of is :func:`lsr_utils.method.stage.build_stage`; the loop is
:func:`lsr_utils.training.loop.fit`. Several runs of a sweep:
:func:`lsr_utils.training.sweep.train_sweep`.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

from ..base.errors import LsrError
from ..base.runtime import bf16_warning, resolve_device
from ..data import DeviceBatches, ImageData, bind_data
from ..method.config import GANConfig, VAEConfig
from ..method.stage import Build, build_stage
from ..models.finished import GANRun, VAERun, code_renderer, load_gan_run, load_vae_run
from ..speed.captured import capture, check_capturable
from ..storage.runs import RunDir, run_dir
from .loop import Diverged, RunOptions, first_nonfinite, fit


def train_vae(cfg: VAEConfig, data: ImageData, *, out: str | Path = "runs", device=None, fresh: bool = False,
              options: RunOptions | None = None) -> VAERun:
    """Stage 1: the (beta-)VAE of sections 2.1/2.3 with the loss of Appendix A, on ``data``'s training images.
    ``options``: how it trains (:class:`~lsr_utils.training.loop.RunOptions`)."""
    if not isinstance(cfg, VAEConfig):
        raise LsrError("train_vae takes one VAEConfig; train several betas with train_sweep")
    cfg, data = bind_data(cfg, data)
    device = resolve_device(device)
    folder = RunDir(run_dir(cfg, out))
    trained = fresh or folder.status != "finished"
    if trained:
        train_run(cfg, folder, data, device, fresh=fresh, options=options)
    run = load_vae_run(folder.path, device)
    run.reused = not trained
    return run


def train_lsr_gan(cfg: GANConfig, data: ImageData, *, vae: VAERun | None = None, out: str | Path = "runs",
                  device=None, fresh: bool = False, networks: dict | None = None,
                  options: RunOptions | None = None) -> GANRun:
    """Stage 2: the LSR-GAN of section 2.2 (eq. 3 for D, eq. 4 for G) on the frozen encoder of a finished VAE.

    ``vae``: the finished VAE; else it is loaded from its run folder (stage 1
    is never trained here). The generator starts from the VAE decoder's
    weights unless ``cfg.init == "scratch"``. ``networks``: ``{"generator": ...,
    "discriminator": ...}`` given in Python, for a configuration that says
    ``"custom"`` (lsr_utils.training.any_vae: rendering any VAE's latent).
    """
    if not isinstance(cfg, GANConfig):
        raise LsrError("train_lsr_gan takes one GANConfig; train several lambdas with train_sweep")
    vae_cfg, data = bind_data(cfg.vae, data)
    cfg, device = cfg.replace(vae=vae_cfg), resolve_device(device)
    vae = vae_of(cfg, vae, out, device)
    folder = RunDir(run_dir(cfg, out))
    trained = fresh or folder.status != "finished"
    if trained:
        train_run(cfg, folder, data, device, vae=vae, fresh=fresh, networks=networks, options=options)
    run = load_gan_run(folder.path, device, vae, **(networks or {}))
    run.reused = not trained
    return run


def run_path(cfg, data: ImageData, out: str | Path = "runs") -> Path:
    """The folder that ``cfg`` (a VAEConfig or GANConfig) trains into: its run folder once bound to ``data``."""
    if isinstance(cfg, GANConfig):
        return run_dir(cfg.replace(vae=bind_data(cfg.vae, data)[0]), out)
    return run_dir(bind_data(cfg, data)[0], out)


def vae_of(cfg: GANConfig, vae: VAERun | None, out, device) -> VAERun:
    """The finished VAE an LSR-GAN builds on: ``vae`` (checked to be the one its configuration names), or loaded
    from its run folder."""
    if vae is None:
        folder = RunDir(run_dir(cfg.vae, out))
        if folder.status != "finished":
            raise LsrError(f"{folder.path}: the VAE this LSR-GAN builds on has not finished (status: "
                           f"{folder.status}); train it first: lsr train-vae, or train_vae")
        vae = load_vae_run(folder.path, device)
    if vae.config != cfg.vae:
        raise LsrError(f"the VAE given ({vae.path}) is not the one this LSR-GAN's configuration names")
    return vae


def train_run(cfg, folder: RunDir, data: ImageData, device, *, vae: VAERun | None = None, fresh: bool = False,
              networks: dict | None = None, options: RunOptions | None = None) -> None:
    """One run in its own folder: lock it, record it as running, build its stage, fit, write the weights."""
    opts = options or RunOptions()
    if opts.graphs:
        check_capturable(cfg, opts.compile)
    warn_bf16(cfg, device)
    with folder.lock(wait=opts.wait):
        started = folder.start(cfg, kind_of(cfg), device, fresh)
        batches = DeviceBatches(data.train_x, cfg.batch_size, device, channels_last=opts.channels_last)
        stage = build_stage(cfg, device, total_steps=cfg.epochs * len(batches), encoder=vae and vae.encoder,
                            decoder=vae and vae.decoder, **(networks or {}),
                            how=Build(opts.channels_last, opts.compile, capturable=opts.graphs))
        if opts.graphs:
            capture(stage)
        try:
            history = fit(folder, stage, batches, opts)
            check_finite(stage.models)
        except Diverged as e:
            raise diverged(e, [cfg], [folder], [started], device) from None
        weights = with_code_renderer(cfg, stage.weights(), stage.models, vae, data, device)
        folder.finish(weights, history, device, started, **bound_to(vae))


def kind_of(cfg) -> str:
    return "gan" if isinstance(cfg, GANConfig) else "vae"


def warn_bf16(cfg, device) -> None:
    warning = bf16_warning(device, cfg.precision)
    if warning:
        print(warning, file=sys.stderr, flush=True)


def check_finite(models: dict) -> None:
    bad = first_nonfinite(models)
    if bad:
        raise Diverged(f"training ended with non-finite weights in the {bad}", -1, bad, float("nan"))


def diverged(e: Diverged, cfgs, runs, started, device) -> LsrError:
    """Mark the runs failed (never reused), and the one message that says why and what to do."""
    what = ", ".join(f"beta={c.beta:g}" if isinstance(c, VAEConfig) else f"beta={c.vae.beta:g}, lambda={c.lam:g}"
                     for c in cfgs)
    reason = (f"{e}; the likely cause is a weight too large for these images ({what}) or a learning rate too high "
              f"(lr={cfgs[0].lr:g})")
    for r, s in zip(runs, started):
        r.fail(reason, device, s)
    return LsrError(f"{reason}. The run is marked failed (never reused); its last good checkpoint is kept. Change the "
                    f"setting and start it over with --fresh.")


def bound_to(vae: VAERun | None) -> dict:
    """What an LSR-GAN's run.json records of the VAE it was trained on: the SHA-256 of its weights."""
    return {"vae_weights_sha256": vae.weights_sha256} if vae is not None and vae.weights_sha256 else {}


@torch.no_grad()
def with_code_renderer(cfg, weights: dict, networks: dict, vae: VAERun | None, data: ImageData, device) -> dict:
    """``weights`` plus, where ``cfg.code_stats`` asks (GANConfig), ``"generator_codes"``: the rendering generator
    (the moving average where kept) with its BatchNorm statistics gathered afresh over codes of training images
    (:func:`~lsr_utils.models.finished.code_renderer`). Only the statistics differ from the generator's; G(z)
    keeps its own. ``networks``: where the weights are loaded into first (a copy of each is taken)."""
    if not (isinstance(cfg, GANConfig) and cfg.code_stats and vae is not None):
        return weights
    key = "generator_ema" if "generator_ema" in weights else "generator"
    g = copy.deepcopy(networks[key]).to(device)
    g.load_state_dict(weights[key])
    g = code_renderer(g, cfg, vae, data.train_x, device)
    if g is None:
        return weights
    return {**weights, "generator_codes": {k: t.contiguous().cpu() for k, t in g.state_dict().items()}}
