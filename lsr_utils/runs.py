"""Run folders: one per configuration, locked while trained, written atomically, reused when finished;
and the finished runs they hold (:class:`VAERun`, :class:`GANRun`, :func:`load_run`).

Layout (``out`` defaults to ``runs/``)::

    runs/<dataset>/vae-b<beta>-e<epochs>-<hash>/          a VAE run
        config.json      kind, package version, the VAEConfig (its data_id included)
        run.json         status (running / finished / failed), device, times, versions
        history.json     per-epoch and per-log-step losses
        checkpoint.pt    resumable state while running (removed when finished)
        weights.pt       final weights (encoder, decoder)
        .lock            held (flock) by the process training it
        gan-l<lam>-e<epochs>-<hash>/                     an LSR-GAN on that VAE
            ...          the same files; weights.pt holds generator, discriminator
    runs/<dataset>/classifier-w<width>-e<epochs>-<hash>/ the classifier of the metrics

The hash is of the whole configuration, so a run trained on other data,
another beta, another seed ... lives in another folder. A GAN run lives
inside its VAE's folder, so a lambda sweep shares one VAE.

**The checkpoint format** (``checkpoint.pt``, read and written by
:mod:`lsr_utils.loop`): a dict of tensors and plain values, loaded with
``weights_only=True``::

    {"lsr_version": str, "kind": "vae" | "gan" | "classifier" | "<kind>-sweep",
     "epoch": int, "pos": int,                 # next epoch, next batch within it
     "models": {name: state_dict}, "optims": {name: optimiser state_dict},
     "history": dict,                          # lists of floats (see loop.py)
     "shuffle_state": ByteTensor,              # CPU generator at the start of the epoch
     "noise_state": ByteTensor, "torch_rng": ByteTensor}

Every file here is untrusted input when it comes from elsewhere: weights and
checkpoints load as tensors only (:func:`lsr_utils.files.load_tensors`), and
a JSON file of the wrong shape is reported as a damaged run folder, naming
the file.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import __version__
from .config import ClassifierConfig, GANConfig, VAEConfig, config_diff
from .errors import LsrError
from .files import atomic_torch_save, atomic_write_json, io_problem, load_tensors, make_dir, read_json
from .nn import Decoder, Discriminator, Encoder, build_gan, build_vae
from .runtime import resolve_device

CONFIG_CLASSES = {"vae": VAEConfig, "gan": GANConfig, "classifier": ClassifierConfig}
CHECKPOINT_KEYS = ("kind", "epoch", "pos", "models", "optims", "history", "shuffle_state", "noise_state",
                   "torch_rng")


def config_hash(d: dict) -> str:
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]


def _fmt(x: float) -> str:
    return f"{x:g}".replace("+", "")


def run_name(cfg) -> str:
    """The folder name of a configuration: kind, its swept value, its epochs and the hash of all of it."""
    h = config_hash(cfg.to_dict())
    if isinstance(cfg, VAEConfig):
        return f"vae-b{_fmt(cfg.beta)}-e{cfg.epochs}-{h}"
    if isinstance(cfg, GANConfig):
        return f"gan-l{_fmt(cfg.lam)}-e{cfg.epochs}-{h}"
    return f"classifier-w{cfg.width}-e{cfg.epochs}-{h}"


def run_dir(cfg, out: str | Path = "runs") -> Path:
    out = Path(out)
    if isinstance(cfg, GANConfig):
        return run_dir(cfg.vae, out) / run_name(cfg)
    return out / cfg.dataset / run_name(cfg)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def environment() -> dict:
    """Versions and hardware, recorded with every run and result."""
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"lsr_version": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cuda_device": dev, "cpu_threads": torch.get_num_threads()}


def load_state(module: torch.nn.Module, state, path: Path, name: str) -> None:
    """``module.load_state_dict`` with a message naming the file and the mismatch."""
    if not isinstance(state, dict):
        raise LsrError(f"{path}: has no {name} weights; the run folder is damaged")
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        detail = "; ".join(line.strip() for line in str(e).strip().splitlines()[:4])
        raise LsrError(f"{path}: the saved {name} does not fit this configuration ({detail[:400]})") from None


class RunDir:
    """One run folder: its status, configuration, lock, checkpoint, start and finish.

    ``status``: ``new`` (nothing saved), ``running`` (a checkpoint to resume),
    ``finished`` (weights to use), ``failed`` (stopped for a reason recorded
    in run.json; not reused) or ``damaged`` (run.json unreadable).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------ reading
    def run_info(self) -> dict:
        d = read_json(self / "run.json", "run.json")
        if not isinstance(d, dict) or not isinstance(d.get("status"), str):
            raise LsrError(f"{self / 'run.json'}: not a lsr-kit run record (no status); the run folder is damaged")
        return d

    @property
    def status(self) -> str:
        if (self / "run.json").is_file():
            try:
                info = self.run_info()
            except LsrError:
                return "damaged"
            if info["status"] == "failed":
                return "failed"
            if info["status"] == "finished" and (self / "weights.pt").is_file():
                return "finished"
        return "running" if (self / "checkpoint.pt").is_file() else "new"

    def read_config(self):
        """(kind, configuration) from config.json; a wrong shape is "run folder damaged", naming the file."""
        f = self / "config.json"
        if not f.is_file():
            raise LsrError(f"{self.path}: not a run folder (no config.json)")
        d = read_json(f, "config.json")
        if not isinstance(d, dict) or d.get("kind") not in CONFIG_CLASSES or not isinstance(d.get("config"), dict):
            raise LsrError(f"{f}: not a lsr-kit run configuration (needs 'kind' and 'config'); the run folder is "
                           f"damaged")
        try:
            return d["kind"], CONFIG_CLASSES[d["kind"]].from_dict(d["config"])
        except LsrError as e:
            raise LsrError(f"{f}: the saved configuration is invalid ({e}); the run folder is damaged") from None
        except (TypeError, ValueError) as e:
            raise LsrError(f"{f}: the saved configuration is invalid ({type(e).__name__}); the run folder is "
                           f"damaged") from None

    def check_config(self, cfg) -> None:
        """Refuse to continue a folder whose saved configuration differs from ``cfg``."""
        if not (self / "config.json").is_file():
            return
        _, saved = self.read_config()
        diff = config_diff(saved.to_dict(), cfg.to_dict())
        if diff:
            raise LsrError(f"{self.path} holds a run with a different configuration; refusing to continue it.\n"
                           "  differences (saved -> requested):\n    " + "\n    ".join(diff))

    def history(self) -> dict:
        f = self / "history.json"
        if not f.is_file():
            return {}
        h = read_json(f, "history.json")
        if not isinstance(h, dict):
            raise LsrError(f"{f}: not a training history (expected a mapping); the run folder is damaged")
        return h

    def require_finished(self) -> None:
        if not self.path.is_dir():
            raise LsrError(f"{self.path}: no such run folder")
        if not (self / "config.json").is_file():
            raise LsrError(f"{self.path}: not a run folder (no config.json)")
        status = self.status
        if status == "finished":
            self.read_config()
            return
        hint = {"running": "it has a checkpoint: rerun its training command to finish it",
                "failed": f"it failed: {self._reason()}",
                "damaged": f"{self / 'run.json'} is unreadable; the run folder is damaged",
                "new": "it has no weights.pt"}[status]
        raise LsrError(f"{self.path}: this run has not finished ({hint})")

    def _reason(self) -> str:
        try:
            return str(self.run_info().get("reason", "no reason recorded"))
        except LsrError as e:
            return str(e)

    def load_weights(self) -> dict:
        return load_tensors(self / "weights.pt", "weights file")

    def load_checkpoint(self, kind: str) -> dict | None:
        """The checkpoint's contents, checked for shape; None when there is none."""
        f = self / "checkpoint.pt"
        if not f.is_file():
            return None
        ck = load_tensors(f, "checkpoint")
        missing = [k for k in CHECKPOINT_KEYS if k not in ck]
        if missing:
            raise LsrError(f"{f}: lacks {', '.join(missing)}; the run folder is damaged (delete checkpoint.pt to "
                           f"start over, or pass --fresh)")
        if ck["kind"] != kind:
            raise LsrError(f"{f}: a {ck['kind']!r} checkpoint where a {kind!r} one was expected")
        if not isinstance(ck["models"], dict) or not isinstance(ck["optims"], dict) or \
                not isinstance(ck["history"], dict) or not all(isinstance(ck[k], int) for k in ("epoch", "pos")):
            raise LsrError(f"{f}: its entries have the wrong types; the run folder is damaged")
        return ck

    def save_checkpoint(self, state: dict) -> None:
        atomic_torch_save(self / "checkpoint.pt", {"lsr_version": __version__, **state})

    # ------------------------------------------------------------------ lock
    @contextlib.contextmanager
    def lock(self, wait: bool = False):
        """Hold the folder for this process (``flock`` on ``.lock``); a second process is told who holds it."""
        try:
            import fcntl
        except ImportError:  # no flock (Windows): no lock
            yield self
            return
        make_dir(self.path)
        try:
            f = open(self / ".lock", "a+")
        except OSError as e:
            raise io_problem(e, self / ".lock", "create") from None
        try:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise LsrError(f"{self.path} is being trained by {holder}; wait for it to finish (rerun then, "
                               f"or add --wait to wait here), or stop that process first") from None
            f.seek(0)
            f.truncate()
            f.write(f"process {os.getpid()} on {platform.node()} since {now()}")
            f.flush()
            yield self
        finally:
            f.close()  # closing releases the lock (also when the process dies)

    # ------------------------------------------------------------------ writing
    def start(self, cfg, kind: str, device: torch.device | str, fresh: bool = False) -> str:
        """Check the folder can take this run, then record it as running; returns when it first started.

        Nothing is rewritten before the checks: a damaged folder, a different
        configuration, a failed run (without ``fresh``) or an unreadable
        checkpoint are refused first.
        """
        status = self.status
        if status == "damaged":
            raise LsrError(f"{self / 'run.json'} is unreadable; the run folder is damaged (delete it to retrain)")
        self.check_config(cfg)
        if status == "failed" and not fresh:
            raise LsrError(f"{self.path}: this run stopped earlier ({self._reason()}). Start it over with --fresh "
                           f"(after changing what made it fail), or delete the folder")
        if fresh:
            (self / "checkpoint.pt").unlink(missing_ok=True)
        elif status == "running":
            self.load_checkpoint(kind)  # readable and of this kind, before anything is rewritten
        started = now()
        if status == "running":
            try:
                started = str(self.run_info().get("started", started))
            except LsrError:
                pass
        make_dir(self.path)
        atomic_write_json(self / "config.json", {"kind": kind, "lsr_version": __version__, "config": cfg.to_dict()})
        atomic_write_json(self / "run.json", {"status": "running", "started": started, "device": str(device),
                                              **environment()})
        return started

    def finish(self, weights: dict, history: dict, device, started: str, **extra) -> None:
        """Write the weights and history, then mark the run finished (the order makes a crash harmless)."""
        atomic_torch_save(self / "weights.pt", {"lsr_version": __version__, **weights})
        atomic_write_json(self / "history.json", history)
        atomic_write_json(self / "run.json", {"status": "finished", "started": started, "finished": now(),
                                              "train_seconds": history.get("seconds"), "device": str(device),
                                              **extra, **environment()})
        (self / "checkpoint.pt").unlink(missing_ok=True)

    def fail(self, reason: str, device, started: str) -> None:
        """Mark the run failed (never reused); its last checkpoint stays for inspection."""
        atomic_write_json(self / "run.json", {"status": "failed", "reason": reason, "started": started,
                                              "failed": now(), "device": str(device), **environment()})


def find_runs(out: str | Path = "runs", kind: str | None = None, finished_only: bool = True) -> list[Path]:
    """All run folders under ``out`` (of ``kind``), sorted by path; unreadable ones are left out."""
    found = []
    for cfg_file in sorted(Path(out).rglob("config.json")):
        try:
            d = read_json(cfg_file)
        except LsrError:
            continue
        if not isinstance(d, dict) or (kind and d.get("kind") != kind):
            continue
        if finished_only and RunDir(cfg_file.parent).status != "finished":
            continue
        found.append(cfg_file.parent)
    return found


# ----------------------------------------------------------------------------- finished runs
@dataclass
class VAERun:
    """A finished VAE: its folder, configuration, networks (eval mode) and history."""

    path: Path
    config: VAEConfig
    encoder: Encoder
    decoder: Decoder
    history: dict = field(default_factory=dict)
    reused: bool = True  # False when this call trained it

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
class GANRun:
    """A finished LSR-GAN with its VAE."""

    path: Path
    config: GANConfig
    vae: VAERun
    generator: Decoder
    discriminator: Discriminator
    history: dict = field(default_factory=dict)
    reused: bool = True  # False when this call trained it

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z), model range."""
        return self.generator.eval()(z.to(self.vae.device))


def require(folder: RunDir, what: str = "the run") -> Path:
    if folder.status != "finished":
        raise LsrError(f"{folder.path}: {what} has not finished (status: {folder.status})")
    return folder.path


def _load(path, kind: str, nets: dict, device) -> tuple:
    folder = RunDir(path)
    folder.require_finished()
    found, cfg = folder.read_config()
    if found != kind:
        raise LsrError(f"{folder.path}: a {found} run, not a{'n LSR-GAN' if kind == 'gan' else ' VAE'} run")
    w = folder.load_weights()
    built = nets(cfg)
    for name, net in zip(("encoder", "decoder") if kind == "vae" else ("generator", "discriminator"), built):
        load_state(net, w.get(name), folder / "weights.pt", name)
    # channels_last, as in training: a CPU's convolutions run about 1.5x faster on it (same values up to rounding)
    return folder, cfg, [net.to(device).to(memory_format=torch.channels_last).eval() for net in built]


def load_vae_run(path: str | Path, device=None) -> VAERun:
    device = resolve_device(device)
    folder, cfg, (enc, dec) = _load(path, "vae", build_vae, device)
    return VAERun(folder.path, cfg, enc, dec, folder.history())


def load_gan_run(path: str | Path, device=None, vae: VAERun | None = None) -> GANRun:
    """A finished LSR-GAN run with its VAE (the run folder it lives in, unless ``vae`` is given)."""
    device = resolve_device(device)
    folder, cfg, (gen, disc) = _load(path, "gan", build_gan, device)
    vae = vae or load_vae_run(folder.path.parent, device)
    if {**vae.config.to_dict(), "data_id": None} != {**cfg.vae.to_dict(), "data_id": None}:
        raise LsrError(f"{folder.path}: this LSR-GAN was trained on another VAE than {vae.path}; the runs folder is "
                       f"damaged or rearranged")
    return GANRun(folder.path, cfg, vae, gen, disc, folder.history())


def load_run(path: str | Path, device=None) -> VAERun | GANRun:
    """Load a finished VAE or LSR-GAN run from its folder (any folder a kit wrote, old ones included)."""
    path = Path(path).resolve()
    RunDir(path).require_finished()
    kind, _ = RunDir(path).read_config()
    if kind == "classifier":
        raise LsrError(f"{path}: a classifier run, not a VAE or LSR-GAN run")
    return load_vae_run(path, device) if kind == "vae" else load_gan_run(path, device)
