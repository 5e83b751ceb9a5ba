"""The one training loop, shared by the VAE, the LSR-GAN, their stacked sweeps and the classifier.

:func:`fit` runs ``step(batch, global_step)`` over the epochs of a run and

* draws batches from the training set held on the device (:class:`~lsr_utils.data.DeviceBatches`),
  shuffled by a CPU generator whose state is checkpointed;
* writes each step's values (losses) into a buffer on the device and reads
  them back in bulk, at the end of each epoch (on the CPU also every
  ``log_every`` steps): no host synchronisation inside a GPU epoch;
* stops at the first non-finite value, naming the step and the value, before
  any checkpoint holds weights that came after it (:class:`Diverged`);
* writes a resumable checkpoint at the end of every epoch, every
  ``checkpoint_every_s`` seconds, on Ctrl-C or SIGTERM (after the current
  step) and when a ``deadline`` passes, so a resumed run ends with the same
  weights as an uninterrupted one;
* keeps copies of the weights after the epochs in ``snapshot_epochs``
  (``snapshots/epoch-NNNN.pt``), for convergence figures;
* shows a progress bar (a widget in notebooks).

Where a run stands between two steps is a :class:`TrainingState`; its
:meth:`~TrainingState.save` and :meth:`~TrainingState.load` are the two halves
of the checkpoint format documented in :mod:`lsr_utils.storage.runs`.

History layout: ``{"epoch": {"epoch": [1, 2, ...], name: [epoch means]},
"steps": {"step": [50, 100, ...], name: [means over each log_every steps]},
"seconds": training time}``.
"""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass

import torch

from .. import __version__
from ..base.errors import Interrupted, LsrError
from ..base.files import atomic_torch_save
from ..base.progress import progress_bar
from ..base.runtime import StopRequest
from ..storage.runs import LossLog, RunDir, load_state


@dataclass
class RunOptions:
    """How a run trains (never what): progress, checkpoints, logging, memory format, compile, CUDA graphs, time."""

    progress: bool = True
    checkpoint_every_s: float = 60.0
    checkpoint_every_steps: int | None = None
    log_every: int = 50
    callbacks: list | None = None   # cb(event, info) after every "step" and "epoch" (the tests' crash points)
    channels_last: bool = True
    compile: bool = False
    graphs: bool = False            # capture each step as a CUDA graph (CUDA only; lsr_utils.speed.captured)
    snapshot_epochs: tuple = ()     # keep the weights after these epochs (convergence figures)
    deadline: float | None = None   # time.monotonic() after which the run checkpoints and stops
    wait: bool = False              # wait for a run folder another process is training
    stack: bool | None = None       # a sweep's members as one stacked network (None: on CUDA, where it pays)
    loss_log: bool = True           # the per-step losses as losses.csv (and TensorBoard event files where installed)

    def notify(self, event: str, info: dict) -> None:
        for cb in self.callbacks or ():
            cb(event, info)


class Diverged(LsrError):
    """A step produced a non-finite value; ``step``, ``name`` and ``value`` say where."""

    def __init__(self, message: str, step: int, name: str, value: float):
        super().__init__(message)
        self.step, self.name, self.value = step, name, value


class OutOfTime(LsrError):
    """The deadline passed; the run is checkpointed and resumes from there."""


class TrainingState:
    """Where a run's training stands: the epoch and the batch within it, the history, the values read back since the
    last logged step, this epoch's sums, the shuffling generator as this epoch began, and this epoch's values still
    on the device. With the stage's networks, optimisers and noise, it is what a checkpoint holds."""

    def __init__(self, stage, n_batches: int, device: torch.device, log_every: int = 50):
        self.stage, self.n_batches, self.log_every, self.names = stage, n_batches, log_every, stage.names
        self.epochs = stage.cfg.epochs
        self.shuffle = torch.Generator().manual_seed(stage.cfg.seed)
        self.epoch, self.pos, self.epoch_start = 0, 0, self.shuffle.get_state()
        self.history = {"epoch": {n: [] for n in ("epoch", *self.names)},
                        "steps": {n: [] for n in ("step", *self.names)}, "seconds": 0.0}
        self.log_window, self.epoch_sums = [], [0.0] * len(self.names)
        self.rows = torch.zeros(n_batches, len(self.names), device=device, dtype=torch.float64)
        self.flushed, self.eager = 0, device.type == "cpu"  # reading back is free on the CPU
        self.on_log = lambda step, values: None

    @property
    def done(self) -> int:
        """Steps taken so far."""
        return self.epoch * self.n_batches + self.pos

    def load(self, folder: RunDir) -> None:
        """Resume from ``folder``'s checkpoint, where it has one (checked against this run first)."""
        ck = folder.load_checkpoint(self.stage.kind, epochs=self.epochs, batches=self.n_batches, names=self.names)
        if ck is None:
            return
        where = folder / "checkpoint.pt"
        for name, m in self.stage.models.items():
            load_state(m, ck["models"].get(name), where, name)
        for name, o in self.stage.optims.items():
            try:
                o.load_state_dict(ck["optims"][name])
            except (ValueError, KeyError, TypeError, RuntimeError) as e:
                raise LsrError(f"{where}: the saved {name} optimiser state does not fit "
                               f"({type(e).__name__}: {str(e)[:200]})") from None
        self.epoch, self.pos, self.history = ck["epoch"], ck["pos"], ck["history"]
        self.log_window, self.epoch_sums = [list(r) for r in ck["log_window"]], list(ck["epoch_sums"])
        self.epoch_start, self.flushed = ck["shuffle_state"], ck["pos"]
        noise = self.stage.noise
        try:
            noise.set_state(ck["noise_state"].to(noise.get_state().device))
            torch.set_rng_state(ck["torch_rng"])
        except (RuntimeError, TypeError, ValueError) as e:
            raise LsrError(f"{where}: its random-number state does not fit this machine ({str(e)[:120]}); the run "
                           f"folder is damaged (pass --fresh to start over)") from None

    def save(self, folder: RunDir, seconds: float) -> None:
        """The checkpoint of this state (format: lsr_utils.storage.runs), after reading back what is on the device."""
        self.flush(self.pos)
        self.history["seconds"] = seconds
        folder.save_checkpoint({
            "kind": self.stage.kind, "epoch": self.epoch, "pos": self.pos, "epochs": self.epochs,
            "batches": self.n_batches, "history": self.history, "log_window": [list(r) for r in self.log_window],
            "epoch_sums": list(self.epoch_sums), "models": {n: m.state_dict() for n, m in self.stage.models.items()},
            "optims": {n: o.state_dict() for n, o in self.stage.optims.items()}, "shuffle_state": self.epoch_start,
            "noise_state": self.stage.noise.get_state().cpu(), "torch_rng": torch.get_rng_state()})

    def permutation(self, batches) -> torch.Tensor:
        """This epoch's order of the training images (the same on resume: from the state at the epoch's start)."""
        self.shuffle.set_state(self.epoch_start)
        return batches.permutation(self.shuffle)

    def record(self, values: torch.Tensor) -> None:
        """Keep the values of the step just taken (on the device), and move on one batch."""
        self.rows[self.pos].copy_(values)
        self.pos += 1
        if self.eager and self.pos - self.flushed >= self.log_every:
            self.flush(self.pos)

    def flush(self, upto: int) -> None:
        """Read back this epoch's values up to batch ``upto``, check them, add them to the sums and log windows."""
        if upto <= self.flushed:
            return
        host = self.rows[self.flushed:upto].cpu()
        first = self.epoch * self.n_batches + self.flushed + 1
        bad = ~torch.isfinite(host)
        if bool(bad.any()):
            r, c = (int(v) for v in torch.nonzero(bad)[0])
            raise Diverged(f"training stopped at step {first + r} (epoch {self.epoch + 1}): {self.names[c]} is "
                           f"{float(host[r, c])}", first + r, self.names[c], float(host[r, c]))
        steps = self.history["steps"]
        for j, row in enumerate(host.tolist()):
            for c in range(len(row)):
                self.epoch_sums[c] += row[c]
            self.log_window.append(row)
            if len(self.log_window) == self.log_every:
                steps["step"].append(first + j)
                for c, n in enumerate(self.names):
                    steps[n].append(sum(p[c] for p in self.log_window) / self.log_every)
                self.on_log(first + j, {n: steps[n][-1] for n in self.names})
                self.log_window.clear()
        self.flushed = upto

    def end_epoch(self) -> dict:
        """Close this epoch: its means into the history; the next one starts. Returns the means."""
        self.flush(self.n_batches)
        means = dict(zip(self.names, (s / max(self.n_batches, 1) for s in self.epoch_sums)))
        self.history["epoch"]["epoch"].append(self.epoch + 1)
        for n, v in means.items():
            self.history["epoch"][n].append(v)
        self.epoch, self.pos, self.flushed = self.epoch + 1, 0, 0
        self.epoch_sums = [0.0] * len(self.names)
        self.epoch_start = self.shuffle.get_state()
        return means


def fit(folder: RunDir, stage, batches, opts: RunOptions | None = None) -> dict:
    """Train ``stage`` (:func:`lsr_utils.method.stage.build_stage`) for its configuration's epochs over ``batches``,
    resuming from ``folder``'s checkpoint; returns the history. ``opts``: how (progress, checkpoints, ...)."""
    opts = opts or RunOptions()
    state = TrainingState(stage, len(batches), batches.device, opts.log_every)
    state.load(folder)
    log = LossLog(folder, state.history["steps"], stage.names, first_step=state.done, enabled=opts.loss_log)
    bar = progress_bar(total=state.epochs * len(batches), initial=state.done, desc=f"{stage.kind} {folder.path.name}",
                       disable=not opts.progress, unit="step")
    state.on_log = lambda step, values: (log.add(step, values), bar.set_postfix(
        {n: f"{v:.4g}" for n, v in list(values.items())[:3]}, refresh=False))
    clock, stop = Clock(opts, state.history.get("seconds", 0.0)), StopRequest()

    def checkpoint() -> None:
        state.save(folder, clock.seconds())
        log.flush()
        clock.last = time.monotonic()

    try:
        with stop:
            while state.epoch < state.epochs:
                perm = state.permutation(batches)
                while state.pos < len(batches):
                    for m in stage.models.values():
                        m.train()
                    state.record(stage.step(batches.batch(perm, state.pos), state.done))
                    bar.update(1)
                    opts.notify("step", {"step": state.done, "epoch": state.epoch, "pos": state.pos})
                    late, within = clock.late(), state.pos < len(batches)
                    if within and (late or stop.requested or clock.due(state.done)):
                        checkpoint()
                    if stop.requested:
                        raise KeyboardInterrupt
                    if late and within:
                        raise OutOfTime(f"time is up after step {state.done} of {state.epochs * len(batches)}; "
                                        f"progress is saved in {folder / 'checkpoint.pt'}")
                means = state.end_epoch()
                if state.epoch in opts.snapshot_epochs:
                    atomic_torch_save(folder / "snapshots" / f"epoch-{state.epoch:04d}.pt",
                                      {"lsr_version": __version__, "epoch": state.epoch,
                                       **{n: m.state_dict() for n, m in stage.models.items()}})
                checkpoint()
                opts.notify("epoch", {"epoch": state.epoch, "means": means})
                if stop.requested:
                    raise KeyboardInterrupt
                if clock.late() and state.epoch < state.epochs:
                    raise OutOfTime(f"time is up after epoch {state.epoch} of {state.epochs}; progress is saved in "
                                    f"{folder / 'checkpoint.pt'}")
    except KeyboardInterrupt:
        how = "stopped by SIGTERM" if stop.signal == getattr(signal, "SIGTERM", -1) else "interrupted"
        raise Interrupted(f"{how}; progress is saved in {folder / 'checkpoint.pt'}. Run the same command again to "
                          f"resume.") from None
    finally:
        bar.close()
        log.close()
    state.history["seconds"] = clock.seconds()
    log.flush()
    return state.history


class Clock:
    """How long a run has trained (its earlier sittings included), and when it checkpoints or stops (RunOptions)."""

    def __init__(self, opts: RunOptions, seconds_before: float):
        self.opts, self.before, self.t0 = opts, seconds_before, time.monotonic()
        self.last = self.t0

    def seconds(self) -> float:
        return self.before + time.monotonic() - self.t0

    def late(self) -> bool:
        return self.opts.deadline is not None and time.monotonic() > self.opts.deadline

    def due(self, done: int) -> bool:
        every = self.opts.checkpoint_every_steps
        return bool(every and done % every == 0) or time.monotonic() - self.last > self.opts.checkpoint_every_s


def first_nonfinite(models: dict) -> str | None:
    """The name of the first model holding a non-finite parameter or buffer, else None."""
    for name, m in models.items():
        for t in list(m.parameters()) + list(m.buffers()):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return name
    return None
