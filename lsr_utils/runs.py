"""Run folders: one per configuration, written atomically, reused when finished.

Layout (``out`` defaults to ``runs/``)::

    runs/<dataset>/vae-b<beta>-e<epochs>-<hash>/          a VAE run
        config.json      the VAEConfig, kind, package version
        run.json         status (running/finished), device, times, versions
        history.json     per-epoch (and per-log-step) losses
        checkpoint.pt    resumable state while running (removed when finished)
        weights.pt       final weights (encoder, decoder)
        gan-l<lam>-e<epochs>-<hash>/                     an LSR-GAN on that VAE
            ...          the same files; weights.pt holds generator, discriminator

A GAN run lives inside its VAE's folder, so a lambda sweep shares one VAE.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import pickle
import platform
from pathlib import Path

import torch

from . import __version__
from .config import GANConfig, VAEConfig, config_diff
from .errors import LsrError


def config_hash(d: dict) -> str:
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]


def _fmt(x: float) -> str:
    return f"{x:g}".replace("+", "")


def run_name(cfg: VAEConfig | GANConfig) -> str:
    if isinstance(cfg, VAEConfig):
        return f"vae-b{_fmt(cfg.beta)}-e{cfg.epochs}-{config_hash(cfg.to_dict())}"
    return f"gan-l{_fmt(cfg.lam)}-e{cfg.epochs}-{config_hash(cfg.to_dict())}"


def run_dir(cfg: VAEConfig | GANConfig, out: str | Path = "runs") -> Path:
    out = Path(out)
    if isinstance(cfg, VAEConfig):
        return out / cfg.dataset / run_name(cfg)
    return run_dir(cfg.vae, out) / run_name(cfg)


# --------------------------------------------------------------------------- atomic writes
def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_torch_save(path: Path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise LsrError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LsrError(f"{path}: not valid JSON ({e}); the run folder is damaged") from None


def torch_load(path: Path, what: str = "checkpoint") -> dict:
    """Load a kit file (weights, checkpoint) safely: tensors and plain values only, never code.

    Every file is read with ``torch.load(weights_only=True)``: a pickled object
    of any other type (which could run code when loaded) is refused with a
    message naming the file, as are missing, truncated and foreign files.
    """
    path = Path(path)
    if not path.is_file():
        raise LsrError(f"{path}: {what} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        found = next((ln.strip() for ln in text.splitlines() if "global" in ln.lower()), "")
        if "Weights only load failed" in text and found:
            raise LsrError(f"{path}: refused to load this {what}: it holds more than tensors and plain values"
                           f"{' (' + found[:160] + ')' if found else ''}, and loading it could run code. The kit "
                           f"never writes such files; do not use it (delete it, or retrain with --fresh).") from None
        raise LsrError(f"{path}: cannot read this {what} (it is not a valid file of tensors). It is corrupt or not a "
                       f"lsr-kit file; delete it or train with --fresh to start over.") from None
    except Exception as e:  # truncated zip, garbage, ...
        raise LsrError(f"{path}: cannot read this {what} ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}). "
                       f"It is corrupt or not a lsr-kit file; delete it or train with --fresh to start over.") from None
    if not isinstance(obj, dict) or "lsr_version" not in obj:
        raise LsrError(f"{path}: not a lsr-kit {what} (no 'lsr_version' entry)")
    return obj


def load_state(module: torch.nn.Module, state: dict, path: Path, name: str) -> None:
    """``module.load_state_dict`` with a message naming the file and the mismatch."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()
        detail = "; ".join(line.strip() for line in first[:4])
        raise LsrError(f"{path}: the saved {name} does not fit this configuration ({detail[:400]})") from None


# --------------------------------------------------------------------------- run records
def environment() -> dict:
    dev = "cpu"
    if torch.cuda.is_available():
        dev = torch.cuda.get_device_name(0)
    return {"lsr_version": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cuda_device": dev, "cpu_threads": torch.get_num_threads()}


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_config(path: Path, cfg: VAEConfig | GANConfig, kind: str) -> None:
    atomic_write_json(Path(path) / "config.json", {"kind": kind, "lsr_version": __version__,
                                                    "config": cfg.to_dict()})


def read_config(path: Path) -> tuple[str, VAEConfig | GANConfig]:
    d = read_json(Path(path) / "config.json")
    try:
        kind = d["kind"]
        cfg = VAEConfig.from_dict(d["config"]) if kind == "vae" else GANConfig.from_dict(d["config"])
    except (KeyError, TypeError) as e:
        raise LsrError(f"{path}/config.json: not a lsr-kit run configuration ({e})") from None
    return kind, cfg


def check_same_config(path: Path, cfg: VAEConfig | GANConfig) -> None:
    """Refuse to continue a run folder whose saved configuration differs from ``cfg``."""
    f = Path(path) / "config.json"
    if not f.exists():
        return
    saved = read_json(f).get("config", {})
    diff = config_diff(saved, cfg.to_dict())
    if diff:
        raise LsrError(f"{path} holds a run with a different configuration; refusing to resume it.\n"
                       "  differences (saved -> requested):\n    " + "\n    ".join(diff) +
                       "\n  Drop the differing options to resume that run, or leave out --resume to start "
                       "a separate run for the new configuration.")


def run_status(path: Path) -> str:
    """'finished', 'running' (has a checkpoint), 'new' (nothing saved) or 'damaged'."""
    path = Path(path)
    if (path / "weights.pt").is_file() and (path / "run.json").is_file():
        try:
            if read_json(path / "run.json").get("status") == "finished":
                return "finished"
        except LsrError:
            return "damaged"
    if (path / "checkpoint.pt").is_file():
        return "running"
    return "new"


def find_runs(out: str | Path = "runs", kind: str | None = None, finished_only: bool = True) -> list[Path]:
    """All run folders under ``out`` (VAE and GAN), sorted by path."""
    found = []
    for cfg_file in sorted(Path(out).rglob("config.json")):
        try:
            k = read_json(cfg_file).get("kind")
        except LsrError:
            continue
        if kind and k != kind:
            continue
        if finished_only and run_status(cfg_file.parent) != "finished":
            continue
        found.append(cfg_file.parent)
    return found
