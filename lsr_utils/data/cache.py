"""The dataset cache: decoded images kept as uint8 tensors, so that image files are decoded once.

Entries live under the cache folder (``$LSR_CACHE`` at the edge, default ``~/.cache/lsr-kit``), keyed by the
content fingerprint of their source files, written atomically and read with
``weights_only=True``. A corrupt entry is rebuilt, never trusted; a read-only
cache only costs speed.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from ..base.errors import LsrError
from ..base.files import atomic_torch_save, atomic_write_bytes

_DEFAULTS = {"cache": None, "offline": False}


def set_defaults(*, cache: Path | None = None, offline: bool = False) -> None:
    """The cache folder (None: ``~/.cache/lsr-kit``) and whether downloads are off, for every loader: set by the
    edges from the environment (:func:`lsr_utils.apps.environ.install`)."""
    _DEFAULTS.update(cache=Path(cache) if cache else None, offline=bool(offline))


def offline() -> bool:
    """Whether downloads are off (``LSR_OFFLINE=1`` at the edge)."""
    return _DEFAULTS["offline"]


def cache_dir() -> Path:
    return _DEFAULTS["cache"] or Path.home() / ".cache" / "lsr-kit"


def cached(name: str, key: str, build: Callable[[], dict]) -> dict:
    """A dict of tensors from the cache entry ``name-<hash of key>``, or ``build()`` saved there."""
    import torch

    path = cache_dir() / "datasets" / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a corrupt or foreign entry is rebuilt, never trusted
            path.unlink(missing_ok=True)
    out = build()
    try:
        atomic_torch_save(path, out)
    except LsrError:
        pass  # a full or read-only cache only costs speed
    return out


def file_fingerprint(paths: list[Path], base: Path | None = None) -> str:
    """A content fingerprint of files: their names (relative to ``base``), sizes and the SHA-1 of their bytes.

    The result is remembered in the cache, keyed by the files' names, sizes and
    modification times, so a folder of many files is read once.
    """
    paths = sorted(paths)
    stamp = hashlib.sha1()
    for p in paths:
        st = p.stat()
        stamp.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    memo = cache_dir() / "fingerprints" / stamp.hexdigest()[:24]
    try:
        text = memo.read_text().strip()
        if len(text) == 16:
            return text
    except OSError:
        pass
    h = hashlib.sha1()
    for p in paths:
        name = str(p.relative_to(base)) if base else p.name
        h.update(f"{name}\0{p.stat().st_size}\0".encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    out = h.hexdigest()[:16]
    try:
        atomic_write_bytes(memo, out.encode())
    except LsrError:
        pass
    return out
