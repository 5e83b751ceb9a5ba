"""Typed configurations of the two training stages, and the profiles.

A run's folder name and identity come from its configuration (see
:mod:`lsr_utils.runs`); every field here changes what is trained, so every
field is part of that identity. Where the run happens (device, progress bars,
checkpoint interval) is not.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields, replace

from .errors import LsrError

PROFILES = ("smoke", "quick", "paper")

# Per-profile sizes. ``n_train``/``n_test`` = None means the whole split.
PROFILE_SETTINGS = {
    # seconds: for CI and nbval; proves the plumbing, not the science
    "smoke": dict(n_train=512, n_test=256, vae_epochs=1, gan_epochs=1),
    # minutes on a 2-core laptop CPU; on `shapes` it shows the paper's effect
    "quick": dict(n_train=10000, n_test=1000, vae_epochs=4, gan_epochs=2),
    # the paper's schedule (Appendix D and the reference): for a GPU
    "paper": dict(n_train=None, n_test=None, vae_epochs=100, gan_epochs=500),
}


def default_profile() -> str:
    """``$LSR_PROFILE`` if set, else ``smoke`` under CI (``$CI`` set), else ``quick``."""
    env = os.environ.get("LSR_PROFILE")
    if env:
        return check_profile(env)
    return "smoke" if os.environ.get("CI", "").lower() not in ("", "0", "false") else "quick"


def check_profile(name: str) -> str:
    if name not in PROFILES:
        raise LsrError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return name


def _check_positive_int(name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise LsrError(f"{name} must be a positive integer, got {v!r}")


def _check_nonneg_float(name: str, v) -> float:
    if isinstance(v, bool):
        raise LsrError(f"{name} must be a number, got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise LsrError(f"{name} must be a number, got {v!r}") from None
    if not math.isfinite(f) or f < 0:
        raise LsrError(f"{name} must be a finite number >= 0, got {v!r}")
    return f


@dataclass(frozen=True)
class VAEConfig:
    """Stage 1: the (beta-)VAE (sections 2.1, 2.3; Appendix A, D)."""

    dataset: str = "shapes"
    n_train: int | None = None      # first n training images (None: all)
    data_seed: int = 0              # generation seed of `shapes` (ignored by real datasets)
    image_size: int = 32
    channels: int = 3
    latent_dim: int = 128
    beta: float = 1.0               # eq. 5
    recon_loss: str = "log_mse"     # Appendix A: "log_mse" (default) or "sse"
    epochs: int = 100
    batch_size: int = 32
    lr: float = 2e-4
    adam_betas: tuple[float, float] = (0.5, 0.999)
    seed: int = 13                  # the reference's torch seed
    precision: str = "fp32"         # "fp32" or "bf16" (autocast)

    def __post_init__(self):
        from .data import check_dataset_name
        from .losses import RECON_LOSSES

        check_dataset_name(self.dataset)
        object.__setattr__(self, "beta", _check_nonneg_float("beta", self.beta))
        object.__setattr__(self, "lr", _check_nonneg_float("lr", self.lr))
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        for name in ("epochs", "batch_size", "latent_dim"):
            _check_positive_int(name, getattr(self, name))
        if self.batch_size < 2:
            raise LsrError(f"batch_size must be at least 2 (BatchNorm), got {self.batch_size}")
        if self.n_train is not None:
            _check_positive_int("n_train", self.n_train)
        if self.recon_loss not in RECON_LOSSES:
            raise LsrError(f"recon_loss must be one of {RECON_LOSSES}, got {self.recon_loss!r}")
        if self.precision not in ("fp32", "bf16"):
            raise LsrError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "VAEConfig":
        return cls(**_known(cls, d))

    def replace(self, **kw) -> "VAEConfig":
        return replace(self, **kw)


@dataclass(frozen=True)
class GANConfig:
    """Stage 2: the LSR-GAN, on top of a frozen VAE (section 2.2; eq. 1, 3, 4)."""

    vae: VAEConfig = field(default_factory=VAEConfig)
    lam: float = 1.0                 # lambda of eq. 1 / eq. 4
    lsr_reduction: str = "mean"      # "mean" (reference) or "sum" (literal -log q per sample)
    init: str = "vae"                # generator starts from the VAE decoder ("vae") or at random ("scratch")
    epochs: int = 500
    batch_size: int = 32
    lr: float = 2e-4
    adam_betas: tuple[float, float] = (0.5, 0.999)
    seed: int = 13
    precision: str = "fp32"

    def __post_init__(self):
        from .losses import LSR_REDUCTIONS

        if not isinstance(self.vae, VAEConfig):
            raise LsrError("GANConfig.vae must be a VAEConfig")
        object.__setattr__(self, "lam", _check_nonneg_float("lambda", self.lam))
        object.__setattr__(self, "lr", _check_nonneg_float("lr", self.lr))
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        for name in ("epochs", "batch_size"):
            _check_positive_int(name, getattr(self, name))
        if self.batch_size < 2:
            raise LsrError(f"batch_size must be at least 2 (BatchNorm), got {self.batch_size}")
        if self.lsr_reduction not in LSR_REDUCTIONS:
            raise LsrError(f"lsr_reduction must be one of {LSR_REDUCTIONS}, got {self.lsr_reduction!r}")
        if self.init not in ("vae", "scratch"):
            raise LsrError(f"init must be 'vae' or 'scratch', got {self.init!r}")
        if self.precision not in ("fp32", "bf16"):
            raise LsrError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["vae"] = self.vae.to_dict()
        d["adam_betas"] = list(self.adam_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GANConfig":
        d = _known(cls, d)
        d["vae"] = VAEConfig.from_dict(d["vae"])
        return cls(**d)

    def replace(self, **kw) -> "GANConfig":
        return replace(self, **kw)


def _known(cls, d: dict) -> dict:
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise LsrError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    out = dict(d)
    if "adam_betas" in out:
        out["adam_betas"] = tuple(out["adam_betas"])
    return out


def profile_configs(profile: str | None = None, *, dataset: str = "shapes", beta: float = 1.0, lam: float = 1.0,
                    seed: int = 13, vae_epochs: int | None = None, gan_epochs: int | None = None,
                    n_train: int | None = -1, **vae_kw) -> GANConfig:
    """The (VAE, GAN) configuration of a profile, as one GANConfig (``.vae`` is stage 1).

    The image geometry follows the dataset. Explicit ``vae_epochs``/``gan_epochs``/
    ``n_train`` override the profile's.
    """
    from .data import DATASETS, check_dataset_name

    profile = check_profile(profile or default_profile())
    s = PROFILE_SETTINGS[profile]
    info = DATASETS[check_dataset_name(dataset)]
    vae = VAEConfig(dataset=dataset, image_size=vae_kw.pop("image_size", info.image_size),
                    channels=vae_kw.pop("channels", info.channels), beta=beta, seed=seed,
                    epochs=vae_epochs if vae_epochs is not None else s["vae_epochs"],
                    n_train=s["n_train"] if n_train == -1 else n_train, **vae_kw)
    return GANConfig(vae=vae, lam=lam, seed=seed, epochs=gan_epochs if gan_epochs is not None else s["gan_epochs"])


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two config dicts ("key: a -> b")."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out
