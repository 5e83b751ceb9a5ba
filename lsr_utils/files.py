"""Reading and writing the kit's files: the one atomic writer and the one safe loader.

* :func:`atomic_write` writes a file completely or not at all: into a
  temporary file beside the target, flushed to disk, then renamed over it.
  On any failure the temporary file is removed and the target is untouched;
  a full disk or a read-only folder is reported as such (:class:`LsrError`),
  never as a library traceback.
* :func:`load_tensors` reads a ``.pt`` file with ``torch.load(weights_only=True)``:
  tensors and plain values only. A file holding any other pickled object
  (which could run code when loaded) is refused with a message naming it.
* :func:`read_json` reads a JSON file, naming the file when it is missing or
  damaged.

Everything a run folder, the dataset cache or a figure writes goes through
here, so these rules hold everywhere.
"""
from __future__ import annotations

import errno
import json
import os
import pickle
from pathlib import Path
from typing import Callable

import torch

from .errors import LsrError


def _json_default(o):

    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def io_problem(e: OSError, path: Path, doing: str = "write") -> LsrError:
    """An OSError as one actionable message (full disk, read-only folder, missing permission)."""
    if e.errno == errno.ENOSPC or e.errno == getattr(errno, "EDQUOT", -1):
        return LsrError(f"{path}: the disk is full (no space left to {doing} it); free some space and run the "
                        f"same command again (what was saved before, e.g. the last checkpoint, is intact)")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return LsrError(f"{path.parent}: cannot {doing} {path.name} here ({os.strerror(e.errno).lower()}); "
                        f"give a writable folder (e.g. --out)")
    return LsrError(f"{path}: cannot {doing} it ({os.strerror(e.errno) if e.errno else e})")


def make_dir(path: str | Path) -> Path:
    """``mkdir -p``, with a full disk or a read-only folder reported as one message."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise LsrError(f"{path} is a file; give a folder") from None
    except OSError as e:
        raise io_problem(e, path / ".", "create") from None
    return path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` completely or not at all: ``write(tmp)`` fills a temporary file, which replaces ``path``."""
    path = Path(path)
    make_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise io_problem(e, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _torch_write_error(e: RuntimeError) -> OSError | None:
    """torch.save reports a full disk as a RuntimeError from its zip writer; recover the OSError."""
    text = str(e)
    if "No space left" in text or "file write failed" in text or "unexpected pos" in text:
        return OSError(errno.ENOSPC, "No space left on device")
    return None


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: str | Path, obj) -> Path:
    body = (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode()
    return atomic_write_bytes(path, body)


def atomic_torch_save(path: str | Path, obj) -> Path:

    def write(tmp: Path):
        try:
            torch.save(obj, tmp)
        except RuntimeError as e:
            err = _torch_write_error(e)
            if err is None:
                raise
            raise err from None

    return atomic_write(path, write)


def read_json(path: str | Path, what: str = "file"):
    """The parsed JSON of ``path``; a missing or damaged file is one message naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LsrError(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LsrError(f"{path}: not valid JSON ({e}); the run folder is damaged (delete it to start over)") from None
    except OSError as e:
        raise io_problem(e, path, "read") from None


def load_tensors(path: str | Path, what: str = "checkpoint") -> dict:
    """Load a kit ``.pt`` file safely: tensors and plain values only, never code.

    Read with ``torch.load(weights_only=True)``; a pickled object of any other
    type is refused with a message naming the file, as are missing, truncated
    and foreign files. Kit files are dicts with an ``lsr_version`` entry.
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
                           f" ({found[:160]}), and loading it could run code. The kit never writes such files; do "
                           f"not use it (delete it, or retrain with --fresh).") from None
        raise LsrError(f"{path}: cannot read this {what} (it is not a valid file of tensors). It is corrupt or not a "
                       f"lsr-kit file; delete it or train with --fresh to start over.") from None
    except OSError as e:
        raise io_problem(e, path, "read") from None
    except Exception as e:  # truncated zip, garbage, ...
        first = str(e).splitlines()[0][:200] if str(e) else ""
        raise LsrError(f"{path}: cannot read this {what} ({type(e).__name__}: {first}). It is corrupt or not a "
                       f"lsr-kit file; delete it or train with --fresh to start over.") from None
    if not isinstance(obj, dict) or "lsr_version" not in obj:
        raise LsrError(f"{path}: not a lsr-kit {what} (no 'lsr_version' entry); the run folder is damaged")
    return obj


def record_manifest(path: str | Path | None = None) -> None:
    """When ``$LSR_MANIFEST`` names a file, append ``path`` (an evaluation record) to it, once.

    A sweep or a reproduction sets it, so that its report is built from
    exactly the records its notebooks made or reused.
    """
    manifest = os.environ.get("LSR_MANIFEST")
    if not manifest or path is None:
        return
    m = Path(manifest)
    line = str(Path(path).resolve())
    seen = m.read_text().splitlines() if m.is_file() else []
    if line not in seen:
        m.parent.mkdir(parents=True, exist_ok=True)
        with open(m, "a") as f:
            f.write(line + "\n")
