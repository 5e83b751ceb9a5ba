"""``lsr demo``: the kit's main job on its embedded dataset, offline.

Trains a VAE and then an LSR-GAN on ``shapes`` (``quick`` profile by default:
minutes on a 2-core CPU), evaluates both on held-out test images and writes

* a figure: test inputs, their texture-free versions (the compressible
  factors, never shown to the models), VAE reconstructions D(mu(x)), LSR-GAN
  renderings G(mu(x)), and random samples G(z) and D(z), z ~ N(0, I);
* a metrics JSON with provenance (command, profile, device, versions, runs).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from . import __version__
from .config import PROFILE_SETTINGS, check_profile, default_profile, profile_configs
from .data import load_data
from .evaluate import image_metrics, render_test_set
from .plotting import close, image_rows
from .pixels import model_to_unit
from .runs import atomic_write_json, environment, now
from .shapes import generate_shapes
from .train import resolve_device, train_lsr_gan, train_vae


def run_demo(*, profile: str | None = None, out: str | Path = "runs", figures: str | Path = "figures",
             results: str | Path = "results", device=None, seed: int = 13, progress: bool = True,
             fresh: bool = False, n_show: int = 12, command: str | None = None) -> dict:
    """Train, evaluate and draw; returns the metrics dict (also written to ``results/demo.json``)."""
    t0 = time.monotonic()
    profile = check_profile(profile or default_profile())
    device = resolve_device(device)
    cfg = profile_configs(profile, dataset="shapes", seed=seed)
    n_test = PROFILE_SETTINGS[profile]["n_test"] or 2000
    data = load_data("shapes", n_train=cfg.vae.n_train, n_test=n_test, seed=cfg.vae.data_seed)
    vae = train_vae(cfg.vae, data, out=out, device=device, progress=progress, fresh=fresh)
    gan = train_lsr_gan(cfg, data, vae=vae, out=out, device=device, progress=progress, fresh=fresh)
    _, _, clean = generate_shapes(n_test, seed=cfg.vae.data_seed, split="test", with_clean=True)
    clean = torch.from_numpy(clean)
    metrics = image_metrics(gan, data.test_x, clean=clean, n_variance=min(200, n_test), n_random=min(500, n_test))

    shown = data.test_x[:n_show]
    r = render_test_set(gan, shown)
    g = torch.Generator(device=vae.device).manual_seed(seed)
    z = torch.randn(n_show, cfg.vae.latent_dim, generator=g, device=vae.device)
    rows = [("test input x", r["input"]),
            ("texture-free x\n(not seen)", clean[:n_show].float() / 255),
            ("VAE D(mu(x))", r["vae"]),
            ("LSR-GAN G(mu(x))", r["gan"]),
            ("LSR-GAN G(z)", model_to_unit(gan.generate(z)).cpu()),
            ("VAE D(z)", model_to_unit(vae.decode(z)).cpu())]
    fig_path = Path(figures) / "demo"
    fig = image_rows(rows, fig_path, title=f"lsr demo: shapes, {profile} profile, beta={cfg.vae.beta:g}, "
                                           f"lambda={cfg.lam:g}")
    close(fig)
    record = {
        "what": "lsr demo: VAE + LSR-GAN on the embedded shapes dataset, evaluated on held-out test images",
        "command": command or "lsr demo",
        "profile": profile, "dataset": "shapes", "n_train": len(data.train_x), "n_test": n_test,
        "vae_run": str(vae.path), "gan_run": str(gan.path),
        "vae_config": cfg.vae.to_dict(), "gan_config": {k: v for k, v in cfg.to_dict().items() if k != "vae"},
        "vae_train_seconds": vae.history.get("seconds"), "gan_train_seconds": gan.history.get("seconds"),
        "total_seconds": round(time.monotonic() - t0, 1), "device": str(device), "finished": now(),
        "figure": [str(fig_path.with_suffix(".png")), str(fig_path.with_suffix(".pdf"))],
        "environment": environment(), "lsr_version": __version__,
        "metrics": metrics,
    }
    res_path = Path(results) / "demo.json"
    atomic_write_json(res_path, record)
    record["results_file"] = str(res_path)
    return record


def summary(record: dict) -> str:
    m = record["metrics"]
    lines = [f"demo finished in {record['total_seconds']:.0f} s on {record['device']} ({record['profile']} profile)",
             f"  figure:  {record['figure'][0]}", f"  metrics: {record.get('results_file', '')}",
             "  per-image squared error on [0,1] (mean ± s.e.):",
             f"    VAE D(mu(x)) vs input {m['mse_vae']['mean']:.1f} ± {m['mse_vae']['sem']:.1f}"
             + (f", vs texture-free input {m['mse_vae_to_clean']['mean']:.1f}" if "mse_vae_to_clean" in m else ""),
             f"    LSR-GAN G(mu(x)) vs input {m['mse_lsr_gan']['mean']:.1f} ± {m['mse_lsr_gan']['sem']:.1f}",
             "  sharpness (luminance-normalised Laplacian):",
             f"    inputs {m['sharpness_input']['mean']:.3f}, VAE {m['sharpness_vae']['mean']:.3f}, "
             f"LSR-GAN {m['sharpness_lsr_gan']['mean']:.3f}"]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    rec = run_demo()
    print(summary(rec), file=sys.stdout)
