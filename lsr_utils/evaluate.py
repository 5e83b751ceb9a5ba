"""Evaluation of a trained VAE + LSR-GAN pair on held-out test images.

Computes the paper's image metrics (see :mod:`lsr_utils.metrics` for units):
reconstruction error of the VAE decoder D(mu(x)) and of the LSR-GAN
rendering G(mu(x)) (Figure 5a, Tables 1-2), their sharpness (section 2.2),
the variance among renderings of samples z ~ q(z|x) (Tables 1-2), and the
sharpness of random samples D(z), G(z) with z ~ N(0, I).
"""
from __future__ import annotations

import torch

from .metrics import mse, sample_variance, sharpness
from .pixels import model_to_unit, uint8_to_model, uint8_to_unit
from .train import GANRun


@torch.no_grad()
def _batched(fn, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def render_test_set(run: GANRun, test_x: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Inputs, mu, logvar, VAE reconstructions D(mu) and LSR-GAN renderings G(mu); images in [0, 1] on the CPU."""
    dev = run.vae.device
    mus, lvs = [], []
    for i in range(0, len(test_x), batch_size):
        m, lv = run.vae.encode(uint8_to_model(test_x[i:i + batch_size].to(dev)))
        mus.append(m)
        lvs.append(lv)
    mu, logvar = torch.cat(mus), torch.cat(lvs)
    return {"input": uint8_to_unit(test_x), "mu": mu, "logvar": logvar,
            "vae": _batched(lambda z: model_to_unit(run.vae.decode(z)).cpu(), mu, batch_size),
            "gan": _batched(lambda z: model_to_unit(run.generate(z)).cpu(), mu, batch_size)}


@torch.no_grad()
def image_metrics(run: GANRun, test_x: torch.Tensor, *, clean: torch.Tensor | None = None, k: int = 10,
                  n_variance: int = 500, n_random: int = 1000, seed: int = 0) -> dict:
    """The paper's image metrics for one VAE + LSR-GAN pair on uint8 test images.

    ``clean`` (shapes only): the texture-free test images, to measure how far
    each output is from the compressible content alone.
    """
    r = render_test_set(run, test_x)
    g = torch.Generator(device=run.vae.device).manual_seed(seed)
    out = {
        "n_test": len(test_x),
        "mse_vae": mse(r["vae"], r["input"]).to_dict(),
        "mse_lsr_gan": mse(r["gan"], r["input"]).to_dict(),
        "sharpness_input": sharpness(r["input"]).to_dict(),
        "sharpness_vae": sharpness(r["vae"]).to_dict(),
        "sharpness_lsr_gan": sharpness(r["gan"]).to_dict(),
    }
    nv = min(n_variance, len(test_x))
    mu, lv = r["mu"][:nv], r["logvar"][:nv]
    out["variance_vae"] = sample_variance(lambda z: model_to_unit(run.vae.decode(z)), mu, lv, k=k,
                                          generator=g).to_dict()
    out["variance_lsr_gan"] = sample_variance(lambda z: model_to_unit(run.generate(z)), mu, lv, k=k,
                                              generator=g).to_dict()
    out["variance_n"], out["variance_k"] = nv, k
    z = torch.randn(n_random, run.vae.config.latent_dim, generator=g, device=run.vae.device)
    out["sharpness_random_vae"] = sharpness(_batched(lambda t: model_to_unit(run.vae.decode(t)).cpu(), z)).to_dict()
    out["sharpness_random_lsr_gan"] = sharpness(_batched(lambda t: model_to_unit(run.generate(t)).cpu(), z)).to_dict()
    if clean is not None:
        c = uint8_to_unit(clean)
        out["mse_input_to_clean"] = mse(r["input"], c).to_dict()
        out["mse_vae_to_clean"] = mse(r["vae"], c).to_dict()
        out["mse_lsr_gan_to_clean"] = mse(r["gan"], c).to_dict()
        out["sharpness_clean"] = sharpness(c).to_dict()
    return out


# --------------------------------------------------------------------------- a whole run, on record
def infer_profile(cfg) -> str:
    """The profile whose sizes a configuration matches ('custom' if none)."""
    from .config import PROFILE_SETTINGS

    v = cfg.vae if hasattr(cfg, "vae") else cfg
    for name, s in PROFILE_SETTINGS.items():
        if v.epochs == s["vae_epochs"] and v.n_train == s["n_train"] and \
                (not hasattr(cfg, "vae") or cfg.epochs == s["gan_epochs"]):
            return name
    return "custom"


@torch.no_grad()
def collapse_check(samples: torch.Tensor, reference: torch.Tensor, threshold: float = 0.15) -> dict:
    """Detect mode collapse: per-pixel spread of random samples G(z) relative to that of real images.

    A generator whose samples vary less than ``threshold`` times as much as
    real images do (or that produces non-finite values) is reported as
    "model collapse", as the paper's Table 1 does, instead of numbers.
    """
    finite = bool(torch.isfinite(samples).all())
    spread = float(samples.std(0).mean()) if finite else 0.0
    ref = float(reference.std(0).mean())
    ratio = spread / ref if ref > 0 else 0.0
    return {"collapsed": (not finite) or ratio < threshold, "diversity_ratio": ratio, "threshold": threshold,
            "rule": "per-pixel std of random samples G(z) / per-pixel std of test images < threshold"}


def evaluate_run(path, *, data_root=None, device=None, classifier=None, classifier_profile: str | None = None,
                 fid_weights=None, use_fid: bool = True, n_test: int | None = None, k: int = 10,
                 n_variance: int | None = None, out_root=None, command: str | None = None,
                 progress: bool = True, reuse: bool = True) -> dict:
    """Evaluate a finished LSR-GAN run (and its VAE) and write ``<run>/metrics.json``.

    Computes every number of the paper's Tables 1-2 and section 2.2 that the
    run can give: MSE, sample variance, absolute/relative classification,
    sharpness, the offline classifier Frechet distance (``kit_cfd``) and, when
    the Inception weights are available, FID (test- and random-seeded).

    With ``reuse`` (default), an existing ``metrics.json`` written with the
    same settings, after the run's weights, is returned instead of measuring
    again (as finished runs are reused instead of retrained).
    """
    import time
    from pathlib import Path

    from .classifier import ClassifierRun, classifier_config, evaluation_classifier_config, train_classifier
    from .data import load_data
    from .errors import LsrError
    from .fid import InceptionFID, cached_statistics, distance
    from .metrics import accuracy
    from . import __version__
    from .runs import atomic_write_json, environment, now, read_json
    from .train import load_run

    t0 = time.monotonic()
    path = Path(path)
    run = load_run(path, device)
    if not isinstance(run, GANRun):
        raise LsrError(f"{path}: a VAE run; evaluate the LSR-GAN run inside it (a gan-* folder), "
                       f"which measures both decoders")
    cfg = run.config
    profile = infer_profile(cfg)
    settings = {"n_test": n_test, "k": k, "n_variance": n_variance, "use_fid": use_fid,
                "fid_weights": str(fid_weights) if fid_weights else None,
                "classifier": str(classifier.path) if isinstance(classifier, ClassifierRun) else classifier_profile,
                "lsr_version": __version__}
    cached = path / "metrics.json"
    if reuse and cached.exists():
        try:
            old = read_json(cached)
        except LsrError:
            old = {}
        newest_weights = max((path / "weights.pt").stat().st_mtime, (path.parent / "weights.pt").stat().st_mtime)
        if old.get("settings") == settings and cached.stat().st_mtime > newest_weights:
            return old
    data = load_data(cfg.vae.dataset, root=data_root, n_test=n_test, seed=cfg.vae.data_seed,
                     n_train=(cfg.vae.n_train or 20000) if cfg.vae.dataset == "shapes" else None)
    test_x, test_y = data.test_x, data.test_y
    n = len(test_x)
    clean = None
    if cfg.vae.dataset == "shapes":
        from .shapes import generate_shapes

        clean = torch.from_numpy(generate_shapes(n, seed=cfg.vae.data_seed, split="test", with_clean=True)[2])
    # the classifier first, so that a wrong one is refused before any expensive work
    if classifier is None:
        out = out_root if out_root is not None else path.parents[2]
        ccfg = (classifier_config(cfg.vae.dataset, classifier_profile) if classifier_profile else
                evaluation_classifier_config(cfg.vae.dataset, profile))
        classifier = train_classifier(ccfg, data if cfg.vae.dataset != "shapes" else None, out=out,
                                      device=device, data_root=data_root, progress=progress)
    if not isinstance(classifier, ClassifierRun):
        raise LsrError("classifier must be a ClassifierRun (see lsr_utils.classifier)")
    if classifier.config.dataset != cfg.vae.dataset:
        raise LsrError(f"the classifier was trained on {classifier.config.dataset!r} but this run is on "
                       f"{cfg.vae.dataset!r}; use a classifier of the same dataset")
    nv = n_variance or min(n, 1000)
    values = image_metrics(run, test_x, clean=clean, k=k, n_variance=nv, n_random=min(n, 1000))
    r = render_test_set(run, test_x)
    # classification (Tables 1-2): absolute = vs labels; relative = vs the classifier's call on the raw image
    raw_pred = classifier.predict(r["input"])
    raw_acc = accuracy(raw_pred, test_y)
    for name, imgs in (("vae", r["vae"]), ("lsr_gan", r["gan"])):
        pred = classifier.predict(imgs)
        a, rel = accuracy(pred, test_y), accuracy(pred, raw_pred)
        values[f"absolute_{name}"] = {**a.to_dict(), "mean": 100 * a.mean, "sem": 100 * a.sem, "std": 100 * a.std,
                                      "unit": "% correct (true labels)"}
        values[f"relative_{name}"] = {**rel.to_dict(), "mean": 100 * rel.mean, "sem": 100 * rel.sem,
                                      "std": 100 * rel.std, "unit": "% agreeing with the classifier on the raw image"}
    values["classifier_raw_accuracy"] = {**raw_acc.to_dict(), "mean": 100 * raw_acc.mean, "sem": 100 * raw_acc.sem,
                                         "std": 100 * raw_acc.std, "unit": "% correct on raw test images"}

    # random samples, for random-seeded scores and the collapse check
    g = torch.Generator(device=run.vae.device).manual_seed(1234)
    z = torch.randn(n, cfg.vae.latent_dim, generator=g, device=run.vae.device)
    rand_vae = _batched(lambda t: model_to_unit(run.vae.decode(t)).cpu(), z)
    rand_gan = _batched(lambda t: model_to_unit(run.generate(t)).cpu(), z)
    collapse = collapse_check(rand_gan, r["input"])

    # offline quality score: Frechet distance in the kit classifier's features (never called FID)
    scores = {}
    ext = classifier.feature_extractor()
    key = f"{cfg.vae.dataset}|test|{n}|seed{cfg.vae.data_seed}"
    try:
        ref = cached_statistics(key, lambda: r["input"], ext)
        for name, imgs in (("test_vae", r["vae"]), ("test_lsr_gan", r["gan"]), ("random_vae", rand_vae),
                           ("random_lsr_gan", rand_gan)):
            scores[f"kit_cfd_{name}"] = distance(imgs, ref, ext)
        scores["kit_cfd_feature_dim"], scores["kit_cfd_extractor"] = ext.dim, ext.name
    except LsrError as e:
        scores["kit_cfd_unavailable"] = str(e)
    fid = {"available": False}
    if use_fid:
        try:
            inc = InceptionFID(fid_weights, device=device)
            ref = cached_statistics(key, lambda: r["input"], inc)
            for name, imgs in (("test_vae", r["vae"]), ("test_lsr_gan", r["gan"]), ("random_vae", rand_vae),
                               ("random_lsr_gan", rand_gan)):
                values[f"fid_{name}"] = {"mean": distance(imgs, ref, inc), "sem": None, "n": n, "unit": "FID"}
            fid = {"available": True, "feature_dim": inc.dim, "weights_sha256": inc.weights_sha256,
                   "weights": str(inc.weights_path), "reference": f"{n} test images"}
        except LsrError as e:
            fid = {"available": False, "reason": str(e)}
    record = {
        "run": str(path), "dataset": cfg.vae.dataset, "profile": profile, "beta": cfg.vae.beta, "lam": cfg.lam,
        "lsr_reduction": cfg.lsr_reduction, "vae_epochs": cfg.vae.epochs, "gan_epochs": cfg.epochs,
        "n_train": cfg.vae.n_train, "n_test": n, "values": values, "scores": scores, "fid": fid,
        "collapse": collapse, "settings": settings,
        "classifier": {"run": str(classifier.path), **classifier.metrics},
        "provenance": {"command": command or f"lsr evaluate {path}", "evaluated": now(),
                       "eval_seconds": round(time.monotonic() - t0, 1), "environment": environment(),
                       "vae_train_seconds": run.vae.history.get("seconds"),
                       "gan_train_seconds": run.history.get("seconds")},
    }
    atomic_write_json(path / "metrics.json", record)
    return record


@torch.no_grad()
def posterior_renderings(run: GANRun, x_uint8: torch.Tensor, k: int = 6, seed: int = 0,
                         decoder: str = "lsr_gan") -> torch.Tensor:
    """Images from K samples z ~ q(z|x) per input (Figure 1): shape (N, K, C, H, W), unit range."""
    dev = run.vae.device
    mu, logvar = run.vae.encode(uint8_to_model(x_uint8).to(dev))
    g = torch.Generator(device=dev).manual_seed(seed)
    eps = torch.randn((len(mu), k, mu.shape[1]), generator=g, device=dev)
    z = (mu[:, None] + torch.exp(0.5 * logvar)[:, None] * eps).flatten(0, 1)
    render = run.generate if decoder == "lsr_gan" else run.vae.decode
    imgs = model_to_unit(render(z)).cpu()
    return imgs.view(len(mu), k, *imgs.shape[1:])
