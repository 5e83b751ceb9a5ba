"""Training throughput on one device, in one run: the reference step, the kit's eager step, the captured step,
and 8 stacked captured members, at batch 32; with the projected time of the paper's schedule.

    python benchmarks/gpu_speed.py [--device cuda] [--rounds 3] [--steps 200] [--warmup 20] [--json FILE]

Variants (each the real step class the kit trains with, on random images held on the device):

* ``reference``  the reference implementation's step (``benchmarks/reference.py``): DataLoader with
  per-item PIL/ToTensor/Normalize, default Adam, sigmoid + BCE, a ``.item()`` host sync every step;
* ``eager``      :class:`lsr_utils.method.steps.VAEStep` / ``GANStep``: data on the device, channels-last,
  fused Adam, losses kept on the device;
* ``captured``   the same step replayed as a CUDA graph (:class:`lsr_utils.speed.captured.CapturedStep`; CUDA only);
* ``stacked8``   8 members as one stacked network (a beta sweep's VAEs, a lambda sweep's LSR-GANs),
  captured on CUDA, eager elsewhere; counted in member-images per second.

Rounds are interleaved (each round times every variant once) and the median is reported, with ratios
to the reference. The projection: one (beta, lambda) point at the paper's schedule (50,000 images;
100 VAE + 500 LSR-GAN epochs) with the captured step, and Tables 1 and 2 with section 2.2 (8 VAEs,
8 + 7 LSR-GANs, each group stacked) plus their 15 evaluations.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAPER_IMAGES, VAE_EPOCHS, GAN_EPOCHS = 50_000, 100, 500


from benchmarks.train_speed import baseline, sync  # noqa: E402  (the reference step, timed as train_speed does)


def reference_rate(stage, device, steps, warmup, images_hwc):
    """Images per second of the reference implementation's step (``benchmarks/reference.py``) at batch 32."""
    return baseline(stage, images_hwc, steps, warmup, device)


def kit_step(stage, device, members: int, captured: bool):
    """The kit's step of a stage (the paper's CIFAR-10 configuration), from its one builder."""
    from lsr_utils.method.config import GANConfig, VAEConfig
    from lsr_utils.method.nn import Decoder, Encoder
    from lsr_utils.method.stage import Build, build_stage
    from lsr_utils.speed.captured import capture
    from lsr_utils.speed.stacked import build_stacked_stage

    graphs = captured and device.type == "cuda"
    how = Build(capturable=graphs)
    if stage == "vae":
        cfgs = [VAEConfig(dataset="cifar10", beta=1.0 + i) for i in range(members)]
        built = build_stage(cfgs[0], device, total_steps=10 ** 6, how=how) if members == 1 else \
            build_stacked_stage(cfgs, device, total_steps=10 ** 6, how=how)
    else:
        cfgs = [GANConfig(vae=VAEConfig(dataset="cifar10"), lam=1.0 + i) for i in range(members)]
        built = build_stage(cfgs[0], device, total_steps=10 ** 6, encoder=Encoder().eval(), decoder=Decoder(),
                            how=how) if members == 1 else \
            build_stacked_stage(cfgs, device, total_steps=10 ** 6, encoders=[Encoder().eval()], decoders=[Decoder()],
                                how=how)
    return (capture(built) if graphs else built).step


def kit_rate(stage, device, steps, warmup, images_chw, members=1, captured=False):
    """Member-images per second of the kit's step, with the batches drawn as training draws them."""
    from lsr_utils.data import DeviceBatches

    step = kit_step(stage, device, members, captured)
    batches = DeviceBatches(torch.from_numpy(images_chw), 32, device, channels_last=True)
    perm = batches.permutation(torch.Generator().manual_seed(0))
    rows = torch.zeros(steps + warmup, len(step.names), device=device, dtype=torch.float64)
    n = len(batches)
    for i in range(steps + warmup):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        rows[i].copy_(step(batches.batch(perm, i % (n - 1)), i))  # full batches only: one graph
    sync(device)
    assert bool(torch.isfinite(rows).all()), "non-finite losses in the benchmark"
    return members * steps * 32 / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--reference-steps", type=int, default=None, help="timed steps of the (slow) reference")
    p.add_argument("--variants", nargs="+", default=["reference", "eager", "captured", "stacked8"])
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args()
    from lsr_utils.base.runtime import device_name, resolve_device

    device = resolve_device(a.device)
    variants = [v for v in a.variants if v != "captured" or device.type == "cuda"]
    rng = np.random.default_rng(0)
    chw = rng.integers(0, 256, ((a.steps + a.warmup + 2) * 32, 3, 32, 32), dtype=np.uint8)
    hwc = np.ascontiguousarray(chw.transpose(0, 2, 3, 1))
    rsteps = a.reference_steps or max(20, a.steps // 4)
    times = {s: {v: [] for v in variants} for s in ("vae", "gan")}
    for r in range(a.rounds):
        for s in ("vae", "gan"):
            for v in (variants if r % 2 == 0 else variants[::-1]):
                if v == "reference":
                    times[s][v].append(reference_rate(s, device, rsteps, min(a.warmup, 5), hwc))
                elif v == "eager":
                    times[s][v].append(kit_rate(s, device, a.steps, a.warmup, chw))
                elif v == "captured":
                    times[s][v].append(kit_rate(s, device, a.steps, a.warmup, chw, captured=True))
                elif v == "stacked8":
                    times[s][v].append(kit_rate(s, device, a.steps, a.warmup, chw, members=8,
                                                captured=device.type == "cuda"))
            print(f"round {r + 1}/{a.rounds} done", flush=True)
    res = {"device": device_name(device), "torch": torch.__version__, "batch": 32, "rounds": a.rounds,
           "steps": a.steps, "command": "python " + " ".join(sys.argv)}
    print(f"\n{res['device']}, torch {torch.__version__}, batch 32, median of {a.rounds} interleaved rounds")
    med = {s: {v: statistics.median(times[s][v]) for v in variants} for s in times}
    for s in ("vae", "gan"):
        print(f"{s.upper():4s} {'variant':10s} {'img/s':>10s}  ratio to reference   [min-max img/s]")
        for v in variants:
            ratio = med[s][v] / med[s]["reference"] if "reference" in med[s] else float("nan")
            print(f"     {v:10s} {med[s][v]:10.0f}  {ratio:8.2f}x            [{min(times[s][v]):.0f}-"
                  f"{max(times[s][v]):.0f}]")
        res[s] = {v: {"median_img_s": med[s][v], "all": times[s][v]} for v in variants}
    single = "captured" if "captured" in med["vae"] else "eager"
    point = VAE_EPOCHS * PAPER_IMAGES / med["vae"][single] + GAN_EPOCHS * PAPER_IMAGES / med["gan"][single]
    res["projection"] = {"one_point_minutes": point / 60, "single_variant": single}
    print("\nprojected, paper schedule (50,000 images, 100 VAE + 500 LSR-GAN epochs):")
    print(f"  one (beta, lambda) point with the {single} step: {point / 60:.1f} min")
    if "stacked8" in med["vae"]:
        vaes = 8 * VAE_EPOCHS * PAPER_IMAGES / med["vae"]["stacked8"]
        gans = 15 * GAN_EPOCHS * PAPER_IMAGES / med["gan"]["stacked8"]  # Table 1's 8 + Table 2's 7, stacked by 8
        evals = 15 * 10_000 * 30 / med["gan"][single]  # ~30 forward passes of a generator per test image, rough
        total = vaes + gans + evals
        res["projection"].update(tables_minutes=total / 60, vaes_minutes=vaes / 60, gans_minutes=gans / 60,
                                 evaluations_minutes=evals / 60)
        print(f"  Tables 1 and 2 and section 2.2 (8 VAEs, 15 LSR-GANs, stacked by 8; 15 evaluations): "
              f"{total / 60:.0f} min (VAEs {vaes / 60:.0f}, LSR-GANs {gans / 60:.0f}, evaluations ~{evals / 60:.0f})")
    print(json.dumps(res))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
