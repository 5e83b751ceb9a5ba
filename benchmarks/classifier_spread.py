"""How much does the LSR-GAN's classification depend on the classifier that reads it? The same renderings, read by several.

    python -m benchmarks.classifier_spread GAN_RUN [GAN_RUN ...] [--classifier DIR ...] [--seeds 1 2 3]
                                           [--epochs 4 8] [--out RUNS] [--n-test 1000] [--data-root DATA]
                                           [--device cpu]

The classification metrics (section 2.3; `lsr demo`'s check "G(mu(x)) classified correctly") read the LSR-GAN's
renderings with one classifier trained on raw images. Renderings carry detail no training image has (an
imagined texture, artefacts), and where a classifier puts them may depend on details of its own training that
raw images never test. This measures that: for each LSR-GAN run (all of one dataset), its renderings G(mu(x)) and
the VAE's D(mu(x)) of ``--n-test`` class-balanced test images (eval mode, as the kit evaluates), then the
accuracy of each classifier on the raw images, on D(mu(x)) and on G(mu(x)):

* the finished classifier runs given with ``--classifier`` (for example the demo's, and one of the same
  configuration trained with other kernels);
* classifiers of the kit's evaluation configuration for these runs, trained (or reused) under ``--out`` with each
  seed of ``--seeds`` and each epoch count of ``--epochs`` (default: the configuration's own).

Prints a table, the range over classifiers for each run, and one JSON line per classifier and a last summary
line. Nothing is written to the run folders.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def renderings(runs, test_x: torch.Tensor, device) -> tuple[dict, list[str]]:
    """The images every classifier reads, in [0, 1]: the raw test images, and for each run (named by its last three
    folders) the VAE's D(mu(x)) (``"<name>: D(mu(x))"``) and the LSR-GAN's G(mu(x)) (``"<name>"``), eval mode."""
    from lsr_utils.base.pixels import model_to_unit, uint8_to_model, uint8_to_unit

    x = uint8_to_model(test_x.to(device))
    images, names = {"raw": uint8_to_unit(test_x)}, []
    with torch.no_grad():
        for r in runs:
            name = "/".join(r.path.parts[-3:])
            names.append(name)
            mu = r.vae.encode(x)[0]
            images[f"{name}: D(mu(x))"] = model_to_unit(r.vae.decode(mu)).cpu()
            images[name] = model_to_unit(r.render(mu)).cpu()
    return images, names


def readings(classifiers, images: dict, labels: torch.Tensor, names: list[str]) -> tuple[list[dict], dict]:
    """Each (label, classifier)'s accuracy, %, on the raw images, each run's D(mu(x)) and G(mu(x)); and the range
    over classifiers of each run's G(mu(x)) and of their mean over runs."""
    from lsr_utils.measurement.metrics import accuracy

    rows = []
    for label, clf in classifiers:
        acc = {k: round(accuracy(clf.predict(v), labels[:len(v)]).mean * 100, 1) for k, v in images.items()}
        row = {"classifier": label, "raw": acc["raw"],
               "vae": {n: acc[f"{n}: D(mu(x))"] for n in names}, "lsr_gan": {n: acc[n] for n in names}}
        row["lsr_gan_mean"] = round(sum(row["lsr_gan"].values()) / len(names), 2)
        rows.append(row)
    means = [r["lsr_gan_mean"] for r in rows]
    spread = {n: [min(r["lsr_gan"][n] for r in rows), max(r["lsr_gan"][n] for r in rows)] for n in names}
    return rows, {"classifiers": len(rows), "range": spread, "range_of_mean": [min(means), max(means)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="finished LSR-GAN runs (gan-* folders) of one dataset")
    ap.add_argument("--classifier", action="append", default=[], metavar="DIR", help="a finished classifier run")
    ap.add_argument("--seeds", type=int, nargs="*", default=[], help="train (or reuse) classifiers with these seeds")
    ap.add_argument("--epochs", type=int, nargs="*", default=[None],
                    help="epoch counts of the trained classifiers (default: the configuration's)")
    ap.add_argument("--out", default="runs", help="folder for the trained classifiers' run folders")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()

    from lsr_utils.base.runtime import resolve_device
    from lsr_utils.data import load_data
    from lsr_utils.measurement.classifier import evaluation_classifier_config, load_classifier, train_classifier
    from lsr_utils.method.config import infer_profile
    from lsr_utils.models.finished import GANRun, load_run
    from lsr_utils.training.loop import RunOptions

    t0 = time.monotonic()
    device = resolve_device(a.device)
    runs = [load_run(r, device) for r in a.runs]
    for r, path in zip(runs, a.runs):
        if not isinstance(r, GANRun):
            raise SystemExit(f"{path}: give LSR-GAN runs (gan-* folders)")
    cfg = runs[0].config
    if any(r.config.vae.dataset != cfg.vae.dataset for r in runs):
        raise SystemExit("the runs must all be of one dataset")
    data = load_data(cfg.vae.dataset, root=a.data_root, n_train=cfg.vae.n_train, n_test=a.n_test,
                     seed=cfg.vae.data_seed, progress=False)
    images, names = renderings(runs, data.test_x, device)

    # labelled by position and folder name (never the machine's path: the lines go into committed records)
    classifiers = [(f"given {i}: {Path(d).name}", load_classifier(d, device)) for i, d in enumerate(a.classifier, 1)]
    base = evaluation_classifier_config(cfg.vae.dataset, infer_profile(cfg))
    for epochs in a.epochs:
        for seed in a.seeds:
            c = base.replace(seed=seed) if epochs is None else base.replace(seed=seed, epochs=epochs)
            label = f"seed {seed}, {c.epochs} epochs"
            classifiers.append((label, train_classifier(c, out=a.out, device=device, data_root=a.data_root, options=RunOptions(progress=False))))
    if not classifiers:
        raise SystemExit("no classifier: give --classifier DIR or --seeds")

    print(f"{len(names)} runs, {len(data.test_x)} test images; G(mu(x)) classified correctly, % (eval mode)")
    rows, summary = readings(classifiers, images, data.test_y, names)
    for row in rows:
        print(f"  {row['classifier']:60s} raw {row['raw']:5.1f}  "
              + "  ".join(f"{row['lsr_gan'][n]:5.1f}" for n in names) + f"  mean {row['lsr_gan_mean']:5.1f}")
    for n in names:
        print(f"  range over {len(rows)} classifiers, {n}: {summary['range'][n][0]:.1f}-{summary['range'][n][1]:.1f}")
    for r in rows:
        print(json.dumps(r))
    print(json.dumps({"runs": names, "n_test": len(data.test_x), **summary, "seconds": round(time.monotonic() - t0, 1)}))


if __name__ == "__main__":
    main()
