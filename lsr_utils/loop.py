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

import torch

from . import __version__
from .errors import Interrupted, LsrError
from .files import atomic_torch_save
from .progress import progress_bar
from .runs import LossLog, RunDir, load_state
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
    loss_log: bool = True           # the per-step losses as losses.csv (and TensorBoard event files where installed)


class Diverged(LsrError):
    """A step produced a non-finite value; ``step``, ``name`` and ``value`` say where."""

    def __init__(self, message: str, step: int, name: str, value: float):
        super().__init__(message)
        self.step, self.name, self.value = step, name, value


class OutOfTime(LsrError):
    """The deadline passed; the run is checkpointed and resumes from there."""


def fit(folder: RunDir, stage, batches, opts: RunOptions | None = None) -> dict:
    """Train ``stage`` (:func:`lsr_utils.stage.build_stage`) for its configuration's epochs over ``batches``,
    resuming from ``folder``'s checkpoint; returns the history. ``opts``: how (progress, checkpoints, ...)."""
    opts = opts or RunOptions()
    cfg, kind, names, device, noise = stage.cfg, stage.kind, stage.names, batches.device, stage.noise
    models, optims, step, epochs = stage.models, stage.optims, stage.step, cfg.epochs
    log_every = opts.log_every
    shuffle = torch.Generator().manual_seed(cfg.seed)
    k = len(names)
    history = {"epoch": {n: [] for n in ("epoch", *names)}, "steps": {n: [] for n in ("step", *names)},
               "seconds": 0.0}
    epoch, pos, epoch_start_state = 0, 0, shuffle.get_state()
    log_window, epoch_sums = [], [0.0] * k  # host-side values already read back: the current log window, epoch sums
    n_batches = len(batches)
    ck = folder.load_checkpoint(kind, epochs=epochs, batches=n_batches, names=names)
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
        log_window, epoch_sums = [list(r) for r in ck["log_window"]], list(ck["epoch_sums"])
        epoch_start_state = ck["shuffle_state"]
        try:
            noise.set_state(ck["noise_state"].to(noise.get_state().device))
            torch.set_rng_state(ck["torch_rng"])
        except (RuntimeError, TypeError, ValueError) as e:
            raise LsrError(f"{folder / 'checkpoint.pt'}: its random-number state does not fit this machine "
                           f"({str(e)[:120]}); the run folder is damaged (pass --fresh to start over)") from None
    writer = LossLog(folder, history["steps"], names, first_step=epoch * n_batches + pos, enabled=opts.loss_log)

    total = epochs * n_batches
    done = epoch * n_batches + pos
    rows = torch.zeros(n_batches, k, device=device, dtype=torch.float64)  # this epoch's values, on the device
    flushed = pos
    eager_flush = device.type == "cpu"  # reading back is free on the CPU
    seconds0, t0 = history.get("seconds", 0.0), time.monotonic()
    last_ckpt = time.monotonic()
    bar = progress_bar(total=total, initial=done, desc=f"{kind} {folder.path.name}", disable=not opts.progress,
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
                epoch_sums[c] += row[c]
            log_window.append(row)
            if len(log_window) == log_every:
                history["steps"]["step"].append(first_step + j)
                for c, n in enumerate(names):
                    history["steps"][n].append(sum(p[c] for p in log_window) / log_every)
                writer.add(first_step + j, {n: history["steps"][n][-1] for n in names})
                bar.set_postfix({n: f"{history['steps'][n][-1]:.4g}" for n in names[:3]}, refresh=False)
                log_window.clear()
        flushed = upto

    def save(ep: int, p: int, start_state: torch.Tensor) -> None:
        history["seconds"] = seconds0 + time.monotonic() - t0
        folder.save_checkpoint({
            "kind": kind, "epoch": ep, "pos": p, "epochs": epochs, "batches": n_batches, "history": history,
            "log_window": [list(r) for r in log_window], "epoch_sums": list(epoch_sums),
            "models": {n: m.state_dict() for n, m in models.items()},
            "optims": {n: o.state_dict() for n, o in optims.items()},
            "shuffle_state": start_state, "noise_state": noise.get_state().cpu(), "torch_rng": torch.get_rng_state()})
        writer.flush()

    stop = StopRequest()
    try:
        with stop:
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
                    if opts.callbacks:
                        for cb in opts.callbacks:
                            cb("step", {"step": done, "epoch": epoch, "pos": i + 1})
                    late = opts.deadline is not None and time.monotonic() > opts.deadline
                    due = (opts.checkpoint_every_steps and done % opts.checkpoint_every_steps == 0) or \
                          (time.monotonic() - last_ckpt > opts.checkpoint_every_s) or stop.requested or late
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
                means = [s / max(n_batches, 1) for s in epoch_sums]
                history["epoch"]["epoch"].append(epoch + 1)
                for n, v in zip(names, means):
                    history["epoch"][n].append(v)
                epoch, pos, flushed = epoch + 1, 0, 0
                epoch_sums = [0.0] * k
                epoch_start_state = shuffle.get_state()
                if epoch in opts.snapshot_epochs:
                    atomic_torch_save(folder / "snapshots" / f"epoch-{epoch:04d}.pt",
                                      {"lsr_version": __version__, "epoch": epoch,
                                       **{n: m.state_dict() for n, m in models.items()}})
                save(epoch, 0, epoch_start_state)
                last_ckpt = time.monotonic()
                if opts.callbacks:
                    for cb in opts.callbacks:
                        cb("epoch", {"epoch": epoch, "means": dict(zip(names, means))})
                if stop.requested:
                    raise KeyboardInterrupt
                if opts.deadline is not None and time.monotonic() > opts.deadline and epoch < epochs:
                    raise OutOfTime(f"time is up after epoch {epoch} of {epochs}; progress is saved in "
                                    f"{folder / 'checkpoint.pt'}")
    except KeyboardInterrupt:
        bar.close()
        import signal as _signal

        how = "stopped by SIGTERM" if stop.signal == getattr(_signal, "SIGTERM", -1) else \
            "interrupted"
        raise Interrupted(f"{how}; progress is saved in {folder / 'checkpoint.pt'}. Run the same command again to "
                          f"resume.") from None
    finally:
        bar.close()
        writer.close()
    history["seconds"] = seconds0 + time.monotonic() - t0
    writer.flush()
    return history


def finite_weights(models: dict) -> str | None:
    """The name of the first model holding a non-finite parameter or buffer, else None."""
    for name, m in models.items():
        for t in list(m.parameters()) + list(m.buffers()):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return name
    return None
