"""``lsr selfcheck``: the fast training paths do the plain path's math, on this machine.

Two comparisons, each step by step from the same seed, weights, batches and
noise, stopping at the first step whose losses or weights differ:

1. **captured vs eager**: the VAE and LSR-GAN steps replayed as CUDA graphs
   (:class:`lsr_utils.speed.captured.CapturedStep`) against the same steps run eagerly,
   in float32, over ``steps`` steps whose last ones use a smaller batch (the
   epoch's last batch, its own graph). On a CPU there are no CUDA graphs: the
   capture logic (warm-up, static buffers, one graph per batch shape) is
   checked with an emulated backend instead, and the report says so. On a GPU
   both sides run with deterministic kernels (:func:`deterministic_kernels`):
   with the default kernels two eager runs of the stage-2 step already differ
   (cuDNN's and cuBLAS's reductions are not ordered), and Adam's first steps
   turn a rounding-level difference in a near-zero gradient into a whole
   step of the learning rate, so the comparison would measure the kernels,
   not the capture.
2. **stacked vs single**: M members trained as one stacked network (sweep
   stacking: a beta sweep's VAEs, a lambda sweep's LSR-GANs, a beta sweep's
   LSR-GANs over their own VAEs) against M separate runs, in float64 (in
   float32 the two orders of summation drift apart through Adam whatever the
   code does; in float64 any change to the math shows).

Exit status 0 when everything agrees; 1 naming the first step and tensor that
differ.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..base.pixels import uint8_to_model
from ..base.runtime import device_name, resolve_device
from ..method.config import GANConfig, VAEConfig
from ..method.nn import Decoder, Encoder
from ..method.stage import Build, build_stage
from .captured import CapturedStep
from .stacked import build_stacked_stage


@dataclass
class Difference:
    step: int
    tensor: str
    got: float
    want: float

    def __str__(self) -> str:
        return f"step {self.step}: {self.tensor} differs ({self.got:.6g} vs {self.want:.6g})"


class EmulatedGraphs:
    """A stand-in for CUDA graphs on the CPU: "capture" records the function, "replay" runs it on the static buffers.

    It checks what :class:`~lsr_utils.speed.captured.CapturedStep` does around the graph
    (warm-up calls, static input buffers, one graph per batch shape, outputs
    copied before the next call), not the GPU.
    """

    def __init__(self):
        self.captures, self.replays = 0, 0

    def eager(self, fn):
        return fn()

    def capture(self, fn):
        self.captures += 1
        return fn, None

    def replay(self, graph):
        self.replays += 1
        return graph()


@contextlib.contextmanager
def deterministic_kernels(on: bool = True):
    """cuDNN and PyTorch restricted to deterministic kernels inside the block (restored after it).

    cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` set before its first use for
    its kernels to be deterministic; ``lsr selfcheck`` sets it at its start.
    """
    if not on:
        yield
        return
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[0], saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def batches(n_steps: int, batch: int, device, dtype=torch.float32, seed: int = 0, last: int | None = None,
            n_last: int = 4):
    """Random images in the model range; the last ``n_last`` steps use ``last`` images (an epoch's last batch)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_steps):
        b = last if last and i >= n_steps - n_last else batch
        x = torch.randint(0, 256, (b, 3, 32, 32), dtype=torch.uint8, generator=g)
        out.append(uint8_to_model(x, dtype).to(device).contiguous(memory_format=torch.channels_last))
    return out


def _first_difference(step_no: int, got, want, models_got: dict, models_want: dict, names, rtol, atol):
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    bad = ~torch.isclose(got, want, rtol=rtol, atol=atol)
    if bool(bad.any()):
        k = int(torch.nonzero(bad)[0])
        return Difference(step_no, f"loss {names[k]}", float(got[k]), float(want[k]))
    for name, m in models_got.items():
        for (pname, a), b in zip(m.state_dict().items(), models_want[name].state_dict().values()):
            if a.is_floating_point() and not torch.allclose(a.double().cpu(), b.double().cpu(), rtol=rtol, atol=atol):
                d = (a.double().cpu() - b.double().cpu()).abs()
                i = int(d.flatten().argmax())
                return Difference(step_no, f"{name}.{pname}", float(a.flatten()[i]), float(b.flatten()[i]))
    return None


def _config(stage: str, **kw):
    """The paper's CIFAR-10 configuration of a stage (stage 2: ``kw`` its own fields)."""
    return VAEConfig(dataset="cifar10", seed=0, **kw) if stage == "vae" else \
        GANConfig(vae=VAEConfig(dataset="cifar10", seed=0), seed=0, **kw)


def _stage(cfg, device, dtype, capturable: bool = False, vae=None):
    """A run's stage from the kit's one builder (stage 2 on a fixed random VAE ``vae``: an encoder and a decoder)."""
    kw = {} if vae is None else {"encoder": vae[0], "decoder": vae[1]}
    return build_stage(cfg, device, total_steps=10 ** 6, how=Build(capturable=capturable, dtype=dtype), **kw)


def _stacked(cfgs, device, dtype, vae=None):
    """The stacked stage of several members (stage 2 on the fixed random VAE ``vae``, shared by every member)."""
    kw = {} if vae is None else {"encoders": [vae[0]], "decoders": [vae[1]]}
    return build_stacked_stage(cfgs, device, total_steps=10 ** 6, how=Build(dtype=dtype), **kw)


def _random_vae(device, dtype, seed: int = 0):
    torch.manual_seed(seed)
    return Encoder().to(device, dtype).eval(), Decoder().to(device, dtype)


def check_captured(stage: str, device, steps: int = 50, backend=None, perturb=None,
                   rtol: float = 1e-4, atol: float = 1e-5, deterministic: bool = False) -> Difference | None:
    """Captured against eager, float32, step by step; ``perturb(step)`` alters the captured side (tests).

    ``deterministic``: both sides with deterministic kernels (:func:`deterministic_kernels`), as on a GPU.
    """
    with deterministic_kernels(deterministic):
        return _check_captured(stage, torch.device(device), steps, backend, perturb, rtol, atol)


def _check_captured(stage, device, steps, backend, perturb, rtol, atol):
    vae = _random_vae(device, torch.float32) if stage == "gan" else None
    cuda = device.type == "cuda"
    eager = _stage(_config(stage), device, torch.float32, cuda, vae)
    inner = _stage(_config(stage), device, torch.float32, cuda, vae)
    if perturb:
        perturb(inner.step)
    captured = CapturedStep(inner.step, backend=backend)
    for i, x in enumerate(batches(steps, 32, device, last=20), start=1):
        want = eager.step(x, i - 1).clone()
        got = captured(x, i - 1).clone()
        diff = _first_difference(i, got, want, inner.models, eager.models, eager.names, rtol, atol)
        if diff:
            return diff
    return None


def check_stacked(stage: str, device, steps: int = 50, members: int = 3, dtype=torch.float64,
                  rtol: float = 1e-7, atol: float = 1e-10) -> Difference | None:
    """M stacked members against M single runs, step by step (float64 by default)."""
    device = torch.device(device)
    vae = _random_vae(device, dtype, seed=7) if stage == "gan" else None
    cfgs = [_config("vae", beta=b) for b in (0.5, 1.0, 4.0)[:members]] if stage == "vae" else \
        [_config("gan", lam=lam) for lam in (0.1, 1.0, 10.0)[:members]]
    singles = [_stage(c, device, dtype, vae=vae) for c in cfgs]
    stacked = _stacked(cfgs, device, dtype, vae=vae)
    for i, x in enumerate(batches(steps, 8, device, dtype), start=1):
        want = torch.cat([s.step(x, i - 1) for s in singles])
        got = stacked.step(x, i - 1)
        bad = ~torch.isclose(got.double().cpu(), want.double().cpu(), rtol=rtol, atol=atol)
        if bool(bad.any()):
            k = int(torch.nonzero(bad)[0])
            return Difference(i, f"loss {stacked.names[k]}", float(got[k]), float(want[k]))
    for j, single in enumerate(singles):
        cut = stacked.member_weights(j)
        for name, net in single.models.items():
            for pname, v in net.state_dict().items():
                if v.is_floating_point() and not torch.allclose(cut[name][pname].double(), v.double().cpu(),
                                                                rtol=1e-6, atol=1e-9):
                    return Difference(steps, f"member {j} {name}.{pname}", float(cut[name][pname].flatten()[0]),
                                      float(v.flatten()[0]))
    return None


def selfcheck(device="auto", steps: int = 50, say=print) -> int:
    """Run both comparisons on ``device``; 0 when everything agrees, 1 at the first difference."""

    from ..base.errors import LsrError

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 5:
        raise LsrError(f"--steps must be at least 5 (the captured step is compared only once it replays a graph, "
                       f"after 3 warm-up steps), got {steps!r}; a comparison of nothing would pass vacuously")
    dev = resolve_device(device)
    say(f"lsr selfcheck on {device_name(dev)}, {steps} steps each")
    failures = 0
    cuda = dev.type == "cuda"
    for stage in ("vae", "gan"):
        backend = None if cuda else EmulatedGraphs()
        diff = check_captured(stage, dev, steps, backend=backend, deterministic=cuda)
        what = "CUDA-graph, deterministic kernels" if cuda else \
            "emulated (no CUDA here: the capture logic, not the GPU)"
        say(f"  {stage}: captured ({what}) vs eager, float32: " + ("equal" if diff is None else f"DIFFERENT at {diff}"))
        failures += diff is not None
    for stage in ("vae", "gan"):
        diff = check_stacked(stage, dev, steps)
        say(f"  {stage}: 3 stacked members vs 3 single runs, float64: " + ("equal" if diff is None else
                                                                          f"DIFFERENT at {diff}"))
        failures += diff is not None
    say("selfcheck: " + ("all equal" if not failures else f"{failures} comparison(s) differ"))
    return 1 if failures else 0
