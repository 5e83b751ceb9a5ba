"""Does the generator's BatchNorm state explain the lost shapes and colours? Re-estimate it, read G(mu(x)) again.

    python -m benchmarks.standing_stats RUNS --seed S [--dataset shapes] [--data-root DATA] [--json FILE]

``RUNS`` is the runs folder of a finished ``lsr demo --seed S`` (``runs/`` of the folder it ran in): the VAE, the
LSR-GAN and the five panel classifiers are reused, nothing is trained. The moving average of the generator's
weights (the recipe's ``ema``) copies the live generator's BatchNorm statistics, which were gathered with other
weights; BigGAN's "standing statistics" re-estimate them for the averaged weights. Each row reads the held-out
renderings G(mu(x)) with the demo's panel (``lsr_utils.apps.demo.PANEL_SEEDS``): the generator as trained; with its
statistics re-estimated over 20 or 100 batches of 32 prior samples z ~ N(0, I) (what stage 2 trains on); and, as
a diagnostic only (not the method: stage 2 never sees real images' codes), over codes mu(x) of training images;
and the live generator (the weights stage 2 ended with, which the run folder keeps beside their average). Each
row also gives the renderings' sharpness over the VAE's D(mu(x)), and on ``shapes`` the share of renderings that
keep the object's hue (``lsr_utils.measurement.metrics.hue_kept``).
"""
from __future__ import annotations

import copy
import json

import torch


def standing(generator: torch.nn.Module, batches: int, draw, first_only: bool = False) -> torch.nn.Module:
    """A copy of ``generator`` whose BatchNorm statistics are the plain average over ``batches`` of ``draw(b)``
    (``lsr_utils.method.nn.standing_statistics``, which ``GANConfig.code_stats`` uses too)."""
    from lsr_utils.method.nn import standing_statistics

    return standing_statistics(generator, batches, draw, first_only=first_only)


def main() -> None:
    from benchmarks.demo_runs import demo_parser, load_demo

    p = demo_parser(__doc__.splitlines()[0])
    a = p.parse_args()

    from lsr_utils.base.files import load_tensors
    from lsr_utils.base.pixels import model_to_unit, uint8_to_model, uint8_to_unit
    from lsr_utils.base.runtime import device_name
    from lsr_utils.measurement.metrics import hue_kept, sharpness

    demo = load_demo(a)
    cfg, data, vae, gan, panel, device = demo.cfg, demo.data, demo.vae, demo.gan, demo.panel, demo.device

    torch.set_grad_enabled(False)
    mu = torch.cat([vae.encode(uint8_to_model(data.test_x[i:i + 125]))[0] for i in range(0, len(data.test_x), 125)])
    z_dim = cfg.vae.latent_dim

    def prior(b):
        return torch.randn(32, z_dim, generator=torch.Generator().manual_seed(1000 + b))

    def train_codes(b):
        idx = torch.randint(0, len(data.train_x), (32,), generator=torch.Generator().manual_seed(2000 + b))
        return vae.encode(uint8_to_model(data.train_x[idx]))[0]

    row = {"seed": a.seed, "dataset": a.dataset, "run": gan.path.name, "hardware": device_name(device),
           "classifiers": [label for label, _ in panel]}
    variants = {"as trained (the record's)": gan.generator,
                "standing statistics, 20 x 32 prior z": standing(gan.generator, 20, prior),
                "standing statistics, 100 x 32 prior z": standing(gan.generator, 100, prior),
                "diagnostic: statistics over 100 x 32 codes mu(x) of training images":
                    standing(gan.generator, 100, train_codes),
                "diagnostic: the input layer's statistics only, over 100 x 32 codes mu(x) of training images":
                    standing(gan.generator, 100, train_codes, first_only=True)}
    if cfg.ema:  # the averaged weights render the record's G; the live ones are kept in the same file
        live = copy.deepcopy(gan.generator)
        live.load_state_dict(load_tensors(gan.path / "weights.pt", "weights file")["generator"])
        variants["the live generator (not averaged)"] = live
    vae_sharpness = sharpness(torch.cat([model_to_unit(vae.decode(mu[i:i + 125])) for i in range(0, len(mu), 125)]))
    row["sharpness_vae"] = round(vae_sharpness.mean, 4)
    hues = a.dataset == "shapes" and data.test_clean is not None
    print(f"| seed {a.seed}: G(mu(x)) | classified, mean of {len(panel)} | readings | sharpness / the VAE's |"
          f"{' object hue within 30 degrees, % |' if hues else ''}\n|---|---|---|---|{'---|' if hues else ''}")
    for name, g in variants.items():
        g.eval()
        imgs = torch.cat([model_to_unit(g(mu[i:i + 125])) for i in range(0, len(mu), 125)])
        acc = [round(float((c.predict(imgs) == data.test_y).float().mean()) * 100, 2) for _, c in panel]
        row[name] = acc
        ratio = row.setdefault("sharpness_ratio", {})[name] = round(sharpness(imgs).mean / vae_sharpness.mean, 2)
        hue = ""
        if hues:
            row.setdefault("hue_kept", {})[name] = round(hue_kept(imgs, uint8_to_unit(data.test_clean)).mean, 1)
            hue = f" {row['hue_kept'][name]:.1f} |"
        print(f"| {name} | {sum(acc) / len(acc):.1f} | {', '.join(f'{x:.1f}' for x in acc)} | {ratio:.2f} |{hue}",
              flush=True)
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
