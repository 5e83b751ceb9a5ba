"""Evaluation of a finished VAE + LSR-GAN pair on held-out test images: every number of the paper's
Tables 1-2 and section 2.2, as one record.

The pipeline, each step once:

1. :func:`renderings`: the test images' codes mu(x), logvar(x), the VAE's
   reconstructions D(mu(x)), the LSR-GAN's renderings G(mu(x)), and random
   samples D(z), G(z) with z ~ N(0, I) (one seed), all in [0, 1];
2. :func:`image_metrics`: MSE (Figure 5a, Tables 1-2), sharpness (section
   2.2), the variance among renderings of K samples of q(z|x) (Tables 1-2),
   and for ``shapes`` the distances to the texture-free images;
3. :func:`classification`: absolute and relative classification (Tables 1-2,
   Figures 5b, 6a-b) with the kit's classifier;
4. :func:`collapse_check`, the offline score ``kit_cfd`` and, where the
   Inception weights are on this machine, FID (section 2.2);
5. :func:`make_record`: one record (the JSON ``metrics.json`` holds; what
   ``lsr report`` gathers), printed by the one :func:`format_record`.

Units: MSE and variance are per-image sums on [0, 1]; classification in %.
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .. import __version__
from ..base.errors import LsrError
from ..base.files import atomic_write_json, load_tensors, read_json, record_manifest
from ..base.limits import LIMITS
from ..base.pixels import model_to_unit, uint8_to_model, uint8_to_unit
from ..base.progress import progress_bar
from ..base.runtime import environment, now
from ..data import ImageData, load_data
from ..method import paper
from ..method.config import CUSTOM, GANConfig, evaluation_sizes, infer_profile
from ..method.losses import kl_divergence
from ..method.nn import reparameterize
from ..models.finished import GANRun, code_renderer, load_run, rendering_key
from ..storage.runs import load_state
from ..training.loop import RunOptions
from .classifier import ClassifierRun, classifier_config, evaluation_classifier_config, train_classifier
from .fid import InceptionFID, cached_statistics, distance
from .metrics import (
    Stat,
    accuracy,
    flat_object_masks,
    hue_errors,
    latent_spread,
    mse_per_pixel,
    sample_variance,
    share_within,
    sharpness,
    sum_squared_error,
)

RANDOM_SEED = 1234  # z ~ N(0, I) for the random samples of every evaluation
MIN_TEST_IMAGES = 10


@dataclass
class Renderings:
    """A test set and what the two models make of it, in [0, 1] on the CPU."""

    input: torch.Tensor         # x
    mu: torch.Tensor            # mu(x), on the model's device
    logvar: torch.Tensor
    vae: torch.Tensor           # D(mu(x))
    gan: torch.Tensor           # G(mu(x))
    random_vae: torch.Tensor    # D(z), z ~ N(0, I)
    random_gan: torch.Tensor    # G(z)
    clean: torch.Tensor | None = None  # shapes: the texture-free x


@torch.no_grad()
def renderings(run: GANRun, test_x: torch.Tensor, *, clean: torch.Tensor | None = None, n_random: int | None = None,
           seed: int = RANDOM_SEED, batch_size: int | None = None, progress: bool = False) -> Renderings:
    """Encode and decode ``test_x`` (uint8) with both models, and draw ``n_random`` random samples (default: as many).

    ``batch_size``: images per forward pass (default: 125 on a CPU, where small batches stay in cache; 500 elsewhere).
    """
    dev = run.vae.device
    batch_size = batch_size or (125 if dev.type == "cpu" else 500)
    parts = {k: [] for k in ("mu", "logvar", "vae", "gan")}
    starts = range(0, len(test_x), batch_size)
    for i in progress_bar(starts, desc="rendering test images", disable=not progress, leave=False):
        mu, lv = run.vae.encode(uint8_to_model(test_x[i:i + batch_size].to(dev)))
        parts["mu"].append(mu)
        parts["logvar"].append(lv)
        parts["vae"].append(model_to_unit(run.vae.decode(mu)).cpu())
        parts["gan"].append(model_to_unit(run.render(mu)).cpu())
    z = torch.randn(n_random or len(test_x), run.config.vae.latent_dim, device=dev,
                    generator=torch.Generator(device=dev).manual_seed(seed))
    rv = torch.cat([model_to_unit(run.vae.decode(z[i:i + batch_size])).cpu() for i in range(0, len(z), batch_size)])
    rg = torch.cat([model_to_unit(run.generate(z[i:i + batch_size])).cpu() for i in range(0, len(z), batch_size)])
    return Renderings(uint8_to_unit(test_x), torch.cat(parts["mu"]), torch.cat(parts["logvar"]),
                      torch.cat(parts["vae"]), torch.cat(parts["gan"]), rv, rg,
                      None if clean is None else uint8_to_unit(clean))


@torch.no_grad()
def image_metrics(run: GANRun, r: Renderings, *, k: int = 10, n_variance: int = 1000, seed: int = 0) -> dict:
    """MSE, sharpness and sample variance of both models (and distances to the clean images for ``shapes``)."""
    g = torch.Generator(device=run.vae.device).manual_seed(seed)
    nv = min(n_variance, len(r.input))
    out = {
        "n_test": len(r.input),
        "mse_vae": sum_squared_error(r.vae, r.input), "mse_lsr_gan": sum_squared_error(r.gan, r.input),
        "sharpness_input": sharpness(r.input), "sharpness_vae": sharpness(r.vae), "sharpness_lsr_gan": sharpness(r.gan),
        "sharpness_random_vae": sharpness(r.random_vae), "sharpness_random_lsr_gan": sharpness(r.random_gan),
        "variance_vae": sample_variance(lambda z: model_to_unit(run.vae.decode(z)), r.mu[:nv], r.logvar[:nv], k=k,
                                        generator=g),
        "variance_lsr_gan": sample_variance(lambda z: model_to_unit(run.render(z)), r.mu[:nv], r.logvar[:nv],
                                            k=k, generator=g),
        "variance_n": nv, "variance_k": k,
    }
    if r.clean is not None:
        out.update(mse_input_to_clean=sum_squared_error(r.input, r.clean),
                   mse_vae_to_clean=sum_squared_error(r.vae, r.clean),
                   mse_lsr_gan_to_clean=sum_squared_error(r.gan, r.clean), sharpness_clean=sharpness(r.clean))
        if r.clean.shape[1] == 3:  # the object's colour kept (shapes: one flat object on a flat background)
            masks = flat_object_masks(r.clean)
            for name, images in (("vae", r.vae), ("lsr_gan", r.gan)):
                e = hue_errors(images, r.clean, masks)
                out.update({f"hue_error_{name}": Stat.of(e, "degrees"), f"hue_kept_{name}": share_within(e)})
    return {key: v.to_dict() if isinstance(v, Stat) else v for key, v in out.items()}


def classification(r: Renderings, classifier, test_y: torch.Tensor, progress: bool = False) -> dict:
    """Absolute (vs the true labels) and relative (vs the classifier's call on the raw image) classification, %."""
    raw = classifier.predict(r.input, progress=progress)
    out = {"classifier_raw_accuracy": accuracy(raw, test_y).percent("% correct on raw test images")}
    for name, imgs in (("vae", r.vae), ("lsr_gan", r.gan)):
        pred = classifier.predict(imgs, progress=progress)
        out[f"absolute_{name}"] = accuracy(pred, test_y).percent("% correct (true labels)")
        out[f"relative_{name}"] = accuracy(pred, raw).percent("% agreeing with the classifier on the raw image")
    return {key: v.to_dict() for key, v in out.items()}


@torch.no_grad()
def collapse_check(samples: torch.Tensor, reference: torch.Tensor, threshold: float = 0.15) -> dict:
    """Detect mode collapse: per-pixel spread of random samples G(z) relative to that of real images.

    A generator whose samples vary less than ``threshold`` times as much as
    real images do (or that produces non-finite values) is reported as
    "model collapse", as the paper's Table 1 does, instead of numbers.
    """
    if len(samples) < 2 or len(reference) < 2:
        raise LsrError("the collapse check needs at least two samples and two test images")
    finite = bool(torch.isfinite(samples).all())
    spread = float(samples.std(0).mean()) if finite else 0.0
    ref = float(reference.std(0).mean())
    if not math.isfinite(ref) or ref <= 0:
        raise LsrError("the test images do not vary (their per-pixel spread is 0); the collapse check has no scale")
    ratio = spread / ref
    return {"collapsed": (not finite) or ratio < threshold, "diversity_ratio": ratio, "threshold": threshold,
            "rule": "per-pixel std of random samples G(z) / per-pixel std of test images < threshold"}


def frechet_scores(r: Renderings, extractor, key: str, prefix: str, progress: bool = False) -> dict:
    """Frechet distances of the four image sets to the test images, in ``extractor``'s features."""

    ref = cached_statistics(key, lambda: r.input, extractor, progress=progress)
    return {f"{prefix}_{name}": distance(imgs, ref, extractor, progress=progress, what=f"{name.replace('_', ' ')}")
            for name, imgs in (("test_vae", r.vae), ("test_lsr_gan", r.gan), ("random_vae", r.random_vae),
                               ("random_lsr_gan", r.random_gan))}


def make_record(run: GANRun, values: dict, measured: dict, classifier, settings: dict, command: str | None,
                seconds: float, profile: str) -> dict:
    """The one evaluation record: what was measured (``values``; ``measured``: the scores, FID, collapse check and
    latent spread), on what, with what (``settings``, as recorded), by which command, where."""

    cfg = run.config
    return {
        "run": "/".join(Path(run.path).resolve().parts[-3:]), "dataset": cfg.vae.dataset, "profile": profile,
        **({"vae_source": cfg.vae.source, "generator": cfg.generator} if cfg.vae.source else {}),
        "beta": cfg.vae.beta, "lam": cfg.lam, "seed": cfg.seed, "lsr_reduction": cfg.lsr_reduction,
        "vae_epochs": cfg.vae.epochs, "gan_epochs": cfg.epochs, "n_train": cfg.vae.n_train, "n_test": values["n_test"],
        "values": values, "scores": measured["scores"], "fid": measured["fid"], "collapse": measured["collapse"],
        "latent": measured["latent"], "settings": settings,
        # the weights measured, by SHA-256: a record is reused, reported or archived only for these weights
        "weights": {"vae": run.vae.weights_sha256, "lsr_gan": run.weights_sha256,
                    "classifier": getattr(classifier, "weights_sha256", None)},
        "classifier": {"run": "/".join(Path(classifier.path).resolve().parts[-2:]), **classifier.metrics}
        if classifier is not None else None,
        "provenance": {"command": command or f"lsr evaluate {run.path.name}", "evaluated": now(),
                       "eval_seconds": round(seconds, 1), "environment": environment(),
                       "vae_train_seconds": run.vae.history.get("seconds"),
                       "gan_train_seconds": run.history.get("seconds")},
    }


@dataclass(frozen=True)
class EvalSettings:
    """What an evaluation measures with: ``lsr evaluate``'s options. A record is reused only when it was made with
    the same settings, as its ``settings`` record them (:meth:`recorded`)."""

    n_test: int | None = None              # test images, a balanced selection (None: the run's profile's)
    k: int = 10                            # samples of q(z|x) per input of the sample variance
    n_variance: int | None = None          # inputs of the sample variance (None: the run's profile's)
    use_fid: bool = False                  # FID with the Inception network, besides the offline score kit_cfd
    fid_weights: str | None = None         # the Inception weights file (None: the kit's store)
    classifier: object = None              # the ClassifierRun that classifies (None: trained or reused)
    classifier_profile: str | None = None  # the profile of that classifier (None: the one that measures the run's)

    def for_run(self, cfg: GANConfig) -> EvalSettings:
        """These settings with the run's profile's sizes where none is given, checked."""
        default_test, default_variance = evaluation_sizes(infer_profile(cfg), cfg.vae.dataset)
        done = replace(self, n_test=self.n_test or default_test, n_variance=self.n_variance or default_variance)
        if not 1 <= done.k <= LIMITS["samples"]:
            raise LsrError(f"--samples {done.k}: the variance takes 1 to {LIMITS['samples']} samples of q(z|x) per "
                           f"image")
        if done.n_test is not None and done.n_test < MIN_TEST_IMAGES:
            raise LsrError(f"--n-test {done.n_test}: an evaluation needs at least {MIN_TEST_IMAGES} test images "
                           f"(spreads, standard errors and the collapse check are not defined on fewer); nothing was "
                           f"written")
        return done

    def recorded(self) -> dict:
        """The settings as a record stores them (and compares them, to reuse it)."""
        return {"n_test": self.n_test, "k": self.k, "n_variance": self.n_variance, "use_fid": self.use_fid,
                "fid_weights": Path(self.fid_weights).name if self.fid_weights else None,
                "classifier": Path(self.classifier.path).name if isinstance(self.classifier, ClassifierRun) else
                self.classifier_profile, "lsr_version": __version__}


def evaluate(run: GANRun, data: ImageData, settings: EvalSettings = EvalSettings(), *, profile: str = CUSTOM,
             recorded: dict | None = None, panel: tuple = (), progress: bool = False,
             command: str | None = None) -> dict:
    """Measure ``run`` on ``data``'s test images with ``settings`` (its classifier: ``settings.classifier``); returns
    the record (nothing is written). ``recorded``: the settings the record says it was made with (default: none).

    Random samples: as many as test images up to 1,000 (the collapse check and the offline score), and with FID as
    many as test images (FID random-seeded compares equal numbers, as the paper's 10,000).

    ``panel``: more classifiers (``(label, classifier)`` pairs) that read the same renderings; the record's
    ``classifier_panel`` holds each one's classification next to ``classifier``'s and their mean
    (:func:`panel_classification`). ``values`` stay ``classifier``'s alone.
    """
    t0 = time.monotonic()
    test_x, test_y, classifier = data.test_x, data.test_y, settings.classifier
    n = len(test_x)
    r = renderings(run, test_x, clean=data.test_clean, n_random=n if settings.use_fid else min(n, 1000),
                   progress=progress)
    values = image_metrics(run, r, k=settings.k, n_variance=settings.n_variance or 1000)
    scores, fid = {}, {"available": False}
    if classifier is not None:
        values.update(classification(r, classifier, test_y, progress))
        key = f"{run.config.vae.dataset}|test|{n}|{run.config.vae.data_seed}|{hash_images(test_x)}"
        try:
            scores = frechet_scores(r, classifier.feature_extractor(), key, "kit_cfd")
            scores["kit_cfd_feature_dim"] = classifier.model.feature_dim
        except LsrError as e:
            scores = {"kit_cfd_unavailable": str(e)}
    if settings.use_fid:
        try:
            t_fid = time.monotonic()
            inc = InceptionFID(settings.fid_weights, device=run.vae.device)
            key = f"{run.config.vae.dataset}|test|{n}|{hash_images(test_x)}"
            for name, v in frechet_scores(r, inc, key, "fid", progress=progress).items():
                values[name] = {"mean": v, "sem": None, "n": n, "unit": "FID"}
            fid = {"available": True, "feature_dim": inc.dim, "weights_sha256": inc.weights_sha256,
                   "weights": Path(inc.weights_path).name, "resize": inc.resize,
                   "reference": f"{n} test images", "images_each": n,
                   "seconds": round(time.monotonic() - t_fid, 1)}
        except LsrError as e:
            fid = {"available": False, "reason": str(e)}
    measured = {"scores": scores, "fid": fid, "collapse": collapse_check(r.random_gan, r.input),
                "latent": latent_spread(r.mu.cpu(), r.logvar.cpu()) if n >= 2 else None}
    readings = None
    if panel and classifier is not None:
        readings = [("classifier", values)] + [(label, classification(r, c, test_y, progress)) for label, c in panel]
    rec = make_record(run, values, measured, classifier, recorded or {}, command, time.monotonic() - t0, profile)
    if readings:
        rec["classifier_panel"] = panel_classification(readings)
    return rec


PANEL_METRICS = ("classifier_raw_accuracy", "absolute_vae", "absolute_lsr_gan", "relative_vae", "relative_lsr_gan")


def panel_classification(readings: list[tuple[str, dict]]) -> dict:
    """Classification of the same renderings by several classifiers: each one's reading (%) of each metric, and
    over them the mean, the standard deviation, the standard error of the mean, the lowest and the highest.

    A classifier trained on raw images reads renderings that carry detail no training image has; where it puts
    them depends on its own seed (benchmarks/RESULTS.md, "The instrument"). The mean over classifiers of one
    recipe estimates what that recipe's classifier reads, whatever its seed, with a standard error that shrinks
    as 1/sqrt(classifiers)."""
    out = {"classifiers": [label for label, _ in readings]}
    for key in PANEL_METRICS:
        vals = [float(v[key]["mean"]) for _, v in readings if key in v]
        if len(vals) != len(readings):
            continue
        mean = sum(vals) / len(vals)
        sd = math.sqrt(sum((x - mean) ** 2 for x in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        out[key] = {"readings": [round(x, 2) for x in vals], "mean": mean, "sd": sd,
                    "sem": sd / math.sqrt(len(vals)), "min": min(vals), "max": max(vals), "unit": "%"}
    return out


def hash_images(x: torch.Tensor) -> str:

    return hashlib.sha1(x.contiguous().numpy().tobytes()).hexdigest()[:12]


def run_weights(path) -> dict | None:
    """The SHA-256 of the weights an LSR-GAN run folder and its VAE's recorded when they finished (run.json), or
    None where either did not record one (a run of an older kit)."""
    from ..storage.runs import RunDir

    path = Path(path)
    try:
        gan, vae = RunDir(path).run_info().get("weights_sha256"), RunDir(path.parent).run_info().get("weights_sha256")
    except LsrError:
        return None
    return {"vae": vae, "lsr_gan": gan} if gan and vae else None


def reusable_record(path, settings: dict, target=None, classifier_sha256: str | None = None) -> dict | None:
    """The evaluation record of the LSR-GAN run at ``path`` if it was made with ``settings`` of exactly the weights
    the run folder holds now (and, when given, of the classifier with that SHA-256): decided from what the record
    and the run folders record, never from file times. Else None. ``target``: where the record is (default
    ``<run>/metrics.json``)."""

    path = Path(path)
    target = Path(target) if target is not None else path / "metrics.json"
    now_weights = run_weights(path)
    if now_weights is None or not target.exists():
        return None
    try:
        old = read_json(target, "evaluation record", dict)
    except LsrError:
        return None
    bound = old.get("weights") if isinstance(old.get("weights"), dict) else {}
    if old.get("settings") != settings or {k: bound.get(k) for k in now_weights} != now_weights:
        return None
    if classifier_sha256 is not None and bound.get("classifier") != classifier_sha256:
        return None
    return old


def evaluate_run(path, settings: EvalSettings = EvalSettings(), *, data_root=None, device=None,
                 record: str | Path | None = None, manifest: str | Path | None = None, command: str | None = None,
                 progress: bool = True, reuse: bool = True, say=None, trust_pickles: bool = False) -> dict:
    """Evaluate a finished LSR-GAN run (and its VAE) with ``settings`` and write its record to
    ``<run>/metrics.json``.

    ``record``: write the record there instead (for a run folder you cannot
    write to). With ``reuse`` (default), a record made with the same settings
    of the weights the run holds now is returned instead of measuring again.
    ``manifest``: a file to list the record in (a sweep's or reproduction's
    notebooks pass theirs). ``say``: where messages go (default: stderr).
    ``trust_pickles``: a run on a pythae VAE with custom networks may rebuild
    them from their pythae folder (unpickling: only a folder you trust).
    """

    say = say or (lambda text: print(text, file=sys.stderr))
    path = Path(path).resolve()
    run = load_run(path, device, **({"trust_pickles": True} if trust_pickles else {}))
    if not isinstance(run, GANRun):
        raise LsrError(f"{path}: a VAE run; evaluate the LSR-GAN run inside it (a gan-* folder), which measures "
                       f"both decoders")
    cfg, settings = run.config, settings.for_run(run.config)
    target = Path(record) if record else path / "metrics.json"
    if not record and not _writable(path):
        raise LsrError(f"{path} is read-only: cannot write metrics.json there. Pass --record FILE to write the "
                       f"evaluation record elsewhere")
    old = reusable_record(path, settings.recorded(), target) if reuse else None
    if old is not None:
        say(f"reusing the evaluation in {target.name} (same settings, newer than the weights; --fresh measures "
            f"again)")
        record_manifest(manifest, target)
        return old
    data = load_data(cfg.vae.dataset, root=data_root, n_test=settings.n_test, seed=cfg.vae.data_seed,
                     progress=progress, n_train=2 if cfg.vae.dataset == "shapes" else None)
    classifier = settings.classifier
    if classifier is None:  # the classifier first, so that a missing one is trained before the long work
        ccfg = (classifier_config(cfg.vae.dataset, settings.classifier_profile) if settings.classifier_profile else
                evaluation_classifier_config(cfg.vae.dataset, infer_profile(cfg)))
        classifier = train_classifier(ccfg, out=path.parents[2], device=device, data_root=data_root,
                                      options=RunOptions(progress=progress), announce=lambda where: say(
                                          f"training the {cfg.vae.dataset} classifier first ({where}, {ccfg.epochs} "
                                          f"epochs): the classification metrics need it; it is kept for later "
                                          f"evaluations"))
    if not isinstance(classifier, ClassifierRun):
        raise LsrError("classifier must be a ClassifierRun (see lsr_utils.measurement.classifier)")
    if classifier.config.dataset != cfg.vae.dataset:
        raise LsrError(f"the classifier was trained on {classifier.config.dataset!r} but this run is on "
                       f"{cfg.vae.dataset!r}; use a classifier of the same dataset")
    rec = evaluate(run, data, replace(settings, classifier=classifier), profile=infer_profile(cfg),
                   recorded=settings.recorded(), progress=progress, command=command)
    atomic_write_json(target, rec)
    record_manifest(manifest, target)
    return rec


def convergence(path, settings: EvalSettings = EvalSettings(n_test=2000), *, epochs=None, data_root=None,
                device=None, progress: bool = True, command: str | None = None, say=None) -> dict:
    """The LSR-GAN's metrics after each kept epoch (``--snapshot-epochs``), on ``settings.n_test`` test images.

    Each snapshot's generator replaces the run's; the same evaluation as
    :func:`evaluate` measures it (the VAE's values do not change). Writes
    ``<run>/convergence.json`` and returns it.
    """

    say = say or (lambda text: print(text, file=sys.stderr))
    path = Path(path).resolve()
    run = load_run(path, device)
    if not isinstance(run, GANRun):
        raise LsrError(f"{path}: a VAE run; give the LSR-GAN run whose snapshots to evaluate")
    kept = sorted(int(p.stem.split("-")[1]) for p in (path / "snapshots").glob("epoch-*.pt"))
    epochs = kept if epochs is None else [e for e in epochs if e in kept]
    if not epochs:
        raise LsrError(f"{path}: no snapshots kept (train with --snapshot-epochs 1 2 5 10 to keep them)")
    cfg = run.config
    # the training images where the run renders codes with statistics gathered over them (GANConfig.code_stats)
    n_train = cfg.vae.n_train if run.code_generator is not None else 2 if cfg.vae.dataset == "shapes" else None
    n_test, classifier = settings.n_test, settings.classifier
    data = load_data(cfg.vae.dataset, root=data_root, n_test=n_test, seed=cfg.vae.data_seed, progress=progress,
                     n_train=n_train)
    if classifier is None:
        classifier = train_classifier(evaluation_classifier_config(cfg.vae.dataset, infer_profile(cfg)),
                                      out=path.parents[2], device=device, data_root=data_root,
                                      options=RunOptions(progress=progress))
    # each snapshot measured as the finished run is: its moving average where the run keeps one (GANConfig.ema),
    # and for codes of real images its statistics gathered afresh (GANConfig.code_stats)
    recs = []
    for e in epochs:
        file = path / "snapshots" / f"epoch-{e:04d}.pt"
        snap = load_tensors(file, "snapshot")
        key = rendering_key(cfg, snap)
        load_state(run.generator, snap.get(key), file, key)
        if run.code_generator is not None:
            run.code_generator = code_renderer(run.generator, cfg, run.vae, data.train_x, run.vae.device)
        say(f"evaluating the LSR-GAN after epoch {e} of {cfg.epochs} ({len(data.test_x)} test images)")
        rec = evaluate(run, data, replace(settings, classifier=classifier), profile=infer_profile(cfg),
                       recorded={"n_test": n_test, "snapshot_epoch": e}, progress=progress, command=command)
        rec["gan_epochs_done"] = e
        recs.append(rec)
    out = {"run": "/".join(path.parts[-3:]), "dataset": cfg.vae.dataset, "n_test": len(data.test_x),
           "epochs": epochs, "records": recs}
    atomic_write_json(path / "convergence.json", out)
    return out


def _writable(path: Path) -> bool:

    return os.access(path, os.W_OK)


@torch.no_grad()
def vae_summary(run, test_x: torch.Tensor, batch_size: int = 500) -> dict:
    """A VAE's reconstruction error and KL on uint8 test images (Appendix A's comparison).

    ``mse_per_pixel_unit``: squared error of D(mu(x)) per pixel value on [0, 1];
    ``mse_per_pixel_model_scale``: the same on the networks' [-1, 1] scale (x 4),
    the MSE of :func:`lsr_utils.method.losses.effective_beta`; ``kl_per_image``: the
    KL of q(z|x) from N(0, I) in nats, averaged over images.
    """

    errs, kl = [], 0.0
    for i in range(0, len(test_x), batch_size):
        x = uint8_to_model(test_x[i:i + batch_size])
        mu, logvar = run.encode(x)
        errs.append(mse_per_pixel(model_to_unit(run.decode(mu)).cpu(), model_to_unit(x)).mean * len(x))
        kl += float(kl_divergence(mu, logvar))
    unit = sum(errs) / len(test_x)
    return {"mse_per_pixel_unit": unit, "mse_per_pixel_model_scale": 4 * unit, "kl_per_image": kl / len(test_x)}


@torch.no_grad()
def posterior_renderings(run: GANRun, x_uint8: torch.Tensor, k: int = 6, seed: int = 0,
                         decoder: str = "lsr_gan") -> torch.Tensor:
    """Images from K samples z ~ q(z|x) per input (Figure 1): shape (N, K, C, H, W), unit range."""
    dev = run.vae.device
    mu, logvar = run.vae.encode(uint8_to_model(x_uint8).to(dev))
    z = reparameterize(mu, logvar, torch.Generator(device=dev).manual_seed(seed), samples=k)  # (K, N, D)
    draw = run.render if decoder == "lsr_gan" else run.vae.decode
    imgs = model_to_unit(draw(z.transpose(0, 1).flatten(0, 1))).cpu()
    return imgs.view(len(mu), k, *imgs.shape[1:])


# ----------------------------------------------------------------------------- the one formatter
def _cell(v: dict | None, digits: int = 4) -> str:
    if v is None:
        return "-"
    s = f"{v['mean']:.{digits}g}"
    return s + (f" ± {v['sem']:.2g}" if v.get("sem") is not None else "")


LABELS = {
    "mse_vae": "MSE, VAE D(mu(x))", "mse_lsr_gan": "MSE, LSR-GAN G(mu(x))",
    "variance_vae": "variance over q(z|x), VAE", "variance_lsr_gan": "variance over q(z|x), LSR-GAN",
    "absolute_vae": "absolute classification, VAE (%)", "absolute_lsr_gan": "absolute classification, LSR-GAN (%)",
    "relative_vae": "relative classification, VAE (%)", "relative_lsr_gan": "relative classification, LSR-GAN (%)",
    "classifier_raw_accuracy": "classifier on raw test images (%)",
    "sharpness_input": "sharpness, test images", "sharpness_vae": "sharpness, VAE",
    "sharpness_lsr_gan": "sharpness, LSR-GAN", "sharpness_random_vae": "sharpness, random D(z)",
    "sharpness_random_lsr_gan": "sharpness, random G(z)",
    "mse_input_to_clean": "MSE, input to texture-free input", "mse_vae_to_clean": "MSE, VAE to texture-free input",
    "mse_lsr_gan_to_clean": "MSE, LSR-GAN to texture-free input", "sharpness_clean": "sharpness, texture-free input",
    "hue_error_vae": "object hue error, VAE (degrees)", "hue_error_lsr_gan": "object hue error, LSR-GAN (degrees)",
    "hue_kept_vae": "object hue within 30 degrees, VAE (%)",
    "hue_kept_lsr_gan": "object hue within 30 degrees, LSR-GAN (%)",
    "fid_test_vae": "FID test-seeded, VAE", "fid_test_lsr_gan": "FID test-seeded, LSR-GAN",
    "fid_random_vae": "FID random-seeded, VAE", "fid_random_lsr_gan": "FID random-seeded, LSR-GAN",
}


def format_record(rec: dict) -> str:
    """Every metric a record holds, one per line; the paper's value beside it only where the paper measured it
    (CIFAR-10, at its beta and lambda)."""
    c = rec.get("collapse") or {}
    lines = [f"{rec['dataset']}, {rec['profile']} profile, beta={rec['beta']:g}, lambda={rec['lam']:g}: "
             f"{rec['n_test']} test images; run {rec['run']}",
             f"  collapse check: {'MODEL COLLAPSE' if c.get('collapsed') else 'no collapse'} (diversity ratio "
             f"{c.get('diversity_ratio', float('nan')):.3f}, threshold {c.get('threshold')})"]
    lat = rec.get("latent")
    if isinstance(lat, dict) and isinstance(lat.get("top_eigenvalues"), list):
        top = ", ".join(f"{v:.3g}" for v in lat["top_eigenvalues"][:4] if isinstance(v, (int, float)))
        lines.append(f"  latent spread: covariance of mu(x), top eigenvalues {top} (the prior N(0, I) that "
                     f"LSR-GAN trains on: 1)")
    paper_col = rec["dataset"] == "cifar10"
    vals = rec.get("values", {})
    for key, label in LABELS.items():
        if key not in vals:
            continue
        p = paper.paper_cell(key, rec["beta"], rec["lam"]) if paper_col else None
        lines.append(f"  {label:44s} {_cell(vals[key]):>20s}" + (f"   (paper, CIFAR-10: {p})" if p else ""))
    scores = rec.get("scores", {})
    for key in ("kit_cfd_test_vae", "kit_cfd_test_lsr_gan", "kit_cfd_random_vae", "kit_cfd_random_lsr_gan"):
        if key in scores:
            label = "kit_cfd (offline score, not FID), " + key[8:].replace("_", " ")
            lines.append(f"  {label:56s} {scores[key]:>8.4g}")
    if "kit_cfd_unavailable" in scores:
        lines.append(f"  offline score kit_cfd: not computed ({scores['kit_cfd_unavailable']})")
    fid = rec.get("fid", {})
    if not fid.get("available"):
        lines.append(f"  FID: not computed ({fid.get('reason', 'not asked for')})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- FID between a dataset's splits
def split_fid(data: ImageData, inc: InceptionFID, *, progress: bool = True, command: str | None = None) -> dict:
    """FID between ``data``'s training and test images (all, or the balanced subsets it was loaded with) in the
    features of ``inc``: the protocol's own baseline, to set beside published values (``lsr fid``). Each split's
    statistics are cached by content."""
    t0 = time.monotonic()
    dataset, resize = data.name, inc.resize
    stats = {}
    for split, x in (("test", data.test_x), ("train", data.train_x)):
        key = f"{dataset}|{split}|{len(x)}|{hash_images(x)}"
        stats[split] = cached_statistics(key, lambda x=x: uint8_to_unit(x), inc, progress=progress,
                                         what=f"{dataset} {split} ({len(x):,})")
    from .fid import frechet_distance

    value = frechet_distance(stats["train"].mu, stats["train"].sigma, stats["test"].mu, stats["test"].sigma)
    return {"dataset": dataset, "fid": value, "n_train": len(data.train_x), "n_test": len(data.test_x),
            "resize": resize, "weights": Path(inc.weights_path).name, "weights_sha256": inc.weights_sha256,
            "data": data.fingerprint, "seconds": round(time.monotonic() - t0, 1),
            "command": command or f"lsr fid --dataset {dataset}", "measured": now(), "environment": environment()}
