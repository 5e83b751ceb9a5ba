"""``lsr``: the kit's command line.

    lsr demo                      train + evaluate + draw on the embedded dataset
    lsr train-vae  [options]      stage 1: the (beta-)VAE
    lsr train-gan  [options]      stage 2: the LSR-GAN (trains or reuses its VAE first)
    lsr train-classifier          the classifier behind the classification metrics (cached like a run)
    lsr evaluate RUN_DIR          all of the paper's metrics for one run -> RUN_DIR/metrics.json
    lsr report                    evaluated runs -> the paper's tables, kit beside paper
    lsr sweep NOTEBOOK --param P --values ...   one executed notebook per value (resumable)

Every failure the user can fix exits with status 2 and one message, no traceback.
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

from .errors import LsrError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise LsrError(f"{message} (see `{self.prog} --help`)")


def _number(name: str, integer: bool = False, minimum: float = 0.0, allow_equal: bool = True):
    def parse(text: str):
        try:
            v = int(text) if integer else float(text)
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise argparse.ArgumentTypeError(f"{name} must be {kind}, got {text!r}") from None
        if not math.isfinite(v) or v < minimum or (v == minimum and not allow_equal):
            bound = f">= {minimum:g}" if allow_equal else f"> {minimum:g}"
            raise argparse.ArgumentTypeError(f"{name} must be {bound}, got {text!r}")
        return v
    parse.__name__ = name  # argparse names the type in its messages
    return parse


def _common(p: argparse.ArgumentParser, stage: str) -> None:
    from .data import dataset_names

    p.add_argument("--dataset", default=None, help=f"one of: {', '.join(dataset_names())} (default shapes)")
    p.add_argument("--data-root", default=None, help="folder holding local dataset files (default $LSR_DATA_ROOT or ./data)")
    p.add_argument("--profile", default=None, help="smoke | quick | paper (default: $LSR_PROFILE, smoke under CI, else quick)")
    p.add_argument("--beta", type=_number("beta"), nargs="+", default=None,
                   help="beta of the beta-VAE, eq. 5 (default 1)" + ("; several values train that many VAEs at "
                                                                     "once (sweep batching)" if stage == "vae" else ""))
    p.add_argument("--epochs", type=_number("epochs", integer=True, minimum=1), default=None,
                   help=f"{stage} epochs (default: the profile's)")
    p.add_argument("--n-train", type=_number("n-train", integer=True, minimum=1), default=None,
                   help="use the first N training images (default: the profile's)")
    p.add_argument("--batch-size", type=_number("batch-size", integer=True, minimum=2), default=None,
                   help="batch size (default 32, the paper's)")
    p.add_argument("--recon-loss", choices=("log_mse", "sse"), default=None,
                   help="VAE reconstruction term: log_mse (Appendix A, default) or sse (sum of squares)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None, help="fp32 (default) or bf16 autocast")
    p.add_argument("--seed", type=_number("seed", integer=True), default=None, help="random seed (default 13)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the networks (same math; faster for long runs, ~1 min to compile)")
    p.add_argument("--out", default="runs", help="folder for run folders (default runs/)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="resume (or finish) the run in RUN_DIR with its saved configuration; options that "
                        "differ from it are refused. Without --resume, an unfinished run with the same "
                        "configuration is resumed automatically.")
    p.add_argument("--fresh", action="store_true", help="discard an unfinished checkpoint of this configuration")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lsr", description="LSR-GAN reproduction kit: train a VAE, then a GAN that renders its "
                                        "latent space ('Imagining the Latent Space of a VAE').")
    from . import __version__
    from .data import dataset_names

    p.add_argument("--version", action="version", version=f"lsr-kit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser("demo", help="train, evaluate and draw on the embedded shapes dataset (offline)")
    d.add_argument("--profile", default=None, help="smoke | quick (default) | paper")
    d.add_argument("--out", default="runs", help="folder for run folders (default runs/)")
    d.add_argument("--figures", default="figures", help="folder for the figure (default figures/)")
    d.add_argument("--results", default="results", help="folder for the metrics JSON (default results/)")
    d.add_argument("--device", default="auto")
    d.add_argument("--seed", type=_number("seed", integer=True), default=13)
    d.add_argument("--fresh", action="store_true", help="retrain even if finished runs exist")
    d.add_argument("--no-progress", action="store_true")

    v = sub.add_parser("train-vae", help="stage 1: train the (beta-)VAE")
    _common(v, "VAE")

    g = sub.add_parser("train-gan", help="stage 2: train the LSR-GAN on a frozen VAE encoder")
    _common(g, "LSR-GAN")
    g.add_argument("--lam", type=_number("lambda"), nargs="+", default=None,
                   help="lambda of eq. 1/4 (default 1); several values train that many LSR-GANs over the one VAE "
                        "at once (sweep batching)")
    g.add_argument("--vae-epochs", type=_number("vae-epochs", integer=True, minimum=1), default=None,
                   help="epochs of the VAE it builds on (default: the profile's)")
    g.add_argument("--lsr-reduction", choices=("mean", "sum"), default=None,
                   help="mean over latent dims (reference, default) or per-sample sum (literal eq. 4)")
    g.add_argument("--init", choices=("vae", "scratch"), default=None,
                   help="generator starts from the VAE decoder (default) or at random")

    c = sub.add_parser("train-classifier", help="train (or reuse) the classifier the classification metrics use")
    c.add_argument("--dataset", default=None, help=f"one of: {', '.join(dataset_names())} (default shapes)")
    c.add_argument("--data-root", default=None, help="folder holding local dataset files")
    c.add_argument("--profile", default=None,
                   help="smoke | quick | paper (default: the one `lsr evaluate` uses for this dataset)")
    c.add_argument("--epochs", type=_number("epochs", integer=True, minimum=1), default=None)
    c.add_argument("--out", default="runs", help="folder for run folders (default runs/)")
    c.add_argument("--device", default="auto")
    c.add_argument("--fresh", action="store_true", help="discard an unfinished checkpoint of this configuration")
    c.add_argument("--no-progress", action="store_true")

    e = sub.add_parser("evaluate", help="measure a finished LSR-GAN run (and its VAE); writes RUN/metrics.json")
    e.add_argument("run", metavar="RUN_DIR", help="an LSR-GAN run folder (runs/<dataset>/vae-.../gan-...)")
    e.add_argument("--data-root", default=None)
    e.add_argument("--device", default="auto")
    e.add_argument("--n-test", type=_number("n-test", integer=True, minimum=1), default=None,
                   help="first N test images (default: all)")
    e.add_argument("--samples", type=_number("samples", integer=True, minimum=2), default=10,
                   help="K samples of q(z|x) per image for the variance (default 10)")
    e.add_argument("--fid-weights", default=None,
                   help="local pt_inception-2015-12-05-6726825d.pth (else $LSR_FID_WEIGHTS or torch's hub cache)")
    e.add_argument("--no-fid", action="store_true", help="skip FID (the offline classifier score is still computed)")
    e.add_argument("--classifier", default=None, metavar="CLASSIFIER_DIR",
                   help="a finished classifier run of the same dataset (default: train or reuse one)")
    e.add_argument("--fresh", action="store_true", help="measure again even if metrics.json is up to date")
    e.add_argument("--no-progress", action="store_true")

    sw = sub.add_parser("sweep", help="run a notebook once per parameter value (papermill), then gather the tables")
    sw.add_argument("notebook", help="e.g. notebooks/03_beta_sweep.ipynb")
    sw.add_argument("--param", required=True, help="the parameter to sweep, e.g. beta or lam")
    sw.add_argument("--values", required=True, nargs="+", help="values, e.g. 0.01 0.1 0.5 1 5 10 15 20")
    sw.add_argument("--set", dest="fixed", action="append", default=[], metavar="NAME=VALUE",
                    help="other parameters held fixed (repeatable), e.g. --set profile=quick")
    sw.add_argument("--out", default="runs/sweeps", help="folder for the executed copies (default runs/sweeps)")
    sw.add_argument("--no-progress", action="store_true")

    r = sub.add_parser("report", help="gather evaluated runs into the paper's tables (Markdown + CSV)")
    r.add_argument("--runs", default="runs", help="folder to search for evaluated runs (default runs/)")
    r.add_argument("--out", default="results", help="folder for report.md and the CSV tables (default results/)")
    return p


# --------------------------------------------------------------------------- configuration from options
def _configs(args, stage: str):
    """Build the GANConfig (its ``.vae`` is stage 1) from the options and the profile."""
    from .config import profile_configs

    dataset = args.dataset or "shapes"
    kw = dict(dataset=dataset, profile=args.profile)
    if args.beta is not None:
        kw["beta"] = args.beta
    if args.seed is not None:
        kw["seed"] = args.seed
    if args.n_train is not None:
        kw["n_train"] = args.n_train
    if args.recon_loss is not None:
        kw["recon_loss"] = args.recon_loss
    if args.precision is not None:
        kw["precision"] = args.precision
    if args.batch_size is not None:
        kw["batch_size"] = args.batch_size
    if stage == "vae":
        if args.epochs is not None:
            kw["vae_epochs"] = args.epochs
    else:
        if args.vae_epochs is not None:
            kw["vae_epochs"] = args.vae_epochs
        if args.epochs is not None:
            kw["gan_epochs"] = args.epochs
        if args.lam is not None:
            kw["lam"] = args.lam
    cfg = profile_configs(**kw)
    if stage == "gan":
        extra = {}
        for name in ("lsr_reduction", "init", "precision", "batch_size"):
            val = getattr(args, name, None)
            if val is not None:
                extra[name] = val
        if extra:
            cfg = cfg.replace(**extra)
    return cfg


def _explicit_overrides(args, stage: str) -> dict:
    """Options the user actually gave (not defaults), as config-field -> value."""
    names = {"dataset": "dataset", "beta": "beta", "n_train": "n_train", "recon_loss": "recon_loss",
             "seed": "seed", "precision": "precision", "batch_size": "batch_size"}
    out = {}
    for opt, field in names.items():
        v = getattr(args, opt, None)
        if v is not None:
            out[("vae." if stage == "gan" and field in ("dataset", "beta", "n_train", "recon_loss") else "") + field] = v
    if args.epochs is not None:
        out["epochs"] = args.epochs
    if stage == "gan":
        for opt in ("lam", "lsr_reduction", "init"):
            v = getattr(args, opt, None)
            if v is not None:
                out[opt] = v
        if args.vae_epochs is not None:
            out["vae.epochs"] = args.vae_epochs
    return out


def _resume_target(args, stage: str):
    """For --resume RUN_DIR: (config, out) from the saved run, refusing differing options."""
    from .config import config_diff
    from .runs import read_config, run_dir

    path = Path(args.resume)
    if not (path / "config.json").is_file():
        raise LsrError(f"--resume {path}: not a run folder (no config.json there)")
    kind, cfg = read_config(path)
    if kind != stage:
        raise LsrError(f"--resume {path}: that is a {kind} run; use `lsr train-{kind}` for it")
    saved = cfg.to_dict()
    requested = {k: dict(v) if isinstance(v, dict) else v for k, v in saved.items()}
    for key, val in _explicit_overrides(args, stage).items():
        if "." in key:
            a, b = key.split(".")
            requested[a][b] = val
        else:
            requested[key] = val
    diff = config_diff(saved, requested)
    if diff:
        raise LsrError(f"--resume {path}: the options given differ from that run's configuration; refusing.\n"
                       "  differences (saved -> requested):\n    " + "\n    ".join(diff) +
                       "\n  Drop those options to resume it, or leave out --resume to train a new run.")
    up = 2 if stage == "vae" else 3
    out = path.resolve().parents[up - 1]
    if run_dir(cfg, out).resolve() != path.resolve():
        raise LsrError(f"--resume {path}: the folder's name does not match its configuration (renamed?); "
                       f"expected {run_dir(cfg, out)}")
    return cfg, out


def _cmd_train(args, stage: str) -> int:
    from .config import check_profile
    from .runs import run_dir, run_status
    from .train import resolve_device, train_lsr_gan, train_vae

    if args.profile is not None:
        check_profile(args.profile)
    device = resolve_device(args.device)  # refuse an absent device before anything is written
    if args.compile:
        from .train import check_compile

        check_compile(device)
    betas, lams = args.beta or [None], getattr(args, "lam", None) or [None]
    if stage == "gan" and len(betas) > 1:
        raise LsrError("train-gan takes one --beta (the VAE its LSR-GANs share); train several betas with "
                       "`lsr train-vae --beta B1 B2 ...`, then `lsr train-gan --beta B` for each")
    if len(betas) > 1 or len(lams) > 1:
        return _cmd_train_sweep(args, stage, betas if stage == "vae" else lams)
    args.beta = betas[0]
    if stage == "gan":
        args.lam = lams[0]
    if args.resume:
        cfg, out = _resume_target(args, stage)
        if run_status(Path(args.resume)) == "new":
            raise LsrError(f"--resume {args.resume}: nothing to resume there (no checkpoint.pt)")
    else:
        cfg, out = _configs(args, stage), Path(args.out)
    target = cfg if stage == "gan" else cfg.vae
    path = run_dir(target, out)
    status = run_status(path)
    verb = {"finished": "reusing finished run", "running": "resuming", "new": "training"}.get(status, status)
    print(f"{verb}: {path}", file=sys.stderr)
    common = dict(out=out, device=args.device, data_root=args.data_root, progress=not args.no_progress,
                  fresh=args.fresh, compile=args.compile)
    run = (train_vae if stage == "vae" else train_lsr_gan)(target, **common)
    last = {k: v[-1] for k, v in run.history.get("epoch", {}).items() if v and k != "epoch"}
    print(f"done: {run.path}" + ("" if not last else "  (last epoch: " +
                                 ", ".join(f"{k}={v:.4g}" for k, v in last.items()) + ")"))
    return 0


def _cmd_train_sweep(args, stage: str, values: list) -> int:
    """Several betas (train-vae) or lambdas (train-gan) at once: one wide network (sweep batching)."""
    import copy

    from .runs import run_dir, run_status
    from .train import train_lsr_gan_sweep, train_vae_sweep

    for flag in ("resume", "fresh", "compile"):
        if getattr(args, flag):
            raise LsrError(f"--{flag} applies to one run; give one --{'beta' if stage == 'vae' else 'lam'} value "
                           "to use it")
    cfgs = []
    for v in values:
        a = copy.copy(args)
        if stage == "vae":
            a.beta = v
        else:
            a.beta, a.lam = (args.beta or [None])[0], v
        cfg = _configs(a, stage)
        cfgs.append(cfg.vae if stage == "vae" else cfg)
    out = Path(args.out)
    todo = [c for c in cfgs if run_status(run_dir(c, out)) != "finished"]
    name = "beta" if stage == "vae" else "lambda"
    print(f"{len(cfgs)} {name} values: {len(cfgs) - len(todo)} finished (reused), {len(todo)} to train "
          + ("at once" if len(todo) > 1 else ""), file=sys.stderr)
    common = dict(out=out, device=args.device, data_root=args.data_root, progress=not args.no_progress)
    runs = (train_vae_sweep if stage == "vae" else train_lsr_gan_sweep)(cfgs, **common)
    for r in runs:
        print(f"done: {r.path}")
    return 0


def _cmd_demo(args) -> int:
    from .config import check_profile
    from .demo import run_demo, summary
    from .train import resolve_device

    if args.profile is not None:
        check_profile(args.profile)
    resolve_device(args.device)
    command = "lsr " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "lsr demo"
    rec = run_demo(profile=args.profile, out=args.out, figures=args.figures, results=args.results,
                   device=args.device, seed=args.seed, progress=not args.no_progress, fresh=args.fresh,
                   command=command)
    print(summary(rec))
    return 0


def _command_line() -> str:
    return "lsr " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _cmd_evaluate(args) -> int:
    from .classifier import load_classifier
    from .evaluate import evaluate_run
    from .train import resolve_device

    resolve_device(args.device)
    clf = load_classifier(args.classifier, args.device) if args.classifier else None
    rec = evaluate_run(args.run, data_root=args.data_root, device=args.device, classifier=clf,
                       fid_weights=args.fid_weights, use_fid=not args.no_fid, n_test=args.n_test, k=args.samples,
                       command=_command_line(), progress=not args.no_progress, reuse=not args.fresh)
    v = rec["values"]
    print(f"wrote {Path(args.run) / 'metrics.json'}  ({rec['dataset']}, {rec['profile']} profile, "
          f"beta={rec['beta']:g}, lambda={rec['lam']:g}, {rec['n_test']} test images)")
    if rec["collapse"]["collapsed"]:
        print("  LSR-GAN: model collapse (diversity ratio "
              f"{rec['collapse']['diversity_ratio']:.3f} < {rec['collapse']['threshold']})")
    for key in ("mse_vae", "mse_lsr_gan", "variance_vae", "variance_lsr_gan", "absolute_vae", "absolute_lsr_gan",
                "relative_vae", "relative_lsr_gan", "sharpness_vae", "sharpness_lsr_gan"):
        print(f"  {key:18s} {v[key]['mean']:.4g} ± {v[key]['sem']:.2g}")
    fid = rec["fid"]
    print("  FID: " + (", ".join(f"{k[4:]}={v[k]['mean']:.2f}" for k in v if k.startswith("fid_"))
                       if fid.get("available") else "not computed (" + fid.get("reason", "--no-fid")[:90] + "...)"))
    return 0


def _literal(text: str):
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _cmd_sweep(args) -> int:
    from .notebook import project_root, setup, sweep
    from .report import write_report

    fixed = {}
    for item in args.fixed:
        if "=" not in item:
            raise LsrError(f"--set expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        fixed[k.strip()] = _literal(v.strip())
    values = [_literal(v) for v in args.values]
    res = sweep(args.notebook, args.param, values, out=args.out, fixed=fixed, progress=not args.no_progress)
    print(f"sweep {args.param} over {values}: {len(res['done'])} ran, {len(res['skipped'])} already done "
          f"(skipped), {len(res['failed'])} failed; executed copies in {res['folder']}")
    for f in res["failed"]:
        print(f"  FAILED {args.param}={f['value']}: {f['cell']}; kept for inspection: {f['notebook']}")
    ctx = setup(profile=fixed.get("profile"), name="sweep", root=project_root(Path(args.notebook).parent))
    try:
        files = write_report(ctx.runs, ctx.results, command=_command_line())
        print("tables: " + ", ".join(str(f) for f in files))
    except LsrError as e:
        print(f"no tables gathered: {e}")
    return 1 if res["failed"] else 0


def _cmd_train_classifier(args) -> int:
    from .classifier import evaluation_classifier_config, train_classifier
    from .config import check_profile, default_profile
    from .train import resolve_device

    resolve_device(args.device)
    dataset = args.dataset or "shapes"
    profile = check_profile(args.profile) if args.profile is not None else default_profile()
    cfg = evaluation_classifier_config(dataset, profile)
    if args.epochs is not None:
        cfg = cfg.replace(epochs=args.epochs)
    run = train_classifier(cfg, out=args.out, device=args.device, data_root=args.data_root,
                           progress=not args.no_progress, fresh=args.fresh)
    m = run.metrics
    print(f"done: {run.path}  (test accuracy {100 * m['test_accuracy']:.2f} % on {m['n_test']} raw test images, "
          f"{m.get('train_seconds') or 0:.0f} s of training on {m.get('device')})")
    return 0


def _cmd_report(args) -> int:
    from .report import write_report

    files = write_report(args.runs, args.out, command=_command_line())
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        if args.command == "demo":
            return _cmd_demo(args)
        if args.command == "evaluate":
            return _cmd_evaluate(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "sweep":
            return _cmd_sweep(args)
        if args.command == "train-classifier":
            return _cmd_train_classifier(args)
        return _cmd_train(args, "vae" if args.command == "train-vae" else "gan")
    except LsrError as e:
        print(f"lsr: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
