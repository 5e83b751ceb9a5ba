"""Latency of the latent explorer: slider change -> new image, for the paper's 32x32 networks.

    python benchmarks/explorer_latency.py [--device cpu] [--repeats 200]

Times, through the real ipywidgets callbacks, the interval from setting a
slider's value to both new images (VAE D(z) and LSR-GAN G(z)) being set as
PNG bytes, and separately the model computation alone. Untrained networks are
used: latency does not depend on the weights. Prints medians and 90th
percentiles in ms and a JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def build_run(device):
    from pathlib import Path

    from lsr_utils.method.config import GANConfig, VAEConfig
    from lsr_utils.method.nn import Decoder, Discriminator, Encoder
    from lsr_utils.models.finished import GANRun, VAERun

    torch.manual_seed(0)
    vcfg = VAEConfig(dataset="shapes")
    vae = VAERun(Path("untrained"), vcfg, Encoder().to(device).eval(), Decoder().to(device).eval())
    return GANRun(Path("untrained/gan"), GANConfig(vae=vcfg), vae, Decoder().to(device).eval(),
                  Discriminator().to(device).eval())


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from lsr_utils.apps.widgets import ExplorerModel, LatentExplorer
    from lsr_utils.data import load_data

    data = load_data("shapes", n_train=2, n_test=200)
    run = build_run(a.device)
    model = ExplorerModel(run, data.test_x, data.test_y, data.classes)
    ex = LatentExplorer.__new__(LatentExplorer)  # the real widget, given this run directly
    LatentExplorer.__init__(ex, [], data, device=a.device)
    ex.choices = []
    ex.model = model
    ex.message.value = ""
    import ipywidgets as W

    ex.sliders = []
    for dim in model.slider_dims():
        s = W.FloatSlider(value=float(model.z[dim]), min=-4, max=4, step=0.05)
        s.observe(lambda ch, d=dim: ex._guard(ex._slide, d, ch["new"]), names="value")
        ex.sliders.append(s)
    compute, end_to_end = [], []
    for i in range(a.repeats + 10):
        v = -3.0 + 6.0 * ((i * 0.37) % 1.0)
        t0 = time.perf_counter()
        model.set_latent(model.slider_dims()[0], v)
        t1 = time.perf_counter()
        s = ex.sliders[i % len(ex.sliders)]
        s.value = v if abs(s.value - v) > 1e-9 else v + 0.05
        t2 = time.perf_counter()
        if i >= 10:
            compute.append((t1 - t0) * 1000)
            end_to_end.append((t2 - t1) * 1000)
    res = {"device": str(a.device), "threads": torch.get_num_threads(), "repeats": a.repeats,
           "compute_ms_median": statistics.median(compute), "compute_ms_p90": pct(compute, 0.9),
           "slider_to_images_ms_median": statistics.median(end_to_end),
           "slider_to_images_ms_p90": pct(end_to_end, 0.9), "target_ms": 50}
    print(f"model only (D(z) and G(z), batch 1): median {res['compute_ms_median']:.1f} ms, "
          f"p90 {res['compute_ms_p90']:.1f} ms")
    print(f"slider change -> both PNG images set: median {res['slider_to_images_ms_median']:.1f} ms, "
          f"p90 {res['slider_to_images_ms_p90']:.1f} ms (target < 50 ms)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
