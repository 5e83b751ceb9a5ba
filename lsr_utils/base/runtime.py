"""Where and how training runs: device, seeding, autocast, the optimiser, torch.compile, the Ctrl-C guard; and the
machine and time every record names (:func:`environment`, :func:`now`)."""
from __future__ import annotations

import contextlib
import datetime as _dt
import platform
import random
import shutil
import signal
import threading

import numpy as np
import torch

from .. import __version__
from .errors import LsrError


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """'auto'/None -> CUDA if available, else CPU. An explicit device that is absent is an error."""
    if spec is None or str(spec) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError):
        raise LsrError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise LsrError(f"--device {spec} was requested but no CUDA GPU is available to this torch "
                           f"({torch.__version__}); use --device cpu (or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise LsrError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise LsrError(f"--device {spec} was requested but MPS is not available; use --device cpu")
    elif dev.type != "cpu":
        raise LsrError(f"unsupported device {spec!r}; use auto, cpu, cuda or cuda:N")
    return dev


def device_name(device: torch.device) -> str:
    """A human name of the hardware: the GPU's model, or the CPU with its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""

    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def autocast(device: torch.device, precision: str):
    """bf16 autocast when ``precision == "bf16"``, else nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86: the instructions oneDNN's bf16 kernels need


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags (Linux: the first ``flags``/``Features`` line of /proc/cpuinfo); None if unknown."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        return None
    return None


def native_bf16(device: torch.device, flags: set[str] | None = None) -> bool | None:
    """Whether ``device`` computes bf16 in hardware: True, False, or None where it cannot be told.

    On a CPU without it (x86 without avx512_bf16/amx_bf16, e.g. any AVX2-only
    CPU) bf16 autocast is emulated and far *slower* than fp32: the kit's
    training step measured 16x slower on a 2-core AVX2 EPYC (benchmarks/RESULTS.md).
    """
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return None
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return None
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "bf16" in flags
    return any(f in flags for f in _BF16_CPU_FLAGS)


def bf16_warning(device: torch.device, precision: str) -> str | None:
    """The warning to print when bf16 is asked for on hardware that only emulates it, else None."""
    if precision != "bf16" or native_bf16(device) is not False:
        return None
    return (f"warning: --precision bf16 on this {device.type.upper()} ({platform.processor() or platform.machine()}), "
            f"which has no bf16 instructions (avx512_bf16/amx_bf16): bf16 is emulated here and about 16x slower than "
            f"fp32. Use --precision fp32 (the default) on this machine.")


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """Losses in full precision: bf16/fp16 outputs of autocast go to fp32; fp32 and fp64 stay as they are."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def adam(params, lr: float, betas, device: torch.device, capturable: bool = False) -> torch.optim.Adam:
    """Adam over the trainable ``params``; fused on CUDA (and capturable, for CUDA graphs, when asked)."""
    params = [p for p in params if p.requires_grad]
    if device.type == "cuda":
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True, capturable=capturable)
    return torch.optim.Adam(params, lr=lr, betas=betas)


def check_compile(device: torch.device) -> None:
    """Refuse ``--compile`` where it cannot work, before anything is trained."""
    if not hasattr(torch, "compile"):
        raise LsrError(f"--compile needs torch.compile, which torch {torch.__version__} lacks; drop --compile")
    if device.type == "cpu" and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise LsrError("--compile on the CPU needs a C++ compiler (g++ or clang++) on PATH; install one or "
                       "drop --compile")
    if device.type == "mps":
        raise LsrError("--compile is not supported on MPS by the kit; drop --compile")


def maybe_compile(module: torch.nn.Module, on: bool, device: torch.device) -> torch.nn.Module:
    """``torch.compile`` a network (forward and backward) when ``on``; the optimiser stays eager."""
    if not on:
        return module
    check_compile(device)
    return torch.compile(module, dynamic=False)


STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s)


class StopRequest:
    """Turns the first Ctrl-C, or a SIGTERM (what ``timeout``, docker, systemd and SLURM send before a kill, and on
    preemption), into a request to stop after the current step; a second one of the same kind acts as before."""

    def __init__(self):
        self.requested = False
        self.signal = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._old[sig] = signal.getsignal(sig)

                def handler(signum, frame, sig=sig):
                    self.requested, self.signal = True, signum
                    signal.signal(sig, self._old[sig])

                signal.signal(sig, handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def terminate_as_interrupt() -> None:
    """At an edge (the lsr command): SIGTERM stops the command as Ctrl-C does (a checkpoint where training, the
    resume command), instead of killing it mid-write."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def environment() -> dict:
    """Versions and hardware, recorded with every run and result."""
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"lsr_version": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cuda_device": dev, "cpu_threads": torch.get_num_threads()}
