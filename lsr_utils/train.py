"""The two stages: :func:`train_vae` (stage 1), then :func:`train_lsr_gan` (stage 2).

Each takes one configuration, or the configurations of a sweep (VAEs that
differ only in beta; LSR-GANs over one VAE that differ only in lambda), which
then train at once as one stacked network (:mod:`lsr_utils.steps`) and end as
the same run folders separate training would write. A finished run with the
same configuration (and data) is reused, never retrained; an unfinished one
resumes from its checkpoint. The loop itself is :func:`lsr_utils.loop.fit`.
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
from .nn import build_gan, build_vae, stack_members, unstack_member
from .runs import (GANRun, RunDir, VAERun, config_hash, load_gan_run, load_run, load_vae_run,  # noqa: F401
                   require, run_dir)
from .runtime import adam, bf16_warning, resolve_device, set_seed
from .steps import GAN_NAMES, VAE_NAMES, CapturedStep, GANStep, VAEStep, check_members


def _groups(todo: list[int], device: torch.device, opts: RunOptions) -> list[list[int]]:
    """The members to train together: all at once (stacked) where that pays (CUDA), else one by one."""
    stack = device.type == "cuda" if opts.stack is None else opts.stack
    return ([todo] if todo else []) if stack else [[i] for i in todo]


def _mark(run, reused: bool):
    run.reused = reused
    return run


def _as_list(cfgs) -> tuple[list, bool]:
    return ([cfgs], True) if not isinstance(cfgs, (list, tuple)) else (list(cfgs), False)


def train_vae(cfgs, data: ImageData | None = None, *, out: str | Path = "runs", device=None, data_root=None,
              fresh: bool = False, **options) -> VAERun | list[VAERun]:
    """Stage 1: the (beta-)VAE of sections 2.1/2.3 with the loss of Appendix A, or a beta sweep of them."""
    cfgs, single = _as_list(cfgs)
    check_members(cfgs, "beta")
    device, opts = resolve_device(device), RunOptions(**options)
    if data is None:
        data = load_data(cfgs[0].dataset, root=data_root, n_train=cfgs[0].n_train, seed=cfgs[0].data_seed)
    cfgs, data = [bind_data(c, data)[0] for c in cfgs], bind_data(cfgs[0], data)[1]
    runs = [RunDir(run_dir(c, out)) for c in cfgs]
    todo = [i for i, r in enumerate(runs) if fresh or r.status != "finished"]
    for group in _groups(todo, device, opts):
        sweep = Path(out) / cfgs[0].dataset / f"sweep-vae-{config_hash([cfgs[i].to_dict() for i in group])}"
        _train("vae", [cfgs[i] for i in group], [runs[i] for i in group], sweep, data, device, fresh, opts)
    done = [_mark(load_vae_run(r.path, device), i not in todo) for i, r in enumerate(runs)]
    return done[0] if single else done


def train_lsr_gan(cfgs, data: ImageData | None = None, *, vae: VAERun | None = None, out: str | Path = "runs",
                  device=None, data_root=None, fresh: bool = False, **options) -> GANRun | list[GANRun]:
    """Stage 2: the LSR-GAN of section 2.2 (eq. 3 for D, eq. 4 for G) on the frozen encoder of a finished VAE.

    Several configurations train at once: a lambda sweep over one VAE, or one
    LSR-GAN per VAE of a beta sweep. ``vae``: the finished VAE (or, for a beta
    sweep, the list of VAEs, one per configuration); else each is loaded from
    its run folder (stage 1 is never trained here). The generator starts from
    its VAE decoder's weights unless ``cfg.init == "scratch"``.
    """
    cfgs, single = _as_list(cfgs)
    check_members(cfgs, "lam", "vae.beta")
    device, opts = resolve_device(device), RunOptions(**options)
    v = cfgs[0].vae
    if data is None:
        data = load_data(v.dataset, root=data_root, n_train=v.n_train, seed=v.data_seed)
    data = bind_data(v, data)[1]
    cfgs = [c.replace(vae=bind_data(c.vae, data)[0]) for c in cfgs]
    given = {r.config.beta: r for r in (vae if isinstance(vae, (list, tuple)) else [vae] if vae else [])}
    vaes = []
    for c in cfgs:
        found = given.get(c.vae.beta)
        if found is None:
            found = load_vae_run(require(RunDir(run_dir(c.vae, out)), "the VAE this LSR-GAN builds on (train it "
                                                                        "first: lsr train-vae, or train_vae)"), device)
            given[c.vae.beta] = found
        if found.config != c.vae:
            raise LsrError(f"the VAE given ({found.path}) is not the one this LSR-GAN's configuration names")
        vaes.append(found)
    runs = [RunDir(run_dir(c, out)) for c in cfgs]
    todo = [i for i, r in enumerate(runs) if fresh or r.status != "finished"]
    for group in _groups(todo, device, opts):
        name = f"sweep-gan-{config_hash([cfgs[i].to_dict() for i in group])}"
        shared = len({vaes[i].path for i in group}) == 1
        sweep = vaes[group[0]].path / name if shared else Path(out) / v.dataset / name
        _train("gan", [cfgs[i] for i in group], [runs[i] for i in group], sweep, data, device, fresh, opts,
               [vaes[i] for i in group])
    done = [_mark(load_gan_run(r.path, device, vaes[i]), i not in todo) for i, r in enumerate(runs)]
    return done[0] if single else done


def _train(kind, cfgs, runs, sweep: Path, data, device, fresh, opts: RunOptions, vaes: list | None = None):
    """Train M members at once (M = 1: one run in its own folder), then write each member's run folder."""
    m, cfg = len(cfgs), cfgs[0]
    folder = runs[0] if m == 1 else RunDir(sweep)
    warning = bf16_warning(device, cfg.precision)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    with contextlib.ExitStack() as held:
        for r in {id(x): x for x in (*runs, folder)}.values():
            held.enter_context(r.lock(wait=opts.wait))
        started = [r.start(c, kind, device, fresh) for r, c in zip(runs, cfgs)]
        if m > 1 and fresh:
            (folder / "checkpoint.pt").unlink(missing_ok=True)
        set_seed(cfg.seed)  # each member starts from the weights its own run would draw
        if kind == "vae":
            narrow = dict(zip(("encoder", "decoder"), build_vae(cfg)))
        else:
            gen, disc = build_gan(cfg)
            gens = [copy.deepcopy(gen) for _ in vaes]
            if cfg.init == "vae":  # each generator starts from its own VAE's decoder
                for g, v in zip(gens, vaes):
                    g.load_state_dict(v.decoder.state_dict())
            narrow = {"generator": gens, "discriminator": [disc] * m}
        fmt = torch.channels_last if opts.channels_last else torch.contiguous_format
        models = {n: (nets[0] if m == 1 else stack_members(nets)).to(device).to(memory_format=fmt)
                  for n, nets in ((n, net if isinstance(net, list) else [net] * m) for n, net in narrow.items())}
        narrow = {n: net[0] if isinstance(net, list) else net for n, net in narrow.items()}
        noise = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        cap = opts.graphs
        if kind == "vae":
            optims = {"vae": adam(list(models["encoder"].parameters()) + list(models["decoder"].parameters()),
                                  cfg.lr, cfg.adam_betas, device, cap)}
            step = VAEStep(cfgs, models["encoder"], models["decoder"], optims["vae"], noise, device, opts.compile)
            names = VAE_NAMES
        else:
            unique = list({id(v): v for v in vaes}.values())
            encoder = [copy.deepcopy(v.encoder).to(device).eval().to(memory_format=fmt) for v in unique]
            optims = {"generator": adam(models["generator"].parameters(), cfg.lr, cfg.adam_betas, device, cap),
                      "discriminator": adam(models["discriminator"].parameters(), cfg.lr, cfg.adam_betas, device, cap)}
            step = GANStep(cfgs, encoder if len(encoder) > 1 else encoder[0], models["generator"],
                           models["discriminator"], optims["generator"],
                           optims["discriminator"], noise, device, opts.compile)
            names = GAN_NAMES
        if opts.graphs:
            step = CapturedStep(step)
        batches = DeviceBatches(data.train_x, cfg.batch_size, device, channels_last=opts.channels_last)
        try:
            history = fit(folder, kind=kind if m == 1 else f"{kind}-sweep", epochs=cfg.epochs, seed=cfg.seed,
                          models=models, optims=optims, step=step, names=step.names, batches=batches, device=device,
                          noise=noise, progress=opts.progress, checkpoint_every_s=opts.checkpoint_every_s,
                          checkpoint_every_steps=opts.checkpoint_every_steps, log_every=opts.log_every,
                          callbacks=opts.callbacks, snapshot_epochs=opts.snapshot_epochs, deadline=opts.deadline)
            bad = finite_weights(models)
            if bad:
                raise Diverged(f"training ended with non-finite weights in the {bad}", -1, bad, float("nan"))
        except Diverged as e:
            what = ", ".join(f"beta={c.beta:g}" if kind == "vae" else f"beta={c.vae.beta:g}, lambda={c.lam:g}"
                             for c in cfgs)
            reason = (f"{e}; the likely cause is a weight too large for these images ({what}) or a learning rate "
                      f"too high (lr={cfg.lr:g})")
            for r, s in zip(runs, started):
                r.fail(reason, device, s)
            raise LsrError(f"{reason}. The run is marked failed (never reused); its last good checkpoint is kept. "
                           f"Change the setting and start it over with --fresh.") from None
        for j, (r, c, s) in enumerate(zip(runs, cfgs, started)):
            weights = {}
            for n, net in narrow.items():
                state = models[n].state_dict() if m == 1 else unstack_member(models[n], net, j)
                weights[n] = {k: t.contiguous().cpu() for k, t in state.items()}
            info = {} if m == 1 else {"sweep": {"members": m, **({"beta": [x.beta for x in cfgs]} if kind == "vae" else
                                                               {"beta": [x.vae.beta for x in cfgs],
                                                                "lam": [x.lam for x in cfgs]}),
                                                "note": "trained side by side in one process (sweep stacking); "
                                                        "seconds are the whole sweep's"}}
            r.finish(weights, {**_member_history(history, names, j, m), **info}, device, s)
    if m > 1:
        for f in ("checkpoint.pt", ".lock"):
            (folder / f).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.path.rmdir()


def _member_history(history: dict, names: tuple[str, ...], i: int, m: int) -> dict:
    if m == 1:
        return history
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


def train_pair(cfg: GANConfig, data: ImageData | None = None, **kw) -> GANRun:
    """Both stages in order: the VAE of ``cfg.vae`` (trained or reused), then the LSR-GAN of ``cfg``."""
    return train_lsr_gan(cfg, data, vae=train_vae(cfg.vae, data, **kw), **kw)
