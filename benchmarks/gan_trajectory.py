"""Where along stage 2 does the LSR-GAN lose what its latent keeps? Its renderings G(mu(x)), step by step.

    python benchmarks/gan_trajectory.py RUN_DIR [--every 50] [--steps N] [--n-test 1000]
                                        [--vae-snapshot FILE] [--classifier DIR] [--data-root DATA]
                                        [--device cpu]

RUN_DIR is a finished LSR-GAN run (``runs/<dataset>/vae-.../gan-...``). Stage 2
is trained again from its VAE exactly as ``train_lsr_gan`` trains it (the same
seeds, weights, batches and step: :class:`lsr_utils.method.steps.GANStep`), and every
``--every`` steps the generator is evaluated as the kit evaluates it (eval
mode) on ``--n-test`` class-balanced test images:

* classification of G(mu(x)) by the kit's classifier, and its sharpness
  relative to the VAE's D(mu(x)) (the two halves of ``lsr demo``'s effect);
* the encoder's round trip (``benchmarks/latent_coverage.py``): for prior samples z and for the codes mu(x),
  how well E gives back the code G rendered (squared error, correlation, log-variance, eq. 4's term);
* at step 0 also the VAE decoder itself with its BatchNorm statistics
  re-estimated over prior samples z ~ N(0, I): the generator's weights at the
  start of stage 2 with the statistics that training on prior samples gives it.
  This separates what the statistics alone lose from what the weight updates do.

With ``--steps`` equal to the run's own (the default), the last row is the run
itself, and the script checks that its generator's weights equal the run's.
``--vae-snapshot FILE`` (a VAE snapshot, ``runs/.../snapshots/epoch-NNNN.pt``
from ``lsr train-vae --snapshot-epochs``) trains stage 2 over that VAE
instead: how the trajectory changes with a longer-trained VAE. The codes'
spread (top eigenvalues of the covariance of mu(x); the prior's are 1) is
printed for the VAE used. ``--classifier DIR``: a finished classifier run to
judge with (default: the kit's evaluation classifier, trained on first use as
``lsr evaluate`` does). Nothing is written to the run folder; one JSON line at
the end.
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--steps", type=int, default=None, help="stage-2 steps (default: the run's own)")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--vae-snapshot", default=None)
    ap.add_argument("--classifier", default=None, help="a finished classifier run folder")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="train stage 2 with this recipe field changed (e.g. lr=1e-4, ema=0.99, lam=5): a variant, "
                         "not the run's own training")
    a = ap.parse_args()

    # BatchNorm statistics re-estimated over prior samples; the encoder's round trip (eq. 4's term)
    from benchmarks.latent_coverage import _recalibrated, _round_trip
    from lsr_utils.base.pixels import model_to_unit, uint8_to_model
    from lsr_utils.base.runtime import resolve_device
    from lsr_utils.data import DeviceBatches, load_data
    from lsr_utils.measurement.classifier import evaluation_classifier_config, load_classifier, train_classifier
    from lsr_utils.measurement.metrics import accuracy, latent_spread, sharpness
    from lsr_utils.method.config import infer_profile
    from lsr_utils.method.stage import build_stage
    from lsr_utils.models.finished import GANRun, load_run
    from lsr_utils.training.loop import RunOptions

    t0 = time.monotonic()
    device = resolve_device(a.device)
    run = load_run(a.run, device)
    if not isinstance(run, GANRun):
        raise SystemExit(f"{a.run}: give an LSR-GAN run (a gan-* folder)")
    cfg = run.config
    for item in a.set:
        import ast

        from lsr_utils.method.config import set_path

        field, _, text = item.partition("=")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        cfg = set_path(cfg, field, value)
    vae = run.vae
    if a.vae_snapshot:
        snap = torch.load(a.vae_snapshot, map_location=device, weights_only=True)
        vae.encoder.load_state_dict(snap["encoder"])
        vae.decoder.load_state_dict(snap["decoder"])
    data = load_data(cfg.vae.dataset, root=a.data_root, n_train=cfg.vae.n_train, n_test=a.n_test,
                     seed=cfg.vae.data_seed, progress=False)
    clf = load_classifier(a.classifier, device) if a.classifier else train_classifier(evaluation_classifier_config(cfg.vae.dataset, infer_profile(cfg)), out=run.path.parents[2], device=device, data_root=a.data_root, options=RunOptions(progress=False))
    x = uint8_to_model(data.test_x.to(device))
    mu, logvar = vae.encode(x)

    def judged(images: torch.Tensor) -> tuple[float, float]:
        unit = model_to_unit(images).cpu()
        return accuracy(clf.predict(unit), data.test_y[:len(unit)]).mean * 100, sharpness(unit).mean

    with torch.no_grad():
        acc_vae, sharp_vae = judged(vae.decode(mu))
        acc_prior_bn, _ = judged(_recalibrated(vae.decoder, cfg.vae.latent_dim, device, size=125)(mu))
        spread = latent_spread(mu.cpu(), logvar.cpu())

    # stage 2 as lsr_utils.training.train trains it, from the kit's one builder (CPU/GPU alike; no stacking)
    batches = DeviceBatches(data.train_x, cfg.batch_size, device, channels_last=True)
    stage = build_stage(cfg, device, total_steps=cfg.epochs * len(batches), encoder=vae.encoder,
                        decoder=vae.decoder)
    step, gen = stage.step, stage.models["generator"]
    renderer = stage.models.get("generator_ema", gen)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    own = cfg.epochs * len(batches)
    steps = own if a.steps is None else a.steps

    rows = []

    z_probe = torch.randn(len(x), cfg.vae.latent_dim, device=device,
                          generator=torch.Generator(device=device).manual_seed(3))

    def record(done: int) -> None:
        renderer.eval()
        with torch.no_grad():
            acc, sharp = judged(renderer(mu))
            prior, real = _round_trip(vae.encode, renderer, z_probe), _round_trip(vae.encode, renderer, mu)
        renderer.train()
        rows.append({"step": done, "lsr_gan_accuracy": round(acc, 1), "sharpness_ratio": round(sharp / sharp_vae, 2),
                     "round_trip_prior": prior, "round_trip_real": real})
        print(f"  step {done:5d}: G(mu(x)) classified correctly {acc:5.1f} %, sharpness {sharp / sharp_vae:4.2f}x "
              f"the VAE's; round trip E(G(.)): prior z error {prior['squared_error']:.3f}, log-variance "
              f"{prior['mean_logvar']:.2f}; real mu(x) error {real['squared_error']:.3f}", flush=True)

    print(f"{'/'.join(run.path.parts[-3:])}: {len(x)} test images; VAE "
          f"{'snapshot ' + str(snap.get('epoch')) + ' epochs' if a.vae_snapshot else 'of the run'}")
    print(f"  covariance of mu(x), top eigenvalues: {', '.join(f'{v:.1f}' for v in spread['top_eigenvalues'])} "
          f"(prior: 1); mean posterior variance {spread['mean_posterior_variance']:.3f}")
    print(f"  VAE D(mu(x)): classified correctly {acc_vae:.1f} %; the same decoder with BatchNorm statistics "
          f"re-estimated over prior samples: {acc_prior_bn:.1f} %")
    record(0)
    done = 0
    while done < steps:
        perm = batches.permutation(shuffle)
        for i in range(len(batches)):
            for m in stage.models.values():
                m.train()
            step(batches.batch(perm, i), done)
            done += 1
            if done % a.every == 0 or done == steps:
                record(done)
            if done >= steps:
                break
    same = None
    if steps == own and not a.vae_snapshot and not a.set:
        ref = run.generator.state_dict()
        same = max(float((t.float() - ref[k].float()).abs().max()) for k, t in renderer.state_dict().items()
                   if t.is_floating_point())
        print(f"  last step against the run's own generator: largest weight difference {same:.3g}")
    out = {"run": "/".join(run.path.parts[-3:]), "n_test": len(x), "vae_snapshot_epoch": snap.get("epoch")
           if a.vae_snapshot else None, "top_eigenvalues": spread["top_eigenvalues"],
           "vae_accuracy": round(acc_vae, 1), "vae_prior_statistics_accuracy": round(acc_prior_bn, 1),
           "trajectory": rows, "max_weight_difference_to_run": same,
           "recipe_changes": a.set,
           "mean_accuracy_second_half": round(sum(r["lsr_gan_accuracy"] for r in rows[len(rows) // 2:]) /
                                              max(1, len(rows) - len(rows) // 2), 1),
           "min_accuracy_second_half": min((r["lsr_gan_accuracy"] for r in rows[len(rows) // 2:]), default=None),
           "seconds": round(time.monotonic() - t0, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
