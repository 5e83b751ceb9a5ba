"""Why the demo's random samples are not objects: the prior the samples come from, not the networks that render them.

    python -m benchmarks.prior_mismatch RUNS --seed S [--dataset shapes] [--data-root DATA] [--json FILE]
                                        [--figure FILE.png] [--vae-epochs E]

``RUNS`` is the runs folder of a finished ``lsr demo --seed S`` (the VAE, the LSR-GAN and the five panel classifiers
are reused; nothing is trained). Each row renders 1,000 latents and reads them two ways: the Frechet distance to the
held-out images in the features of the demo's classifier (``kit_cfd``, as the demo's ``scores``; lower is closer)
and the share of images that all five classifiers of the panel (``lsr_utils.apps.demo.PANEL_SEEDS``) name alike (a
shape they agree on, whichever it is: the classifiers are trained on textured images and are rarely confident on
flat renderings, even correct ones, so agreement is read rather than confidence). Latents: the prior z ~ N(0, I) that the method samples (random samples, Figure 5), and, as a
diagnostic only, z' drawn from a Gaussian fitted to the codes mu(x) of the 8,000 training images (their mean and
full covariance: the aggregate posterior as one Gaussian, which the method never samples), and z'' from the same
Gaussian with its covariance's diagonal only (each dimension's own mean and spread: whether the mismatch lies in
each dimension's scale, which a per-dimension rescaling of the latent could remove, or across dimensions, in how the
codes co-vary). Reference rows: the
held-out images themselves (first 1,000 against all) and the renderings of their codes. ``--figure`` writes a grid,
one row of 16 images per row of the table. ``--vae-epochs E``: the same rows for the demo's configuration with a
stage 1 of E epochs (its VAE and LSR-GAN trained in RUNS where not there yet, the panel the demo's): whether a longer
stage 1 brings the codes closer to the prior; the record adds the VAE's KL per training image. ``--latent-dim L``:
likewise with a latent of L dimensions instead of Table 3's 128 (a diagnostic of why the codes do not fill the prior;
the demo keeps 128).
"""
from __future__ import annotations

import json

import torch


def gaussian_fit(codes: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``z`` (standard normal draws) mapped onto the Gaussian fitted to ``codes``: their mean and full covariance."""
    cov = torch.cov(codes.T)
    return codes.mean(0) + z @ torch.linalg.cholesky(cov + 1e-6 * torch.eye(len(cov))).T


def diagonal_fit(codes: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``z`` mapped onto the Gaussian with the codes' mean and each dimension's variance (no covariance between
    dimensions)."""
    return codes.mean(0) + z * codes.var(0).sqrt()


def agreement(names: torch.Tensor) -> float:
    """Percent of images (columns of ``names``, one row per classifier) that every classifier names alike."""
    return float((names == names[0]).all(0).float().mean()) * 100


def main(argv: list[str] | None = None, note: dict | None = None) -> None:
    """``argv``: the command line (default: sys.argv); ``note``: fields added to the record (another benchmark's)."""
    from benchmarks.demo_runs import demo_parser, load_demo

    p = demo_parser(__doc__.splitlines()[0])
    p.add_argument("--figure", default=None, help="write a grid of the renderings here (PNG)")
    p.add_argument("--vae-epochs", type=int, default=None,
                   help="the demo's configuration with stage 1 this many epochs long (trained in RUNS if need be)")
    p.add_argument("--latent-dim", type=int, default=None,
                   help="diagnostic: the demo's configuration with a latent of this many dimensions (Table 3: 128)")
    a = p.parse_args(argv)

    from lsr_utils.base.pixels import model_to_unit, uint8_to_model, uint8_to_unit
    from lsr_utils.base.runtime import device_name
    from lsr_utils.measurement.fid import distance, image_statistics
    from lsr_utils.method.losses import kl_per_dimension

    demo = load_demo(a, a.vae_epochs, a.latent_dim)
    cfg, data, vae, gan, panel, device = demo.cfg, demo.data, demo.vae, demo.gan, demo.panel, demo.device
    torch.set_grad_enabled(False)

    def encode(x):  # (mu, logvar) of uint8 images, 500 at a time
        return tuple(torch.cat(t).cpu() for t in zip(*[vae.encode(uint8_to_model(x[i:i + 500]))
                                                        for i in range(0, len(x), 500)]))

    codes, logvar = encode(data.train_x)
    eig = torch.linalg.eigvalsh(torch.cov(codes.T)).flip(0)
    n, dim = 1000, cfg.vae.latent_dim
    z = torch.randn(n, dim, generator=torch.Generator().manual_seed(7))
    z_fit, z_diag = gaussian_fit(codes, z), diagonal_fit(codes, z)
    mu_test = encode(data.test_x[:n])[0]
    extractor = panel[0][1].feature_extractor()  # the demo's classifier (the panel's first), as the demo's scores
    reference = image_statistics(uint8_to_unit(data.test_x), extractor)

    def render(f, latents):
        return torch.cat([model_to_unit(f(latents[i:i + 125]).cpu()) for i in range(0, len(latents), 125)])

    gan.generator.eval()
    rows = {"held-out images (reference)": uint8_to_unit(data.test_x[:n]),
            "VAE D(mu(x)) of held-out images": render(vae.decode, mu_test),
            "LSR-GAN G(mu(x)) of held-out images": render(gan.render, mu_test),
            "VAE D(z), z ~ N(0, I) (the method's random samples)": render(vae.decode, z),
            "LSR-GAN G(z), z ~ N(0, I) (the method's random samples)": render(gan.generate, z),
            "diagnostic: VAE D(z'), z' ~ Gaussian fit of the training codes": render(vae.decode, z_fit),
            "diagnostic: LSR-GAN G(z'), z' ~ Gaussian fit of the training codes": render(gan.generate, z_fit),
            "diagnostic: VAE D(z''), z'' ~ diagonal Gaussian fit of the training codes": render(vae.decode, z_diag),
            "diagnostic: LSR-GAN G(z''), z'' ~ diagonal Gaussian fit of the training codes":
                render(gan.generate, z_diag)}
    out = {"seed": a.seed, "dataset": a.dataset, "vae_epochs": cfg.vae.epochs, "latent_dim": cfg.vae.latent_dim,
           "run": "/".join(gan.path.parts[-2:]), "hardware": device_name(device),
           "vae_kl_per_image": round(float(kl_per_dimension(codes, logvar).sum()), 1),
           "classifiers": [label for label, _ in panel], "n": n,
           "code_covariance_top_eigenvalues": [round(float(e), 2) for e in eig[:4]],
           "code_norm_mean": round(float(codes.norm(dim=1).mean()), 2),
           "code_variance_largest_per_dimension": round(float(codes.var(0).max()), 2),
           "prior_norm_mean": round(float(z.norm(dim=1).mean()), 2), **(note or {}), "rows": {}}
    print(f"seed {a.seed} ({a.dataset}): top eigenvalues of cov(mu(x)) {out['code_covariance_top_eigenvalues']}, "
          f"mean norm of mu(x) {out['code_norm_mean']} against {out['prior_norm_mean']} for z ~ N(0, I)")
    print(f"| {a.dataset}, seed {a.seed} | kit_cfd to held-out images | named alike by the 5 classifiers, % |\n"
          f"|---|---|---|")
    for name, imgs in rows.items():
        names = torch.stack([c.predict(imgs) for _, c in panel])
        row = {"kit_cfd": round(distance(imgs, reference, extractor), 2),
               "panel_agrees": round(agreement(names), 1)}
        out["rows"][name] = row
        print(f"| {name} | {row['kit_cfd']:.1f} | {row['panel_agrees']:.1f} |", flush=True)
    if a.figure:
        import torchvision

        torchvision.utils.save_image(torch.cat([imgs[:16] for imgs in rows.values()]), a.figure, nrow=16)
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
