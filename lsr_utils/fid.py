"""FID (Heusel et al., 2017; paper section 2.2), a thin wrapper over pytorch-fid.

* Images go in as in-memory tensors in the kit's unit range ([0, 1],
  ``(N, C, H, W)``); grey images are repeated to 3 channels. That is the only
  conversion, done here.
* Features: the standard FID Inception (pool_3, 2048-d), whose weights
  ``pt_inception-2015-12-05-6726825d.pth`` pytorch-fid downloads. The kit takes
  a local copy from ``weights=`` or ``$LSR_FID_WEIGHTS`` or torch's hub cache,
  and fails with a message (never a hang) when none is there offline.
* The Frechet distance uses the eigenvalues of sqrt(S1) S2 sqrt(S1) for the
  trace term, avoiding SciPy's ``sqrtm`` (wrong or complex results in some
  SciPy releases, and a removed ``disp`` argument).
* A distance is refused, not returned, when there are fewer images than
  feature dimensions (the covariance would be singular).
* Real-data statistics are cached per dataset, split and feature extractor.

``FeatureExtractor`` is any callable from unit-range images to ``(N, d)``
features with a ``name`` and ``dim``; tests use a small stand-in, and
:mod:`lsr_utils.classifier` provides the kit's offline one (whose distance is
reported under its own name, never as FID).
"""
from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .data import network_reachable
from .data.cache import cache_dir
from .errors import LsrError
from .files import atomic_write
from .pixels import check_unit_images
from .progress import progress_bar
from .runtime import resolve_device

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_NAME


@dataclass(frozen=True)
class Statistics:
    """Mean and covariance of features of ``n`` images, from extractor ``extractor``."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    extractor: str

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])

    def save(self, path: Path) -> None:
        def write(tmp: Path):
            with open(tmp, "wb") as f:
                np.savez(f, mu=self.mu, sigma=self.sigma, n=self.n, extractor=self.extractor)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> "Statistics":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["mu"], z["sigma"], int(z["n"]), str(z["extractor"]))


class FeatureExtractor:
    """Base for feature extractors: ``__call__(images in [0, 1]) -> (N, dim) float64 numpy``."""

    name: str = "extractor"
    dim: int = 0
    device: torch.device = torch.device("cpu")
    batch_size: int = 200

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) unit range, on device
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, progress: bool = False) -> np.ndarray:
        images = check_unit_images(images, "FID images")
        out = []
        for i in progress_bar(range(0, len(images), self.batch_size), desc=f"features ({self.name[:24]})",
                              disable=not progress or len(images) <= 2000, leave=False):
            x = images[i:i + self.batch_size].to(self.device)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            out.append(self.features(x).double().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), computed with symmetric eigendecompositions."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise LsrError(f"frechet_distance: mismatched shapes {mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}")
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def statistics(features: np.ndarray, extractor: str = "") -> Statistics:
    f = np.asarray(features, np.float64)
    n, d = f.shape
    if n <= d:
        raise LsrError(f"{n} images give a singular {d}x{d} feature covariance; a Frechet distance needs more "
                       f"images than feature dimensions (use at least {d + 1}, ideally 10,000 for FID)")
    return Statistics(f.mean(0), np.cov(f, rowvar=False), n, extractor)


def image_statistics(images: torch.Tensor, extractor: FeatureExtractor) -> Statistics:
    n = len(images)
    if n <= extractor.dim:
        raise LsrError(f"{n} images are too few for the {extractor.dim}-dimensional features of {extractor.name}: "
                       f"the covariance would be singular. Use at least {extractor.dim + 1} images "
                       f"(10,000 is the usual number for FID); no value was computed.")
    return statistics(extractor(images), extractor.name)


def distance(images: torch.Tensor, reference: Statistics, extractor: FeatureExtractor) -> float:
    """Frechet distance between ``images`` (unit range) and reference statistics, in ``extractor``'s features."""
    if reference.extractor != extractor.name:
        raise LsrError(f"reference statistics come from {reference.extractor!r}, not {extractor.name!r}")
    s = image_statistics(images, extractor)
    return frechet_distance(s.mu, s.sigma, reference.mu, reference.sigma)


def cached_statistics(key: str, images: Callable[[], torch.Tensor], extractor: FeatureExtractor,
                      cache: Path | None = None) -> Statistics:
    """Statistics of a fixed image set (e.g. a dataset's test split), cached under ``key`` + extractor."""

    safe = hashlib.sha1(f"{key}|{extractor.name}".encode()).hexdigest()[:16]
    path = Path(cache or cache_dir() / "fid") / f"{safe}.npz"
    if path.exists():
        try:
            st = Statistics.load(path)
            if st.extractor == extractor.name:
                return st
        except Exception:
            path.unlink(missing_ok=True)
    st = image_statistics(images(), extractor)
    try:
        st.save(path)
    except LsrError:
        pass  # a read-only or full cache only costs time
    return st


# --------------------------------------------------------------------------- the FID Inception
def find_weights(weights: str | Path | None = None) -> Path | None:
    """The local Inception weights: argument, then $LSR_FID_WEIGHTS, then torch's hub cache."""
    if weights is not None:
        p = Path(weights)
        if not p.is_file():
            raise LsrError(f"FID weights file {p} does not exist")
        return p
    env = os.environ.get("LSR_FID_WEIGHTS")
    if env:
        p = Path(env)
        if not p.is_file():
            raise LsrError(f"$LSR_FID_WEIGHTS points to {p}, which does not exist")
        return p
    hub = Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_NAME
    return hub if hub.is_file() else None


def _missing_weights_message() -> str:
    hub = Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_NAME
    return (f"FID needs the Inception weights {FID_WEIGHTS_NAME}, which are not on this machine and could not "
            f"be downloaded. Download them from {FID_WEIGHTS_URL} and either put the file at {hub}, set "
            f"LSR_FID_WEIGHTS=/path/to/{FID_WEIGHTS_NAME}, or pass --fid-weights PATH. The kit's offline "
            f"score (classifier Frechet distance) needs no download.")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class InceptionFID(FeatureExtractor):
    """pytorch-fid's FID Inception v3, pool_3 features (2048-d), from a local weights file."""

    dim = 2048

    def __init__(self, weights: str | Path | None = None, device=None, batch_size: int = 100):
        from unittest import mock

        try:
            from pytorch_fid import inception as pf
        except ImportError:
            raise LsrError("FID needs pytorch-fid: pip install pytorch-fid==0.3.0") from None
        path = find_weights(weights)
        if path is None:
            if not network_reachable("github.com"):  # offline: say so at once, never start a download
                raise LsrError(_missing_weights_message())
            old = socket.getdefaulttimeout()
            socket.setdefaulttimeout(20)
            try:
                torch.hub.load_state_dict_from_url(FID_WEIGHTS_URL, progress=True)
            except Exception:
                raise LsrError(_missing_weights_message()) from None
            finally:
                socket.setdefaulttimeout(old)
            path = find_weights()
            if path is None:
                raise LsrError(_missing_weights_message())
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise LsrError(f"{path}: cannot read the FID Inception weights ({type(e).__name__}); "
                           f"download {FID_WEIGHTS_NAME} again") from None
        with mock.patch.object(pf, "load_state_dict_from_url", lambda *a, **k: state):
            try:
                model = pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True,
                                       normalize_input=True, use_fid_inception=True)
            except RuntimeError as e:
                raise LsrError(f"{path}: not the FID Inception weights ({str(e).splitlines()[0][:160]})") from None

        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size
        self.weights_path = path
        self.weights_sha256 = sha256(path)
        self.name = f"fid-inception-pool3-2048:{self.weights_sha256[:12]}"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0].flatten(1)  # (B, 2048); the model takes [0, 1] input itself
