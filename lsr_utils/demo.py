"""``lsr demo``: the kit's main job on its embedded dataset, offline, in minutes on a laptop CPU.

Trains a VAE and then an LSR-GAN on ``shapes`` (the ``quick`` profile by
default), trains (or reuses) the shape classifier, evaluates both models on
held-out test images with the same code as ``lsr evaluate``
(:func:`lsr_utils.evaluate.evaluate`) and writes

* a figure: test inputs, their texture-free versions (the compressible
  factors, never shown to the models), VAE reconstructions D(mu(x)), LSR-GAN
  renderings G(mu(x)), and random samples G(z) and D(z), z ~ N(0, I);
* the evaluation record, with a ``demo`` section: what it shows (the paper's
  effect, as checks with their thresholds), the design of the data and the
  schedule and why, the time it took and on what.

By default both go to ``runs/demo/``, never over the committed
``figures/demo.png`` and ``results/demo.json``.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from .classifier import classifier_config, train_classifier
from .config import check_profile, default_profile, make_config, profile_sizes
from .data import load_data
from .data import shapes as shapes_data
from .evaluate import evaluate, render
from .files import atomic_write_json
from .plotting import close, image_rows
from .runtime import device_name, resolve_device
from .train import train_lsr_gan, train_vae

WHY = ("Upright objects (design version 4) that fill about 60-80 % of the image side (radius 0.30-0.40 of it), so "
       "that the four shapes differ in many pixels: within the demo's 1,000 VAE steps the latent then keeps which "
       "shape the object is, as the paper says a latent keeps compressible content (in the design trials, 95-99 % "
       "of reconstructions were classified correctly after 1,000 steps; with rotations over the full circle, "
       "design version 3, the VAE needed about 3,100 steps, and with the first design, objects of radius "
       "0.18-0.32, it returned every shape as a round blob). The object carries a per-pixel texture (amplitude "
       "0.22), incompressible detail the latent drops and the LSR-GAN has to imagine; the background is flat. The "
       "schedule (8,000 images; 4 VAE + 1 LSR-GAN epochs, 1,000 + 250 steps at batch 32) is in fp32, the "
       "arithmetic every CPU computes at full speed: bf16 autocast is 2.9x faster than fp32 on a CPU with bf16 "
       "instructions but 16x slower on one without them (an AVX2-only 2-core EPYC; benchmarks/RESULTS.md), so a "
       "bf16 schedule would not fit 10 minutes on every 2-core CPU. Networks, losses, batch size and optimiser "
       "are the paper's.")

# The paper's effect on `shapes`, as checks on the record (README: What `lsr demo` shows).
CHECKS = (
    ("classifier on raw test images >= 99 %", lambda v: v["classifier_raw_accuracy"]["mean"] >= 99.0),
    ("VAE reconstructions D(mu(x)) classified correctly >= 90 % (the latent keeps the shape)",
     lambda v: v["absolute_vae"]["mean"] >= 90.0),
    ("VAE reconstructions closer to the texture-free input than to the input (the texture is dropped)",
     lambda v: v["mse_vae_to_clean"]["mean"] < v["mse_vae"]["mean"]),
    ("LSR-GAN renderings G(mu(x)) classified correctly >= 85 %", lambda v: v["absolute_lsr_gan"]["mean"] >= 85.0),
    ("LSR-GAN renderings at least 3x as sharp as the VAE's (a texture is imagined)",
     lambda v: v["sharpness_lsr_gan"]["mean"] >= 3 * v["sharpness_vae"]["mean"]),
)


def run_demo(*, profile: str | None = None, out: str | Path = "runs", figures: str | Path = "runs/demo",
             results: str | Path = "runs/demo", device=None, seed: int = 13, progress: bool = True,
             fresh: bool = False, n_show: int = 12, command: str | None = None) -> dict:
    """Train, evaluate and draw; returns the record (also written to ``<results>/demo.json``)."""

    t0 = time.monotonic()
    profile = check_profile(profile or default_profile())
    device = resolve_device(device)
    cfg = make_config(profile, dataset="shapes", seed=seed)
    sizes = profile_sizes(profile, "shapes")
    data = load_data("shapes", n_train=cfg.vae.n_train, n_test=sizes.n_test or 2000, seed=cfg.vae.data_seed)
    kw = dict(out=out, device=device, progress=progress, fresh=fresh)
    vae = train_vae(cfg.vae, data, **kw)
    gan = train_lsr_gan(cfg, data, vae=vae, **kw)
    clf = train_classifier(classifier_config("shapes", profile), out=out, device=device, progress=progress)
    n_variance = min(sizes.n_variance if profile == "smoke" else 100, len(data.test_x))  # K renderings of each
    rec = evaluate(gan, data.test_x, data.test_y, clf, clean=data.test_clean, n_variance=n_variance,
                   progress=progress, command=command or "lsr demo", profile=profile,
                   settings={"n_test": len(data.test_x), "demo": True})

    shown = data.test_x[:n_show]
    r = render(gan, shown, clean=data.test_clean[:n_show], seed=seed)
    rows = [("test input x", r.input), ("texture-free x\n(not seen)", r.clean), ("VAE D(mu(x))", r.vae),
            ("LSR-GAN G(mu(x))", r.gan), ("LSR-GAN G(z)", r.random_gan), ("VAE D(z)", r.random_vae)]
    v, design = rec["values"], shapes_data.DESIGN
    fig_path = Path(figures) / "demo"
    fig = image_rows(rows, fig_path, title=(
        f"lsr demo: shapes, {profile} profile ({len(data.train_x):,} images, {cfg.vae.epochs}+{cfg.epochs} epochs), "
        f"beta={cfg.vae.beta:g}, lambda={cfg.lam:g}\nshape classified correctly: input "
        f"{v['classifier_raw_accuracy']['mean']:.0f} %, VAE {v['absolute_vae']['mean']:.0f} %, LSR-GAN "
        f"{v['absolute_lsr_gan']['mean']:.0f} %; sharpness VAE {v['sharpness_vae']['mean']:.3f}, LSR-GAN "
        f"{v['sharpness_lsr_gan']['mean']:.3f}\nupright objects of radius {design.scale[0]:.2f}-{design.scale[1]:.2f} "
        f"of the side, so the latent can keep the shape; a texture the GAN must imagine"))
    close(fig)
    res_path = Path(results) / "demo.json"
    rec["demo"] = {
        "what": "lsr demo: VAE + LSR-GAN on the embedded shapes dataset, evaluated on held-out test images",
        "checks": [{"check": text, "passed": bool(ok(v))} for text, ok in CHECKS],
        "design": asdict(design), "why": WHY,
        "schedule": {"n_train": len(data.train_x), "n_test": len(data.test_x), "vae_epochs": cfg.vae.epochs,
                     "gan_epochs": cfg.epochs, "batch_size": cfg.batch_size, "precision": cfg.precision},
        "total_seconds": round(time.monotonic() - t0, 1), "hardware": device_name(device),
        "figure": [str(fig_path.with_suffix(".png")), str(fig_path.with_suffix(".pdf"))],
        "results_file": str(res_path),
    }
    atomic_write_json(res_path, rec)
    return rec


def checks_passed(rec: dict) -> bool:
    return all(c["passed"] for c in rec["demo"]["checks"])

