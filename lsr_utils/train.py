"""The two stages: :func:`train_vae` (stage 1), then :func:`train_lsr_gan` (stage 2); and :func:`train_sweep`.

Each takes one configuration and returns one finished run. A finished run
with the same configuration (and data) is reused, never retrained; an
unfinished one resumes from its checkpoint. What a stage is made of is
:func:`lsr_utils.stage.build_stage`; the loop is :func:`lsr_utils.loop.fit`.

:func:`train_sweep` trains several configurations that differ only in their
swept value (VAEs in beta; LSR-GANs over one VAE in lambda, or one per VAE
of a beta sweep): one by one on a CPU, or stacked as one wide network where
that pays (CUDA), ending with the same run folders separate training writes.
"""
from __future__ import annotations

import contextlib
import copy
import sys
from pathlib import Path

import torch

from .config import GANConfig, VAEConfig
from .data import DeviceBatches, ImageData, bind_data, load_data
from .errors import LsrError
from .loop import Diverged, RunOptions, finite_weights, fit
from .runs import (
    GANRun,
    RunDir,
    VAERun,
    code_statistics,
    config_hash,
    load_gan_run,
    load_vae_run,
    require,
    run_dir,
    write_loss_csv,
    write_loss_events,
)
from .runtime import bf16_warning, resolve_device
from .stage import build_stage, check_members
from .steps import GAN_NAMES, VAE_NAMES


def train_vae(cfg: VAEConfig, data: ImageData | None = None, *, out: str | Path = "runs", device=None,
              data_root=None, fresh: bool = False, **options) -> VAERun:
    """Stage 1: the (beta-)VAE of sections 2.1/2.3 with the loss of Appendix A. ``options``: :class:`RunOptions`."""
    if not isinstance(cfg, VAEConfig):
        raise LsrError("train_vae takes one VAEConfig; train several betas with train_sweep")
    return train_sweep([cfg], data, out=out, device=device, data_root=data_root, fresh=fresh, **options)[0]


def train_lsr_gan(cfg: GANConfig, data: ImageData | None = None, *, vae: VAERun | None = None,
                  out: str | Path = "runs", device=None, data_root=None, fresh: bool = False, generator=None,
                  discriminator=None, **options) -> GANRun:
    """Stage 2: the LSR-GAN of section 2.2 (eq. 3 for D, eq. 4 for G) on the frozen encoder of a finished VAE.

    ``vae``: the finished VAE; else it is loaded from its run folder (stage 1
    is never trained here). The generator starts from the VAE decoder's
    weights unless ``cfg.init == "scratch"``. ``generator``, ``discriminator``: networks given in Python, for a
    configuration that says ``"custom"`` (lsr_utils.external: rendering any VAE's latent).
    """
    if not isinstance(cfg, GANConfig):
        raise LsrError("train_lsr_gan takes one GANConfig; train several lambdas with train_sweep")
    return train_sweep([cfg], data, vaes=[vae] if vae else None, out=out, device=device, data_root=data_root,
                       fresh=fresh, generator=generator, discriminator=discriminator, **options)[0]


def train_sweep(cfgs: list, data: ImageData | None = None, *, vaes: list | None = None, out: str | Path = "runs",
                device=None, data_root=None, fresh: bool = False, generator=None, discriminator=None,
                **options) -> list:
    """Several runs of one stage that differ only in their swept value, each ending as its own run folder.

    VAEs (a beta sweep), or LSR-GANs: over one VAE (a lambda sweep) or one per
    VAE (a beta sweep's); ``vaes``: the finished VAEs they build on (else
    loaded from their run folders). Members train stacked as one wide network
    where that pays (CUDA, or ``stack=True``), else one by one; both end with
    the same run folders (``tests/test_stacked.py``).
    """
    cfgs = list(cfgs)
    gan = bool(cfgs) and isinstance(cfgs[0], GANConfig)
    check_members(cfgs, *(("lam", "vae.beta") if gan else ("beta",)))
    device, opts = resolve_device(device), RunOptions(**options)
    v = cfgs[0].vae if gan else cfgs[0]
    if data is None:
        data = load_data(v.dataset, root=data_root, n_train=v.n_train, seed=v.data_seed)
    data = bind_data(v, data)[1]
    if gan:
        cfgs = [c.replace(vae=bind_data(c.vae, data)[0]) for c in cfgs]
        members_vaes = _vaes_of(cfgs, vaes, out, device)
    else:
        cfgs = [bind_data(c, data)[0] for c in cfgs]
        members_vaes = [None] * len(cfgs)
    runs = [RunDir(run_dir(c, out)) for c in cfgs]
    todo = [i for i, r in enumerate(runs) if fresh or r.status != "finished"]
    given = {"generator": generator, "discriminator": discriminator}
    # members stack where that pays (CUDA), and only the kit's own networks can be stacked
    stack = (device.type == "cuda" if opts.stack is None else opts.stack) and not any(given.values()) and not (
        gan and (cfgs[0].generator != "paper" or cfgs[0].vae.source))
    for group in ([todo] if todo else []) if stack else [[i] for i in todo]:
        members = [(cfgs[i], runs[i], members_vaes[i]) for i in group]
        if len(group) == 1:
            _train_run(*members[0], data, device, fresh, opts, given)
        else:
            _train_stacked(members, Path(out), data, device, fresh, opts)
    load = (lambda i, r: load_gan_run(r.path, device, members_vaes[i], **given)) if gan else \
        (lambda i, r: load_vae_run(r.path, device))
    done = []
    for i, r in enumerate(runs):
        run = load(i, r)
        run.reused = i not in todo
        done.append(run)
    return done


def _vaes_of(cfgs: list, vaes, out, device) -> list:
    """The finished VAE each LSR-GAN builds on: given, or loaded from its run folder."""
    given = {r.config.beta: r for r in (vaes or []) if r is not None}
    found = []
    for c in cfgs:
        v = given.get(c.vae.beta)
        if v is None:
            v = load_vae_run(require(RunDir(run_dir(c.vae, out)), "the VAE this LSR-GAN builds on (train it first: "
                                                                  "lsr train-vae, or train_vae)"), device)
            given[c.vae.beta] = v
        if v.config != c.vae:
            raise LsrError(f"the VAE given ({v.path}) is not the one this LSR-GAN's configuration names")
        found.append(v)
    return found


def _build(cfgs, vaes, data, device, opts: RunOptions, given: dict | None = None):
    """The stage and its batches: the one call of the builder for training."""
    batches = DeviceBatches(data.train_x, cfgs[0].batch_size, device, channels_last=opts.channels_last)
    total = cfgs[0].epochs * len(batches)
    if isinstance(cfgs[0], GANConfig):
        unique = list({id(v): v for v in vaes}.values())
        stage = build_stage(cfgs, device, total_steps=total, encoders=[v.encoder for v in unique],
                            decoders=[v.decoder for v in vaes], channels_last=opts.channels_last,
                            compile=opts.compile, graphs=opts.graphs, **(given or {}))
    else:
        stage = build_stage(cfgs, device, total_steps=total, channels_last=opts.channels_last, compile=opts.compile,
                            graphs=opts.graphs)
    return stage, batches


def _warn_bf16(cfg, device) -> None:
    warning = bf16_warning(device, cfg.precision)
    if warning:
        print(warning, file=sys.stderr, flush=True)


def _diverged(e: Diverged, cfgs, runs, started, device):
    what = ", ".join(f"beta={c.beta:g}" if isinstance(c, VAEConfig) else f"beta={c.vae.beta:g}, lambda={c.lam:g}"
                     for c in cfgs)
    reason = (f"{e}; the likely cause is a weight too large for these images ({what}) or a learning rate too high "
              f"(lr={cfgs[0].lr:g})")
    for r, s in zip(runs, started):
        r.fail(reason, device, s)
    return LsrError(f"{reason}. The run is marked failed (never reused); its last good checkpoint is kept. Change the "
                    f"setting and start it over with --fresh.")


def _bound_to(vae: VAERun | None) -> dict:
    """What an LSR-GAN's run.json records of the VAE it was trained on: the SHA-256 of its weights."""
    return {"vae_weights_sha256": vae.weights_sha256} if vae is not None and vae.weights_sha256 else {}


@torch.no_grad()
def _code_statistics(cfg, stage, weights: dict, vae: VAERun | None, data, device) -> dict:
    """``weights`` plus, where ``cfg.code_stats`` asks (GANConfig), ``"generator_codes"``: the rendering generator
    (the moving average where kept) with its BatchNorm statistics gathered afresh over codes of training images
    (:func:`~lsr_utils.runs.code_statistics`). Only the statistics differ from the generator's; G(z) keeps its own."""
    if not (isinstance(cfg, GANConfig) and cfg.code_stats and vae is not None):
        return weights
    key = "generator_ema" if "generator_ema" in weights else "generator"
    g = copy.deepcopy(stage.templates[key]).to(device)
    g.load_state_dict(weights[key])
    g = code_statistics(g, cfg, vae, data.train_x, device)
    if g is None:
        return weights
    return {**weights, "generator_codes": {k: t.contiguous().cpu() for k, t in g.state_dict().items()}}


def _kind(cfg) -> str:
    return "gan" if isinstance(cfg, GANConfig) else "vae"


def _train_run(cfg, folder: RunDir, vae: VAERun | None, data, device, fresh: bool, opts: RunOptions,
               given: dict | None = None) -> None:
    """One run in its own folder: lock, record as running, build the stage, fit, write the weights."""
    _warn_bf16(cfg, device)
    with folder.lock(wait=opts.wait):
        started = folder.start(cfg, _kind(cfg), device, fresh)
        stage, batches = _build([cfg], [vae], data, device, opts, given)
        try:
            history = fit(folder, stage, batches, opts)
            bad = finite_weights(stage.models)
            if bad:
                raise Diverged(f"training ended with non-finite weights in the {bad}", -1, bad, float("nan"))
        except Diverged as e:
            raise _diverged(e, [cfg], [folder], [started], device) from None
        folder.finish(_code_statistics(cfg, stage, stage.member_weights(0), vae, data, device), history, device,
                      started, **_bound_to(vae))


def _train_stacked(members: list, out: Path, data, device, fresh: bool, opts: RunOptions) -> None:
    """M members at once as one stacked network (checkpointed in a sweep folder), then each member's run folder."""
    cfgs, runs, vaes = (list(t) for t in zip(*members))
    gan = isinstance(cfgs[0], GANConfig)
    name = f"sweep-{_kind(cfgs[0])}-{config_hash([c.to_dict() for c in cfgs])}"
    shared = gan and len({v.path for v in vaes}) == 1
    sweep = RunDir(vaes[0].path / name if shared else out / (cfgs[0].vae if gan else cfgs[0]).dataset / name)
    _warn_bf16(cfgs[0], device)
    with contextlib.ExitStack() as held:
        for r in (*runs, sweep):
            held.enter_context(r.lock(wait=opts.wait))
        started = [r.start(c, _kind(c), device, fresh) for r, c in zip(runs, cfgs)]
        if fresh:
            (sweep / "checkpoint.pt").unlink(missing_ok=True)
        stage, batches = _build(cfgs, vaes, data, device, opts)
        try:
            history = fit(sweep, stage, batches, RunOptions(**{**opts.__dict__, "loss_log": False}))
            bad = finite_weights(stage.models)
            if bad:
                raise Diverged(f"training ended with non-finite weights in the {bad}", -1, bad, float("nan"))
        except Diverged as e:
            raise _diverged(e, cfgs, runs, started, device) from None
        base_names = GAN_NAMES if gan else VAE_NAMES
        swept = {"beta": [c.vae.beta for c in cfgs], "lam": [c.lam for c in cfgs]} if gan else \
            {"beta": [c.beta for c in cfgs]}
        for j, (r, s) in enumerate(zip(runs, started)):
            mine = _member_history(history, base_names, j)
            mine["sweep"] = {"members": stage.m, **swept, "note": "trained side by side in one process (sweep "
                                                                  "stacking); seconds are the whole sweep's"}
            r.finish(_code_statistics(cfgs[j], stage, stage.member_weights(j), vaes[j], data, device), mine, device,
                     s, **_bound_to(vaes[j]))
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


def run_path(cfg, data: ImageData | None = None, *, out: str | Path = "runs", data_root=None) -> Path:
    """The folder that ``cfg`` (a VAEConfig or GANConfig) trains into: its run folder once bound to its data."""
    v = cfg.vae if isinstance(cfg, GANConfig) else cfg
    if data is None:
        data = load_data(v.dataset, root=data_root, n_train=v.n_train, seed=v.data_seed, n_test=1, progress=False)
    bound = bind_data(v, data)[0]
    return run_dir(cfg.replace(vae=bound) if isinstance(cfg, GANConfig) else bound, out)
