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
import hashlib
import io
import json
import os
import pickle
import stat
from collections.abc import Callable
from pathlib import Path

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


# ----------------------------------------------------------------------------- opening untrusted files
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

# Sizes a file the kit reads back may have (the limit is named in the message where one is passed).
MAX_JSON_BYTES = 64 << 20        # a record, a configuration, a history: far smaller in practice
MAX_TENSOR_BYTES = 4 << 30       # a weights file or checkpoint (a paper-size run's is about 20 MB)


def present(path: str | Path) -> bool:
    """Whether anything is at ``path`` (a link too, even a dangling one): reading it then refuses what is not a
    regular file by name, instead of taking a link or a FIFO for "absent"."""
    return os.path.lexists(path)


def _refuse(path: Path, what: str, e: OSError) -> LsrError:
    if e.errno == errno.ELOOP:
        return LsrError(f"{path}: refused: this {what} is a symbolic link, and the kit never follows a link out of "
                        f"a run, results or dataset folder (replace it by the file itself)")
    if e.errno == errno.ENOTDIR:
        return LsrError(f"{path}: refused: a folder on its way is not a folder (or is a symbolic link)")
    if e.errno == errno.ENOENT:
        return LsrError(f"{path}: {what} not found")
    return io_problem(e, path, "read")


def open_regular(path: str | Path, what: str = "file", *, max_bytes: int | None = None, root: str | Path | None = None,
                 write: bool = False, create: bool = False):
    """Open ``path`` only if it is a regular file, reached without following a symbolic link; a binary file object.

    The check is made on the open descriptor (``O_NOFOLLOW``, then ``fstat``),
    so nothing can be swapped in between: a link, a FIFO (opened
    non-blocking, so it never hangs), a device or a folder is refused by name.
    With ``root``, ``path`` must lie inside that folder and no folder between
    them may be a link either (each is opened relative to the one above it).
    ``max_bytes``: a larger file is refused before anything is read.
    ``write``/``create``: open for reading and writing (creating it if asked);
    a link is still never followed, so nothing outside can be written.
    """
    path = Path(path)
    flags = (os.O_RDWR if write else os.O_RDONLY) | _NOFOLLOW | _NONBLOCK | _CLOEXEC | (os.O_CREAT if create else 0)
    dir_fd = None
    try:
        if root is not None:
            rel = path.relative_to(root) if path.is_absolute() == Path(root).is_absolute() else None
            if rel is None or ".." in rel.parts or not rel.parts:
                raise LsrError(f"{path}: refused: not a file inside {root}")
            dir_fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
            for part in rel.parts[:-1]:
                nxt = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
                os.close(dir_fd)
                dir_fd = nxt
            fd = os.open(rel.parts[-1], flags, 0o644, dir_fd=dir_fd)
        else:
            fd = os.open(path, flags, 0o644)
    except ValueError:
        raise LsrError(f"{path}: refused: not a file inside {root}") from None
    except OSError as e:
        raise _refuse(path, what, e) from None
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode) else \
            "a device or socket"
        raise LsrError(f"{path}: refused: this {what} is {kind}, not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        os.close(fd)
        raise LsrError(f"{path}: refused: this {what} is {st.st_size:,} bytes, over the {max_bytes:,}-byte limit "
                       f"for such a file")
    if _NONBLOCK:
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb+" if write else "rb")


def read_regular(path: str | Path, what: str = "file", *, max_bytes: int, root: str | Path | None = None) -> bytes:
    """The bytes of a regular file (:func:`open_regular`), at most ``max_bytes`` of them (checked while reading too,
    for a file that grows)."""
    with open_regular(path, what, max_bytes=max_bytes, root=root) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise LsrError(f"{path}: refused: this {what} is over the {max_bytes:,}-byte limit for such a file")
    return data


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


MAX_JSON_DEPTH = 64


class Opt:
    """In a schema: an optional key (absent is fine; present, it must match ``schema``)."""

    def __init__(self, schema):
        self.schema = schema


ANY = object()  # in a schema: any JSON value
NUMBER = (int, float)


def schema_problem(value, schema, where: str = "$") -> str | None:
    """Why ``value`` does not match ``schema`` (None when it does).

    A schema is a type or tuple of types (``bool`` is never a number), ``ANY``,
    a list ``[item_schema]`` (a list of such items), or a dict
    ``{key: schema}`` (a mapping holding those keys; :class:`Opt` marks
    optional ones; other keys are allowed), or a dict with the one key
    ``"*"``: a mapping whose every value matches.
    """
    if schema is ANY:
        return None
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return f"{where} is {type(value).__name__}, not a mapping"
        if set(schema) == {"*"}:
            for k, v in value.items():
                bad = schema_problem(v, schema["*"], f"{where}.{k}")
                if bad:
                    return bad
            return None
        for k, sub in schema.items():
            optional = isinstance(sub, Opt)
            if k not in value:
                if optional:
                    continue
                return f"{where} lacks {k!r}"
            bad = schema_problem(value[k], sub.schema if optional else sub, f"{where}.{k}")
            if bad:
                return bad
        return None
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{where} is {type(value).__name__}, not a list"
        for i, v in enumerate(value):
            bad = schema_problem(v, schema[0], f"{where}[{i}]")
            if bad:
                return bad
        return None
    types = schema if isinstance(schema, tuple) else (schema,)
    if isinstance(value, bool) and bool not in types:
        return f"{where} is a boolean, not {'/'.join(t.__name__ for t in types)}"
    if value is None and type(None) in types:
        return None
    if not isinstance(value, types):
        return f"{where} is {type(value).__name__}, not {'/'.join(t.__name__ for t in types)}"
    return None


def _depth_ok(obj, limit: int) -> bool:
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > limit:
            return False
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)
    return True


def parse_json(data: bytes | str, name: str, what: str = "file", schema=None, *, damaged: str = ""):
    """Parse untrusted JSON with limits (depth, digits of a number) and an optional schema; one message naming it."""
    tail = f"; {damaged}" if damaged else ""
    try:
        obj = json.loads(data, parse_int=_bounded_int)
    except RecursionError:
        return _raise(f"{name}: refused: this {what} is nested deeper than {MAX_JSON_DEPTH} levels{tail}")
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
        return _raise(f"{name}: not valid JSON ({str(e)[:120]}){tail}")
    if not _depth_ok(obj, MAX_JSON_DEPTH):
        return _raise(f"{name}: refused: this {what} is nested deeper than {MAX_JSON_DEPTH} levels{tail}")
    if schema is not None:
        bad = schema_problem(obj, schema)
        if bad:
            return _raise(f"{name}: not a valid {what}: {bad[:200]}{tail}")
    return obj


def _bounded_int(text: str) -> int:
    if len(text) > 30:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def _raise(message: str):
    raise LsrError(message)


def read_json(path: str | Path, what: str = "file", schema=None, *, root: str | Path | None = None,
              max_bytes: int = MAX_JSON_BYTES, damaged: str = "the run folder is damaged (delete it to start over)"):
    """The one reader of every JSON file the kit reads back: a regular file (never a link, FIFO or device; inside
    ``root`` when given), at most ``max_bytes``, nested at most :data:`MAX_JSON_DEPTH` deep, no number longer than
    30 digits, and matching ``schema`` (:func:`schema_problem`) when given. Any problem is one message naming the
    file (:class:`LsrError`)."""
    path = Path(path)
    data = read_regular(path, what, max_bytes=max_bytes, root=root)
    return parse_json(data, str(path), what, schema, damaged=damaged)


def load_tensors(path: str | Path, what: str = "checkpoint", *, with_hash: bool = False, kit_file: bool = True):
    """Load a ``.pt`` file safely: tensors and plain values only, never code.

    Read with ``torch.load(weights_only=True)`` from the bytes of a regular
    file (:func:`open_regular`: never a link, a FIFO or a device); a pickled
    object of any other type is refused with a message naming the file, as are
    missing, truncated and foreign files. Kit files are dicts with an
    ``lsr_version`` entry (``kit_file=False``: any file of tensors).
    ``with_hash``: also return the SHA-256 of exactly the bytes loaded.
    """

    path = Path(path)
    data = read_regular(path, what, max_bytes=MAX_TENSOR_BYTES)
    f = io.BytesIO(data)
    try:
        obj = torch.load(f, map_location="cpu", weights_only=True)
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
    finally:
        f.close()
    if kit_file and (not isinstance(obj, dict) or "lsr_version" not in obj):
        raise LsrError(f"{path}: not a lsr-kit {what} (no 'lsr_version' entry); the run folder is damaged")
    return (obj, hashlib.sha256(data).hexdigest()) if with_hash else obj


def sha256_file(path: str | Path, what: str = "file", max_bytes: int = MAX_TENSOR_BYTES) -> str:
    """The SHA-256 of a regular file's bytes (read in chunks; never through a link)."""
    h = hashlib.sha256()
    with open_regular(path, what, max_bytes=max_bytes) as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def record_manifest(manifest: str | Path | None, path: str | Path) -> None:
    """Append ``path`` (an evaluation record) to the file ``manifest`` names, once (nothing when it is None).

    A sweep or a reproduction gives its notebooks a manifest, so that its
    report is built from exactly the records its notebooks made or reused.
    """
    if not manifest:
        return
    m = Path(manifest)
    line = str(Path(path).resolve())
    seen = m.read_text().splitlines() if m.is_file() else []
    if line not in seen:
        m.parent.mkdir(parents=True, exist_ok=True)
        with open(m, "a") as f:
            f.write(line + "\n")
