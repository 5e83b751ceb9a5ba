"""Sweep batching: M sweep members trained one after another against the same M trained at once.

    python benchmarks/sweep_batching.py [--device cpu|cuda] [--members 2 4] [--steps 30] [--warmup 5]
                                        [--rounds 3] [--stage vae|gan|both]

One after another: M calls of ``train_vae`` (betas differ) or ``train_lsr_gan``
(lambdas differ, one VAE). At once: one call of ``train_sweep(..., options=RunOptions(stack=True))`` (one wide
network: sweep stacking, ``lsr_utils.speed.stacked``). Both are
timed by step callbacks after ``--warmup`` steps and reported as member-steps
of batch 32 per second (images per second summed over members), interleaved
over ``--rounds``, with the median and the min-max range, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_speed import StepTimer  # noqa: E402  (the same timer as the training benchmark)

from lsr_utils.training.loop import RunOptions

BETAS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 15.0, 20.0)


def fresh_folder(tmp, vae):
    """An empty run folder holding a copy of the shared VAE (GAN runs live inside their VAE's folder)."""
    import shutil

    folder = tempfile.mkdtemp(dir=tmp)
    if vae is not None:
        shutil.copytree(vae.path, os.path.join(folder, "cifar10", vae.path.name))
    return folder


def one_round(stage, m, data, steps, warmup, device, tmp, vae):
    from lsr_utils.method.config import GANConfig, VAEConfig
    from lsr_utils.training.sweep import train_sweep
    from lsr_utils.training.train import train_lsr_gan, train_vae

    n = len(data.train_x)
    vcfg = VAEConfig(dataset="cifar10", epochs=1, n_train=n, batch_size=32)
    values = BETAS[:m]
    out = {}
    # one after another
    seconds = 0.0
    for val in values:
        timer = StepTimer(warmup, steps, device)
        folder = fresh_folder(tmp, vae)
        if stage == "vae":
            train_vae(vcfg.replace(beta=val), data, out=folder, device=device, options=RunOptions(progress=False, callbacks=[timer], checkpoint_every_s=1e9))
        else:
            train_lsr_gan(GANConfig(vae=vcfg, epochs=1, lam=val), data, vae=vae, out=folder, device=device, options=RunOptions(progress=False, callbacks=[timer], checkpoint_every_s=1e9))
        seconds += timer.t1 - timer.t0
    out["sequential"] = m * steps * 32 / seconds
    # at once
    timer = StepTimer(warmup, steps, device)
    folder = fresh_folder(tmp, vae)
    if stage == "vae":
        train_sweep([vcfg.replace(beta=b) for b in values], data, out=folder, device=device, options=RunOptions(progress=False, callbacks=[timer], checkpoint_every_s=1e9, stack=True))
    else:
        train_sweep([GANConfig(vae=vcfg, epochs=1, lam=lam) for lam in values], data, vaes=[vae], out=folder, device=device, options=RunOptions(progress=False, callbacks=[timer], checkpoint_every_s=1e9, stack=True))
    out["batched"] = m * steps * 32 / (timer.t1 - timer.t0)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--members", type=int, nargs="+", default=[2, 4])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--stage", choices=("vae", "gan", "both"), default="both")
    a = p.parse_args()
    from lsr_utils.base.progress import progress_bar
    from lsr_utils.base.runtime import resolve_device
    from lsr_utils.data import ImageData
    from lsr_utils.method.config import VAEConfig
    from lsr_utils.training.train import train_vae

    device = resolve_device(a.device)
    if any(m < 2 or m > len(BETAS) for m in a.members):
        p.error(f"--members must be between 2 and {len(BETAS)}")
    n = (a.steps + a.warmup) * 32
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8))
    data = ImageData("cifar10", x, torch.zeros(n, dtype=torch.long), x[:64], torch.zeros(64, dtype=torch.long), ())
    stages = ("vae", "gan") if a.stage == "both" else (a.stage,)
    res = {"device": str(device), "threads": torch.get_num_threads(), "steps": a.steps, "warmup": a.warmup,
           "rounds": a.rounds, "batch": 32, "torch": torch.__version__}
    if device.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(0)
    times = {(s, m): {"sequential": [], "batched": []} for s in stages for m in a.members}
    with tempfile.TemporaryDirectory() as tmp:
        vae = train_vae(VAEConfig(dataset="cifar10", epochs=1, n_train=n, batch_size=32), data, out=tmp, device=device, options=RunOptions(progress=False)) if "gan" in stages else None
        bar = progress_bar(total=a.rounds * len(times), desc="sweep benchmark", unit="round")
        for _ in range(a.rounds):
            for (s, m), t in times.items():
                r = one_round(s, m, data, a.steps, a.warmup, device, tmp, vae)
                for k, v in r.items():
                    t[k].append(v)
                bar.update(1)
        bar.close()
    for (s, m), t in times.items():
        seq, bat = statistics.median(t["sequential"]), statistics.median(t["batched"])
        res[f"{s}_m{m}"] = {"sequential_img_s": t["sequential"], "batched_img_s": t["batched"], "ratio": bat / seq}
        print(f"{s.upper()} sweep, {m} members, batch 32 (images/s summed over members, median [min-max] of "
              f"{a.rounds}): one after another {seq:7.1f} [{min(t['sequential']):.1f}-{max(t['sequential']):.1f}] | "
              f"at once {bat:7.1f} [{min(t['batched']):.1f}-{max(t['batched']):.1f}] | ratio {bat / seq:.2f}x")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
