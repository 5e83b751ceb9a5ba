"""``lsr reproduce``: every table and figure of the paper from one command, planned, resumable, spreadable.

The plan (:func:`plan`) lists the units of work for one dataset and profile:

* the classifier of the classification metrics;
* the VAEs of Table 1 (beta in 0.01 ... 20), then its LSR-GANs (lambda = 1,
  one per VAE), and the LSR-GANs of Table 2 (lambda in 0.01 ... 20 over the
  beta = 1 VAE): on a GPU each group trains as one stacked network (sweep
  stacking), on a CPU run by run;
* the profile's other seeds of the beta = lambda = 1 pair (two; one in smoke), whose spread (training noise)
  the claims' verdicts weigh;
* an evaluation of every LSR-GAN run (section 2.2 and Tables 1-2's metrics);
* the notebooks 01-06 (Figures 1-6, 8-9, Table 1-2's figures, Appendix A),
  which reuse the runs and evaluations above and draw the figures with the
  library code they call;
* the report: ``results/report.md``, the CSV tables and ``results/claims.md``,
  from exactly the records of this plan.

It prints the plan first (each unit, its runs, image-steps, whether done, and
the estimated time on this device from a short measured warm-up), then runs
what is not finished, in dependency order, in this process or through
submitit (:mod:`lsr_utils.apps.jobs`). Every unit skips finished work and resumes
interrupted training from its checkpoint; ``--budget`` stops at a
checkpoint when the time is up.
"""
from __future__ import annotations

import math
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..base.errors import LsrError
from ..base.files import atomic_write_bytes, atomic_write_json, make_dir, read_json
from ..base.runtime import device_name, environment, now, resolve_device
from ..data import bind_data, check_dataset_name, load_data
from ..measurement.classifier import classifier_finished, evaluation_classifier_config, train_classifier
from ..measurement.evaluate import EvalSettings, evaluate_run, reusable_record
from ..measurement.fid import find_weights
from ..measurement.report import write_report
from ..method.config import (
    DEFAULT_PROFILE,
    PROFILES,
    GANConfig,
    VAEConfig,
    check_profile,
    make_config,
    profile_for,
    sweep_values,
)
from ..method.nn import build_vae
from ..method.stage import Build, build_stage
from ..speed.captured import capture
from ..speed.stacked import build_stacked_stage
from ..storage.runs import RunDir
from ..training.loop import RunOptions
from ..training.sweep import train_sweep
from ..training.train import run_path, train_lsr_gan, train_vae
from .jobs import LocalExecutor, Unit, describe_failure
from .notebook import manifest_records, project_root, run_notebook

NOTEBOOKS = ("01_figures_1_2", "02_figure_3_sharpness_fid", "03_beta_sweep", "04_lambda_sweep",
             "05_random_samples", "06_appendix_a_elbo")
EXIT_OUT_OF_TIME = 3


@dataclass
class Layout:
    """Where a reproduction writes: runs, figures, results, executed notebooks."""

    root: Path
    runs: Path
    figures: Path
    results: Path
    notebooks: Path
    in_place: bool  # the project's own notebooks are executed in place (their committed outputs)
    sources: Path | None = None  # where the notebooks are read from (default: <root>/notebooks)

    @classmethod
    def of(cls, out: str | Path | None, profile: str, dataset: str) -> Layout:
        root = project_root(Path(__file__).resolve().parent)  # the checkout the kit runs from: its notebooks
        if not (root / "notebooks" / f"{NOTEBOOKS[0]}.ipynb").is_file():
            # an installed kit: the notebooks its wheel installs (share/lsr-kit/notebooks), executed as copies
            shipped = installed_notebooks()
            out = Path(out if out is not None else "lsr-reproduction").resolve()
            return cls(out, out / "runs", out / "figures", out / "results", out / "notebooks", False, shipped)
        if out is None:
            runs = root / "runs"
            plumbing = PROFILES[profile].plumbing_only
            base = runs / "_smoke" if plumbing else root
            in_place = not plumbing and dataset == "shapes"
            return cls(root, runs, base / "figures", base / "results",
                       root / "notebooks" if in_place else runs / "reproduce" / f"{dataset}-{profile}", in_place)
        out = Path(out).resolve()
        return cls(root, out / "runs", out / "figures", out / "results", out / "notebooks", False)


def installed_notebooks() -> Path:
    """The notebooks an installed kit ships (the wheel's data files: <prefix>/share/lsr-kit/notebooks)."""
    import sysconfig

    for scheme_path in {sysconfig.get_paths()["data"], sysconfig.get_paths(vars={"base": sys.prefix})["data"]}:
        folder = Path(scheme_path) / "share" / "lsr-kit" / "notebooks"
        if (folder / f"{NOTEBOOKS[0]}.ipynb").is_file():
            return folder
    raise LsrError("lsr reproduce runs the kit's notebooks, which were not found (neither a checkout of the "
                   "repository nor an installed kit's share/lsr-kit/notebooks); reinstall the kit (pip install "
                   "lsr-kit, or pip install -e . in a checkout)")


# ----------------------------------------------------------------------------- unit functions (picklable)
def _where(spec: dict) -> dict:
    """Where a unit's runs train: their folder, the device, and how (progress; the time left: ``--budget``)."""
    deadline = spec.get("deadline")
    return dict(out=spec["out"], device=spec["device"], options=RunOptions(
        progress=spec.get("progress", True), graphs=spec.get("graphs", False),
        deadline=None if deadline is None else time.monotonic() + (deadline - time.time())))


def _data(v: VAEConfig, spec: dict, n_test: int | None = None):
    """The images a unit's runs train on (units load them; training takes its data)."""
    return load_data(v.dataset, root=spec.get("data_root"), n_train=v.n_train, seed=v.data_seed, n_test=n_test,
                     progress=n_test is None)


def train_vaes_unit(spec: dict) -> dict:
    """Train (or reuse) VAEs: one, or a sweep (stacked on a GPU)."""

    cfgs = [VAEConfig.from_dict(c) for c in spec["cfgs"]]
    data = _data(cfgs[0], spec)
    runs = train_sweep(cfgs, data, **_where(spec)) if len(cfgs) > 1 else [train_vae(cfgs[0], data, **_where(spec))]
    return {"status": "done", "message": ", ".join(r.path.name for r in runs)}


def train_gans_unit(spec: dict) -> dict:
    """Train (or reuse) LSR-GANs on their finished VAEs: one, or a sweep (stacked on a GPU)."""

    cfgs = [GANConfig.from_dict(c) for c in spec["cfgs"]]
    data = _data(cfgs[0].vae, spec)
    runs = train_sweep(cfgs, data, **_where(spec)) if len(cfgs) > 1 else \
        [train_lsr_gan(cfgs[0], data, **_where(spec))]
    return {"status": "done", "message": ", ".join(r.path.name for r in runs)}


def classifier_unit(spec: dict) -> dict:

    run = train_classifier(evaluation_classifier_config(spec["dataset"], spec["profile"]), out=spec["out"],
                           device=spec["device"], data_root=spec.get("data_root"),
                           options=RunOptions(progress=spec.get("progress", True)))
    return {"status": "done", "message": f"{run.path.name}: {100 * run.metrics['test_accuracy']:.1f} % on raw test "
                                         f"images"}


def evaluate_unit(spec: dict) -> dict:

    cfg = GANConfig.from_dict(spec["cfg"])
    path = run_path(cfg, _data(cfg.vae, spec, n_test=1), spec["out"])
    rec = evaluate_run(path, EvalSettings(n_test=spec["n_test"], use_fid=spec.get("fid", False)),
                       data_root=spec.get("data_root"), device=spec["device"], progress=spec.get("progress", True),
                       command=spec.get("command"), say=lambda text: None)
    return {"status": "done", "message": f"{rec['run']}"}


def spread_unit(spec: dict) -> dict:
    """The run-to-run spread of every metric over the seeds of the beta = lambda = 1 pair (training noise)."""

    cfgs = [GANConfig.from_dict(c) for c in spec["cfgs"]]
    recs = [evaluate_run(run_path(c, _data(c.vae, spec, n_test=1), spec["out"]), EvalSettings(n_test=spec["n_test"]),
                         data_root=spec.get("data_root"), device=spec["device"], progress=False,
                         say=lambda text: None) for c in cfgs]
    path = write_spread(recs, Path(spec["results"]), spec["dataset"], spec["profile"],
                        [c["seed"] for c in spec["cfgs"]])
    return {"status": "done", "message": str(path.name)}


def spread_path(results: Path, dataset: str, profile: str) -> Path:

    return Path(results) / f"seed_spread_{dataset}_{profile}.json"


def write_spread(recs: list[dict], results: Path, dataset: str, profile: str, seeds: list[int]) -> Path:
    """Write ``seed_spread_<dataset>_<profile>.json``: per metric, the seeds' means and their standard deviation."""


    keys = sorted(set.intersection(*(set(k for k, v in r["values"].items() if isinstance(v, dict)) for r in recs)))
    spread = {}
    for k in keys:
        means = [r["values"][k]["mean"] for r in recs]
        spread[k] = {"means": means, "mean": statistics.fmean(means),
                     "std": statistics.stdev(means) if len(means) > 1 else 0.0}
    path = spread_path(results, dataset, profile)
    atomic_write_json(path, {"what": "run-to-run spread of each metric: the same configuration trained with other "
                                     "seeds (beta = lambda = 1), each evaluated on the same test images",
                             "dataset": dataset, "profile": profile, "seeds": seeds,
                             "runs": [r["run"] for r in recs], "n_test": recs[0]["n_test"], "spread": spread,
                             "written": now(), "environment": environment()})
    return path


def notebook_unit(spec: dict) -> dict:
    """Execute one notebook: in place (the project's committed outputs) or as a copy (papermill)."""

    if spec["in_place"]:
        return run_in_place(spec["notebook"], spec["profile"], spec.get("manifest"), spec["dataset"],
                            fid=spec["params"].get("fid"))
    return run_notebook(spec["notebook"], spec["target"], spec["params"], spec.get("manifest"))


def run_in_place(notebook: str, profile: str, manifest: str | None = None, dataset: str = "shapes",
                 fid: bool | None = None) -> dict:
    """Execute a notebook of the project in place: its own cells, with the reproduction's ``profile``, ``dataset``
    (notebook 05 draws only it: the plan counts its runs) and ``manifest`` given as its parameters.

    They are given in a cell after the ``parameters`` cell, run and then removed, so the committed notebook keeps
    its own cells, with the outputs of this reproduction.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(notebook)
    nb = nbformat.read(str(path), as_version=4)
    given = {"profile": profile, "manifest": manifest, **({"fid": fid} if fid is not None else {})}
    where = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if where is None:
        raise LsrError(f"{path}: no cell tagged 'parameters'; the kit's notebooks all have one")
    names = set(re.findall(r"^(\w+)\s*=", "".join(nb.cells[where].source), flags=re.M))
    if "datasets" in names:
        given["datasets"] = [dataset]
    injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in given.items() if k in names))
    nb.cells.insert(where + 1, injected)
    t0 = time.monotonic()
    try:
        NotebookClient(nb, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                       store_widget_state=True).execute()
    except CellExecutionError as e:
        return {"status": "error", "message": f"{path.name}: {str(e).strip().splitlines()[-1][:300]}"}
    finally:
        nb.cells.remove(injected)

    atomic_write_bytes(path, nbformat.writes(nb).encode())
    return {"status": "done", "message": f"{time.monotonic() - t0:.0f} s"}


def report_unit(spec: dict) -> dict:

    files = write_report(None, spec["results"], records=manifest_records(spec["manifest"]),
                         command=spec.get("command"))
    return {"status": "done", "message": ", ".join(Path(f).name for f in files if Path(f).suffix == ".md")}


# ----------------------------------------------------------------------------- the plan
@dataclass
class Plan:
    units: list[Unit]
    rows: list[dict]       # what is printed: one per unit
    layout: Layout
    manifest: Path


def plan(dataset: str = "shapes", profile: str | None = None, *, out=None, data_root=None, device="cpu",
         stacked: bool | None = None, graphs: bool = False, seeds=None, progress: bool = True,
         deadline: float | None = None, command: str | None = None) -> Plan:
    """The units that reproduce the paper for ``dataset`` in ``profile``, in dependency order."""


    profile = check_profile(profile or DEFAULT_PROFILE)
    check_dataset_name(dataset)
    dev = torch.device(device)
    stacked = dev.type == "cuda" if stacked is None else stacked
    lay = Layout.of(out, profile, dataset)
    sizes = profile_for(profile, dataset)
    base = make_config(profile, dataset=dataset)
    data = load_data(dataset, root=data_root, n_train=base.vae.n_train, n_test=1, seed=base.vae.data_seed,
                     progress=progress)  # a missing dataset stops here, naming what to fetch and where
    betas, lams = sweep_values(profile)
    manifest = lay.results / ".reproduce" / f"records-{dataset}-{profile}.txt"
    common = {"out": str(lay.runs), "data_root": None if data_root is None else str(data_root), "device": str(dev),
              "progress": progress, "graphs": graphs, "deadline": deadline}
    fid = find_weights() is not None
    units, rows = [], []

    def status(cfgs, left: int, steps: int) -> str:
        done = sum(RunDir(run_path(c, data, lay.runs)).status == "finished" for c in cfgs)
        if done == len(cfgs):
            return "done"
        if left < steps:
            return f"{100 * (steps - left) / steps:.0f} % done"
        return f"{done}/{len(cfgs)} done" if done else "to do"

    def add(name, fn, spec, deps=(), cfgs=(), kind="train", what="", done: bool = False):
        steps = sum(_image_steps(c, data) for c in cfgs)
        left = sum(_steps_left(c, data, lay.runs) for c in cfgs)
        units.append(Unit(name, fn, (spec,), tuple(deps), gpu=kind == "train"))
        rows.append({"unit": name, "what": what, "image_steps": steps, "left": left, "members": len(cfgs),
                     "kind": kind, "status": status(cfgs, left, steps) if cfgs and kind == "train" else
                     "done" if done else ""})

    def evaluated(c: GANConfig, use_fid: bool = False) -> bool:  # a record the evaluation unit will reuse
        settings = EvalSettings(n_test=sizes.n_test, n_variance=sizes.n_variance, use_fid=use_fid)
        return reusable_record(run_path(c, data, lay.runs), settings.recorded()) is not None

    def spread_done(cfgs) -> bool:  # the spread file, newer than the (reusable) records it was made from
        f = spread_path(lay.results, dataset, profile)
        return f.is_file() and all(evaluated(c) and (run_path(c, data, lay.runs) / "metrics.json").stat().st_mtime
                                   <= f.stat().st_mtime for c in cfgs)

    ccfg = evaluation_classifier_config(dataset, profile)
    add("classifier", classifier_unit, {**common, "dataset": dataset, "profile": profile}, kind="classifier",
        what="the classifier of the classification metrics",
        done=classifier_finished(ccfg, out=lay.runs, data_root=data_root, progress=progress))
    t1 = {b: make_config(profile, dataset=dataset, beta=b) for b in betas}
    t2 = {lam: make_config(profile, dataset=dataset, lam=lam) for lam in lams}
    seeds = sizes.seeds if seeds is None else seeds
    extra = {s: make_config(profile, dataset=dataset, seed=s) for s in seeds if s != base.seed}
    vae_unit = {}
    if stacked:
        add("vaes", train_vaes_unit, {**common, "cfgs": [c.vae.to_dict() for c in t1.values()]},
            cfgs=[c.vae for c in t1.values()], what=f"Table 1: {len(betas)} VAEs, beta in {_list(betas)} (stacked)")
        vae_unit = {b: "vaes" for b in betas}
        add("gans-table1", train_gans_unit, {**common, "cfgs": [c.to_dict() for c in t1.values()]}, ["vaes"],
            cfgs=list(t1.values()), what=f"Table 1: {len(betas)} LSR-GANs, lambda 1 (stacked)")
        rest = [c for lam, c in t2.items() if lam != 1.0]
        add("gans-table2", train_gans_unit, {**common, "cfgs": [c.to_dict() for c in rest]}, ["vaes"], cfgs=rest,
            what=f"Table 2: {len(rest)} LSR-GANs, lambda in {_list(x for x in lams if x != 1)}, beta 1 (stacked)")
        gan_unit = {("b", b): "gans-table1" for b in betas} | {("l", lam): "gans-table2" for lam in lams if lam != 1}
    else:
        gan_unit = {}
        for b, c in t1.items():
            add(f"vae-b{b:g}", train_vaes_unit, {**common, "cfgs": [c.vae.to_dict()]}, cfgs=[c.vae],
                what=f"Table 1: VAE, beta {b:g}")
            vae_unit[b] = f"vae-b{b:g}"
        for b, c in t1.items():
            add(f"gan-b{b:g}-l1", train_gans_unit, {**common, "cfgs": [c.to_dict()]}, [vae_unit[b]], cfgs=[c],
                what=f"Table 1: LSR-GAN, beta {b:g}, lambda 1")
            gan_unit[("b", b)] = f"gan-b{b:g}-l1"
        for lam, c in t2.items():
            if lam == 1.0:
                continue
            add(f"gan-b1-l{lam:g}", train_gans_unit, {**common, "cfgs": [c.to_dict()]}, [vae_unit[1.0]], cfgs=[c],
                what=f"Table 2: LSR-GAN, beta 1, lambda {lam:g}")
            gan_unit[("l", lam)] = f"gan-b1-l{lam:g}"
    gan_unit[("l", 1.0)] = gan_unit[("b", 1.0)]
    for s, c in extra.items():
        add(f"vae-seed{s}", train_vaes_unit, {**common, "cfgs": [c.vae.to_dict()]}, cfgs=[c.vae],
            what=f"training noise: VAE, beta 1, seed {s}")
        add(f"gan-seed{s}", train_gans_unit, {**common, "cfgs": [c.to_dict()]}, [f"vae-seed{s}"], cfgs=[c],
            what=f"training noise: LSR-GAN, beta 1, lambda 1, seed {s}")
    evals = []
    ecommon = {**common, "n_test": sizes.n_test, "command": command or f"lsr reproduce --profile {profile}"}
    for key, c in [(("b", b), c) for b, c in t1.items()] + [(("l", lam), c) for lam, c in t2.items() if lam != 1]:
        name = f"evaluate-b{c.vae.beta:g}-l{c.lam:g}"
        with_fid = fid and c.vae.beta == 1 and c.lam == 1
        add(name, evaluate_unit, {**ecommon, "cfg": c.to_dict(), "fid": with_fid},
            ["classifier", gan_unit[key]], kind="evaluate", done=evaluated(c, with_fid),
            what=f"metrics of beta {c.vae.beta:g}, lambda {c.lam:g}" + (" (with FID)" if with_fid else ""))
        evals.append(name)
    add("seed-spread", spread_unit, {**ecommon, "cfgs": [base.to_dict()] + [c.to_dict() for c in extra.values()],
                                     "results": str(lay.results), "dataset": dataset, "profile": profile},
        ["classifier", gan_unit[("b", 1.0)]] + [f"gan-seed{s}" for s in extra], kind="evaluate",
        done=spread_done([base, *extra.values()]),
        what=f"run-to-run spread of every metric over seeds {_list(seeds)}")
    nb_deps = evals + ["seed-spread"]
    for nb in NOTEBOOKS:
        # Appendix A (notebook 06) trains its own two VAEs and reuses Table 1's beta = 1 VAE, nothing else: it may
        # start as soon as that VAE is trained (beside the rest, where several jobs run at once)
        deps = [vae_unit[1.0]] if nb.startswith("06") else nb_deps
        params = {"profile": profile, "dataset": dataset, "data_root": None if data_root is None else str(data_root),
                  "device": str(dev), "out": None if out is None else str(Path(out).resolve())}
        if nb.startswith("05"):
            params = {k: v for k, v in params.items() if k != "dataset"} | {"datasets": [dataset]}
        if nb.startswith("02"):
            params["fid"] = fid
        source = (lay.sources or lay.root / "notebooks") / f"{nb}.ipynb"
        add(f"notebook-{nb[:2]}", notebook_unit, {"notebook": str(source), "target": str(lay.notebooks / f"{nb}.ipynb"),
                                                  "params": params, "in_place": lay.in_place, "profile": profile,
                                                  "dataset": dataset,
                                                  "manifest": str(manifest)},
            deps, kind="notebook", what=f"notebooks/{nb}.ipynb" + (" (in place)" if lay.in_place else ""))
    add("report", report_unit, {"results": str(lay.results), "manifest": str(manifest), "command": command},
        [f"notebook-{nb[:2]}" for nb in NOTEBOOKS], kind="report", what="report.md, the CSV tables, claims.md")
    return Plan(units, rows, lay, manifest)


def _list(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _image_steps(cfg, data) -> int:
    """Images seen in training: training images x epochs (the images actually used)."""

    return _images_per_epoch(cfg, data) * cfg.epochs


def _images_per_epoch(cfg, data) -> int:
    v = cfg.vae if isinstance(cfg, GANConfig) else cfg
    return len(bind_data(v, data)[1].train_x) if data is not None else (v.n_train or 0)


def _steps_left(cfg, data, runs) -> int:
    """Image-steps still to train: none for a finished run, the rest after its checkpoint for a started one."""

    total = _image_steps(cfg, data)
    folder = RunDir(run_path(cfg, data, runs))
    state = folder.status
    if state == "finished":
        return 0
    if state != "running":
        return total
    try:
        ck = folder.load_checkpoint("vae" if isinstance(cfg, VAEConfig) else "gan")
    except LsrError:
        return total  # a damaged checkpoint: the run will say so when it starts
    if ck is None:
        return total
    done = int(ck["epoch"]) * _images_per_epoch(cfg, data) + int(ck["pos"]) * cfg.batch_size
    return max(total - done, 0)


# ----------------------------------------------------------------------------- estimate
def measure_rates(device, stacked_members: int = 1, graphs: bool = False, steps: int = 6,
                  cfg: GANConfig | None = None) -> dict:
    """Images per second of one VAE step and one GAN step on ``device`` (a short warm-up), for the plan's estimate.

    Built from ``cfg`` (the plan's own configuration, its recipe and arithmetic included) by the kit's one builder.
    """
    dev = torch.device(device)
    m = stacked_members
    cfg = cfg or GANConfig(vae=VAEConfig())
    x = torch.rand(cfg.batch_size, cfg.vae.channels, cfg.vae.image_size, cfg.vae.image_size, device=dev).mul(2)\
        .sub(1).contiguous(memory_format=torch.channels_last)
    cfgs = [cfg.replace(vae=cfg.vae.replace(beta=1.0 + i), lam=1.0 + i) for i in range(m)]
    encoder, decoder = build_vae(cfg.vae)
    how = Build(capturable=graphs)
    if m == 1:
        vae = build_stage(cfg.vae, dev, total_steps=10 ** 6, how=how)
        gan = build_stage(cfg, dev, total_steps=10 ** 6, encoder=encoder.eval(), decoder=decoder, how=how)
    else:
        vae = build_stacked_stage([c.vae for c in cfgs], dev, total_steps=10 ** 6, how=how)
        gan = build_stacked_stage([c.replace(vae=cfg.vae) for c in cfgs], dev, total_steps=10 ** 6,
                                  encoders=[encoder.eval()], decoders=[decoder], how=how)
    if graphs:
        vae, gan = capture(vae), capture(gan)
    out = {}
    for name, stage in (("vae", vae), ("gan", gan)):
        step = stage.step
        for i in range(2 + (4 if graphs else 0)):
            step(x, 10 ** 5 + i)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(steps):
            step(x, 10 ** 5 + i)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        out[name] = m * cfg.batch_size * steps / (time.perf_counter() - t0)
    return out


def estimate(p: Plan, rates: dict, dataset: str, profile: str) -> None:
    """Fill each row's estimated seconds from measured rates (training), and rough constants (the rest)."""
    sizes = profile_for(profile, dataset)
    n_test = sizes.n_test or 10000
    for row in p.rows:
        if row["status"] == "done":
            row["seconds"] = 0.0
        elif row["kind"] == "train":
            kind = "vae" if row["unit"].startswith("vae") else "gan"
            row["seconds"] = row.get("left", row["image_steps"]) / rates[kind]
        elif row["kind"] == "evaluate":
            # mostly decoding: K = 10 renderings by both decoders of each variance input, a few passes over the
            # test images; a decoder's forward pass (small batches) runs at about 5.5x the measured GAN training
            # rate (2-core CPU: 46 s for 1,000 test images at 100 LSR-GAN images/s)
            n_var = min(n_test, sizes.n_variance)
            one = (n_var * 10 * 2 + n_test * 6) / (5.5 * rates["gan"])
            row["seconds"] = one * (2 if row["unit"] == "seed-spread" else 1)
        elif row["kind"] == "classifier":
            c = evaluation_classifier_config(dataset, profile)  # a classifier step costs about a quarter of a GAN's
            row["seconds"] = c.epochs * (c.n_train or 50000) / (4 * rates["gan"])
        elif row["kind"] == "notebook":
            row["seconds"] = 30.0 + (2 * _image_steps(make_config(profile, dataset=dataset).vae, None) /
                                     rates["vae"] if row["unit"] == "notebook-06" else 0)
        else:
            row["seconds"] = 5.0


def print_plan(p: Plan, say, rates: dict | None, device: str) -> None:
    say(f"plan: {len(p.units)} units; runs in {p.layout.runs}, figures in {p.layout.figures}, results in "
        f"{p.layout.results}")
    say(f"{'unit':22s} {'image-steps':>12s} {'status':>10s} {'estimate':>10s}  what")
    total = 0.0
    for row in p.rows:
        sec = row.get("seconds")
        total += sec or 0
        say(f"{row['unit']:22s} {row['image_steps']:12,d} {row['status'] or '-':>10s} "
            f"{_duration(sec) if sec is not None else '?':>10s}  {row['what']}")
    steps = sum(r["image_steps"] for r in p.rows)
    if rates:
        say(f"total: {steps:,d} image-steps of training; estimated {_duration(total)} on {device} "
            f"(measured: VAE {rates['vae']:.0f}, LSR-GAN {rates['gan']:.0f} images/s per member)")


def _duration(sec: float) -> str:
    sec = float(sec)
    if sec < 90:
        return f"{sec:.0f} s"
    if sec < 5400:
        return f"{sec / 60:.0f} min"
    return f"{sec / 3600:.1f} h"


# ----------------------------------------------------------------------------- the record of sittings
def record_sitting(path: Path, outcomes: dict, t_start: float, command: str | None, dev, rates: dict,
                   ended: bool = True, fresh: bool = False) -> Path:
    """Append this sitting (each unit's status and seconds) to the reproduction's timing record.

    A reproduction may span several sittings (``--budget``, Ctrl-C, a lost machine); the record keeps each
    one, so the time the whole reproduction took is the sum of its sittings' seconds, on the hardware named.
    It is rewritten after every unit (``ended`` False, replacing this sitting's earlier entry), so a killed
    sitting keeps what it finished, marked ``"ended": false``. A damaged record is set aside under a
    ``.damaged`` name rather than overwritten. ``fresh``: this sitting found no unit of its plan done or started
    (a fresh clone whose committed record came from another machine's runs, or a new ``--out``), so it begins a
    new record: the earlier sittings did nothing this reproduction reuses, and their record is kept beside it
    under a ``.previous`` name instead of being summed into this one.
    """
    sitting_id = f"{os.getpid()}-{t_start:.3f}"
    sittings = []
    if path.exists():
        try:
            sittings = read_json(path).get("sittings")
        except (LsrError, AttributeError):
            sittings = None
        if not isinstance(sittings, list):
            path.replace(path.with_name(path.name + ".damaged"))
            sittings = []
    own = bool(sittings) and isinstance(sittings[-1], dict) and sittings[-1].get("id") == sitting_id
    if own:
        sittings.pop()  # this sitting's entry so far
    elif fresh and sittings:
        path.replace(path.with_name(path.name + ".previous"))
        sittings = []
    sittings.append({
        "id": sitting_id,
        "ended": ended,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t_start)),
        "seconds": round(time.time() - t_start, 1),
        "command": command,
        "device": device_name(dev),
        "environment": environment(),
        "warm_up_images_per_s": {k: round(float(v), 1) for k, v in rates.items()},
        "units": {name: {"status": o.status, "seconds": round(o.seconds, 1)} for name, o in outcomes.items()},
    })
    total = sum(float(s.get("seconds", 0)) for s in sittings if isinstance(s, dict))
    atomic_write_json(path, {"what": "the sittings of one lsr reproduce (dataset, profile) and what each took",
                             "total_seconds": round(total, 1), "sittings": sittings})
    return path


# ----------------------------------------------------------------------------- the command
def select_units(p: Plan, only: list[str] | None) -> Plan:
    """The plan cut to the units named in ``only`` and everything they depend on."""
    if not only:
        return p
    by_name = {u.name: u for u in p.units}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        raise LsrError(f"--only: no unit named {', '.join(unknown)}; units of this plan: {', '.join(by_name)}")
    keep, todo = set(), list(only)
    while todo:
        n = todo.pop()
        if n not in keep:
            keep.add(n)
            todo.extend(by_name[n].deps)
    return Plan([u for u in p.units if u.name in keep], [r for r in p.rows if r["unit"] in keep], p.layout, p.manifest)


def reproduce(*, dataset: str = "shapes", data_root=None, profile: str | None = None, out=None, device="auto",
              budget: float | None = None, dry_run: bool = False, graphs: bool = False, executor=None,
              progress: bool = True, command: str | None = None, only: list[str] | None = None, say=print) -> int:
    """Plan, print the plan, then run what is left. Returns the exit status (3: the budget ran out)."""

    profile = check_profile(profile or DEFAULT_PROFILE)
    check_dataset_name(dataset)
    dev = resolve_device(device)
    if graphs and dev.type != "cuda":
        raise LsrError("--graphs needs a CUDA device; drop --graphs on this machine")
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise LsrError(f"--budget must be a positive number of minutes, got {budget:g}")
    executor = executor or LocalExecutor()
    stacked = dev.type == "cuda"
    t_start = time.time()
    deadline = None if budget is None else t_start + 60 * budget
    full = plan(dataset, profile, out=out, data_root=data_root, device=dev, stacked=stacked, graphs=graphs,
                progress=progress, deadline=deadline, command=command)
    fresh = all(r["status"] in ("to do", "") for r in full.rows)  # nothing done or started: a new record
    p = select_units(full, only)
    t0 = time.monotonic()
    rates = measure_rates(dev, stacked_members=len(sweep_values(profile)[0]) if stacked else 1, graphs=graphs,
                          cfg=make_config(profile, dataset=dataset))
    warm = time.monotonic() - t0
    estimate(p, rates, dataset, profile)
    for u, row in zip(p.units, p.rows):
        u.cost_s = float(row.get("seconds") or 0.0)  # the submitit executor starts the costliest ready unit first
    print_plan(p, say, rates, device_name(dev))
    if (getattr(executor, "jobs", None) or 1) > 1:
        say(f"{executor.jobs} jobs at once: units overlap, so the sitting may take less than that sum (on a 2-core "
            f"CPU two 1-thread jobs did 1.0-1.14x the work of one 2-thread job; benchmarks/RESULTS.md)")
    if dry_run:
        return 0
    if budget is not None and 60 * budget < warm + 90:
        raise LsrError(f"--budget {budget:g} min is too short to reach a checkpoint (the warm-up took {warm:.0f} s "
                       f"and a run checkpoints after at most 60 s of training); give at least "
                       f"{(warm + 90) / 60:.0f} minutes")
    for folder in (p.layout.runs, p.layout.figures, p.layout.results, p.layout.notebooks):
        make_dir(folder)
    env = {"LSR_PROGRESS": "1" if progress else "0"}
    kw = {"env": env} if executor.name == "submitit" else {}
    record_path = p.layout.results / f"reproduce_{dataset}_{profile}.json"
    outcomes = executor.run(p.units, say=say, deadline=deadline, **kw, on_outcome=lambda so_far: record_sitting(
        record_path, so_far, t_start, command, dev, rates, ended=False, fresh=fresh))
    done = [u for u in p.units if outcomes.get(u.name) and outcomes[u.name].status == "done"]
    failed = [o for o in outcomes.values() if o.status == "error"]
    late = [o for o in outcomes.values() if o.status == "out_of_time"]
    left = [u.name for u in p.units if u not in done]
    say(f"reproduce: {len(done)} of {len(p.units)} units done in {_duration(time.time() - t_start)}")
    record = record_sitting(record_path, outcomes, t_start, command, dev, rates, fresh=fresh)
    say(f"this sitting's timings: {record}")
    for o in failed:
        say("  FAILED " + describe_failure(o))
    if late or (left and not failed):
        say(f"time is up: {len(left)} units left ({', '.join(left[:8])}{' ...' if len(left) > 8 else ''}); run the "
            f"same command again to continue from the last checkpoints")
        return EXIT_OUT_OF_TIME
    if failed:
        skipped = [o.name for o in outcomes.values() if o.status == "skipped"]
        if skipped:
            say(f"  not run because of the failures: {', '.join(skipped)}")
        say("fix the failures and run the same command again: finished units are skipped")
        return 1
    say(f"figures in {p.layout.figures}; tables in {p.layout.results / 'report.md'}; claims in "
        f"{p.layout.results / 'claims.md'}")
    return 0

