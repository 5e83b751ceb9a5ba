"""Helpers for the numbered notebooks and for running them headless (papermill sweeps).

In a notebook::

    ctx = setup(profile=profile, name="03_beta_sweep")   # after the `parameters` cell

``ctx`` resolves the profile (the ``parameters`` value, else ``$LSR_PROFILE``,
else ``smoke`` under CI, else ``quick``: :func:`setup` is the notebook's edge,
where the environment is read, :mod:`lsr_utils.apps.environ`) and the folders: runs go to
``<project>/runs``; figures and results to ``<project>/figures`` and
``<project>/results``, except in the ``smoke`` profile, whose outputs go to
``<project>/runs/_smoke/`` so that a test run never overwrites the committed
figures.

Headless: :func:`execute` runs one notebook with parameters (an unknown
parameter name is an error, not papermill's warning), and :func:`sweep` runs
one parameterised copy per value, resumes without redoing finished values,
keeps a failed copy for inspection (reporting its cell) and goes on.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..base.errors import LsrError
from ..base.files import atomic_write_json, make_dir, read_json
from ..base.runtime import environment, now
from ..data import check_dataset_name, load_data
from ..measurement.report import write_report
from ..method.config import PROFILES, check_profile, make_config, profile_for
from .environ import from_environment, install
from .jobs import LocalExecutor, Unit

SAMPLE_DATASETS = ("shapes", "mnist", "cifar10", "celeba", "imagenet64")  # Figures 8 and 9, and the kit's own


def project_root(start: Path | None = None) -> Path:
    """The folder holding the kit's pyproject.toml (searched upwards from ``start``/cwd), else cwd."""
    here = Path(start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        f = p / "pyproject.toml"
        if f.is_file() and 'name = "lsr-kit"' in f.read_text():
            return p
    return here


@dataclass
class Context:
    """A notebook's profile and folders, and the configurations and data of its profile."""

    name: str
    profile: str
    root: Path
    runs: Path
    figures: Path
    results: Path
    data_root: Path | None = None
    manifest: str | None = None    # a file the evaluations append their records to (lsr reproduce, lsr sweep)
    progress: bool = True
    fid_weights: str | None = None

    def figure(self, stem: str) -> Path:
        return self.figures / stem

    def rel(self, p: Path | None) -> str:
        """``p`` relative to the project (outputs carry no machine's absolute paths)."""
        if p is None:
            return "-"
        try:
            return str(Path(p).resolve().relative_to(self.root)) or "."
        except ValueError:
            return os.path.relpath(Path(p).resolve(), self.root)

    def banner(self) -> str:
        return (f"{self.name}: profile '{self.profile}'; runs in {self.rel(self.runs)}/; figures in "
                f"{self.rel(self.figures)}/; results in {self.rel(self.results)}/; data from {self.rel(self.data_root)}")

    def config(self, dataset: str = "shapes", **settings):
        """The profile's configuration for ``dataset`` (``beta=..., lam=..., seed=...``: see lsr_utils.method.config.OPTIONS)."""
        return make_config(self.profile, dataset=dataset, **settings)

    def n_test(self, dataset: str = "shapes") -> int | None:
        """The profile's number of test images for ``dataset`` (None: all), as ``lsr evaluate`` and ``lsr demo``."""
        return profile_for(self.profile, dataset).n_test

    def n_variance(self, dataset: str = "shapes") -> int:
        """The profile's number of sample-variance inputs for ``dataset``, as ``lsr evaluate``'s."""
        return profile_for(self.profile, dataset).n_variance

    def data(self, dataset: str = "shapes", cfg=None):
        """The profile's training and test images of ``dataset`` (those of ``cfg.vae`` when given)."""

        v = (cfg or self.config(dataset)).vae
        return load_data(v.dataset, root=self.data_root, n_train=v.n_train, n_test=self.n_test(v.dataset),
                         seed=v.data_seed, progress=self.progress)

    def datasets(self, given=None) -> list[str]:
        """The datasets a notebook over several (05) draws: ``given`` (a list, or names separated by commas; ``lsr
        reproduce`` gives the dataset it reproduces, whose runs its plan counts), else those of the paper's Figures
        8-9 and ``shapes`` (each skipped with a message where it is not on disk)."""

        if isinstance(given, str):
            given = [n.strip() for n in given.split(",") if n.strip()]
        names = list(given) if given is not None else list(SAMPLE_DATASETS)
        for n in names:
            check_dataset_name(n)
        return names

    def spread(self, dataset: str = "shapes") -> dict:
        """The run-to-run standard deviation of each metric (seeds of the beta = lambda = 1 pair), or {} if unmeasured.

        Written by ``lsr reproduce`` (``results/seed_spread_<dataset>_<profile>.json``); the
        claims' verdicts weigh it (:func:`trend`'s ``spread``).
        """

        f = self.results / f"seed_spread_{dataset}_{self.profile}.json"
        if not f.is_file():
            return {}
        d = read_json(f)
        return {k: v["std"] for k, v in (d.get("spread") or {}).items() if isinstance(v, dict) and "std" in v}


def find_data_root(data_root: str | Path | None, root: Path) -> Path | None:
    """The data folder: the argument (or $LSR_DATA_ROOT, read by setup), else <project>/data, else ../shared/data
    beside it."""
    if data_root:
        return Path(data_root)
    for cand in (root / "data", root.parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return root / "data"


def setup(*, profile: str | None = None, name: str = "notebook", root: str | Path | None = None,
          data_root: str | Path | None = None, out: str | Path | None = None, manifest: str | None = None,
          environ=None) -> Context:
    """A notebook's context: its profile (argument, else ``$LSR_PROFILE``, else ``smoke`` under CI, else ``quick``)
    and folders: the project's ``runs/``, ``figures/``, ``results/`` (smoke-profile figures and results go to
    ``runs/_smoke/``, never over the committed ones), or ``<out>/runs``, ``<out>/figures``, ``<out>/results``."""
    env = install(from_environment(os.environ if environ is None else environ))  # the notebook's edge
    profile = check_profile(profile) if profile else env.profile
    out = out if out is not None else env.out
    root = Path(root).resolve() if root else project_root()
    if out is not None:
        base = Path(out).resolve()
        runs, figures, results = base / "runs", base / "figures", base / "results"
    elif PROFILES[profile].plumbing_only:
        runs = root / "runs"
        figures, results = runs / "_smoke" / "figures", runs / "_smoke" / "results"
    else:
        runs, figures, results = root / "runs", root / "figures", root / "results"
    for p in (runs, figures, results):
        make_dir(p)
    return Context(name, profile, root, runs, figures, results, find_data_root(data_root or env.data_root, root),
                   manifest=manifest, progress=env.progress, fid_weights=env.fid_weights)


def write_results(ctx: Context, stem: str, record: dict, *, claims: list[dict] | None = None,
                  figures: list[str] | None = None) -> Path:
    """Write a notebook's numbers to ``results/<stem>.json`` with the profile and environment.

    ``claims``: the paper's claims this notebook tests, each ``{"where": "Figure 1", "claim": ...,
    "reproduced": True | False | None, "evidence": "the numbers behind the verdict"}``;
    ``lsr report`` gathers them into ``results/claims.md`` beside the figures they concern.
    """

    for c in claims or []:
        missing = {"where", "claim", "reproduced", "evidence"} - set(c)
        if missing:
            raise LsrError(f"write_results: claim {c.get('claim')!r} lacks {sorted(missing)}")
    path = ctx.results / f"{stem}.json"
    atomic_write_json(path, {"notebook": ctx.name, "profile": ctx.profile, "written": now(),
                             "environment": environment(), "claims": claims or [], "figures": figures or [],
                             **record})
    return path


WITHIN_NOISE = "within noise"
VERDICT_WORDS = {True: "reproduced", False: "NOT reproduced", None: "not tested",
                 WITHIN_NOISE: "within noise (neither shown nor refuted)"}


def trend(first: dict, second: dict, direction: str, z: float = 2.0, spread: float = 0.0):
    """Did a value go ``"up"`` or ``"down"`` from ``first`` to ``second`` (dicts with ``mean`` and ``sem``)?

    True when the change has that sign and exceeds ``z`` combined standard
    errors, False when it has the other sign and exceeds them, else
    ``WITHIN_NOISE``. The error combines the two values' standard errors (the
    choice of test images) with ``spread``, the run-to-run standard deviation
    of the metric (the training noise: same settings, other seeds), once for
    each run: a claim's verdict should not rest on a difference that retraining
    with another seed could make.
    """
    if direction not in ("up", "down"):
        raise LsrError(f"trend direction must be 'up' or 'down', got {direction!r}")
    diff = second["mean"] - first["mean"]
    se = ((first.get("sem") or 0.0) ** 2 + (second.get("sem") or 0.0) ** 2 + 2 * spread ** 2) ** 0.5
    if abs(diff) <= z * se:
        return WITHIN_NOISE
    return (diff > 0) == (direction == "up")


def sweep_trend(xs, stats, direction: str, z: float = 2.0, spread: float = 0.0) -> tuple:
    """Did a value go ``"up"`` or ``"down"`` along a whole sweep (``xs``: its betas or lambdas; ``stats``: a dict
    with ``mean`` and ``sem`` at each)? Returns ``(verdict, evidence)``.

    Judged on every point, not the two ends: the slope of a weighted least-squares line of the value over
    log10(x), each point weighted by 1 / (sem^2 + spread^2) (its test-image error and the training noise, the
    run-to-run s.d. over seeds), with the slope's standard error from the same weights. True when the slope has
    that sign and exceeds ``z`` standard errors, False when it has the other sign and exceeds them, else
    ``WITHIN_NOISE``. The evidence also gives Spearman's rank correlation of the points (descriptive).
    """
    import math

    if direction not in ("up", "down"):
        raise LsrError(f"trend direction must be 'up' or 'down', got {direction!r}")
    pts = [(math.log10(x), s["mean"], (s.get("sem") or 0.0) ** 2 + spread ** 2) for x, s in zip(xs, stats)
           if x > 0 and s is not None and math.isfinite(s["mean"])]
    if len(pts) < 3:
        return None, f"{len(pts)} points: too few for a trend"
    floor = max(1e-12, 1e-6 * max(abs(p[1]) for p in pts) ** 2)
    w = [1.0 / max(v, floor) for _, _, v in pts]
    sw = sum(w)
    xm = sum(wi * p[0] for wi, p in zip(w, pts)) / sw
    ym = sum(wi * p[1] for wi, p in zip(w, pts)) / sw
    sxx = sum(wi * (p[0] - xm) ** 2 for wi, p in zip(w, pts))
    slope = sum(wi * (p[0] - xm) * (p[1] - ym) for wi, p in zip(w, pts)) / sxx
    se = (1.0 / sxx) ** 0.5

    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        for k, i in enumerate(order):
            r[i] = float(k)
        return r

    rx, ry = ranks([p[0] for p in pts]), ranks([p[1] for p in pts])
    n = len(pts)
    rho = 1 - 6 * sum((a - b) ** 2 for a, b in zip(rx, ry)) / (n * (n * n - 1))
    verdict = WITHIN_NOISE if abs(slope) <= z * se else (slope > 0) == (direction == "up")
    values = ", ".join(f"{p[1]:.4g}" for p in pts)
    return verdict, (f"slope {slope:+.3g} ± {se:.2g} per decade of {len(pts)} points ({values}); Spearman "
                     f"{rho:+.2f}" + ("" if spread else "; training noise not measured"))


def claim(where: str, text: str, reproduced, evidence: str) -> dict:
    """One of the paper's claims as a notebook measured it (see :func:`write_results`); prints the verdict.

    ``reproduced``: True, False, None (not tested) or ``WITHIN_NOISE`` (see :func:`trend`).
    """
    verdict = reproduced if reproduced in (None, WITHIN_NOISE) else bool(reproduced)
    word = VERDICT_WORDS[verdict]
    print(f"{where}: claim '{text}': {word} ({evidence})")
    return {"where": where, "claim": text, "reproduced": verdict, "evidence": evidence}


# --------------------------------------------------------------------------- headless execution
def notebook_parameters(path: str | Path) -> dict:
    """Names and defaults of the notebook's ``parameters`` cell (via papermill's inspection)."""
    import nbformat
    import papermill as pm

    path = Path(path)
    if not path.is_file():
        raise LsrError(f"{path}: no such notebook")
    try:
        nbformat.read(str(path), as_version=4)
    except Exception as e:  # not JSON, not a notebook, unreadable
        raise LsrError(f"{path}: not a Jupyter notebook ({type(e).__name__}); give an .ipynb file such as "
                       f"notebooks/00_quickstart.ipynb") from None
    return {k: v.get("default") for k, v in pm.inspect_notebook(str(path)).items()}


def check_parameters(path: str | Path, params: dict) -> None:
    known = notebook_parameters(path)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise LsrError(f"{Path(path).name}: unknown parameter(s) {unknown}; this notebook takes: "
                       f"{', '.join(sorted(known))}")


def execute(notebook: str | Path, output: str | Path, params: dict, *, cwd: str | Path | None = None,
            progress: bool = False) -> Path:
    """Run ``notebook`` with ``params`` into ``output`` (papermill). Unknown parameters are refused."""
    import papermill as pm

    notebook = Path(notebook)
    if not notebook.is_file():
        raise LsrError(f"{notebook}: no such notebook")
    check_parameters(notebook, params)
    output = Path(output)
    make_dir(output.parent)
    pm.execute_notebook(str(notebook), str(output), parameters=params, cwd=str(cwd or notebook.parent),
                        progress_bar=progress, kernel_name="python3")
    return output


def _failed_cell(path: Path) -> str:
    try:
        nb = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return "unknown cell"
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    for i, c in enumerate(code):
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                src = "".join(c.get("source", "")).strip().splitlines()
                first = next((ln for ln in src if ln.strip() and not ln.lstrip().startswith("#")), "")
                return (f"code cell {i + 1} of the executed copy, starting `{first[:80]}` "
                        f"({o.get('ename')}: {str(o.get('evalue'))[:200]})")
    return "unknown cell"


def value_file_name(param: str, value) -> str:
    """``<param>=<value>`` as a safe file name (no folder separators, no leading dot, bounded length).

    Characters other than letters, digits and ``._+-`` are percent-encoded
    (``/`` becomes ``%2F``), as is a leading dot, so that a sweep value can never
    name a file outside the sweep's folder; a very long name is shortened
    with a hash of the value.
    """

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", str(param)):
        raise LsrError(f"parameter name {str(param)[:80]!r} is not a Python identifier")
    text = re.sub(r"[^A-Za-z0-9._+-]", lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), str(value))
    if text.startswith("."):
        text = "%2E" + text[1:]
    if len(text) > 80:
        text = text[:60] + "~" + hashlib.sha1(str(value).encode()).hexdigest()[:12]
    return f"{param}={text}"


def run_notebook(notebook: str, target: str, params: dict, manifest: str | None = None) -> dict:
    """A unit of work (:mod:`lsr_utils.apps.jobs`): execute ``notebook`` into ``target`` with ``params``.

    Writes ``<target>.done`` when it finished; evaluation records made or
    reused on the way are listed in ``manifest`` (passed to the notebook as its ``manifest`` parameter).
    A failure keeps the executed copy and reports the cell that failed.
    """
    target_p = Path(target)
    marker = target_p.with_suffix(".done")
    if marker.exists() and target_p.exists():
        return {"status": "done", "message": "already done", "value": "skipped"}
    t0 = time.monotonic()
    try:
        given = {"manifest": manifest} if manifest and "manifest" in notebook_parameters(notebook) else {}
        execute(notebook, target_p, {**params, **given}, cwd=Path(notebook).parent)
    except LsrError:
        raise
    except Exception as e:  # papermill's PapermillExecutionError and kernel deaths
        error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:200]}" if str(e).strip() else type(e).__name__
        return {"status": "error", "message": f"{_failed_cell(target_p)}; {error}; kept for inspection: {target}"}
    marker.write_text(json.dumps({"seconds": round(time.monotonic() - t0, 1), "params": params}, default=str))
    return {"status": "done", "message": f"{time.monotonic() - t0:.0f} s", "value": "ran"}


def manifest_records(manifest: str | Path) -> list[dict]:
    """The evaluation records a manifest lists (unreadable ones are left out; the report warns about them)."""

    out = []
    m = Path(manifest)
    for line in dict.fromkeys(m.read_text().splitlines() if m.is_file() else []):  # once each (jobs append at once)
        try:
            out.append(read_json(line))
        except LsrError:
            continue
    return out


def sweep(notebook: str | Path, param: str, values: list, *, out: str | Path = "runs/sweeps",
          fixed: dict | None = None, progress: bool = True, executor=None) -> dict:
    """Execute ``notebook`` once per value of ``param``; resumable; failures are kept and reported.

    Each copy goes to ``<out>/<notebook stem>/<param>=<value>.ipynb`` with a
    ``.done`` marker when it finished; each value is one unit for
    ``executor`` (:mod:`lsr_utils.apps.jobs`; default: in this process). The report
    of the sweep (``<out>/<notebook stem>/report/``) is built from exactly the
    evaluation records its copies made or reused. Returns {"done": [...],
    "skipped": [...], "failed": [{"value", "notebook", "cell", "log"}],
    "folder", "report"}.
    """

    notebook = Path(notebook).resolve()
    fixed = dict(fixed or {})
    check_parameters(notebook, {param: values[0], **fixed})
    folder = Path(out).resolve() / notebook.stem
    make_dir(folder)
    manifest = folder / "records.txt"
    units, by_name = [], {}
    for v in values:
        target = folder / f"{value_file_name(param, v)}.ipynb"
        name = value_file_name(param, v)
        units.append(Unit(name, run_notebook, (str(notebook), str(target), {**fixed, param: v}, str(manifest))))
        by_name[name] = (v, target)
    executor = executor or LocalExecutor()
    outcomes = executor.run(units, say=(lambda text: None) if not progress else lambda text: print(text))
    summary = {"done": [], "skipped": [], "failed": [], "folder": str(folder), "report": []}
    for name, (v, target) in by_name.items():
        o = outcomes[name]
        if o.status == "done":
            summary["skipped" if o.value == "skipped" else "done"].append(v)
        else:
            summary["failed"].append({"value": v, "notebook": str(target), "cell": o.message, "log": o.log})
    records = manifest_records(manifest)
    if records:

        summary["report"] = write_report(None, folder / "report", records=records, keep=False,
                                         command=f"lsr sweep {notebook.name} --param {param}")
    return summary
