"""The one training loop, shared by the VAE, the LSR-GAN, their stacked sweeps and the classifier.

:func:`fit` runs ``step(batch, global_step)`` over the epochs of a run and

* draws batches from the training set held on the device (:class:`~lsr_utils.data.DeviceBatches`),
  shuffled by a CPU generator whose state is checkpointed;
* writes each step's values (losses) into a buffer on the device and reads
  them back in bulk, at the end of each epoch (on the CPU also every
  ``log_every`` steps): no host synchronisation inside a GPU epoch;
* stops at the first non-finite value, naming the step and the value, before
  any checkpoint holds weights that came after it (:class:`Diverged`);
* writes a resumable checkpoint (format: :mod:`lsr_utils.runs`) at the end of
  every epoch, every ``checkpoint_every_s`` seconds, on Ctrl-C (after the
  current step) and when a ``deadline`` passes, so a resumed run ends with the
  same weights as an uninterrupted one;
* keeps copies of the weights after the epochs in ``snapshot_epochs``
  (``snapshots/epoch-NNNN.pt``), for convergence figures;
* shows a progress bar (a widget in notebooks).

History layout: ``{"epoch": {"epoch": [1, 2, ...], name: [epoch means]},
"steps": {"step": [50, 100, ...], name: [means over each log_every steps]},
"seconds": training time}``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import __version__
from .errors import Interrupted, LsrError
from .files import atomic_torch_save
from .progress import progress_bar
from .runs import RunDir, load_state
from .runtime import StopRequest


@dataclass
class RunOptions:
    """How a run trains (never what): progress, checkpoints, logging, memory format, compile, CUDA graphs, time."""

    progress: bool = True
    checkpoint_every_s: float = 60.0
    checkpoint_every_steps: int | None = None
    log_every: int = 50
    callbacks: list | None = None
    channels_last: bool = True
    compile: bool = False
    graphs: bool = False            # capture each step as a CUDA graph (CUDA only; lsr_utils.steps.CapturedStep)
    snapshot_epochs: tuple = ()     # keep the weights after these epochs (convergence figures)
    deadline: float | None = None   # time.monotonic() after which the run checkpoints and stops
    wait: bool = False              # wait for a run folder another process is training
    stack: bool | None = None       # a sweep's members as one stacked network (None: on CUDA, where it pays)


class Diverged(LsrError):
    """A step produced a non-finite value; ``step``, ``name`` and ``value`` say where."""

    def __init__(self, message: str, step: int, name: str, value: float):
        super().__init__(message)
        self.step, self.name, self.value = step, name, value


class OutOfTime(LsrError):
    """The deadline passed; the run is checkpointed and resumes from there."""


def fit(folder: RunDir, *, kind: str, epochs: int, seed: int, models: dict, optims: dict, step: Callable,
        names: tuple[str, ...], batches, device: torch.device, noise: torch.Generator, progress: bool = True,
        checkpoint_every_s: float = 60.0, checkpoint_every_steps: int | None = None, log_every: int = 50,
        callbacks: list | None = None, snapshot_epochs=(), deadline: float | None = None,
        bar_names: int = 3) -> dict:
    """Train ``models`` with ``step`` for ``epochs``, resuming from ``folder``'s checkpoint; returns the history."""
    shuffle = torch.Generator().manual_seed(seed)
    k = len(names)
    history = {"epoch": {n: [] for n in ("epoch", *names)}, "steps": {n: [] for n in ("step", *names)},
               "seconds": 0.0}
    epoch, pos, epoch_start_state = 0, 0, shuffle.get_state()
    ck = folder.load_checkpoint(kind)
    if ck is not None:
        for name, m in models.items():
            load_state(m, ck["models"].get(name), folder / "checkpoint.pt", name)
        for name, o in optims.items():
            try:
                o.load_state_dict(ck["optims"][name])
            except (ValueError, KeyError, TypeError, RuntimeError) as e:
                raise LsrError(f"{folder / 'checkpoint.pt'}: the saved {name} optimiser state does not fit "
                               f"({type(e).__name__}: {str(e)[:200]})") from None
        epoch, pos, history = ck["epoch"], ck["pos"], ck["history"]
        epoch_start_state = ck["shuffle_state"]
        noise.set_state(ck["noise_state"].to(noise.get_state().device))
        torch.set_rng_state(ck["torch_rng"])

    n_batches = len(batches)
    total = epochs * n_batches
    done = epoch * n_batches + pos
    # host-side bookkeeping of values already read back from the device
    pending = [list(r) for r in history.pop("pending_rows", [])]  # rows of the current log window
    ep_sum = list(history.pop("epoch_partial", [0.0] * k))        # sums over the current epoch so far
    rows = torch.zeros(n_batches, k, device=device, dtype=torch.float64)  # this epoch's values, on the device
    flushed = pos
    eager_flush = device.type == "cpu"  # reading back is free on the CPU
    seconds0, t0 = history.get("seconds", 0.0), time.monotonic()
    last_ckpt = time.monotonic()
    bar = progress_bar(total=total, initial=done, desc=f"{kind} {folder.path.name}", disable=not progress,
                       unit="step")

    def flush(upto: int) -> None:
        """Read back rows[flushed:upto], check them, add them to the epoch sums and the log windows."""
        nonlocal flushed
        if upto <= flushed:
            return
        host = rows[flushed:upto].cpu()
        first_step = epoch * n_batches + flushed + 1
        bad = ~torch.isfinite(host)
        if bool(bad.any()):
            r, c = (int(v) for v in torch.nonzero(bad)[0])
            raise Diverged(f"training stopped at step {first_step + r} (epoch {epoch + 1}): {names[c]} is "
                           f"{float(host[r, c])}", first_step + r, names[c], float(host[r, c]))
        for j, row in enumerate(host.tolist()):
            for c in range(k):
                ep_sum[c] += row[c]
            pending.append(row)
            if len(pending) == log_every:
                history["steps"]["step"].append(first_step + j)
                for c, n in enumerate(names):
                    history["steps"][n].append(sum(p[c] for p in pending) / log_every)
                bar.set_postfix({n: f"{history['steps'][n][-1]:.4g}" for n in names[:bar_names]}, refresh=False)
                pending.clear()
        flushed = upto

    def save(ep: int, p: int, start_state: torch.Tensor) -> None:
        history["seconds"] = seconds0 + time.monotonic() - t0
        folder.save_checkpoint({
            "kind": kind, "epoch": ep, "pos": p,
            "history": {**history, "pending_rows": [list(r) for r in pending], "epoch_partial": list(ep_sum)},
            "models": {n: m.state_dict() for n, m in models.items()},
            "optims": {n: o.state_dict() for n, o in optims.items()},
            "shuffle_state": start_state, "noise_state": noise.get_state().cpu(), "torch_rng": torch.get_rng_state()})

    try:
        with StopRequest() as stop:
            while epoch < epochs:
                shuffle.set_state(epoch_start_state)
                perm = batches.permutation(shuffle)
                for i in range(pos, n_batches):
                    for m in models.values():
                        m.train()
                    rows[i].copy_(step(batches.batch(perm, i), done))
                    done += 1
                    bar.update(1)
                    if eager_flush and (i + 1 - flushed) >= log_every:
                        flush(i + 1)
                    if callbacks:
                        for cb in callbacks:
                            cb("step", {"step": done, "epoch": epoch, "pos": i + 1})
                    late = deadline is not None and time.monotonic() > deadline
                    due = (checkpoint_every_steps and done % checkpoint_every_steps == 0) or \
                          (time.monotonic() - last_ckpt > checkpoint_every_s) or stop.requested or late
                    if due and i + 1 < n_batches:
                        flush(i + 1)
                        save(epoch, i + 1, epoch_start_state)
                        last_ckpt = time.monotonic()
                    if stop.requested:
                        raise KeyboardInterrupt
                    if late and i + 1 < n_batches:
                        raise OutOfTime(f"time is up after step {done} of {total}; progress is saved in "
                                        f"{folder / 'checkpoint.pt'}")
                flush(n_batches)
                means = [s / max(n_batches, 1) for s in ep_sum]
                history["epoch"]["epoch"].append(epoch + 1)
                for n, v in zip(names, means):
                    history["epoch"][n].append(v)
                epoch, pos, flushed = epoch + 1, 0, 0
                ep_sum = [0.0] * k
                epoch_start_state = shuffle.get_state()
                if epoch in snapshot_epochs:
                    atomic_torch_save(folder / "snapshots" / f"epoch-{epoch:04d}.pt",
                                      {"lsr_version": __version__, "epoch": epoch,
                                       **{n: m.state_dict() for n, m in models.items()}})
                save(epoch, 0, epoch_start_state)
                last_ckpt = time.monotonic()
                if callbacks:
                    for cb in callbacks:
                        cb("epoch", {"epoch": epoch, "means": dict(zip(names, means))})
                if stop.requested:
                    raise KeyboardInterrupt
                if deadline is not None and time.monotonic() > deadline and epoch < epochs:
                    raise OutOfTime(f"time is up after epoch {epoch} of {epochs}; progress is saved in "
                                    f"{folder / 'checkpoint.pt'}")
    except KeyboardInterrupt:
        bar.close()
        raise Interrupted(f"interrupted; progress is saved in {folder / 'checkpoint.pt'}. Run the same command "
                          f"again to resume.") from None
    finally:
        bar.close()
    history["seconds"] = seconds0 + time.monotonic() - t0
    return history


def finite_weights(models: dict) -> str | None:
    """The name of the first model holding a non-finite parameter or buffer, else None."""
    for name, m in models.items():
        for t in list(m.parameters()) + list(m.buffers()):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return name
    return None


def snapshot_path(folder: str | Path, epoch: int) -> Path:
    return Path(folder) / "snapshots" / f"epoch-{epoch:04d}.pt"

