"""What the benchmarks that read a finished `lsr demo` share: their arguments, and the demo's runs loaded back."""
from __future__ import annotations

import argparse
from types import SimpleNamespace


def demo_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of a benchmark that reads the runs of ``lsr demo --seed S [--dataset D --data-root R]``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("runs", help="the runs folder of a finished lsr demo")
    p.add_argument("--seed", type=int, default=13, help="the demo's --seed")
    p.add_argument("--dataset", default="shapes")
    p.add_argument("--data-root", default=None)
    p.add_argument("--json", default=None, help="append the row to this file (JSON lines)")
    p.add_argument("--device", default="cpu", help="cpu (the demo's, default) or cuda: where runs trained here train")
    return p


def load_demo(a: argparse.Namespace, vae_epochs: int | None = None, latent_dim: int | None = None) -> SimpleNamespace:
    """The demo's configuration, data, VAE, LSR-GAN and panel of classifiers (quick profile, on ``a.device``), all reused from
    ``a.runs``; stops, saying so, where the demo had not finished there (nothing is left trained in its place).
    ``vae_epochs``: the demo's configuration with stage 1 that many epochs long instead, its VAE and LSR-GAN
    trained in ``a.runs`` where not there yet (the panel is still the demo's). ``latent_dim``: likewise, with a latent
    of that many dimensions instead of Table 3's 128 (a diagnostic: the demo's method keeps 128)."""
    from lsr_utils.apps.demo import demo_config, train_panel
    from lsr_utils.base.runtime import resolve_device
    from lsr_utils.data import load_data
    from lsr_utils.method.config import profile_for
    from lsr_utils.training.loop import RunOptions
    from lsr_utils.training.train import train_lsr_gan, train_vae

    profile, device = "quick", resolve_device(a.device)
    cfg = demo_config(profile, a.dataset, a.seed)
    if vae_epochs is not None:
        cfg = cfg.replace(vae=cfg.vae.replace(epochs=vae_epochs))
    if latent_dim is not None:
        cfg = cfg.replace(vae=cfg.vae.replace(latent_dim=latent_dim))
    n_test = (profile_for(profile, a.dataset).n_test or 2000) if a.dataset == "shapes" else None
    data = load_data(a.dataset, root=a.data_root, n_train=cfg.vae.n_train, n_test=n_test, seed=cfg.vae.data_seed,
                     progress=False)
    kw = dict(out=a.runs, device=device)
    vae = train_vae(cfg.vae, data, **kw, options=RunOptions(progress=False))
    gan = train_lsr_gan(cfg, data, vae=vae, **kw, options=RunOptions(progress=False))
    if vae_epochs is None and latent_dim is None and not (vae.reused and gan.reused):
        raise SystemExit(f"{a.runs} held no finished demo of seed {a.seed}: it was trained now; run lsr demo first")
    panel = train_panel(a.dataset, profile, data, **kw, progress=False)
    return SimpleNamespace(cfg=cfg, data=data, vae=vae, gan=gan, panel=panel, device=device)
