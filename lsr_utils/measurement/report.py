"""``lsr report``: evaluated runs gathered into the paper's tables, each kit value beside the paper's.

Layouts follow the paper: Table 1 (rows = metrics of VAE and LSR-GAN,
columns = beta, lambda = 1), Table 2 (LSR-GAN rows, columns = lambda, beta = 1)
and section 2.2 (sharpness and FID at beta = lambda = 1). One set of tables is
written per (dataset, profile), in Markdown and CSV, with the provenance of
every run (command, hardware, time). Cells read ``kit ± s.e. (paper: ...)``;
a collapsed GAN reads "model collapse", as in the paper.

Run folders hold weights and stay out of version control, so the report also
keeps every evaluation record it used in ``results/records/`` (small JSON
files, meant to be committed) and reads them back, with the records the
notebooks embed in their results files: a report regenerated on another
machine, or after ``runs/`` was cleaned, still holds every number on record.
Where a run was evaluated more than once, the latest evaluation counts. Where one (beta, lambda) point was
trained with several seeds (the training-noise runs), the tables show the reference seed's run (13).
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

from ..base.errors import LsrError
from ..base.files import atomic_write_bytes, read_json
from ..base.runtime import environment, now
from ..data import DATASETS
from ..method import paper
from ..method.config import CUSTOM, PROFILES, TrainConfig

TABLE1_ROWS = ("mse_vae", "mse_lsr_gan", "variance_vae", "variance_lsr_gan", "absolute_vae", "absolute_lsr_gan",
               "relative_vae", "relative_lsr_gan")
TABLE2_ROWS = ("mse_lsr_gan", "variance_lsr_gan", "absolute_lsr_gan", "relative_lsr_gan")
SECTION_ROWS = ("sharpness_vae", "sharpness_lsr_gan", "fid_test_vae", "fid_test_lsr_gan", "fid_random_vae",
                "fid_random_lsr_gan", "kit_cfd_test_vae", "kit_cfd_test_lsr_gan", "kit_cfd_random_vae",
                "kit_cfd_random_lsr_gan")
OFFLINE_LABELS = {
    "kit_cfd_test_vae": "Classifier Frechet distance, test-seeded (VAE) [kit score, not FID]",
    "kit_cfd_test_lsr_gan": "Classifier Frechet distance, test-seeded (LSR-GAN) [kit score, not FID]",
    "kit_cfd_random_vae": "Classifier Frechet distance, random-seeded (VAE) [kit score, not FID]",
    "kit_cfd_random_lsr_gan": "Classifier Frechet distance, random-seeded (LSR-GAN) [kit score, not FID]",
}


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    a = abs(x)
    if a != 0 and (a < 1e-2 or a >= 1e5):
        return f"{x:.2e}"
    return f"{x:.4g}" if a < 10 else f"{x:.2f}".rstrip("0").rstrip(".")


def _cell_kit(rec: dict | None, key: str) -> str:
    if rec is None:
        return "not run"
    if rec.get("collapse", {}).get("collapsed") and "lsr_gan" in key:
        return paper.COLLAPSE
    if key.startswith("kit_cfd"):
        v = rec.get("scores", {}).get(key)
        return _fmt(v) if v is not None else "-"
    v = rec.get("values", {}).get(key)
    if v is None:
        if key.startswith("fid"):
            return "no weights" if not rec.get("fid", {}).get("available") else "-"
        return "-"
    s = _fmt(v["mean"])
    return s + (f" ± {_sem(v['sem'])}" if v.get("sem") is not None else "")


def _sem(x: float) -> str:
    """A standard error to two significant digits, without exponent notation where possible."""
    if x == 0 or abs(x) >= 1e-3:
        return f"{x:.2g}" if abs(x) < 100 else f"{x:.0f}"
    return f"{x:.1e}"


def md_text(value, limit: int = 300) -> str:
    """Text from a record (untrusted) as inert Markdown: one line, bounded, with the characters that would make a
    link or an image, emphasis, code, a raw HTML tag or a table cell's end escaped."""
    text = " ".join(str(value).split())[:limit]
    text = text.replace("\\", "\\\\")
    for ch in "`*_[]<|":
        text = text.replace(ch, "\\" + ch)
    return text


def md_code(value, limit: int = 300) -> str:
    """Text from a record shown as inline code: one line, bounded, no backtick to break out of it."""
    return "`" + " ".join(str(value).split())[:limit].replace("`", "'") + "`"


def _cell_paper(cell) -> str:
    if cell is None:
        return ""
    if cell == paper.COLLAPSE:
        return paper.COLLAPSE
    m, se = cell
    return _fmt(m) + (f" ± {_fmt(se)}" if se is not None else "")


def _read_json(f: Path, warn=None):
    """The parsed file (the one validated reader: regular file, limits), or None where it cannot be read (the report
    skips it, naming it and why)."""
    try:
        return read_json(f, "evaluation record", damaged="skipped")
    except LsrError as e:
        if warn:
            warn(f"{str(e)[:300]}" + ("" if "skipped" in str(e) else "; skipped"))
        return None


# the seed a table shows where a point was trained with several (the profile's, the reference's: 13)
REFERENCE_SEED = TrainConfig().seed
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,127}$")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def record_problem(r) -> str | None:
    """Why ``r`` cannot be used as an evaluation record (None when it can).

    Records are untrusted input (they are shared, committed and copied between
    machines), and some fields become file names: the dataset and profile must
    be known names and the run's folder names safe characters, so that no
    record can make ``lsr report`` write outside its output folder.
    """

    if not isinstance(r, dict):
        return "not a JSON object"
    missing = [k for k in ("dataset", "profile", "beta", "lam", "run", "values") if k not in r]
    if missing:
        return f"missing {', '.join(missing)}"
    if r["dataset"] not in DATASETS:
        return f"unknown dataset {str(r['dataset'])[:60]!r}"
    if r["profile"] not in (*PROFILES, CUSTOM):
        return f"unknown profile {str(r['profile'])[:60]!r}"
    for k in ("beta", "lam"):
        if not _number(r[k]) or r[k] < 0:
            return f"{k} is not a finite number >= 0 ({str(r[k])[:40]!r})"
    if not isinstance(r["run"], str) or len(Path(r["run"]).parts) < 2 or \
            not all(_SAFE_NAME.match(p) for p in Path(r["run"]).parts[-2:]):
        return f"run {str(r['run'])[:80]!r} does not end in two safe folder names"
    real = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # (NaN allowed)
    if not isinstance(r["values"], dict) or not all(
            (isinstance(v, dict) and real(v.get("mean")) and (v.get("sem") is None or real(v["sem"]))) or real(v)
            for v in r["values"].values()):
        return "values is not a mapping of metrics with numeric means and standard errors"
    for k in ("n_test", "vae_epochs", "gan_epochs", "seed"):
        if k in r and not (isinstance(r[k], int) and not isinstance(r[k], bool)):
            return f"{k} is not an integer"
    for k in ("provenance", "collapse", "scores", "fid"):
        if k in r and not isinstance(r[k], dict):
            return f"{k} is not a mapping"
    if r.get("latent") is not None and not isinstance(r["latent"], dict):
        return "latent is not a mapping"
    return None


def _checked(found: list, source: Path, warn) -> list[dict]:
    out = []
    for r in found:
        problem = record_problem(r)
        if problem is None:
            out.append(r)
        elif warn:
            warn(f"{source}: record skipped ({problem})")
    return out


def load_records(runs: str | Path = "runs", warn=None) -> list[dict]:
    """Evaluation records (``metrics.json``) of the runs under ``runs``; bad ones are skipped with a warning, and so
    is a record that does not carry the SHA-256 of the weights its run folder holds (made of other weights)."""
    from .evaluate import run_weights

    recs = []
    for f in sorted(Path(runs).rglob("metrics.json")):
        d = _read_json(f, warn)
        if not (isinstance(d, dict) and "values" in d):  # classifier runs keep a metrics.json of another kind
            continue
        if "seed" not in d:  # a record written before records named their seed: the run's config says it
            cfg = _read_json(f.parent / "config.json")  # unreadable: the seed stays unknown, the record is kept
            seed = (cfg.get("config") or {}).get("seed") if isinstance(cfg, dict) else None
            if isinstance(seed, int) and not isinstance(seed, bool):
                d["seed"] = seed
        checked = _checked([d], f, warn)
        if not checked:
            continue
        held = run_weights(f.parent)
        bound = d.get("weights") if isinstance(d.get("weights"), dict) else {}
        if held is None or {k: bound.get(k) for k in held} != held:
            if warn:
                warn(f"{f}: skipped, it does not measure the weights this run folder holds (no SHA-256 of them, "
                     f"or others); run `lsr evaluate {f.parent}` again")
            continue
        recs += checked
    return recs


def _warn_stderr(text: str) -> None:
    print(f"lsr: warning: {text}", file=sys.stderr)


def _record_key(r: dict) -> tuple:
    """A run's identity across machines: dataset, profile and its folder relative to the dataset's."""
    return (r["dataset"], r["profile"]) + tuple(Path(str(r["run"])).parts[-2:])


def _evaluated(r: dict) -> str:
    return str((r.get("provenance") or {}).get("evaluated") or "")


def archived_records(results: str | Path = "results", warn=None) -> list[dict]:
    """Evaluation records kept under ``results``: ``records/*.json`` and those embedded in notebook results."""
    results = Path(results)
    recs = []
    for f in sorted(results.glob("records/*.json")):
        d = _read_json(f, warn)
        if d is not None:
            recs += _checked([d], f, warn)
    for f in sorted(results.glob("*.json")):
        d = _read_json(f, warn)
        if not isinstance(d, dict):
            continue
        embedded = [d.get("record")] if d.get("record") is not None else []
        embedded += list(d.get("records") or []) if isinstance(d.get("records"), list) else []
        recs += _checked(embedded, f, warn)
    return recs


def merge_records(records: list[dict]) -> list[dict]:
    """One record per run (the latest evaluation), ordered by evaluation time."""
    latest: dict[tuple, dict] = {}
    for r in records:
        k = _record_key(r)
        # the latest evaluation; of two copies of one evaluation, the one that names its seed
        if k not in latest or (_evaluated(r), "seed" in r) >= (_evaluated(latest[k]), "seed" in latest[k]):
            latest[k] = r
    return sorted(latest.values(), key=_evaluated)


def _archive(records: list[dict], out: Path) -> list[Path]:
    written = []
    for r in records:
        name = "_".join(_record_key(r))  # validated by record_problem: known names, safe characters
        f = out / "records" / (name + ".json")
        body = json.dumps(r, indent=1, sort_keys=True).encode()
        if not f.exists() or f.read_bytes() != body:
            atomic_write_bytes(f, body)
            written.append(f)
    return written


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    """A Markdown table (header row, separator, body rows)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _csv(header, body) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(body)
    return buf.getvalue()


def build_tables(records: list[dict]) -> dict[tuple[str, str], dict]:
    """{(dataset, profile): {"table1": (header, rows), "table2": ..., "section": ..., "records": [...]}}.

    The paper's values appear beside the kit's only for CIFAR-10, the dataset
    its tables measured; a table whose columns were evaluated on different
    numbers of test images says so in every column header.
    """
    groups = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["profile"])].append(r)
    out = {}
    for (dataset, profile), recs in sorted(groups.items()):
        def find(beta, lam, recs=recs):
            # several runs of one point (other seeds, for the training noise): the reference seed's, else the latest
            hits = [r for r in recs if abs(r["beta"] - beta) < 1e-9 and abs(r["lam"] - lam) < 1e-9]
            reference = [r for r in hits if r.get("seed") == REFERENCE_SEED]
            return (reference or hits)[-1] if hits else None

        with_paper = dataset == "cifar10"

        def cell(rec, key, table, value, with_paper=with_paper):
            kit = _cell_kit(rec, key)
            if not with_paper:
                return kit
            return f"{kit} (paper: {_cell_paper(paper.paper_value(table, key, value)) or 'n/a'})"

        def header(prefix, values, pick):
            sizes = {r["n_test"] for v in values if (r := pick(v)) is not None}
            mixed = len(sizes) > 1
            return ["metric"] + [f"{prefix}={v:g}" + (f" (n={pick(v)['n_test']})" if mixed and pick(v) else "")
                                 for v in values]

        betas = sorted({r["beta"] for r in recs if abs(r["lam"] - 1) < 1e-9} | set(paper.SWEEP_VALUES))
        lams = sorted({r["lam"] for r in recs if abs(r["beta"] - 1) < 1e-9} | set(paper.SWEEP_VALUES))
        h1 = header("beta", betas, lambda b: find(b, 1.0))
        t1 = [[paper.ROW_LABELS[k]] + [cell(find(b, 1.0), k, paper.TABLE1, b) for b in betas] for k in TABLE1_ROWS]
        h2 = header("lambda", lams, lambda lam: find(1.0, lam))
        t2 = [[paper.ROW_LABELS[k]] + [cell(find(1.0, lam), k, paper.TABLE2, lam) for lam in lams]
              for k in TABLE2_ROWS]
        base = find(1.0, 1.0)
        h3 = ["metric", "kit (beta=1, lambda=1)"] + (["paper (CIFAR-10)"] if with_paper else [])
        t3 = [[paper.ROW_LABELS.get(k, OFFLINE_LABELS.get(k, k)), _cell_kit(base, k)] +
              ([_cell_paper(paper.SECTION_2_2.get(k)) or "n/a (kit-only score)"] if with_paper else [])
              for k in SECTION_ROWS]
        if base is not None:
            t3.append(["Classifier accuracy on raw test images, %", _cell_kit(base, "classifier_raw_accuracy")] +
                      ([_fmt(paper.CLASSIFIER_ACCURACY)] if with_paper else []))
        out[(dataset, profile)] = {"table1": (h1, t1), "table2": (h2, t2), "section": (h3, t3), "records": recs}
    return out


def write_report(runs: str | Path | None = "runs", out: str | Path = "results", command: str | None = None,
                 include_smoke: bool = False, warn=None, records: list[dict] | None = None,
                 keep: bool = True) -> list[Path]:
    """Write ``report.md`` and one CSV per table and (dataset, profile); returns the files written.

    Records come from the runs under ``runs`` and from those kept in ``out`` (see the module's
    docstring); every record used is kept in ``out/records/``. Runs of the ``smoke`` profile (CI's
    seconds-long runs) are left out unless ``include_smoke``. A record that cannot be read or
    used is skipped and named through ``warn`` (default: a line on stderr).

    ``records``: report exactly these records instead (a sweep's or a
    reproduction's own runs); ``keep=False`` leaves ``out/records/`` alone.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LsrError(f"--out {out} is a file; give a folder for report.md and the tables")
    warn = warn or _warn_stderr
    if records is not None:
        recs = merge_records(_checked(list(records), Path("records given"), warn))
    else:
        recs = merge_records(load_records(runs, warn) + archived_records(out, warn))
    plumbing = {n for n, p in PROFILES.items() if p.plumbing_only}
    if not include_smoke and any(r["profile"] not in plumbing for r in recs):
        recs = [r for r in recs if r["profile"] not in plumbing]
    if not recs:
        raise LsrError(f"no evaluated runs under {runs} and none kept in {out / 'records'}: "
                       "run `lsr evaluate RUN_DIR` on LSR-GAN runs first")
    external = [r for r in recs if r.get("vae_source")]  # LSR-GANs of VAEs trained elsewhere: their own table
    tables = build_tables([r for r in recs if not r.get("vae_source")])
    written = _archive(recs, out) if keep else []
    md = ["# lsr-kit results: kit values beside the paper's", "",
          f"Generated {now()} by `{command or 'lsr report'}`. Each cell: kit value ± standard error; in the "
          "CIFAR-10 tables, the paper's value ± its standard error beside it (the paper's tables are CIFAR-10: "
          "other datasets show the kit's values alone). Dataset and profile are named in each heading. Units: "
          "MSE and variance are per-image sums on the [0, 1] scale; "
          "classification in %. `kit_cfd` is the kit's offline score (Frechet distance in its own classifier's "
          "features), not FID.", "",
          "On the variance unit: the paper does not state it. Its largest values (4,920 for the LSR-GAN at beta = "
          "15) exceed the largest possible per-image sum of variances on [0, 1] (3,072 values x 0.25 = 768 for "
          "32x32x3 images) and on [-1, 1] (3,072), so they cannot be in the kit's unit. They fit the mean "
          "per-pixel variance on the [0, 255] scale, which is the kit's value x 255^2 / 3,072 = 21.2 for "
          "32x32x3 images; the kit keeps its own stated unit and leaves that conversion to the reader.", ""]
    for (dataset, profile), t in tables.items():
        stem = f"{dataset}_{profile}"
        md += [f"## {dataset}, {profile} profile", ""]
        for name, title in (("table1", "Table 1: dependence on beta (lambda = 1)"),
                            ("table2", "Table 2: dependence on lambda (beta = 1)"),
                            ("section", "Section 2.2: sharpness and image quality (beta = lambda = 1)")):
            header, body = t[name]
            md += [f"### {title}", "", markdown_table(header, body), ""]
            f = out / f"{name}_{stem}.csv"
            atomic_write_bytes(f, _csv(header, body).encode())
            written.append(f)
        md += ["### Provenance", "", f"Where one point has several seeds, the tables show seed {REFERENCE_SEED}'s run; "
               "the others measure the training noise.", "",
               "| run | beta | lambda | seed | training images | epochs (VAE/GAN) | n_test | hardware | "
               "command | evaluated |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(t["records"], key=lambda r: (r["beta"], r["lam"], r.get("seed", REFERENCE_SEED))):
            prov = r.get("provenance") or {}
            env = prov.get("environment") if isinstance(prov.get("environment"), dict) else {}
            hw = env.get("cuda_device") if env.get("cuda_device") not in (None, "cpu") else \
                f"CPU ({env.get('processor')}, {env.get('cpu_threads')} threads)"
            md.append(f"| {md_code(r['run'])} | {r['beta']:g} | {r['lam']:g} | {md_text(r.get('seed', '?'))} | "
                      f"{md_text(r.get('n_train') or 'all')} | {md_text(r.get('vae_epochs', '?'))}/"
                      f"{md_text(r.get('gan_epochs', '?'))} | {md_text(r.get('n_test', '?'))} | {md_text(hw)} | "
                      f"{md_code(prov.get('command', '?'))} | {md_text(prov.get('evaluated', '?'))} |")
        md.append("")
    if external:
        md += ["## VAEs trained elsewhere, rendered by LSR-GAN", "",
               "Each row: a VAE from another library or module (its frozen encoder), the LSR-GAN trained on it, and "
               "how much of the input each decoder keeps.", "",
               markdown_table(["run", "VAE", "generator", "dataset (profile)", "D(mu(x)) classified, %",
                               "G(mu(x)) classified, %", "MSE, VAE", "MSE, LSR-GAN", "sharpness, VAE",
                               "sharpness, LSR-GAN"],
                              [[md_code(r["run"]), md_text(r["vae_source"]), md_text(r.get("generator", "?")),
                                f"{md_text(r['dataset'])} ({md_text(r['profile'])})"] +
                               [_cell_kit(r, k) for k in ("absolute_vae", "absolute_lsr_gan", "mse_vae", "mse_lsr_gan",
                                                          "sharpness_vae", "sharpness_lsr_gan")]
                               for r in external]), ""]
    md += ["Environment of this report: " + json.dumps({k: v for k, v in environment().items()
                                                       if k in ('lsr_version', 'torch', 'python')}), ""]
    f = out / "report.md"
    atomic_write_bytes(f, "\n".join(md).encode())
    written.append(f)
    claims = write_claims(out)
    if claims is not None:
        written.append(claims)
    return written


def fid_claims(r: dict) -> list[dict]:
    """Section 2.2's two FID claims, judged on the FID of an evaluation record of CIFAR-10 (the data the paper's FIDs
    are of), where the record holds FID; the kit's offline score is named beside it, never used for the verdict."""
    v, s = r.get("values") or {}, r.get("scores") or {}
    if r.get("dataset") != "cifar10" or not (r.get("fid") or {}).get("available"):
        return []
    out = []
    for seeded, paper_vals in (("test", "89.8 vs 44.1"), ("random", "138.6 vs 47.4")):
        a, b = v.get(f"fid_{seeded}_vae"), v.get(f"fid_{seeded}_lsr_gan")
        if not (isinstance(a, dict) and isinstance(b, dict) and _number(a.get("mean")) and _number(b.get("mean"))):
            continue
        cfd = (f"; kit_cfd (offline score, not FID) VAE {s[f'kit_cfd_{seeded}_vae']:.1f}, LSR-GAN "
               f"{s[f'kit_cfd_{seeded}_lsr_gan']:.1f}") if _number(s.get(f"kit_cfd_{seeded}_vae")) and \
            _number(s.get(f"kit_cfd_{seeded}_lsr_gan")) else ""
        out.append({"where": "Section 2.2 (CIFAR-10)",
                    "claim": f"{seeded}-seeded LSR-GAN images have a lower FID than the VAE's",
                    "reproduced": b["mean"] < a["mean"],
                    "evidence": f"FID over {a.get('n', '?')} images: VAE {a['mean']:.1f}, LSR-GAN {b['mean']:.1f} "
                                f"(paper: {paper_vals}); run {r['run']}, {r.get('vae_epochs')}+{r.get('gan_epochs')} "
                                f"epochs{cfd}"})
    return out


def write_claims(results: str | Path = "results", out: str | Path | None = None) -> Path | None:
    """Gather the claims the notebooks recorded (``results/*.json``) into ``claims.md``, beside their figures.

    Returns the file written, or None when no notebook has recorded a claim yet.
    """
    results = Path(results)
    rows = []
    for f in sorted(results.glob("*.json")):
        d = _read_json(f, _warn_stderr)
        if not isinstance(d, dict) or not isinstance(d.get("claims") or [], list):
            continue
        for c in d.get("claims") or []:
            if not isinstance(c, dict) or not {"where", "claim", "reproduced", "evidence"} <= set(c):
                _warn_stderr(f"{f}: a claim skipped (not a mapping with where, claim, reproduced, evidence)")
                continue
            figs = [g for g in d.get("figures") or [] if isinstance(g, str)] if isinstance(d.get("figures"), list) \
                else []
            rows.append((str(d.get("notebook", "?")), str(d.get("profile", "?")), f.name, c, figs))
    rows += [("lsr evaluate", r["profile"], "records", c, []) for r in archived_records(results)
             for c in fid_claims(r)]
    if not rows:
        return None
    word = {True: "reproduced", False: "**not reproduced**", None: "not tested",
            "within noise": "within noise (neither shown nor refuted)"}
    md = ["# The paper's claims, as the notebooks measured them", "",
          "Each row: a claim of the paper, the notebook that tests it (with its profile), the verdict and the "
          "numbers behind it, and the kit's figure to set beside the paper's. Regenerated by `lsr report` from "
          "the notebooks' results files; rerun a notebook to update its rows. A trend counts as reproduced only "
          "when it exceeds two combined standard errors, where the error combines the choice of test images (each "
          "value's standard error) with the training noise (the run-to-run standard deviation of the metric over "
          "seeds, `results/seed_spread_<dataset>_<profile>.json`, where measured); smaller differences read "
          "\"within noise\". A trend along a sweep (beta or lambda) is judged on every point of it, not the two "
          "ends: the slope of a weighted least-squares line of the value over log10(beta) or log10(lambda), each "
          "point weighted by 1 / (its standard error^2 + the training noise^2), against twice the slope's standard "
          "error; Spearman's rank correlation is printed beside it, descriptive only. The evidence column says which "
          "training noise was used.", "",
          "| where in the paper | claim | notebook (profile) | verdict | evidence | kit figure |", "|---|---|---|---|---|---|"]
    safe_figure = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.(png|pdf|svg)$")
    for nb, profile, _src, c, figs in rows:
        names = [Path(g).name for g in figs]
        links = ", ".join(f"[{n}](../figures/{n})" for n in names if safe_figure.match(n)) or "-"
        verdict = c["reproduced"]
        verdict = word.get(verdict, md_text(verdict)) if isinstance(verdict, (bool, str, type(None))) else "?"
        md.append(f"| {md_text(c['where'])} | {md_text(c['claim'])} | {md_code(nb)} ({md_text(profile)}) | {verdict} | "
                  f"{md_text(c['evidence'], 600)} | {links} |")
    n_ok = sum(1 for r in rows if r[3]["reproduced"] is True)
    md += ["", f"{n_ok} of {len(rows)} claims reproduced.", ""]
    path = Path(out) if out else results / "claims.md"
    atomic_write_bytes(path, "\n".join(md).encode())
    return path
