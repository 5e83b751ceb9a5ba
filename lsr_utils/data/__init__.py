"""Layer 2 of 9, the data: one call returns a dataset's train and test images and labels (:func:`load_data`).

Every dataset the kit knows is one entry of :data:`~lsr_utils.data.registry.DATASETS` (its geometry, classes,
files and reader) and one module of this package.

Convention: images are ``uint8`` tensors of shape ``(N, C, H, W)`` on the CPU
(:mod:`lsr_utils.base.pixels` converts them); labels are ``int64`` tensors.

Where a dataset comes from, in order:

1. a local copy under ``root`` (``--data-root``, else ``$LSR_DATA_ROOT``, else
   ``./data``), in the layouts of its entry (read by its module:
   :mod:`.shapes`, :mod:`.idx`, :mod:`.cifar10`, :mod:`.celeba`,
   :mod:`.imagenet64`, :mod:`.folders`);
2. a download through torchvision, where a network exists (never when
   ``$LSR_OFFLINE=1`` or ``download=False``);
3. otherwise :class:`~lsr_utils.base.errors.DataMissingError`, which says which
   files to put where.

**Subsets are balanced.** ``n_train``/``n_test`` never take "the first N"
images (a class-sorted source would give one class): they take the first N
of :func:`balanced_order`, a fixed, seeded round-robin over the classes, so
every subset holds the classes in equal numbers (to within one image) and a
smaller subset is part of a larger one.

**Identity.** Every :class:`ImageData` carries a ``fingerprint`` of its source
(content hashes of the files read, or the generator's version and seed) and of
the selection; :func:`bind_data` writes it, with the number of images actually
used, into the run's configuration, so a run trained on other data is never
taken for this one.
"""
from __future__ import annotations

import shutil
import socket
from dataclasses import replace
from pathlib import Path

import torch

from ..base.errors import DataMissingError, LsrError
from .batches import DeviceBatches
from .cache import cache_dir, offline
from .images import ImageData, Incomplete, display_path
from .registry import DATASETS, Dataset, check_dataset_name, dataset, dataset_names, geometry
from .subsets import balanced_order, select

__all__ = ["DATASETS", "Dataset", "DeviceBatches", "ImageData", "balanced_order", "bind_data", "cache_dir",
           "check_dataset_name", "dataset", "dataset_names", "display_path", "geometry", "load_data", "load_split",
           "offline", "select"]


# ----------------------------------------------------------------------------- loading
def default_root() -> Path:
    """The data folder when none is given: ``./data`` (the edges pass ``$LSR_DATA_ROOT``)."""
    return Path("data")


def network_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether ``host`` answers within ``timeout`` s (always False with ``LSR_OFFLINE=1``): asked before any
    download, so that an offline machine never starts one."""
    if offline():
        return False
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def missing(name: str, root: Path, detail: str = "") -> DataMissingError:
    """Which files to put where (the places each loader really reads)."""
    info = DATASETS[name]
    places = "\n  ".join(lay.format(root=root) for lay in info.layouts)
    return DataMissingError(
        f"dataset {name!r} was not found under {root} and could not be downloaded"
        f"{' (' + detail + ')' if detail else ''}.\nWhat: {info.origin}.\nPut the files in one of:\n  {places}\n"
        f"then pass --data-root {root} (or set LSR_DATA_ROOT).")


def _download(info: Dataset, root: Path) -> None:
    """Try the dataset's download (short timeouts; any failure is left to the "not found" message that follows); a
    folder this made and left empty is removed again."""
    made = not root.exists()
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        root.mkdir(parents=True, exist_ok=True)
        info.download(root)
    except Exception:
        pass
    finally:
        socket.setdefaulttimeout(old)
        if made and root.is_dir():
            for p in sorted(root.rglob("*"), reverse=True):  # empty folders the failed download left
                if p.is_dir() and not any(p.iterdir()):
                    p.rmdir()
            if not any(root.iterdir()):
                shutil.rmtree(root, ignore_errors=True)


def _read(info: Dataset, root: Path, image_size: int | None, progress: bool):
    """The dataset's splits from its local files, or None where they are absent."""
    try:
        return info.read(root, image_size, progress)
    except Incomplete as e:
        raise missing(info.name, root, str(e)) from None


def load_data(name: str = "shapes", *, root: str | Path | None = None, n_train: int | None = None,
              n_test: int | None = None, seed: int = 0, download: bool = True, image_size: int | None = None,
              progress: bool = True) -> ImageData:
    """Load train and test images of ``name`` (one of :data:`DATASETS`).

    ``n_train``/``n_test`` keep balanced subsets (see the module's docstring;
    all images by default; for ``shapes`` they set how many are generated:
    20,000 and 2,000 by default). ``seed`` chooses the training subset and the
    ``shapes`` images; the test subset is the same for every run.
    ``image_size`` applies to ``imagefolder`` (default 32).
    """
    info = dataset(name)
    for label, v in (("n_train", n_train), ("n_test", n_test)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise LsrError(f"{label} must be a positive integer, got {v!r}")
    if info.generate is not None:
        return info.generate(n_train, n_test, seed)
    if (image_size or 32) not in (28, 32, 64):
        raise LsrError(f"image_size must be 28, 32 or 64, got {image_size}")
    root = Path(root) if root is not None else default_root()
    got = _read(info, root, image_size, progress)
    if got is None and download and info.download is not None and network_reachable(info.host):
        _download(info, root)
        got = _read(info, root, image_size, progress)
    if got is None:
        raise missing(name, root)
    xtr, ytr, xte, yte, classes, where, fingerprint = got
    xtr, ytr = select(xtr, ytr, n_train, seed)
    xte, yte = select(xte, yte, n_test, 0)
    fp = f"{name}:{fingerprint}:balanced(seed {seed})"
    return ImageData(name, xtr, ytr, xte, yte, tuple(classes), source=where, fingerprint=fp)


def load_split(name: str, split: str, *, root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One split alone, in its files' order (e.g. MNIST's test set where only it is on disk)."""
    if split not in ("train", "test"):
        raise LsrError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root) if root is not None else default_root()
    if name in ("mnist", "fashion-mnist"):
        from . import idx

        got = idx.load_split(name, root, split)
        if got is None:
            raise missing(name, root, f"no {split} split")
        return got[0], got[1]
    data = load_data(name, root=root)
    return getattr(data, f"{split}_x"), getattr(data, f"{split}_y")


def bind_data(cfg, data: ImageData):
    """``(cfg, data)`` for training: the data cut to ``cfg.n_train``, the config carrying the data's identity.

    The configuration (a VAEConfig) gets ``data_id``, the fingerprint of the
    images and the number actually used, and ``n_train`` becomes that number
    when one was asked for (what ran is what is recorded). Refuses data that
    cannot train with this configuration (too few images for one batch, other
    image geometry) and data other than the data the configuration was bound
    to before (a resumed or reused run).
    """
    if data.name != cfg.dataset:
        raise LsrError(f"the data are {data.name!r} but the configuration is for {cfg.dataset!r}")
    if data.image_size != cfg.image_size or data.channels != cfg.channels:
        raise LsrError(f"{cfg.dataset}: the data are {data.channels}x{data.image_size}x{data.image_size} images but "
                       f"the configuration expects {cfg.channels}x{cfg.image_size}x{cfg.image_size}")
    if cfg.n_train is not None and len(data.train_x) > cfg.n_train:  # a prefix is the balanced selection
        data = replace(data, train_x=data.train_x[:cfg.n_train], train_y=data.train_y[:cfg.n_train])
    n = len(data.train_x)
    if n < cfg.batch_size:
        raise LsrError(f"{cfg.dataset}: {n} training images cannot fill one batch of {cfg.batch_size}; use more "
                       f"images (--n-train) or a batch size of at most {n} (--batch-size)")
    data_id = f"{data.fingerprint}|n={n}"
    if cfg.data_id is not None and cfg.data_id != data_id:
        raise LsrError(f"this run was trained on other images ({cfg.data_id}) than the ones given ({data_id}); "
                       f"give it its own data (--data-root), or train a new run")
    return cfg.replace(data_id=data_id, n_train=None if cfg.n_train is None else n), data
