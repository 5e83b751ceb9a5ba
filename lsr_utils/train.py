"""Two-stage training: ``train_vae`` (stage 1), then ``train_lsr_gan`` (stage 2).

Both share one loop (:func:`fit_loop`) that

* draws batches from the training set held on the device (:class:`DeviceBatches`);
* accumulates losses on the device and reads them back only every
  ``log_every`` steps and at the end of each epoch (no per-step host sync);
* writes a resumable checkpoint atomically at the end of every epoch, every
  ``checkpoint_every_s`` seconds and on Ctrl-C (finishing the current step
  first), holding models, optimisers, random-generator states, position and
  history, so a resumed run ends with the same weights as an uninterrupted one;
* shows a progress bar (a widget in notebooks);
* reuses a finished run with the same configuration instead of retraining.
"""
from __future__ import annotations

import contextlib
import copy
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import __version__
from .config import GANConfig, VAEConfig
from .data import DeviceBatches, ImageData, load_data
from .errors import LsrError
from .losses import discriminator_loss, generator_loss, vae_loss
from .models import Decoder, Discriminator, Encoder, fold_batchnorm, reparameterize
from .progress import progress_bar
from .runs import (atomic_torch_save, atomic_write_json, check_same_config, config_hash, environment,
                   load_state, now,
                   read_config, read_json, run_dir, run_status, torch_load, write_config)


# --------------------------------------------------------------------------- devices
def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """'auto'/None -> CUDA if available, else CPU. An explicit device that is absent is an error."""
    if spec is None or str(spec) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError):
        raise LsrError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise LsrError(f"--device {spec} was requested but no CUDA GPU is available to this torch "
                           f"({torch.__version__}); use --device cpu (or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise LsrError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise LsrError(f"--device {spec} was requested but MPS is not available; use --device cpu")
    elif dev.type != "cpu":
        raise LsrError(f"unsupported device {spec!r}; use auto, cpu, cuda or cuda:N")
    return dev


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _adam(params, lr, betas, device):
    params = [p for p in params if p.requires_grad]
    fused = device.type == "cuda"
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused)


# --------------------------------------------------------------------------- results
@dataclass
class VAERun:
    """A trained (or reused) VAE: its folder, configuration, networks (eval mode) and history."""

    path: Path
    config: VAEConfig
    encoder: Encoder
    decoder: Decoder
    history: dict = field(default_factory=dict)
    reused: bool = False

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    @torch.no_grad()
    def encode(self, x: torch.Tensor):
        """x in the model range (B, C, H, W) -> (mu, logvar)."""
        self.encoder.eval()
        return self.encoder(x.to(self.device))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self.decoder.eval()
        return self.decoder(z.to(self.device))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """D(mu(x)), model range."""
        return self.decode(self.encode(x)[0])


@dataclass
class GANRun:
    """A trained (or reused) LSR-GAN with its VAE."""

    path: Path
    config: GANConfig
    vae: VAERun
    generator: Decoder
    discriminator: Discriminator
    history: dict = field(default_factory=dict)
    reused: bool = False

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z), model range."""
        self.generator.eval()
        return self.generator(z.to(next(self.generator.parameters()).device))

    @torch.no_grad()
    def render(self, x: torch.Tensor) -> torch.Tensor:
        """G(mu(x)) for images x in the model range: the LSR-GAN's rendering of x's latent code."""
        return self.generate(self.vae.encode(x)[0])


# --------------------------------------------------------------------------- the shared loop
class _StopRequest:
    """Turns the first Ctrl-C into a request to stop after the current step (the second one kills)."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)

            def handler(signum, frame):
                self.requested = True
                signal.signal(signal.SIGINT, self._old)

            signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def fit_loop(*, path: Path, kind: str, cfg, models: dict, optims: dict, step: Callable, batches: DeviceBatches,
         names: tuple[str, ...], device: torch.device, noise: torch.Generator, progress: bool,
         checkpoint_every_s: float, checkpoint_every_steps: int | None, log_every: int,
         callbacks: list | None, extra_state: Callable[[], dict] | None = None,
         names_for_bar: int = 3) -> dict:
    shuffle = torch.Generator().manual_seed(cfg.seed)
    history = {"epoch": {n: [] for n in ("epoch", *names)}, "steps": {n: [] for n in ("step", *names)},
               "seconds": 0.0}
    epoch, pos, epoch_start_state = 0, 0, shuffle.get_state()
    ckpt_path = path / "checkpoint.pt"
    if ckpt_path.exists():
        ck = torch_load(ckpt_path)
        if ck.get("kind") != kind:
            raise LsrError(f"{ckpt_path}: a {ck.get('kind')!r} checkpoint where a {kind!r} one was expected")
        for name, m in models.items():
            load_state(m, ck["models"][name], ckpt_path, name)
        for name, o in optims.items():
            try:
                o.load_state_dict(ck["optims"][name])
            except (ValueError, KeyError) as e:
                raise LsrError(f"{ckpt_path}: the saved {name} optimiser state does not fit ({e})") from None
        epoch, pos, history = ck["epoch"], ck["pos"], ck["history"]
        epoch_start_state = ck["shuffle_state"]
        noise.set_state(ck["noise_state"])
        torch.set_rng_state(ck["torch_rng"])

    def save_checkpoint(ep, p, start_state):
        atomic_torch_save(ckpt_path, {
            "lsr_version": __version__, "kind": kind, "epoch": ep, "pos": p, "history": history,
            "models": {n: m.state_dict() for n, m in models.items()},
            "optims": {n: o.state_dict() for n, o in optims.items()},
            "shuffle_state": start_state, "noise_state": noise.get_state(), "torch_rng": torch.get_rng_state(),
            **(extra_state() if extra_state else {})})

    n_batches = len(batches)
    total = cfg.epochs * n_batches
    done = epoch * n_batches + pos
    k = len(names)
    window = torch.zeros(k, device=device, dtype=torch.float64)
    wcount = 0
    last_ckpt = time.monotonic()
    t0 = time.monotonic()
    seconds0 = history.get("seconds", 0.0)
    bar = progress_bar(total=total, initial=done, desc=f"{kind} {path.name}", disable=not progress, unit="step")
    try:
        with _StopRequest() as stop:
            while epoch < cfg.epochs:
                shuffle.set_state(epoch_start_state)
                perm = batches.permutation(shuffle)
                ep_sum = torch.zeros(k, device=device, dtype=torch.float64)
                ep_count = 0
                if pos and "epoch_partial" in history:  # sums of a partly done epoch, from the checkpoint
                    ep_sum += torch.tensor(history["epoch_partial"], device=device, dtype=torch.float64)
                    ep_count = pos
                for i in range(pos, n_batches):
                    for m in models.values():
                        m.train()
                    vals = step(batches.batch(perm, i), done).to(torch.float64)
                    window += vals
                    ep_sum += vals
                    wcount += 1
                    ep_count += 1
                    done += 1
                    bar.update(1)
                    if wcount >= log_every:
                        means = (window / wcount).tolist()
                        history["steps"]["step"].append(done)
                        for n, v in zip(names, means):
                            history["steps"][n].append(v)
                        bar.set_postfix({n: f"{v:.4g}" for n, v in zip(names[:names_for_bar], means)}, refresh=False)
                        window.zero_()
                        wcount = 0
                    if callbacks:
                        for cb in callbacks:
                            cb("step", {"step": done, "epoch": epoch, "pos": i + 1})
                    due = (checkpoint_every_steps and done % checkpoint_every_steps == 0) or \
                          (time.monotonic() - last_ckpt > checkpoint_every_s)
                    if (due or stop.requested) and i + 1 < n_batches:
                        history["epoch_partial"] = ep_sum.tolist()
                        history["seconds"] = seconds0 + time.monotonic() - t0
                        save_checkpoint(epoch, i + 1, epoch_start_state)
                        last_ckpt = time.monotonic()
                    if stop.requested:
                        raise KeyboardInterrupt
                means = (ep_sum / max(ep_count, 1)).tolist()
                history["epoch"]["epoch"].append(epoch + 1)
                for n, v in zip(names, means):
                    history["epoch"][n].append(v)
                history.pop("epoch_partial", None)
                epoch, pos = epoch + 1, 0
                epoch_start_state = shuffle.get_state()
                history["seconds"] = seconds0 + time.monotonic() - t0
                save_checkpoint(epoch, 0, epoch_start_state)
                last_ckpt = time.monotonic()
                if callbacks:
                    for cb in callbacks:
                        cb("epoch", {"epoch": epoch, "means": dict(zip(names, means))})
                if stop.requested:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        raise LsrError(f"interrupted; progress is saved in {ckpt_path}. Run the same command again to resume.") \
            from None
    bar.close()
    return history


def _finish(path: Path, weights: dict, history: dict, device: torch.device, started: str) -> None:
    atomic_torch_save(path / "weights.pt", {"lsr_version": __version__, **weights})
    atomic_write_json(path / "history.json", history)
    atomic_write_json(path / "run.json", {"status": "finished", "started": started, "finished": now(),
                                          "train_seconds": history.get("seconds"), "device": str(device),
                                          **environment()})
    (path / "checkpoint.pt").unlink(missing_ok=True)


def _start(path: Path, cfg, kind: str, device: torch.device, fresh: bool) -> str:
    status = run_status(path)
    if status == "damaged":
        raise LsrError(f"{path}: run.json is unreadable; delete the folder to retrain")
    check_same_config(path, cfg)
    if fresh and status == "running":
        (path / "checkpoint.pt").unlink()
    elif status == "running":  # check the checkpoint before anything in the folder is rewritten
        torch_load(path / "checkpoint.pt")
    path.mkdir(parents=True, exist_ok=True)
    write_config(path, cfg, kind)
    started = now()
    if (path / "run.json").exists():
        try:
            started = read_json(path / "run.json").get("started", started)
        except LsrError:
            pass
    atomic_write_json(path / "run.json", {"status": "running", "started": started, "device": str(device),
                                          **environment()})
    return started


def _check_data(data: ImageData, image_size: int, channels: int, what: str) -> None:
    if data.image_size != image_size or data.channels != channels:
        raise LsrError(f"{what}: the data are {data.channels}x{data.image_size}x{data.image_size} images but the "
                       f"configuration expects {channels}x{image_size}x{image_size}")


def _get_data(cfg: VAEConfig, data: ImageData | None, data_root) -> ImageData:
    if data is None:
        data = load_data(cfg.dataset, root=data_root, n_train=cfg.n_train, seed=cfg.data_seed)
    elif cfg.n_train is not None and len(data.train_x) > cfg.n_train:
        data = ImageData(data.name, data.train_x[:cfg.n_train], data.train_y[:cfg.n_train], data.test_x,
                         data.test_y, data.classes, data.source, data.factors)
    _check_data(data, cfg.image_size, cfg.channels, cfg.dataset)
    return data


# --------------------------------------------------------------------------- the training steps
def check_compile(device: torch.device) -> None:
    """Refuse ``--compile`` where it cannot work, before anything is trained."""
    import shutil

    if not hasattr(torch, "compile"):
        raise LsrError(f"--compile needs torch.compile, which torch {torch.__version__} lacks; drop --compile")
    if device.type == "cpu" and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise LsrError("--compile on the CPU needs a C++ compiler (g++ or clang++) on PATH; install one or "
                       "drop --compile")
    if device.type == "mps":
        raise LsrError("--compile is not supported on MPS by the kit; drop --compile")


def _maybe_compile(module: torch.nn.Module, on: bool, device: torch.device) -> torch.nn.Module:
    """``torch.compile`` a network (forward and backward); the optimiser stays eager (fused on CUDA)."""
    if not on:
        return module
    check_compile(device)
    return torch.compile(module, dynamic=False)


def _full(t: torch.Tensor) -> torch.Tensor:
    """Losses in full precision: bf16/fp16 outputs of autocast go to fp32; fp32 and fp64 stay as they are."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


class VAEStep:
    """One optimisation step of stage 1: the loss of Appendix A (log-MSE or SSE) plus beta * KL (eq. 5).

    ``step(x, global_step)`` takes a batch in the model range and returns, on
    the device and without a host sync, ``(loss, recon, kl_per_image,
    mse_per_pixel)``. Public so that the equivalence test and the benchmark
    drive the very step that ``train_vae`` runs.
    """

    names = ("loss", "recon", "kl_per_image", "mse_per_pixel")

    def __init__(self, cfg: VAEConfig, encoder: Encoder, decoder: Decoder, optimizer: torch.optim.Optimizer,
                 noise: torch.Generator, device: torch.device, compile: bool = False):
        self.cfg, self.opt, self.noise, self.device = cfg, optimizer, noise, device
        self.encoder = _maybe_compile(encoder, compile, device)
        self.decoder = _maybe_compile(decoder, compile, device)

    def __call__(self, x: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        cfg = self.cfg
        with _autocast(self.device, cfg.precision):
            mu, logvar = self.encoder(x)
            x_hat = self.decoder(reparameterize(mu, logvar, self.noise))
        parts = vae_loss(_full(x_hat), x, _full(mu), _full(logvar), beta=cfg.beta, recon_loss=cfg.recon_loss)
        self.opt.zero_grad(set_to_none=True)
        parts.total.backward()
        self.opt.step()
        sse = (_full(x_hat.detach()) - x).pow(2).sum()
        return torch.stack([parts.total.detach(), parts.recon.detach(), parts.kl.detach() / x.shape[0],
                            sse / x.numel() / 4.0])  # per-pixel MSE on [0, 1]: the [-1, 1] error / 4


class GANStep:
    """One optimisation step of stage 2: D by eq. 3, then G by eq. 4 (adversarial + lambda * LSR, eq. 1).

    The encoder is frozen (eval mode, no gradients to its weights); the step
    runs it with its BatchNorms folded into the preceding layers
    (:func:`lsr_utils.models.fold_batchnorm`), which is the same function. Returns
    ``(g_loss, d_loss, g_adversarial, lsr, d_real, d_fake)`` on the device.
    """

    names = ("g_loss", "d_loss", "g_adversarial", "lsr", "d_real", "d_fake")

    def __init__(self, cfg: GANConfig, encoder: Encoder, generator: Decoder, discriminator: Discriminator,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, noise: torch.Generator,
                 device: torch.device, compile: bool = False):
        self.cfg, self.opt_g, self.opt_d, self.noise, self.device = cfg, opt_g, opt_d, noise, device
        self.disc_params = list(discriminator.parameters())
        # the frozen encoder in eval mode, its BatchNorms folded into the convs (same function, fewer passes)
        self.encoder = _maybe_compile(fold_batchnorm(encoder), compile, device)
        self.generator = _maybe_compile(generator, compile, device)
        self.discriminator = _maybe_compile(discriminator, compile, device)

    def __call__(self, x_real: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        cfg, v = self.cfg, self.cfg.vae
        gen, enc, disc = self.generator, self.encoder, self.discriminator
        z = torch.randn(x_real.shape[0], v.latent_dim, device=self.device, dtype=x_real.dtype, generator=self.noise)
        with _autocast(self.device, cfg.precision):
            x_fake = gen(z)
            mu, logvar = enc(x_fake)  # frozen encoder in eval mode; gradients flow to x_fake only
            # (1) update D (eq. 3); fake first, then real, as in the reference
            fake_logits = disc(x_fake.detach())
            real_logits = disc(x_real)
        d = discriminator_loss(_full(real_logits), _full(fake_logits))
        self.opt_d.zero_grad(set_to_none=True)
        d.total.backward()
        self.opt_d.step()
        # (2) update G (eq. 4): fool D and keep E(G(z)) near z; D's weights get no gradient here
        for p in self.disc_params:
            p.requires_grad_(False)
        with _autocast(self.device, cfg.precision):
            logits = disc(x_fake)
        g = generator_loss(_full(logits), z, _full(mu), _full(logvar), lam=cfg.lam, reduction=cfg.lsr_reduction)
        self.opt_g.zero_grad(set_to_none=True)
        g.total.backward()
        self.opt_g.step()
        for p in self.disc_params:
            p.requires_grad_(True)
        with torch.no_grad():
            d_real = torch.sigmoid(_full(real_logits)).mean()
            d_fake = torch.sigmoid(_full(fake_logits)).mean()
        return torch.stack([g.total.detach(), d.total.detach(), g.adversarial.detach(), g.lsr.detach(),
                            d_real, d_fake])


# --------------------------------------------------------------------------- stage 1
def train_vae(cfg: VAEConfig, data: ImageData | None = None, *, out: str | Path = "runs", device=None,
              data_root=None, progress: bool = True, fresh: bool = False, checkpoint_every_s: float = 60.0,
              checkpoint_every_steps: int | None = None, log_every: int = 50, callbacks: list | None = None,
              channels_last: bool | None = None, compile: bool = False) -> VAERun:
    """Train the (beta-)VAE of section 2.1/2.3 with the loss of Appendix A, or reuse a finished run.

    Returns a :class:`VAERun` whose networks are in eval mode on ``device``.
    """
    device = resolve_device(device)
    path = run_dir(cfg, out)
    if run_status(path) == "finished" and not fresh:
        check_same_config(path, cfg)
        return load_vae_run(path, device)
    data = _get_data(cfg, data, data_root)
    started = _start(path, cfg, "vae", device, fresh)
    set_seed(cfg.seed)
    enc = Encoder(image_size=cfg.image_size, channels=cfg.channels, latent_dim=cfg.latent_dim).to(device)
    dec = Decoder(image_size=cfg.image_size, channels=cfg.channels, latent_dim=cfg.latent_dim).to(device)
    cl = True if channels_last is None else channels_last
    if cl:
        enc, dec = enc.to(memory_format=torch.channels_last), dec.to(memory_format=torch.channels_last)
    opt = _adam(list(enc.parameters()) + list(dec.parameters()), cfg.lr, cfg.adam_betas, device)
    batches = DeviceBatches(data.train_x, cfg.batch_size, device, channels_last=cl)
    noise = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    step = VAEStep(cfg, enc, dec, opt, noise, device, compile=compile)

    history = fit_loop(path=path, kind="vae", cfg=cfg, models={"encoder": enc, "decoder": dec}, optims={"vae": opt},
                   step=step, batches=batches, names=VAEStep.names,
                   device=device, noise=noise, progress=progress, checkpoint_every_s=checkpoint_every_s,
                   checkpoint_every_steps=checkpoint_every_steps, log_every=log_every, callbacks=callbacks)
    enc, dec = enc.to(memory_format=torch.contiguous_format), dec.to(memory_format=torch.contiguous_format)
    _finish(path, {"encoder": enc.state_dict(), "decoder": dec.state_dict()}, history, device, started)
    enc.eval(), dec.eval()
    return VAERun(path, cfg, enc, dec, history, reused=False)


# --------------------------------------------------------------------------- stage 2
def train_lsr_gan(cfg: GANConfig, data: ImageData | None = None, *, vae: VAERun | None = None,
                  out: str | Path = "runs", device=None, data_root=None, progress: bool = True, fresh: bool = False,
                  checkpoint_every_s: float = 60.0, checkpoint_every_steps: int | None = None, log_every: int = 50,
                  callbacks: list | None = None, channels_last: bool | None = None, compile: bool = False) -> GANRun:
    """Train the LSR-GAN of section 2.2 (eq. 3 for D, eq. 4 for G) on a frozen VAE encoder.

    The VAE (``cfg.vae``) is trained first if no finished run exists (or taken
    from ``vae``). The encoder gets no gradients and stays in eval mode; the
    generator starts from the VAE decoder's weights unless ``cfg.init ==
    "scratch"``.
    """
    device = resolve_device(device)
    path = run_dir(cfg, out)
    if run_status(path) == "finished" and not fresh:
        check_same_config(path, cfg)
        return load_gan_run(path, device)
    data = _get_data(cfg.vae, data, data_root)
    if vae is None:
        vae = train_vae(cfg.vae, data, out=out, device=device, progress=progress, log_every=log_every,
                        checkpoint_every_s=checkpoint_every_s, channels_last=channels_last, compile=compile)
    elif vae.config != cfg.vae:
        raise LsrError("train_lsr_gan: the VAE run given does not match cfg.vae")
    started = _start(path, cfg, "gan", device, fresh)
    set_seed(cfg.seed)
    v = cfg.vae
    enc = copy.deepcopy(vae.encoder).to(device).eval()
    enc.requires_grad_(False)  # frozen: no gradients reach the encoder's weights
    gen = Decoder(image_size=v.image_size, channels=v.channels, latent_dim=v.latent_dim).to(device)
    if cfg.init == "vae":
        gen.load_state_dict(vae.decoder.state_dict())
    disc = Discriminator(image_size=v.image_size, channels=v.channels).to(device)
    cl = True if channels_last is None else channels_last
    if cl:
        enc, gen, disc = (m.to(memory_format=torch.channels_last) for m in (enc, gen, disc))
    opt_d = _adam(disc.parameters(), cfg.lr, cfg.adam_betas, device)
    opt_g = _adam(gen.parameters(), cfg.lr, cfg.adam_betas, device)
    batches = DeviceBatches(data.train_x, cfg.batch_size, device, channels_last=cl)
    noise = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    step = GANStep(cfg, enc, gen, disc, opt_g, opt_d, noise, device, compile=compile)

    history = fit_loop(path=path, kind="gan", cfg=cfg, models={"generator": gen, "discriminator": disc},
                   optims={"generator": opt_g, "discriminator": opt_d}, step=step, batches=batches,
                   names=GANStep.names, device=device,
                   noise=noise, progress=progress, checkpoint_every_s=checkpoint_every_s,
                   checkpoint_every_steps=checkpoint_every_steps, log_every=log_every, callbacks=callbacks)
    gen, disc = (m.to(memory_format=torch.contiguous_format) for m in (gen, disc))
    _finish(path, {"generator": gen.state_dict(), "discriminator": disc.state_dict()}, history, device, started)
    gen.eval(), disc.eval()
    return GANRun(path, cfg, vae, gen, disc, history, reused=False)


# --------------------------------------------------------------------------- sweep batching
class StackedVAEStep:
    """:class:`VAEStep` for M VAEs that differ only in beta, stacked side by side (:mod:`lsr_utils.stacked`).

    Returns the M members' ``VAEStep.names`` values one after another (M * 4 values).
    """

    def __init__(self, cfgs: list[VAEConfig], encoder: torch.nn.Module, decoder: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, noise: torch.Generator, device: torch.device):
        self.cfgs, self.m, self.opt, self.noise, self.device = cfgs, len(cfgs), optimizer, noise, device
        self.encoder, self.decoder = encoder, decoder
        self.names = tuple(f"{n}/{i}" for i in range(self.m) for n in VAEStep.names)

    def __call__(self, x: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        from .stacked import members_of

        m = self.m
        with _autocast(self.device, self.cfgs[0].precision):
            mu, logvar = self.encoder(x.repeat(1, m, 1, 1))
            x_hat = self.decoder(reparameterize(mu, logvar, self.noise, members=m))
        mus, lvs, xhs = members_of(mu, m), members_of(logvar, m), members_of(x_hat, m)
        total, stats = 0.0, []
        for i, c in enumerate(self.cfgs):
            parts = vae_loss(_full(xhs[i]), x, _full(mus[i]), _full(lvs[i]), beta=c.beta, recon_loss=c.recon_loss)
            total = total + parts.total
            sse = (_full(xhs[i].detach()) - x).pow(2).sum()
            stats += [parts.total.detach(), parts.recon.detach(), parts.kl.detach() / x.shape[0],
                      sse / x.numel() / 4.0]
        self.opt.zero_grad(set_to_none=True)
        total.backward()  # members share no parameter: each gets exactly its own gradient
        self.opt.step()
        return torch.stack(stats)


class StackedGANStep:
    """:class:`GANStep` for M LSR-GANs over one VAE that differ only in lambda, stacked side by side.

    The frozen encoder is shared: it sees the M members' fakes as one batch of
    M * B images (eval mode, so each image is encoded on its own). Returns the
    M members' ``GANStep.names`` values one after another (M * 6 values).
    """

    def __init__(self, cfgs: list[GANConfig], encoder: Encoder, generator: torch.nn.Module,
                 discriminator: torch.nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                 noise: torch.Generator, device: torch.device):
        self.cfgs, self.m, self.noise, self.device = cfgs, len(cfgs), noise, device
        self.opt_g, self.opt_d = opt_g, opt_d
        self.encoder, self.generator, self.discriminator = fold_batchnorm(encoder), generator, discriminator
        self.disc_params = list(discriminator.parameters())
        self.names = tuple(f"{n}/{i}" for i in range(self.m) for n in GANStep.names)

    def __call__(self, x_real: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        from .stacked import members_of

        m, cfg = self.m, self.cfgs[0]
        b, latent = x_real.shape[0], cfg.vae.latent_dim
        z = torch.randn(b, latent, device=self.device, dtype=x_real.dtype, generator=self.noise)
        with _autocast(self.device, cfg.precision):
            x_fake = self.generator(z.repeat(1, m))                      # (B, M*C, H, W)
            fakes = members_of(x_fake, m).reshape(m * b, *x_real.shape[1:])
            mu, logvar = self.encoder(fakes)                             # (M*B, latent)
            fake_logits = self.discriminator(x_fake.detach())
            real_logits = self.discriminator(x_real.repeat(1, m, 1, 1))
        fl, rl = members_of(fake_logits, m), members_of(real_logits, m)
        ds = [discriminator_loss(_full(rl[i]), _full(fl[i])) for i in range(m)]
        self.opt_d.zero_grad(set_to_none=True)
        sum(d.total for d in ds).backward()
        self.opt_d.step()
        for p in self.disc_params:
            p.requires_grad_(False)
        with _autocast(self.device, cfg.precision):
            gl = members_of(self.discriminator(x_fake), m)
        mus, lvs = mu.view(m, b, latent), logvar.view(m, b, latent)
        gs = [generator_loss(_full(gl[i]), z, _full(mus[i]), _full(lvs[i]), lam=c.lam, reduction=c.lsr_reduction)
              for i, c in enumerate(self.cfgs)]
        self.opt_g.zero_grad(set_to_none=True)
        sum(g.total for g in gs).backward()
        self.opt_g.step()
        for p in self.disc_params:
            p.requires_grad_(True)
        stats = []
        with torch.no_grad():
            for i, (g, d) in enumerate(zip(gs, ds)):
                stats += [g.total.detach(), d.total.detach(), g.adversarial.detach(), g.lsr.detach(),
                          torch.sigmoid(_full(rl[i])).mean(), torch.sigmoid(_full(fl[i])).mean()]
        return torch.stack(stats)


def _member_history(history: dict, names: tuple[str, ...], i: int, sweep: dict) -> dict:
    out = {"epoch": {"epoch": history["epoch"]["epoch"]}, "steps": {"step": history["steps"]["step"]},
           "seconds": history.get("seconds"), "sweep": sweep}
    for part in ("epoch", "steps"):
        for n in names:
            out[part][n] = history[part][f"{n}/{i}"]
    return out


def _sweep_plan(cfgs: list, field_name: str, device, out) -> tuple[torch.device, list[Path], list[int]]:
    """Check a sweep's members; return the device, each member's run folder and the unfinished members."""
    _check_sweep(cfgs, field_name)
    paths = [run_dir(c, out) for c in cfgs]
    for p, c in zip(paths, cfgs):
        check_same_config(p, c)
    return resolve_device(device), paths, [i for i, p in enumerate(paths) if run_status(p) != "finished"]


def _check_sweep(cfgs: list, field_name: str) -> None:
    if not cfgs:
        raise LsrError("a sweep needs at least one member")
    ref = {**cfgs[0].to_dict(), field_name: None}
    for c in cfgs[1:]:
        if {**c.to_dict(), field_name: None} != ref:
            raise LsrError(f"a batched sweep's members may differ only in {field_name}; these differ elsewhere too")
    values = [getattr(c, field_name) for c in cfgs]
    if len(set(values)) != len(values):
        raise LsrError(f"a batched sweep's {field_name} values must be distinct, got {values}")


def _train_stacked(kind: str, cfgs: list, todo: list[int], paths: list[Path], sweep_path: Path, models: dict,
                   narrow: dict, optims: dict, step, batches: DeviceBatches, noise: torch.Generator,
                   device: torch.device, progress: bool, checkpoint_every_s: float, log_every: int,
                   callbacks: list | None, names: tuple[str, ...], sweep_field: str) -> None:
    """Train the wide networks with the shared loop, then write each member's run folder."""
    from .stacked import unstack_member

    sweep_path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(sweep_path / "sweep.json", {"kind": f"{kind}-sweep", "members": [cfgs[i].to_dict() for i in todo],
                                     "started": now(), **environment()})
    history = fit_loop(path=sweep_path, kind=f"{kind}-sweep", cfg=cfgs[todo[0]], models=models, optims=optims,
                       step=step, batches=batches, names=step.names, device=device, noise=noise,
                       progress=progress, checkpoint_every_s=checkpoint_every_s, checkpoint_every_steps=None,
                       log_every=log_every, callbacks=callbacks)
    info = {"members": len(todo), sweep_field: [getattr(cfgs[i], sweep_field) for i in todo],
            "note": "trained side by side in one process (sweep batching); seconds are the whole sweep's"}
    for j, i in enumerate(todo):
        started = _start(paths[i], cfgs[i], kind, device, fresh=False)
        weights = {}
        for name, wide in models.items():
            narrow[name].load_state_dict(unstack_member(wide, narrow[name], j))
            weights[name] = narrow[name].state_dict()
        _finish(paths[i], weights, _member_history(history, names, j, info), device, started)
    (sweep_path / "checkpoint.pt").unlink(missing_ok=True)
    (sweep_path / "sweep.json").unlink(missing_ok=True)
    try:
        sweep_path.rmdir()
    except OSError:
        pass


def train_vae_sweep(cfgs: list[VAEConfig], data: ImageData | None = None, *, out: str | Path = "runs",
                    device=None, data_root=None, progress: bool = True, checkpoint_every_s: float = 60.0,
                    log_every: int = 50, callbacks: list | None = None) -> list[VAERun]:
    """Train VAEs that differ only in beta at once, as one wide network (sweep batching).

    Each member's run folder ends up as ``train_vae`` would write it (same
    name, same configuration, its own weights and history); finished members
    are reused, an interrupted sweep resumes from its checkpoint.
    """
    from .stacked import stack_members

    device, paths, todo = _sweep_plan(cfgs, "beta", device, out)
    if len(todo) >= 2:
        cfg = cfgs[todo[0]]
        data = _get_data(cfg, data, data_root)
        set_seed(cfg.seed)  # the same initial weights as each member's own run
        enc = Encoder(image_size=cfg.image_size, channels=cfg.channels, latent_dim=cfg.latent_dim)
        dec = Decoder(image_size=cfg.image_size, channels=cfg.channels, latent_dim=cfg.latent_dim)
        enc_w = stack_members([enc] * len(todo)).to(device).to(memory_format=torch.channels_last)
        dec_w = stack_members([dec] * len(todo)).to(device).to(memory_format=torch.channels_last)
        opt = _adam(list(enc_w.parameters()) + list(dec_w.parameters()), cfg.lr, cfg.adam_betas, device)
        batches = DeviceBatches(data.train_x, cfg.batch_size, device, channels_last=True)
        noise = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        step = StackedVAEStep([cfgs[i] for i in todo], enc_w, dec_w, opt, noise, device)
        sweep_path = Path(out) / cfg.dataset / f"sweep-vae-{config_hash([cfgs[i].to_dict() for i in todo])}"
        _train_stacked("vae", cfgs, todo, paths, sweep_path, {"encoder": enc_w, "decoder": dec_w},
                       {"encoder": enc, "decoder": dec}, {"vae": opt}, step, batches, noise, device, progress,
                       checkpoint_every_s, log_every, callbacks, VAEStep.names, "beta")
    return [train_vae(c, data, out=out, device=device, data_root=data_root, progress=progress) for c in cfgs]


def train_lsr_gan_sweep(cfgs: list[GANConfig], data: ImageData | None = None, *, vae: VAERun | None = None,
                        out: str | Path = "runs", device=None, data_root=None, progress: bool = True,
                        checkpoint_every_s: float = 60.0, log_every: int = 50,
                        callbacks: list | None = None) -> list[GANRun]:
    """Train LSR-GANs over one VAE that differ only in lambda at once, as one wide network (sweep batching).

    As :func:`train_vae_sweep`: every member's run folder is what
    ``train_lsr_gan`` would write; finished members are reused.
    """
    from .stacked import stack_members

    device, paths, todo = _sweep_plan(cfgs, "lam", device, out)
    if len(todo) >= 2:
        cfg, v = cfgs[todo[0]], cfgs[todo[0]].vae
        data = _get_data(v, data, data_root)
        if vae is None:
            vae = train_vae(v, data, out=out, device=device, progress=progress, log_every=log_every,
                            checkpoint_every_s=checkpoint_every_s)
        elif vae.config != v:
            raise LsrError("train_lsr_gan_sweep: the VAE run given does not match the members' VAE")
        set_seed(cfg.seed)  # the same initial weights as each member's own run, drawn in the same order
        enc = copy.deepcopy(vae.encoder).to(device).eval()
        enc.requires_grad_(False)
        gen = Decoder(image_size=v.image_size, channels=v.channels, latent_dim=v.latent_dim)
        if cfg.init == "vae":
            gen.load_state_dict(vae.decoder.state_dict())
        disc = Discriminator(image_size=v.image_size, channels=v.channels)
        m = len(todo)
        gen_w, disc_w = (stack_members([net] * m).to(device).to(memory_format=torch.channels_last)
                         for net in (gen, disc))
        enc = enc.to(memory_format=torch.channels_last)
        opt_d = _adam(disc_w.parameters(), cfg.lr, cfg.adam_betas, device)
        opt_g = _adam(gen_w.parameters(), cfg.lr, cfg.adam_betas, device)
        batches = DeviceBatches(data.train_x, cfg.batch_size, device, channels_last=True)
        noise = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        step = StackedGANStep([cfgs[i] for i in todo], enc, gen_w, disc_w, opt_g, opt_d, noise, device)
        sweep_path = run_dir(v, out) / f"sweep-gan-{config_hash([cfgs[i].to_dict() for i in todo])}"
        _train_stacked("gan", cfgs, todo, paths, sweep_path, {"generator": gen_w, "discriminator": disc_w},
                       {"generator": gen, "discriminator": disc}, {"generator": opt_g, "discriminator": opt_d},
                       step, batches, noise, device, progress, checkpoint_every_s, log_every, callbacks,
                       GANStep.names, "lam")
    return [train_lsr_gan(c, data, vae=vae, out=out, device=device, data_root=data_root, progress=progress)
            for c in cfgs]


# --------------------------------------------------------------------------- loading
def _require_finished(path: Path) -> None:
    path = Path(path)
    if not path.is_dir():
        raise LsrError(f"{path}: no such run folder")
    if not (path / "config.json").is_file():
        raise LsrError(f"{path}: not a run folder (no config.json)")
    status = run_status(path)
    if status != "finished":
        hint = "it has a checkpoint: rerun its training command to finish it" if status == "running" else \
            "it has no weights.pt"
        raise LsrError(f"{path}: this run has not finished ({hint})")


def load_vae_run(path: str | Path, device=None) -> VAERun:
    path = Path(path)
    _require_finished(path)
    kind, cfg = read_config(path)
    if kind != "vae":
        raise LsrError(f"{path}: a {kind} run, not a VAE run")
    device = resolve_device(device)
    w = torch_load(path / "weights.pt", "weights file")
    enc = Encoder(image_size=cfg.image_size, channels=cfg.channels, latent_dim=cfg.latent_dim)
    dec = Decoder(image_size=cfg.image_size, channels=cfg.channels, latent_dim=cfg.latent_dim)
    load_state(enc, w.get("encoder", {}), path / "weights.pt", "encoder")
    load_state(dec, w.get("decoder", {}), path / "weights.pt", "decoder")
    hist = read_json(path / "history.json") if (path / "history.json").exists() else {}
    return VAERun(path, cfg, enc.to(device).eval(), dec.to(device).eval(), hist, reused=True)


def load_gan_run(path: str | Path, device=None) -> GANRun:
    path = Path(path)
    _require_finished(path)
    kind, cfg = read_config(path)
    if kind != "gan":
        raise LsrError(f"{path}: a {kind} run, not an LSR-GAN run")
    device = resolve_device(device)
    vae = load_vae_run(path.parent, device)
    v = cfg.vae
    w = torch_load(path / "weights.pt", "weights file")
    gen = Decoder(image_size=v.image_size, channels=v.channels, latent_dim=v.latent_dim)
    disc = Discriminator(image_size=v.image_size, channels=v.channels)
    load_state(gen, w.get("generator", {}), path / "weights.pt", "generator")
    load_state(disc, w.get("discriminator", {}), path / "weights.pt", "discriminator")
    hist = read_json(path / "history.json") if (path / "history.json").exists() else {}
    return GANRun(path, cfg, vae, gen.to(device).eval(), disc.to(device).eval(), hist, reused=True)


def load_run(path: str | Path, device=None) -> VAERun | GANRun:
    """Load a finished VAE or LSR-GAN run from its folder."""
    path = Path(path)
    _require_finished(path)
    kind, _ = read_config(path)
    return load_vae_run(path, device) if kind == "vae" else load_gan_run(path, device)
