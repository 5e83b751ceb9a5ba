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
:mod:`lsr_utils.training.loop`): a dict of tensors and plain values, loaded with
``weights_only=True``::

    {"lsr_version": str,                       # the kit that wrote it
     "kind": "vae" | "gan" | "classifier" | "vae-sweep" | "gan-sweep",
     "epoch": int, "pos": int,                 # the next epoch (0-based) and the next batch within it
     "epochs": int, "batches": int,            # the run's epochs and batches per epoch (checked on resume:
                                               #   0 <= epoch <= epochs, 0 <= pos < batches)
     "models": {name: state_dict},             # every network the stage trains (lsr_utils.method.stage.Stage.models)
     "optims": {name: optimiser state_dict},   # every optimiser (Stage.optims)
     "history": dict,                          # the history so far (layout: lsr_utils.training.loop)
     "log_window": [[float]],                  # values read back since the last logged step (< log_every rows)
     "epoch_sums": [float],                    # sums of this epoch's values so far, one per name
     "shuffle_state": ByteTensor,              # the CPU shuffling generator at the start of the epoch
     "noise_state": ByteTensor,                # the step's noise generator (z, eps) now
     "torch_rng": ByteTensor}                  # torch's global CPU generator now

Besides, a run writes its per-step losses as they are logged to
``losses.csv`` (``step,name,...``) and, where ``tensorboard`` is installed,
to TensorBoard event files in ``tb/`` (:class:`LossLog`).

Every file here is untrusted input when it comes from elsewhere: weights and
checkpoints load as tensors only (:func:`lsr_utils.base.files.load_tensors`), and
a JSON file of the wrong shape is reported as a damaged run folder, naming
the file.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
from pathlib import Path

import torch

from .. import __version__
from ..base.errors import LsrError
from ..base.files import (
    NUMBER,
    Opt,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    load_tensors,
    make_dir,
    open_regular,
    present,
    read_json,
    schema_problem,
    sha256_file,
)
from ..base.runtime import environment, now
from ..method.config import ClassifierConfig, GANConfig, VAEConfig, config_diff

CONFIG_CLASSES = {"vae": VAEConfig, "gan": GANConfig, "classifier": ClassifierConfig}
# What each JSON file of a run folder must hold (lsr_utils.base.files.read_json checks it; other keys are allowed).
RUN_SCHEMA = {"status": str, "started": Opt(str), "reason": Opt(str), "train_seconds": Opt((int, float, type(None))),
              "weights_sha256": Opt(str), "vae_weights_sha256": Opt(str)}
CONFIG_SCHEMA = {"kind": str, "config": dict}
HISTORY_SCHEMA = {"epoch": Opt({"*": [NUMBER]}), "steps": Opt({"*": [NUMBER]}), "seconds": Opt((int, float, type(None)))}
CHECKPOINT_KEYS = ("kind", "epoch", "pos", "models", "optims", "history", "log_window", "epoch_sums",
                   "shuffle_state", "noise_state", "torch_rng")


def config_hash(d: dict) -> str:
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]


def _fmt(x: float) -> str:
    return f"{x:g}".replace("+", "")


def run_name(cfg) -> str:
    """The folder name of a configuration: kind, its swept value, its epochs and the hash of all of it."""
    h = config_hash(cfg.to_dict())
    if isinstance(cfg, VAEConfig) and cfg.source:
        return f"ext-{re.sub(r'[^a-z0-9]+', '-', cfg.source.lower()).strip('-')[:40]}-{h}"
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

    def remove_stale_temporaries(self) -> None:
        """Remove what an atomic write killed mid-way (kill -9) left behind: ``.<name>.tmp<pid>`` files. Called
        with the lock held, so no write of this folder is in progress."""
        for p in list(self.path.glob(".*.tmp*")) + list(self.path.glob("snapshots/.*.tmp*")):
            if p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)

    def refuse_links(self) -> None:
        """Refuse a run folder that is itself a symbolic link, or whose files or sub-folders are (checked before
        anything is written there; every file is opened with O_NOFOLLOW besides)."""
        if self.path.is_symlink():
            raise LsrError(f"{self.path}: refused: this run folder is a symbolic link; copy the run itself here")

    # ------------------------------------------------------------------ reading
    def run_info(self) -> dict:
        return read_json(self / "run.json", "run record", RUN_SCHEMA, root=self.path)

    @property
    def status(self) -> str:
        if present(self / "run.json"):
            try:
                info = self.run_info()
            except LsrError:
                return "damaged"
            if info["status"] == "failed":
                return "failed"
            if info["status"] == "finished" and present(self / "weights.pt"):
                return "finished"
        return "running" if present(self / "checkpoint.pt") else "new"

    def read_config(self):
        """(kind, configuration) from config.json; a wrong shape is "run folder damaged", naming the file."""
        f = self / "config.json"
        if not present(f):
            raise LsrError(f"{self.path}: not a run folder (no config.json)")
        d = read_json(f, "run configuration", CONFIG_SCHEMA, root=self.path)
        if d["kind"] not in CONFIG_CLASSES:
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
        if not present(self / "config.json"):
            return
        _, saved = self.read_config()
        diff = config_diff(saved.to_dict(), cfg.to_dict())
        if diff:
            raise LsrError(f"{self.path} holds a run with a different configuration; refusing to continue it.\n"
                           "  differences (saved -> requested):\n    " + "\n    ".join(diff))

    def history(self) -> dict:
        f = self / "history.json"
        if not present(f):
            return {}
        return read_json(f, "training history", HISTORY_SCHEMA, root=self.path)

    def require_finished(self) -> None:
        if not self.path.is_dir():
            raise LsrError(f"{self.path}: no such run folder")
        if not present(self / "config.json"):
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

    def load_checkpoint(self, kind: str, *, epochs: int | None = None, batches: int | None = None,
                        names: tuple[str, ...] | None = None) -> dict | None:
        """The checkpoint's contents, checked for shape and against the run (``epochs``, ``batches`` per epoch,
        the step's value ``names``); None when there is none."""
        f = self / "checkpoint.pt"
        if not present(f):
            return None
        ck = load_tensors(f, "checkpoint")
        if "pending_rows" in ck.get("history", {}):  # written by kit 0.2: the same values under other names
            ck["log_window"] = ck["history"].pop("pending_rows")
            ck["epoch_sums"] = ck["history"].pop("epoch_partial", None)
        damaged = "the run folder is damaged (delete checkpoint.pt to start over, or pass --fresh)"
        missing = [k for k in CHECKPOINT_KEYS if k not in ck]
        if missing:
            raise LsrError(f"{f}: lacks {', '.join(missing)}; {damaged}")
        if ck["kind"] != kind:
            raise LsrError(f"{f}: a {ck['kind']!r} checkpoint where a {kind!r} one was expected")
        bad = schema_problem({k: ck[k] for k in ("epoch", "pos", "history", "log_window", "epoch_sums")},
                             {"epoch": int, "pos": int, "history": {"epoch": {"*": [NUMBER]},
                                                                    "steps": {"*": [NUMBER]}},
                              "log_window": [[NUMBER]], "epoch_sums": [NUMBER]})
        if bad or not isinstance(ck["models"], dict) or not isinstance(ck["optims"], dict) or \
                not all(isinstance(ck[k], torch.Tensor) for k in ("shuffle_state", "noise_state", "torch_rng")):
            raise LsrError(f"{f}: its entries have the wrong types ({bad or 'models, optims or states'}); {damaged}")
        if epochs is not None and not 0 <= ck["epoch"] <= epochs or batches is not None and not (
                0 <= ck["pos"] < batches) or ck["epoch"] == epochs and ck["pos"] != 0:
            raise LsrError(f"{f}: claims epoch {ck['epoch']}, batch {ck['pos']}, but this run has {epochs} epochs of "
                           f"{batches} batches; {damaged}")
        if names is not None and (len(ck["epoch_sums"]) != len(names) or any(len(r) != len(names)
                                                                             for r in ck["log_window"])):
            raise LsrError(f"{f}: its logged values do not match this run's ({len(names)} per step); {damaged}")
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
        self.refuse_links()
        make_dir(self.path)
        # never through a link: a received folder whose .lock points elsewhere must not make us write there
        f = open_regular(self / ".lock", "lock file", root=self.path, write=True, create=True)
        try:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                f.seek(0)
                holder = f.read(200).decode("utf-8", "replace").strip() or "another process"
                raise LsrError(f"{self.path} is being trained by {holder}; wait for it to finish (rerun then, "
                               f"or add --wait to wait here), or stop that process first") from None
            f.seek(0)
            f.truncate()
            f.write(f"process {os.getpid()} on {platform.node()} since {now()}".encode())
            f.flush()
            self.remove_stale_temporaries()
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
        """Write the weights and history, then mark the run finished (the order makes a crash harmless).

        run.json records the SHA-256 of weights.pt, so that the weights are bound to this configuration: a folder
        whose weights were swapped for another run's is refused when loaded (:func:`load_vae_run`)."""
        atomic_torch_save(self / "weights.pt", {"lsr_version": __version__, **weights})
        sha = sha256_file(self / "weights.pt", "weights file")
        atomic_write_json(self / "history.json", history)
        atomic_write_json(self / "run.json", {"status": "finished", "started": started, "finished": now(),
                                              "train_seconds": history.get("seconds"), "device": str(device),
                                              "weights_sha256": sha, **extra, **environment()})
        (self / "checkpoint.pt").unlink(missing_ok=True)

    def fail(self, reason: str, device, started: str) -> None:
        """Mark the run failed (never reused); its last checkpoint stays for inspection."""
        atomic_write_json(self / "run.json", {"status": "failed", "reason": reason, "started": started,
                                              "failed": now(), "device": str(device), **environment()})


class LossLog:
    """A run's per-step losses where researchers look for them: ``losses.csv`` (always) and TensorBoard event files
    in ``tb/`` (where the ``tensorboard`` package is installed; the reference logged with tensorboardX).

    ``steps``: the history's ``"steps"`` table (``{"step": [...], name: [...]}``), which the CSV is rewritten from
    (atomically) at every checkpoint and at the end, so it always matches what was kept. Event files are written as
    values are logged; a resumed run discards the events after its checkpoint (TensorBoard's ``purge_step``).
    """

    def __init__(self, folder: RunDir, steps: dict, names: tuple[str, ...], first_step: int = 0,
                 enabled: bool = True):
        self.folder, self.steps, self.names, self.enabled = folder, steps, names, enabled
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: the CSV only
                SummaryWriter = None
            if SummaryWriter is not None:
                self.folder.refuse_links()
                self.tb = SummaryWriter(str(folder / "tb"), purge_step=first_step + 1 if first_step else None)

    def add(self, step: int, values: dict) -> None:
        if self.tb is not None:
            for name, v in values.items():
                self.tb.add_scalar(name, v, step)

    def flush(self) -> None:
        if not self.enabled:
            return
        write_loss_csv(self.folder / "losses.csv", self.steps, self.names)
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def write_loss_csv(path: Path, steps: dict, names) -> None:
    """The per-step losses of a history's ``"steps"`` table as CSV: ``step,<name>,...``, one row per logged step."""
    names = [n for n in names if n in steps]
    rows = ["step," + ",".join(names)]
    for i, st in enumerate(steps.get("step", [])):
        rows.append(f"{st}," + ",".join(repr(float(steps[n][i])) for n in names))
    atomic_write_bytes(path, ("\n".join(rows) + "\n").encode())


def read_loss_csv(folder: str | Path) -> dict:
    """A run's ``losses.csv`` as a history (``{"steps": {"step": [...], name: [...]}, "epoch": ...}``), for
    plotting: what a researcher finds in the run folder, read back (a regular file, at most 64 MB, numbers
    only)."""
    from ..base.files import read_regular

    path = Path(folder) / "losses.csv"
    text = read_regular(path, "loss log", max_bytes=64 << 20).decode("utf-8", "replace").splitlines()
    if not text or not text[0].startswith("step"):
        raise LsrError(f"{path}: not a loss log (no 'step' header)")
    names = text[0].split(",")
    cols = {n: [] for n in names}
    for i, line in enumerate(text[1:], start=2):
        cells = line.split(",")
        try:
            values = [float(c) for c in cells]
        except ValueError:
            raise LsrError(f"{path}: line {i} is not numbers") from None
        if len(values) != len(names):
            raise LsrError(f"{path}: line {i} has {len(values)} values for {len(names)} columns")
        for n, v in zip(names, values):
            cols[n].append(v)
    cols["step"] = [int(s) for s in cols["step"]]
    # a run shorter than one log window (50 steps) has no row: its per-epoch means stand in (history.json)
    return {"steps": cols, "epoch": RunDir(folder).history().get("epoch", {})}


def write_loss_events(folder: Path, steps: dict, names) -> None:
    """A finished history's per-step losses as TensorBoard event files in ``folder/tb`` (a stacked member's run,
    whose values were logged under the sweep's names); nothing where tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return
    with SummaryWriter(str(Path(folder) / "tb")) as tb:
        for i, st in enumerate(steps.get("step", [])):
            for n in names:
                if n in steps:
                    tb.add_scalar(n, steps[n][i], st)


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
