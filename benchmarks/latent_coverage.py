"""Why a short-trained LSR-GAN loses what its latent keeps: do prior samples cover the codes of real images?

    python benchmarks/latent_coverage.py RUN_DIR [--n-test 1000] [--data-root DATA] [--device cpu]

RUN_DIR is a finished LSR-GAN run (``runs/<dataset>/vae-.../gan-...``). LSR-GAN
trains its generator on z ~ N(0, I) only, and its BatchNorm layers keep the
statistics of those batches; at test time it renders G(mu(x)) from the codes
of real images in eval mode (the paper's evaluation, and the reference's
``model.eval()``). If the codes mu(x) spread much wider than the prior (a VAE
far from convergence: the eigenvalues of their covariance far above 1), the
generator is asked about codes it was hardly trained on. This prints, on
``--n-test`` class-balanced test images:

* the top eigenvalues of the covariance of mu(x) (the prior's: 1);
* classification of D(mu(x)) and of G(mu(x)) as the kit evaluates them (eval mode);
* classification of G(mu(x)) with each BatchNorm normalising by the statistics of the batch of test codes
  (batches of the training batch size), a *diagnostic only*: if this is far higher, the generator still
  holds the object, and what loses it is the mismatch between the prior's statistics and the codes';
* classification of G(mu(x)) after re-estimating the BatchNorm statistics over prior samples with the final
  weights (rules out statistics that merely lag behind the weights);
* how decided the classifier is on random samples D(z), G(z) (mean top softmax probability: 1 = a clear
  object, 1/classes = an average of all);
* what the classifier calls G(mu(x)) for each true class (a confusion table: one wrong class taking most
  renderings means a systematic change, not noise), and the renderings' mean level where the input is dark
  (pixels of the input below ``--floor``): a background the generator lifts;
* classification of G(mu(x)) with every pixel below ``--floor`` set to 0, a *diagnostic only* for datasets
  on a black background (digits): whether the object is still there under a lifted background;
* the encoder's round trip (the quantity eq. 4's LSR term trains): for prior samples z, the codes
  (mu, logvar) = E(D(z)) of the VAE decoder's images and E(G(z)) of the LSR-GAN's, and for real codes
  E(D(mu(x))): the mean squared error of mu against the code it was rendered from (0: kept exactly; 1 for
  z: no better than answering 0), the per-dimension correlation of the two, the spread of mu relative to
  the codes' own, the mean log-variance, and eq. 4's term with the reference's reduction. Whether stage 2
  lowers the term by carrying z into the image (error down, correlation up) or by making the encoder less
  sure (log-variance up); and how many latent dimensions the VAE uses (mean KL above 0.1 nat).

and then one JSON line. Nothing is written to the run folder.
"""
from __future__ import annotations

import argparse
import copy
import json
import time

import torch


@torch.no_grad()
def _decode_batch_stats(net: torch.nn.Module, z: torch.Tensor, batch: int) -> torch.Tensor:
    """net(z) with every BatchNorm normalising by the batch's own statistics (on a copy: nothing changes)."""
    twin = copy.deepcopy(net).train()
    return torch.cat([twin(z[i:i + batch]) for i in range(0, len(z), batch) if len(z[i:i + batch]) > 1])


@torch.no_grad()
def _recalibrated(net: torch.nn.Module, latent: int, device, batches: int = 40, size: int = 128):
    """A copy of net whose BatchNorm statistics are re-estimated (plain average) over prior samples."""
    twin = copy.deepcopy(net).train()
    for m in twin.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    g = torch.Generator(device=device).manual_seed(7)
    for _ in range(batches):
        twin(torch.randn(size, latent, device=device, generator=g))
    return twin.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--classifier", default=None, help="a finished classifier run folder (default: the kit's "
                                                       "evaluation classifier, trained on first use)")
    ap.add_argument("--floor", type=float, default=0.25, help="the dark level of the background probe, in [0, 1]")
    a = ap.parse_args()

    from lsr_utils.base.pixels import model_to_unit, uint8_to_model, uint8_to_unit
    from lsr_utils.base.runtime import resolve_device
    from lsr_utils.data import load_data
    from lsr_utils.measurement.classifier import evaluation_classifier_config, load_classifier, train_classifier
    from lsr_utils.measurement.metrics import accuracy, latent_spread
    from lsr_utils.method.config import infer_profile
    from lsr_utils.models.finished import GANRun, load_run
    from lsr_utils.training.loop import RunOptions

    t0 = time.monotonic()
    device = resolve_device(a.device)
    run = load_run(a.run, device)
    if not isinstance(run, GANRun):
        raise SystemExit(f"{a.run}: give an LSR-GAN run (a gan-* folder)")
    cfg = run.config
    data = load_data(cfg.vae.dataset, root=a.data_root, n_test=a.n_test, seed=cfg.vae.data_seed, progress=False,
                     n_train=2 if cfg.vae.dataset == "shapes" else cfg.vae.n_train)
    clf = load_classifier(a.classifier, device) if a.classifier else train_classifier(evaluation_classifier_config(cfg.vae.dataset, infer_profile(cfg)), out=run.path.parents[2], device=device, data_root=a.data_root, options=RunOptions(progress=False))
    x = uint8_to_model(data.test_x.to(device))
    mu, logvar = run.vae.encode(x)
    with torch.no_grad():
        spread = latent_spread(mu.cpu(), logvar.cpu())
        gen, dec = run.generator.eval(), run.vae.decoder.eval()
        noise = torch.Generator(device=device).manual_seed(3)
        z = torch.randn(len(x), cfg.vae.latent_dim, device=device, generator=noise)
        rendered = {
            "vae D(mu(x)), eval mode": dec(mu),
            "lsr-gan G(mu(x)), eval mode (the kit's and the paper's evaluation)": gen(mu),
            "lsr-gan G(mu(x)), BatchNorm on the test codes' batch statistics (diagnostic)":
                _decode_batch_stats(gen, mu, cfg.batch_size),
            "lsr-gan G(mu(x)), BatchNorm re-estimated over prior samples": _recalibrated(
                gen, cfg.vae.latent_dim, device)(mu),
        }
        out = {"run": "/".join(run.path.parts[-3:]), "n_test": len(x), "latent_spread": spread, "accuracy": {}}
        for name, imgs in rendered.items():
            pred = clf.predict(model_to_unit(imgs).cpu())
            out["accuracy"][name] = round(accuracy(pred, data.test_y[:len(pred)]).mean * 100, 1)
        out["decidedness"] = {name: round(float(torch.softmax(clf.logits(model_to_unit(net(z)).cpu()), 1)
                                                .max(1).values.mean()), 3)
                              for name, net in (("random D(z)", dec), ("random G(z)", gen))}
        y, inputs = data.test_y[:len(x)], uint8_to_unit(data.test_x[:len(x)])
        unit = model_to_unit(rendered["lsr-gan G(mu(x)), eval mode (the kit's and the paper's evaluation)"]).cpu()
        pred = clf.predict(unit)
        k = clf.config.num_classes
        out["confusion_lsr_gan"] = {int(c): torch.bincount(pred[y == c], minlength=k).tolist() for c in range(k)}

        def below_floor(images: torch.Tensor) -> torch.Tensor:
            """Pixels darker than --floor in every channel, as a mask of the images' shape."""
            return (images < a.floor).all(1, keepdim=True).expand_as(images)

        def level(images: torch.Tensor) -> float | None:
            v = images[below_floor(inputs)]
            return round(float(v.mean()), 4) if v.numel() else None  # None: no input pixel that dark

        out["dark_input_level"] = {"input": level(inputs),
                                   "vae": level(model_to_unit(rendered["vae D(mu(x)), eval mode"]).cpu()),
                                   "lsr_gan": level(unit)}
        floored = unit.masked_fill(below_floor(unit), 0.0)
        out["accuracy"][f"lsr-gan G(mu(x)), pixels below {a.floor:g} set to 0 (diagnostic)"] = round(
            accuracy(clf.predict(floored), y).mean * 100, 1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).mean(0)  # per latent dimension, over the test images
        out["kl_per_image"] = round(float(kl.sum()), 2)
        out["dimensions_in_use"] = int((kl > 0.1).sum())  # KL above 0.1 nat: the dimension carries the image
        out["round_trip"] = {name: _round_trip(run.vae.encode, net, codes) for name, net, codes in (
            ("prior z, VAE E(D(z))", dec, z), ("prior z, LSR-GAN E(G(z))", gen, z),
            ("real mu(x), VAE E(D(mu(x)))", dec, mu), ("real mu(x), LSR-GAN E(G(mu(x)))", gen, mu))}
        out["decidedness_real"] = round(float(torch.softmax(clf.logits(uint8_to_unit(data.test_x)), 1)
                                              .max(1).values.mean()), 3)
    out["seconds"] = round(time.monotonic() - t0, 1)
    top = ", ".join(f"{v:.1f}" for v in spread["top_eigenvalues"])
    print(f"{out['run']}: {len(x)} test images")
    print(f"  covariance of mu(x), top eigenvalues: {top} (prior: 1); mean posterior variance "
          f"{spread['mean_posterior_variance']:.3f}")
    for name, acc in out["accuracy"].items():
        print(f"  classified correctly, {name:78s} {acc:5.1f} %")
    print(f"  classifier's mean top probability: real test images {out['decidedness_real']:.3f}, "
          + ", ".join(f"{k} {v:.3f}" for k, v in out["decidedness"].items())
          + f" (1/{clf.config.num_classes} = an average of all classes)")
    print("  what the classifier calls G(mu(x)), per true class (columns: predicted class):")
    for c, row in out["confusion_lsr_gan"].items():
        print(f"    class {c}: {row}")
    lv = out["dark_input_level"]
    if lv["input"] is not None:
        print(f"  mean level where the input is darker than {a.floor:g}: input {lv['input']:.3f}, VAE {lv['vae']:.3f}, "
              f"LSR-GAN {lv['lsr_gan']:.3f}")
    print(f"  KL per image {out['kl_per_image']:.1f} nats; {out['dimensions_in_use']} of {len(mu[0])} latent "
          "dimensions in use (KL above 0.1 nat)")
    print("  the encoder's round trip (eq. 4's LSR term): squared error of mu / correlation per dimension / spread"
          " of mu against the codes' / mean log-variance / LSR term (the reference's mean)")
    for name, r in out["round_trip"].items():
        print(f"    {name:32s} {r['squared_error']:6.3f} {r['correlation']:6.3f} {r['spread']:6.3f} "
              f"{r['mean_logvar']:7.3f} {r['lsr_term']:7.3f}")
    print(json.dumps(out))


def _round_trip(encode, net: torch.nn.Module, codes: torch.Tensor) -> dict:
    """How well the frozen encoder gives back the codes ``net`` rendered (see the module's docstring)."""
    from lsr_utils.method.losses import lsr_loss

    mu, logvar = encode(net(codes))
    c, m = codes - codes.mean(0), mu - mu.mean(0)
    corr = (c * m).sum(0) / (c.norm(dim=0) * m.norm(dim=0)).clamp_min(1e-12)
    scale = codes.var(0).mean()
    return {"squared_error": round(float((mu - codes).pow(2).mean() / scale), 4),
            "correlation": round(float(corr.mean()), 4),
            "spread": round(float(mu.var(0).mean() / scale), 4),
            "mean_logvar": round(float(logvar.mean()), 4),
            "lsr_term": round(float(lsr_loss(codes, mu, logvar)), 4)}


if __name__ == "__main__":
    main()
