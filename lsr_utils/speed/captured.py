"""A training step replayed as a CUDA graph (:class:`CapturedStep`): the same math, one launch per step.

Wraps any step of :mod:`lsr_utils.method.steps` (or a stacked one,
:mod:`lsr_utils.speed.stacked`); :func:`capture` wraps the step of a built
stage, after checking that its recipe can be captured.
"""
from __future__ import annotations

import torch

from ..base.errors import LsrError


class _CudaGraphs:
    """The real backend of :class:`CapturedStep`: torch.cuda graphs, warm-up on a side stream."""

    def __init__(self, noise: torch.Generator):
        self.noise = noise
        self.stream = torch.cuda.Stream()

    def eager(self, fn):
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out = fn()
        torch.cuda.current_stream().wait_stream(self.stream)
        return out

    def capture(self, fn):
        graph = torch.cuda.CUDAGraph()
        if self.noise is not None:
            graph.register_generator_state(self.noise)  # the step's own noise generator advances on every replay
        with torch.cuda.graph(graph):
            out = fn()
        return graph, out

    def replay(self, graph) -> None:
        graph.replay()  # the outputs appear in the buffers captured with the graph


class CapturedStep:
    """A step replayed as a CUDA graph, one graph per batch shape and phase: the same math, one launch per step.

    The first ``warmup`` calls of each batch shape run eagerly (they are real
    training steps, on a side stream: cuDNN and the allocator settle, Adam's
    state is created); the next call captures the whole step (forward,
    backward, both optimiser steps, the noise drawn from the step's own device
    generator) with the batch in a static buffer, and every later call copies
    the batch into that buffer and replays. The epoch's last, smaller batch
    gets its own graph, so no image is dropped or padded and no shape breaks a
    graph; so does each phase of the step (stage 2's discriminator warm-up).
    Nothing reads a value back to the host.

    Requirements (checked by :func:`capture`): CUDA,
    optimisers built with ``capturable=True``, a constant learning rate, no
    ``torch.compile``. The returned values live in the graph's buffer: the
    caller copies them before the next call (:func:`lsr_utils.training.loop.fit` does).

    ``backend`` replaces the CUDA-graph machinery: an object with ``eager(fn)``,
    ``capture(fn) -> (graph, outputs)`` and ``replay(graph)`` (which returns
    None, the outputs being in the captured buffers, or the outputs). The
    tests use one that runs the captured function again at each replay, to
    check the warm-up, the static buffers and the per-shape graphs on the CPU.
    """

    def __init__(self, step, warmup: int = 3, backend=None):
        if backend is None:
            if not torch.cuda.is_available() or step.device.type != "cuda":
                raise LsrError("captured steps (CUDA graphs) need a CUDA device; drop --graphs on this machine")
            for opt in step.optimizers:
                if not all(g.get("capturable") for g in opt.param_groups):
                    raise LsrError("captured steps need optimisers built with capturable=True")
            backend = _CudaGraphs(step.noise)
        self.step, self.warmup, self.backend = step, warmup, backend
        self.names, self.device, self.noise = step.names, step.device, step.noise
        self.graphs: dict[tuple, tuple] = {}
        self.calls: dict[tuple, int] = {}

    def __call__(self, x: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        key = (tuple(x.shape), tuple(x.stride()), x.dtype, self.step.phase(global_step))
        entry = self.graphs.get(key)
        if entry is None:
            self.calls[key] = self.calls.get(key, 0) + 1
            if self.calls[key] <= self.warmup:
                return self.backend.eager(lambda: self.step(x, global_step))
            static_x = x.clone()
            graph, out = self.backend.capture(lambda: self.step(static_x, global_step))
            entry = self.graphs[key] = (graph, static_x, out)
        graph, static_x, out = entry
        static_x.copy_(x)
        replayed = self.backend.replay(graph)
        return out if replayed is None else replayed


def check_capturable(cfg, compile: bool = False) -> None:
    """Refuse, before anything is built, a recipe whose step a CUDA graph cannot replay."""
    if cfg.lr_warmup or cfg.lr_decay != "constant":
        raise LsrError("--graphs needs a constant learning rate (a captured step replays the one it was captured "
                       "with); this recipe warms it up or decays it: drop --graphs, or train with the paper's schedule")
    if getattr(cfg, "ema", 0) and getattr(cfg, "ema_warmup", 0):
        raise LsrError("--graphs cannot keep a ramped moving average of the generator (ema with ema_warmup > 0): its "
                       "decay changes with every step, and a captured step replays the one it was captured with; drop "
                       "--graphs, set ema_warmup 0 (a constant decay, the quick recipe's), or train without ema (the "
                       "paper's recipe)")
    if compile:
        raise LsrError("--graphs and --compile cannot be combined; choose one")


def capture(stage, backend=None):
    """``stage`` with its step replayed as CUDA graphs (the stage must be built with ``capturable=True``)."""
    check_capturable(stage.cfg)
    stage.step = CapturedStep(stage.step, backend=backend)
    return stage
