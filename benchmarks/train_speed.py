"""Training throughput: the reference-style baseline against the kit's training path, interleaved, in one run.

    python benchmarks/train_speed.py [--device cpu|cuda] [--rounds 5] [--steps 30] [--warmup 5]
                                     [--stage vae|gan|both] [--variants kit kit-compile kit-bf16]

Baseline: ``benchmarks/reference.py`` (the reference implementation's step: same
networks, batch 32, fp32, NCHW, DataLoader with per-item PIL/ToTensor/
Normalize, default Adam, sigmoid + BCE, ``.item()`` every step).

Kit variants, each the real ``train_vae`` / ``train_lsr_gan`` (data held on
the device, losses accumulated there, channels-last, fused Adam on CUDA),
timed by step callbacks after ``--warmup`` steps:

* ``kit``          the default path (fp32, eager);
* ``kit-compile``  the same with ``--compile`` (torch.compile of the networks);
* ``kit-bf16``     the same with bf16 autocast (changes the arithmetic: opt-in only).

Measurements are interleaved: each round times every variant once, one after
the other, so that slow drift of a shared machine hits all of them alike. It
prints, per stage and variant, the median images per second over rounds with
the min-max range, and the ratio to the baseline (ratio of medians, and the
median and range of the per-round ratios), then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np
import torch

from lsr_utils.training.loop import RunOptions

VARIANTS = ("kit", "kit-compile", "kit-bf16")


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def baseline(stage, images_hwc, steps, warmup, device, batch=32):
    """Images per second of the reference-style step over ``steps`` steps after ``warmup``."""
    from benchmarks.reference import ReferenceGANStep, ReferenceVAEStep, reference_loader
    from lsr_utils.method.nn import Decoder, Discriminator, Encoder

    torch.manual_seed(13)
    if stage == "vae":
        step = ReferenceVAEStep(Encoder().to(device), Decoder().to(device))
    else:
        step = ReferenceGANStep(Encoder().to(device), Decoder().to(device), Discriminator().to(device))
    it = iter(reference_loader(images_hwc, batch))
    t0 = None
    for i in range(steps + warmup):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        data, _ = next(it)
        step(data.to(device))
    sync(device)
    return steps * batch / (time.perf_counter() - t0)


class StepTimer:
    def __init__(self, warmup, steps, device):
        self.warmup, self.last, self.device = warmup, warmup + steps, device
        self.t0 = self.t1 = None

    def __call__(self, event, info):
        if event != "step":
            return
        if info["step"] == self.warmup:
            sync(self.device)
            self.t0 = time.perf_counter()
        elif info["step"] == self.last:
            sync(self.device)
            self.t1 = time.perf_counter()


def kit(stage, variant, images_chw, steps, warmup, device, vae_cache, batch=32):
    """Images per second of the kit's own training function (a fresh run in a temporary folder)."""
    from lsr_utils.data import ImageData
    from lsr_utils.method.config import GANConfig, VAEConfig
    from lsr_utils.training.train import train_lsr_gan, train_vae

    n = (steps + warmup) * batch
    data = ImageData("cifar10", torch.from_numpy(images_chw[:n]), torch.zeros(n, dtype=torch.long),
                     torch.from_numpy(images_chw[:64]), torch.zeros(64, dtype=torch.long), ())
    precision = "bf16" if variant == "kit-bf16" else "fp32"
    compile_ = variant == "kit-compile"
    vcfg = VAEConfig(dataset="cifar10", epochs=1, n_train=n, batch_size=batch, precision=precision)
    timer = StepTimer(warmup, steps, device)
    common = dict(out=vae_cache, device=device, fresh=True,
                  options=RunOptions(progress=False, callbacks=[timer], checkpoint_every_s=1e9, compile=compile_))
    if stage == "vae":
        train_vae(vcfg, data, **common)
    else:
        if "vae" not in vae_cache_runs:  # one finished VAE serves every GAN measurement
            vae_cache_runs["vae"] = train_vae(vcfg.replace(precision="fp32"), data, out=vae_cache, device=device, options=RunOptions(progress=False, checkpoint_every_s=1e9))
        vae = vae_cache_runs["vae"]
        gcfg = GANConfig(vae=vae.config, epochs=1, batch_size=batch, precision=precision)
        train_lsr_gan(gcfg, data, vae=vae, **common)
    return steps * batch / (timer.t1 - timer.t0)


vae_cache_runs: dict = {}


def summarize(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before each measurement (compile happens here)")
    p.add_argument("--stage", choices=("vae", "gan", "both"), default="both")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=["kit"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    a = p.parse_args()
    from lsr_utils.base.runtime import resolve_device

    if a.threads:
        torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    if "kit-compile" in a.variants and a.warmup < 3:
        p.error("kit-compile needs --warmup >= 3 so that compilation is not timed")
    rng = np.random.default_rng(0)
    n = (a.steps + a.warmup) * 32
    chw = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    hwc = np.ascontiguousarray(chw.transpose(0, 2, 3, 1))
    stages = ("vae", "gan") if a.stage == "both" else (a.stage,)
    res = {"device": str(device), "threads": torch.get_num_threads(), "rounds": a.rounds, "steps": a.steps,
           "warmup": a.warmup, "batch": 32, "torch": torch.__version__}
    if device.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(0)
    from lsr_utils.base.progress import progress_bar

    times = {s: {v: [] for v in ("baseline", *a.variants)} for s in stages}
    with tempfile.TemporaryDirectory() as tmp:
        bar = progress_bar(total=a.rounds * len(stages) * (1 + len(a.variants)), desc="benchmark", unit="run")
        for r in range(a.rounds):
            for s in stages:
                order = ["baseline", *a.variants]
                if r % 2:  # alternate who goes first
                    order.reverse()
                for v in order:
                    if v == "baseline":
                        times[s][v].append(baseline(s, hwc, a.steps, a.warmup, device))
                    else:
                        times[s][v].append(kit(s, v, chw, a.steps, a.warmup, device, tmp))
                    bar.update(1)
        bar.close()
    for s in stages:
        base = times[s]["baseline"]
        res[s] = {"baseline_img_s": summarize(base)}
        print(f"{s.upper()} step, batch 32, {a.rounds} interleaved rounds of {a.steps} steps "
              f"(median img/s [min-max]):")
        print(f"  baseline     {statistics.median(base):8.1f} [{min(base):.1f}-{max(base):.1f}]")
        for v in a.variants:
            k = times[s][v]
            per_round = [x / y for x, y in zip(k, base)]
            ratio = statistics.median(k) / statistics.median(base)
            res[s][v] = {"img_s": summarize(k), "ratio_of_medians": ratio, "per_round_ratio": summarize(per_round)}
            print(f"  {v:12s} {statistics.median(k):8.1f} [{min(k):.1f}-{max(k):.1f}]   ratio {ratio:.2f}x "
                  f"(per round: median {statistics.median(per_round):.2f}x, "
                  f"{min(per_round):.2f}-{max(per_round):.2f})")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
