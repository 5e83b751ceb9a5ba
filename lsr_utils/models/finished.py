"""Finished runs, loaded: :class:`VAERun`, :class:`GANRun` (:func:`load_run`), and how a GAN run renders.

A run folder (:mod:`lsr_utils.storage.runs`) holds weights; here they become
networks again, checked first: the weights file must have the SHA-256 its
``run.json`` records, and an LSR-GAN's VAE the weights it was trained on. A
VAE trained elsewhere (pythae, any module) is rebuilt by
:mod:`lsr_utils.models.external`.

Rendering: :meth:`GANRun.generate` draws prior samples G(z);
:meth:`GANRun.render` draws codes of real images G(mu(x)), with the BatchNorm
statistics gathered over codes of training images where the run keeps them
(:func:`code_renderer`, GANConfig.code_stats).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from ..base.errors import LsrError
from ..base.files import load_tensors
from ..base.pixels import uint8_to_model
from ..base.runtime import resolve_device
from ..method.config import GANConfig
from ..method.nn import Decoder, Discriminator, Encoder, build_gan, build_vae, standing_statistics
from ..storage.runs import RunDir, load_state
from .run import Finished


@dataclass
class VAERun(Finished):
    """A finished VAE: its folder, configuration (a VAEConfig), networks (eval mode) and history."""

    encoder: Encoder
    decoder: Decoder

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    @torch.no_grad()
    def encode(self, x: torch.Tensor):
        """x in the model range (B, C, H, W) -> (mu, logvar)."""
        return self.encoder.eval()(x.to(self.device))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder.eval()(z.to(self.device))


@dataclass
class GANRun(Finished):
    """A finished LSR-GAN (its configuration a GANConfig) with its VAE."""

    vae: VAERun
    generator: Decoder
    discriminator: Discriminator
    # the generator with BatchNorm statistics gathered over codes of training images (GANConfig.code_stats)
    code_generator: Decoder | None = None

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) of prior samples z ~ N(0, I), model range."""
        return self.generator.eval()(z.to(self.vae.device))

    @torch.no_grad()
    def render(self, z: torch.Tensor) -> torch.Tensor:
        """G of codes of real images (mu(x), samples of q(z|x), the explorer's), model range: with the BatchNorm
        statistics gathered over codes of training images where the run has them (GANConfig.code_stats), else
        the same as :meth:`generate`."""
        g = self.generator if self.code_generator is None else self.code_generator
        return g.eval()(z.to(self.vae.device))


def rendering_key(cfg, weights: dict) -> str:
    """Which generator of a saved weights dict (a run's or a snapshot's) renders: its moving average where the run
    keeps one (GANConfig.ema), else the generator itself."""
    return "generator_ema" if getattr(cfg, "ema", 0) and "generator_ema" in weights else "generator"


@torch.no_grad()
def code_renderer(generator: Decoder, cfg: GANConfig, vae: VAERun, train_x: torch.Tensor, device) -> Decoder | None:
    """A copy of ``generator`` whose BatchNorm statistics are gathered afresh, as a plain average, over
    ``cfg.code_stats`` batches of 32 codes mu(x) of the training images ``train_x`` (uint8) drawn with the run's
    seed, of which a share ``1 - cfg.code_share`` are prior samples z ~ N(0, I) instead (drawn with the same
    generator, after the batch's codes): the generator that renders codes of real images (GANConfig.code_stats).
    The same draws for the same run, so a snapshot's is gathered as the finished run's was. None where the
    generator has no BatchNorm."""
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in generator.modules()):
        return None
    pick = torch.Generator().manual_seed(cfg.seed)
    n_codes = max(1, round(32 * cfg.code_share))

    def codes(_):
        idx = torch.randint(0, len(train_x), (n_codes,), generator=pick)
        mu = vae.encode(uint8_to_model(train_x[idx].to(device)))[0]
        if n_codes == 32:
            return mu
        return torch.cat([mu, torch.randn(32 - n_codes, mu.shape[1], generator=pick).to(device)])

    return standing_statistics(generator, cfg.code_stats, codes)


def _load(path, kind: str, nets, device) -> tuple:
    folder = RunDir(path)
    folder.require_finished()
    found, cfg = folder.read_config()
    if found != kind:
        raise LsrError(f"{folder.path}: a {found} run, not a{'n LSR-GAN' if kind == 'gan' else ' VAE'} run")
    w, sha = load_tensors(folder / "weights.pt", "weights file", with_hash=True)
    info = folder.run_info()
    if info.get("weights_sha256") not in (None, sha):
        raise LsrError(f"{folder / 'weights.pt'}: not the weights this run finished with (their SHA-256 differs from "
                       f"the one in run.json); the folder holds another run's weights and is refused")
    built = nets(cfg)
    names = ("encoder", "decoder") if kind == "vae" else ("generator", "discriminator")
    for name, net in zip(names, built):
        # a generator with a moving average of its weights renders with the average (GANConfig.ema)
        key = rendering_key(cfg, w) if name == "generator" else name
        load_state(net, w.get(key), folder / "weights.pt", key)
    if kind == "gan" and "generator_codes" in w:  # its BatchNorm statistics for codes of real images (code_stats)
        built = [*built, copy.deepcopy(built[0])]
        load_state(built[-1], w["generator_codes"], folder / "weights.pt", "generator_codes")
    # channels_last, as in training: a CPU's convolutions run about 1.5x faster on it (same values up to rounding)
    return folder, cfg, [net.to(device).to(memory_format=torch.channels_last).eval() for net in built], sha, info


def load_vae_run(path: str | Path, device=None, **external) -> VAERun:
    """A finished VAE run: the kit's own, or a VAE trained elsewhere that a run folder binds (``external``: what
    rebuilding it needs, see :func:`lsr_utils.models.external.load_external`)."""
    device = resolve_device(device)
    folder = RunDir(path)
    folder.require_finished()
    kind, cfg = folder.read_config()
    if kind == "vae" and cfg.source:
        from ..models.external import load_external

        return load_external(folder, cfg, device, **external)
    folder, cfg, (enc, dec), sha, _ = _load(path, "vae", build_vae, device)
    return VAERun(folder.path, cfg, enc, dec, history=folder.history(), weights_sha256=sha)


def load_gan_run(path: str | Path, device=None, vae: VAERun | None = None, *, generator=None,
                 discriminator=None, **external) -> GANRun:
    """A finished LSR-GAN run with its VAE (the run folder it lives in, unless ``vae`` is given). ``generator``,
    ``discriminator``: the networks of a run trained with networks given in Python (their architectures cannot be
    rebuilt from a folder)."""
    device = resolve_device(device)
    vae = vae or load_vae_run(Path(path).parent, device, **external)

    def nets(cfg):
        g, d = build_gan(cfg)
        if cfg.generator == "vae-decoder":
            if vae.decoder is None:
                raise LsrError(f"{path}: its generator is the VAE's own decoder, and that VAE has none")
            g = copy.deepcopy(vae.decoder).cpu()
        for name, given in (("generator", generator), ("discriminator", discriminator)):
            if getattr(cfg, name) == "custom" and given is None:
                raise LsrError(f"{path}: this run's {name} is a network given in Python, which the kit cannot "
                               f"rebuild from a folder; load it with load_gan_run(path, {name}=<that network>)")
        return (copy.deepcopy(generator) if cfg.generator == "custom" else g,
                copy.deepcopy(discriminator) if cfg.discriminator == "custom" else d)

    folder, cfg, (gen, disc, *codes), sha, info = _load(path, "gan", nets, device)
    if {**vae.config.to_dict(), "data_id": None} != {**cfg.vae.to_dict(), "data_id": None}:
        raise LsrError(f"{folder.path}: this LSR-GAN was trained on another VAE than {vae.path}; the runs folder is "
                       f"damaged or rearranged")
    if info.get("vae_weights_sha256") not in (None, vae.weights_sha256):
        raise LsrError(f"{folder.path}: this LSR-GAN was trained on a VAE with other weights than those in "
                       f"{vae.path / 'weights.pt'}; refusing to pair them")
    return GANRun(folder.path, cfg, vae, gen, disc, history=folder.history(), weights_sha256=sha,
                  code_generator=codes[0] if codes else None)


def load_run(path: str | Path, device=None, **external) -> VAERun | GANRun:
    """Load a finished VAE or LSR-GAN run from its folder (any folder a kit wrote, old ones included).
    ``external``: what a VAE trained elsewhere needs to be rebuilt (``trust_pickles``, or its ``encoder``)."""
    path = Path(path).resolve()
    RunDir(path).require_finished()
    kind, _ = RunDir(path).read_config()
    if kind == "classifier":
        raise LsrError(f"{path}: a classifier run, not a VAE or LSR-GAN run")
    return load_vae_run(path, device, **external) if kind == "vae" else load_gan_run(path, device, **external)
