"""Units of work and the executors that run them: in this process, or as submitit jobs (SLURM or this machine).

A :class:`Unit` is one independent piece of a plan (a stacked sweep group, a
training run, an evaluation, a notebook): a module-level function with
plain arguments, so that it can be pickled into a job, and the names of the
units it depends on. Every unit function returns a small dict ``{"status":
"done" | "out_of_time" | "error", "message": ...}`` and never raises for a
problem the user can fix, so the same function reports the same way in this
process and in a job.

Executors run units in dependency order (a unit once the units it depends
on are done), and report an :class:`Outcome` per unit:

* :class:`LocalExecutor` runs them here, one after another;
* :class:`SubmititExecutor` submits each unit through submitit
  (https://github.com/facebookincubator/submitit) as soon as its
  dependencies are done: to SLURM (partition, time and GPU options passed
  through) or to this machine, ``--jobs`` at a time (default one per GPU; on
  a CPU, each job gets its share of the cores). A failed job's log is named;
  units that depend on it are skipped; a rerun redoes only what did not
  finish (every unit skips finished work itself).

No scheduling is done here beyond holding a unit until its dependencies are
done and a slot is free: the engine (processes, logs, SLURM) is submitit.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import Interrupted, LsrError
from ..training.loop import OutOfTime


@dataclass
class Unit:
    name: str
    fn: Callable[..., dict]
    args: tuple = ()
    deps: tuple[str, ...] = ()
    cost_s: float = 0.0           # estimated seconds on the planning device
    gpu: bool = False             # wants a GPU of its own (submitit)


@dataclass
class Outcome:
    name: str
    status: str                   # done | out_of_time | error | skipped
    message: str = ""
    log: str | None = None
    seconds: float = 0.0
    value: Any = field(default=None, repr=False)


def call(fn: Callable[..., dict], *args) -> dict:
    """Run a unit function, turning a user-fixable problem into a reported error (never a traceback)."""

    try:
        out = fn(*args)
    except OutOfTime as e:
        return {"status": "out_of_time", "message": str(e)}
    except Interrupted:
        raise  # Ctrl-C stops the whole plan, not only this unit
    except LsrError as e:
        return {"status": "error", "message": str(e)}
    return out if isinstance(out, dict) else {"status": "done", "value": out}


def _check_deps(units: list[Unit]):
    """Every dependency names a unit of the plan (else no order can run them)."""
    names = {u.name for u in units}
    for u in units:
        missing = [d for d in u.deps if d not in names]
        if missing:
            raise LsrError(f"unit {u.name} depends on units not in the plan: {missing}")
    return names


class LocalExecutor:
    """Runs the units in this process, in dependency order."""

    name = "local"

    def run(self, units: list[Unit], say: Callable[[str], None] = print,
            deadline: float | None = None, on_outcome: Callable[[dict], None] | None = None) -> dict[str, Outcome]:
        """``deadline`` (``time.time()``, from ``--budget``): a training unit checkpoints and stops when it passes
        (its own deadline); any unit not yet started when it has passed is not started, so an evaluation or a
        notebook never runs past the budget either. ``on_outcome(outcomes)``: called after each unit that ran
        (so that a record of what is done survives a killed process)."""
        _check_deps(units)
        outcomes: dict[str, Outcome] = {}
        pending = list(units)
        while pending:
            ready = [u for u in pending if all(d in outcomes for d in u.deps)]
            for u in ready:
                if deadline is not None and time.time() > deadline:
                    for rest in pending:
                        outcomes[rest.name] = Outcome(rest.name, "skipped", "time is up")
                    return outcomes
                pending.remove(u)
                bad = [d for d in u.deps if outcomes[d].status != "done"]
                if bad:
                    outcomes[u.name] = Outcome(u.name, "skipped", f"needs {', '.join(bad)}")
                    continue
                t0 = time.monotonic()
                say(f"[{u.name}] running")
                res = call(u.fn, *u.args)
                o = outcomes[u.name] = Outcome(u.name, res.get("status", "done"), res.get("message", ""),
                                               seconds=time.monotonic() - t0, value=res.get("value"))
                say(f"[{u.name}] {o.status.replace('_', ' ')} after {o.seconds:.0f} s"
                    + (f": {o.message}" if o.message else ""))
                if on_outcome:
                    on_outcome(outcomes)
                if outcomes[u.name].status == "out_of_time":
                    for rest in pending:
                        outcomes[rest.name] = Outcome(rest.name, "skipped", "time is up")
                    return outcomes
        return outcomes


def _children(pid: int) -> list[int] | None:
    """The child processes of ``pid`` (Linux: /proc), or None where they cannot be listed."""
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return None if not Path("/proc/self").is_dir() else []


@contextlib.contextmanager
def _jobs_hear_sigint():
    """While a job is started, SIGINT is not ignored here, so that the job does not inherit "ignore SIGINT".

    A program started in the background by a script ignores SIGINT, and so would every job it submits; the jobs
    could then not be stopped at a checkpoint (the executor stops a local job with SIGINT). Only the setting
    "ignore" is inherited (a started program gets the default for a signal its parent handles), so for the
    moment of the submission it is replaced by a handler that does nothing, and put back.
    """
    lift = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if lift:
        signal.signal(signal.SIGINT, lambda signum, frame: None)  # still ignored here; the default in the job
    try:
        yield
    finally:
        if lift:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _job_main(fn, args, env: dict, threads: int | None = None) -> dict:
    """What a submitit job runs: the unit function, with the environment the plan set (``env``, for the kernels
    of the notebooks the job runs) and, when several jobs share this machine's CPU, its number of torch threads
    (``threads``, also given to those kernels as ``OMP_NUM_THREADS``)."""

    os.environ.update(env)   # a job is a process of its own: its start is an edge
    if threads:
        import torch

        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    return call(fn, *args)


class SubmititExecutor:
    """Submits units as submitit jobs: to SLURM, or to this machine (``jobs`` at a time; default one per GPU)."""

    name = "submitit"

    def __init__(self, cluster: str = "local", folder: str | Path = "runs/submitit", partition: str | None = None,
                 time_min: int | None = None, gpus: int | None = None, extra: dict | None = None,
                 jobs: int | None = None):
        try:
            import submitit
        except ImportError:
            raise LsrError("--executor submitit needs the submitit package: pip install submitit "
                           "(or pip install 'lsr-kit[cluster]'); nothing was run") from None
        if cluster == "slurm" and shutil.which("sbatch") is None:
            raise LsrError("--cluster slurm: no SLURM here (sbatch is not on PATH); run on a SLURM login node, or use "
                           "--cluster local; nothing was run")
        if cluster not in ("local", "slurm"):
            raise LsrError(f"--cluster must be local or slurm, got {cluster!r}")
        if jobs is not None and (cluster != "local" or int(jobs) < 1):
            raise LsrError(f"--jobs sets how many jobs run at once on this machine: a whole number of at least 1, "
                           f"with --cluster local (got {jobs!r} with --cluster {cluster}); on SLURM the cluster "
                           f"decides")
        self.jobs = None if jobs is None else int(jobs)
        self.submitit, self.cluster, self.folder = submitit, cluster, Path(folder)
        self.partition, self.time_min, self.gpus, self.extra = partition, time_min, gpus, dict(extra or {})

    def _executor(self, gpu_index: int | None):
        s = self.submitit
        timeout = self.time_min or 24 * 60
        if self.cluster == "local":
            ex = s.LocalExecutor(folder=self.folder / "%j")
            params = {"timeout_min": timeout}
            if gpu_index is not None:
                params.update(gpus_per_node=1, visible_gpus=(gpu_index,))
            ex.update_parameters(**params)
            return ex
        ex = s.AutoExecutor(folder=self.folder / "%j", cluster="slurm")
        params = {"timeout_min": timeout, "slurm_additional_parameters": self.extra}
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        ex.update_parameters(**params)
        return ex

    def _cancel(self, running: dict, say: Callable[[str], None], wait_s: float = 120.0) -> None:
        """Stop the jobs in flight, none left running behind the command.

        A SLURM job is cancelled (scancel). A local job's program (the task its submitit controller started) is
        sent SIGINT itself, so that a training run checkpoints and stops as on Ctrl-C, and is waited for; a task
        the controller starts later (a job submitted a moment ago) is signalled when it appears. Cancelling the
        controller instead would kill the task a second after, and miss a task it had not yet started. Where the
        tasks cannot be listed (no /proc), the controller is cancelled.
        """
        for u, job, _ in running.values():
            say(f"[{u.name}] stopping job {job.job_id}; rerun the same command to resume it")
        if self.cluster != "local":
            for _, job, _ in running.values():
                try:
                    job.cancel(check=False)
                except Exception as e:  # stopping the others matters more than this one's message
                    say(f"could not cancel job {job.job_id} ({e}); its log: {job.paths.stderr}")
            return
        signalled: set = set()  # task pids signalled (and controllers cancelled, by job id)
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            alive = [job for _, job, _ in running.values() if not job.done()]
            if not alive:
                return
            for job in alive:
                tasks = _children(int(job.job_id))
                if tasks is None:  # no /proc: cancel the controller, once
                    if job.job_id not in signalled:
                        job.cancel(check=False)
                        signalled.add(job.job_id)
                    continue
                for pid in set(tasks) - signalled:
                    try:
                        os.kill(pid, signal.SIGINT)
                    except OSError:
                        pass
                    signalled.add(pid)
            time.sleep(0.2)
        for _, job, _ in running.values():
            if not job.done():
                job.cancel(check=False)

    def run(self, units: list[Unit], say: Callable[[str], None] = print, env: dict | None = None,
            deadline: float | None = None, on_outcome: Callable[[dict], None] | None = None,
            poll_s: float = 0.5) -> dict[str, Outcome]:
        """Submit each unit as soon as its dependencies are done, keeping at most ``slots`` jobs in flight.

        On this machine (``cluster="local"``) the slots are ``jobs`` (default: one per GPU, or one without a GPU);
        each job gets a GPU of its own when there are GPUs, and ``cores // jobs`` torch threads on a CPU-only
        machine (so that two jobs on two cores do not fight over the same cores). On SLURM every ready unit is
        submitted. Among ready units the costliest (``Unit.cost_s``, the plan's estimate) go first, so that a
        long unit does not end up alone at the end.

        ``deadline`` (``time.time()``, from ``--budget``), as for :meth:`LocalExecutor.run`: a training job
        checkpoints and stops at it (the plan gives each unit the deadline), and no job is submitted once it has
        passed or once a job came back out of time; the units left are marked skipped, "time is up"."""
        import torch

        _check_deps(units)
        local = self.cluster == "local"
        n_gpus = torch.cuda.device_count() if local else 0
        slots = (self.jobs or max(1, n_gpus)) if local else max(1, len(units))
        env = dict(env or {})
        threads = max(1, (os.cpu_count() or 1) // slots) if local and not n_gpus and slots > 1 else None
        outcomes: dict[str, Outcome] = {}
        pending = list(units)
        running: dict[int, tuple] = {}  # slot -> (unit, job, start)
        try:
            while pending or running:
                for u in list(pending):
                    if all(d in outcomes for d in u.deps):
                        bad = [d for d in u.deps if outcomes[d].status != "done"]
                        if bad:
                            pending.remove(u)
                            outcomes[u.name] = Outcome(u.name, "skipped", f"needs {', '.join(bad)}")
                late = any(o.status == "out_of_time" for o in outcomes.values())
                if late or (deadline is not None and time.time() > deadline):
                    for rest in pending:
                        outcomes[rest.name] = Outcome(rest.name, "skipped", "time is up")
                    pending = []
                ready = sorted((u for u in pending if all(d in outcomes for d in u.deps)), key=lambda u: -u.cost_s)
                for u in ready:
                    free = [k for k in range(slots) if k not in running]
                    if not free:
                        break
                    k = free[0]
                    ex = self._executor(k % n_gpus if n_gpus and u.gpu else None)
                    ex.update_parameters(name=f"lsr-{u.name}"[:60])
                    with _jobs_hear_sigint():
                        job = ex.submit(_job_main, u.fn, u.args, env, threads)
                    pending.remove(u)
                    running[k] = (u, job, time.monotonic())
                    say(f"[{u.name}] submitted as job {job.job_id} ({self.cluster})")
                if not running:
                    break  # nothing in flight and nothing ready: what is left waits on units not in this plan
                finished = [k for k, (_, job, _) in running.items() if job.done()]
                if not finished:
                    time.sleep(poll_s)
                    continue
                for k in finished:
                    u, job, t0 = running.pop(k)
                    log = str(job.paths.stderr)
                    try:
                        res = job.result()
                        outcomes[u.name] = Outcome(u.name, res.get("status", "done"), res.get("message", ""), log,
                                                   time.monotonic() - t0, res.get("value"))
                    except Exception as e:  # the job crashed (killed, out of memory, ...): its log says why
                        last = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
                        outcomes[u.name] = Outcome(u.name, "error", f"job {job.job_id} failed ({last})", log,
                                                   time.monotonic() - t0)
                    o = outcomes[u.name]
                    say(f"[{u.name}] {o.status.replace('_', ' ')} after {o.seconds:.0f} s"
                        + (f": {o.message}" if o.message else ""))
                    if on_outcome:
                        on_outcome(outcomes)
        except BaseException:  # Ctrl-C (or any crash here): the jobs in flight stop too, at a checkpoint
            self._cancel(running, say)
            raise
        return outcomes


def make_executor(kind: str = "local", *, cluster: str = "local", folder: str | Path = "runs/submitit",
                  partition: str | None = None, time: int | None = None, gpus: int | None = None,
                  extra: dict | None = None, jobs: int | None = None):
    """The executor named by ``--executor`` (checked now, before anything runs)."""
    if kind == "local":
        if cluster != "local" or partition or gpus or extra or jobs is not None:
            raise LsrError("--cluster, --jobs, --partition, --gpus and --slurm apply to --executor submitit")
        return LocalExecutor()
    if kind == "submitit":
        return SubmititExecutor(cluster, folder, partition, time, gpus, extra, jobs)
    raise LsrError(f"unknown executor {kind!r}; valid: local, submitit")


def describe_failure(o: Outcome) -> str:
    return f"{o.name}: {o.status} ({o.message})" + (f"; log: {o.log}" if o.log else "")

