"""Several runs of one stage that differ only in their swept value: :func:`train_sweep`.

VAEs (a beta sweep), or LSR-GANs over one VAE (a lambda sweep) or one per VAE
(a beta sweep's). One by one on a CPU; stacked as one wide network where that
pays (CUDA; :mod:`lsr_utils.speed.stacked`), ending with the same run folders
that training them one by one writes (``tests/test_stacked.py``).
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

from ..base.runtime import resolve_device
from ..data import DeviceBatches, ImageData, bind_data
from ..method.config import GANConfig
from ..method.stage import Build
from ..method.steps import GAN_NAMES, VAE_NAMES
from ..models.finished import load_gan_run, load_vae_run
from ..speed.captured import capture, check_capturable
from ..speed.stacked import build_stacked_stage, check_members, swept_fields
from ..storage.runs import RunDir, config_hash, run_dir, write_loss_csv, write_loss_events
from .loop import Diverged, RunOptions, fit
from .train import bound_to, check_finite, diverged, kind_of, train_run, vae_of, warn_bf16, with_code_renderer


def train_sweep(cfgs: list, data: ImageData, *, vaes: list | None = None, out: str | Path = "runs", device=None,
                fresh: bool = False, options: RunOptions | None = None) -> list:
    """The finished runs of ``cfgs``, which differ only in their swept value, each in its own run folder.

    ``vaes``: the finished VAEs the LSR-GANs build on (else loaded from their
    run folders). Members train stacked as one wide network where that pays
    (CUDA, or ``options.stack``), else one by one.
    """
    cfgs = check_members(cfgs, *swept_fields(cfgs[0] if cfgs else None))
    opts, device = options or RunOptions(), resolve_device(device)
    gan = isinstance(cfgs[0], GANConfig)
    data = bind_data(cfgs[0].vae if gan else cfgs[0], data)[1]
    if gan:
        given = {v.config.beta: v for v in vaes or [] if v is not None}
        cfgs = [c.replace(vae=bind_data(c.vae, data)[0]) for c in cfgs]
        for c in cfgs:  # each LSR-GAN's VAE, given or loaded once per beta
            given[c.vae.beta] = vae_of(c, given.get(c.vae.beta), out, device)
        members_vaes = [given[c.vae.beta] for c in cfgs]
    else:
        cfgs, members_vaes = [bind_data(c, data)[0] for c in cfgs], [None] * len(cfgs)
    runs = [RunDir(run_dir(c, out)) for c in cfgs]
    todo = [i for i, r in enumerate(runs) if fresh or r.status != "finished"]
    stack = (device.type == "cuda" if opts.stack is None else opts.stack) and not (
        gan and (cfgs[0].generator != "paper" or cfgs[0].vae.source))
    if stack and len(todo) > 1:
        _train_stacked([(cfgs[i], runs[i], members_vaes[i]) for i in todo], Path(out), data, device, fresh, opts)
    else:
        for i in todo:
            train_run(cfgs[i], runs[i], data, device, vae=members_vaes[i], fresh=fresh, options=opts)
    done = []
    for i, r in enumerate(runs):
        run = load_gan_run(r.path, device, members_vaes[i]) if gan else load_vae_run(r.path, device)
        run.reused = i not in todo
        done.append(run)
    return done


def _train_stacked(members: list, out: Path, data, device, fresh: bool, opts: RunOptions) -> None:
    """M members at once as one stacked network (checkpointed in a sweep folder), then each member's run folder."""
    cfgs, runs, vaes = (list(t) for t in zip(*members))
    gan = isinstance(cfgs[0], GANConfig)
    if opts.graphs:
        check_capturable(cfgs[0], opts.compile)
    name = f"sweep-{kind_of(cfgs[0])}-{config_hash([c.to_dict() for c in cfgs])}"
    shared = gan and len({v.path for v in vaes}) == 1
    sweep = RunDir(vaes[0].path / name if shared else out / (cfgs[0].vae if gan else cfgs[0]).dataset / name)
    warn_bf16(cfgs[0], device)
    with contextlib.ExitStack() as held:
        for r in (*runs, sweep):
            held.enter_context(r.lock(wait=opts.wait))
        started = [r.start(c, kind_of(c), device, fresh) for r, c in zip(runs, cfgs)]
        if fresh:
            (sweep / "checkpoint.pt").unlink(missing_ok=True)
        batches = DeviceBatches(data.train_x, cfgs[0].batch_size, device, channels_last=opts.channels_last)
        unique = list({id(v): v for v in vaes}.values()) if gan else []
        stage = build_stacked_stage(cfgs, device, total_steps=cfgs[0].epochs * len(batches),
                                    encoders=[v.encoder for v in unique] if gan else None,
                                    decoders=[v.decoder for v in vaes] if gan else None,
                                    how=Build(opts.channels_last, opts.compile, capturable=opts.graphs))
        if opts.graphs:
            capture(stage)
        try:
            history = fit(sweep, stage, batches, replace(opts, loss_log=False))
            check_finite(stage.models)
        except Diverged as e:
            raise diverged(e, cfgs, runs, started, device) from None
        base_names = GAN_NAMES if gan else VAE_NAMES
        swept = {"beta": [c.vae.beta for c in cfgs], "lam": [c.lam for c in cfgs]} if gan else \
            {"beta": [c.beta for c in cfgs]}
        for j, (r, s) in enumerate(zip(runs, started)):
            mine = _member_history(history, base_names, j)
            mine["sweep"] = {"members": stage.m, **swept, "note": "trained side by side in one process (sweep "
                                                                  "stacking); seconds are the whole sweep's"}
            weights = with_code_renderer(cfgs[j], stage.member_weights(j), stage.templates, vaes[j], data, device)
            r.finish(weights, mine, device, s, **bound_to(vaes[j]))
            if opts.loss_log:
                write_loss_csv(r / "losses.csv", mine["steps"], base_names)
                write_loss_events(r.path, mine["steps"], base_names)
    for f in ("checkpoint.pt", ".lock"):
        (sweep / f).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        sweep.path.rmdir()


def _member_history(history: dict, names: tuple[str, ...], i: int) -> dict:
    """Member ``i``'s history out of a stacked run's (its values were logged as ``name/i``)."""
    out = {"epoch": {"epoch": history["epoch"]["epoch"]}, "steps": {"step": history["steps"]["step"]},
           "seconds": history.get("seconds")}
    for part in ("epoch", "steps"):
        for n in names:
            out[part][n] = history[part][f"{n}/{i}"]
    return out
