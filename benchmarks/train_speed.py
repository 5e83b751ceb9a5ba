"""Training throughput: a reference-style baseline against the kit's training path, in one run.

    python benchmarks/train_speed.py [--device cpu|cuda] [--steps 60] [--warmup 10] [--stage vae|gan|both]

Baseline (b): the reference implementation's training step, written out here
independently: the same networks (lsr_utils.models), batch 32, fp32, NCHW,
a DataLoader over uint8 images with per-item PIL -> ToTensor -> Normalize
(what torchvision's CIFAR10 dataset does), default Adam, the sigmoid + BCE
discriminator loss, and a ``.item()`` host sync on every step's losses.

Kit (k): ``lsr_utils.train.train_vae`` / ``train_lsr_gan`` as users run them
(data on the device, losses accumulated on the device, channels-last, fused
Adam on CUDA), timed by step callbacks.

Both see random images of CIFAR-10's shape (32x32x3). Prints images per
second and the kit/baseline ratio for each stage, and a JSON line.
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class ReferenceStyleDataset(torch.utils.data.Dataset):
    """uint8 HWC images served one by one through PIL, ToTensor and Normalize, like torchvision's CIFAR10."""

    def __init__(self, images_hwc: np.ndarray):
        from torchvision import transforms

        self.images = images_hwc
        self.tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return self.tf(Image.fromarray(self.images[i])), 0


def reference_batches(images_hwc, n, batch):
    """``n`` shuffled batches from a DataLoader with per-item transforms, as the reference reads CIFAR-10."""
    loader = torch.utils.data.DataLoader(ReferenceStyleDataset(images_hwc), batch_size=batch, shuffle=True)
    it = iter(loader)
    for _ in range(n):
        yield next(it)


def baseline_vae(images_hwc, steps, warmup, device, batch=32):
    from lsr_utils.models import Decoder, Encoder

    torch.manual_seed(13)
    enc, dec = Encoder().to(device), Decoder().to(device)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=2e-4, betas=(0.5, 0.999))
    t0 = None
    for i, (data, _) in enumerate(reference_batches(images_hwc, steps + warmup, batch)):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        data = data.to(device)
        opt.zero_grad()
        mu, logvar = enc(data)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        recon = dec(z)
        bce = torch.log((recon - data).pow(2).sum()) * 0.5 * 3 * 32 * 32 * data.shape[0]
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = bce + kld
        loss.backward()
        opt.step()
        loss.item(), bce.item(), kld.item()
    sync(device)
    return steps * batch / (time.perf_counter() - t0)


def baseline_gan(images_hwc, steps, warmup, device, batch=32, lam=1.0):
    from lsr_utils.models import Decoder, Discriminator, Encoder

    torch.manual_seed(13)
    enc, gen, disc = Encoder().to(device).eval(), Decoder().to(device), Discriminator().to(device)
    for p in enc.parameters():
        p.requires_grad = False
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    t0 = None
    for i, (data, _) in enumerate(reference_batches(images_hwc, steps + warmup, batch)):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        valid = torch.ones(data.shape[0], 3, 2, 2).to(device)
        fake = torch.zeros(data.shape[0], 3, 2, 2).to(device)
        sample = torch.randn(data.shape[0], 128).to(device)
        g_fake = gen(sample)
        mu, logvar = enc(g_fake)
        data = data.to(device)
        opt_d.zero_grad()
        d_loss = F.binary_cross_entropy(torch.sigmoid(disc(g_fake.detach())), fake) + \
            F.binary_cross_entropy(torch.sigmoid(disc(data)), valid)
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = F.binary_cross_entropy(torch.sigmoid(disc(g_fake)), valid)
        log_pro = ((sample - mu) ** 2 / (2 * torch.exp(logvar)) + 0.5 * logvar
                   + math.log(math.sqrt(2 * math.pi))).mean() * lam
        (g_loss + log_pro).backward()
        opt_g.step()
        d_loss.item(), g_loss.item(), log_pro.item()
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


def kit_runs(images_chw, steps, warmup, device, stage, batch=32, channels_last=None):
    from lsr_utils.config import GANConfig, VAEConfig
    from lsr_utils.data import ImageData
    from lsr_utils.train import train_lsr_gan, train_vae

    n = (steps + warmup) * batch
    data = ImageData("cifar10", torch.from_numpy(images_chw[:n]), torch.zeros(n, dtype=torch.long),
                     torch.from_numpy(images_chw[:64]), torch.zeros(64, dtype=torch.long), ())
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        vcfg = VAEConfig(dataset="cifar10", epochs=1, n_train=n, batch_size=batch)
        timer = StepTimer(warmup, steps, device)
        vae = train_vae(vcfg, data, out=tmp, device=device, progress=False, callbacks=[timer],
                        checkpoint_every_s=1e9, channels_last=channels_last)
        if stage in ("vae", "both"):
            out["vae"] = steps * batch / (timer.t1 - timer.t0)
        if stage in ("gan", "both"):
            timer = StepTimer(warmup, steps, device)
            train_lsr_gan(GANConfig(vae=vcfg, epochs=1, batch_size=batch), data, vae=vae, out=tmp, device=device,
                          progress=False, callbacks=[timer], checkpoint_every_s=1e9, channels_last=channels_last)
            out["gan"] = steps * batch / (timer.t1 - timer.t0)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--stage", choices=("vae", "gan", "both"), default="both")
    p.add_argument("--channels-last", choices=("default", "on", "off"), default="default",
                   help="memory format of the kit's path (default: the kit's own choice)")
    a = p.parse_args()
    from lsr_utils.train import resolve_device

    device = resolve_device(a.device)
    rng = np.random.default_rng(0)
    n = (a.steps + a.warmup) * 32
    chw = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    hwc = np.ascontiguousarray(chw.transpose(0, 2, 3, 1))
    res = {"device": str(device), "threads": torch.get_num_threads(), "steps": a.steps, "batch": 32,
           "torch": torch.__version__}
    if device.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(0)
    cl = {"default": None, "on": True, "off": False}[a.channels_last]
    res["kit_channels_last"] = a.channels_last
    kit = kit_runs(chw, a.steps, a.warmup, device, a.stage, channels_last=cl)
    for stage in ("vae", "gan"):
        if a.stage not in (stage, "both"):
            continue
        base = (baseline_vae if stage == "vae" else baseline_gan)(hwc, a.steps, a.warmup, device)
        res[f"{stage}_baseline_img_s"], res[f"{stage}_kit_img_s"] = base, kit[stage]
        res[f"{stage}_ratio"] = kit[stage] / base
        print(f"{stage.upper()} step, batch 32: baseline {base:8.1f} img/s | kit {kit[stage]:8.1f} img/s | "
              f"ratio {kit[stage] / base:.2f}x")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
