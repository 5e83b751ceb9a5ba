"""Rendering any VAE's latent space: an LSR-GAN on a frozen encoder trained elsewhere (:func:`render_latent`), and
training a pythae model the way pythae does (:func:`fit_pythae`, notebook 08). The adapters that make such a VAE a
kit run are :mod:`lsr_utils.models.external`."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..base.errors import LsrError
from ..base.files import atomic_write_json, read_json
from ..base.progress import progress_bar
from ..base.runtime import resolve_device, set_seed
from ..data import ImageData
from ..method.config import make_config
from ..method.nn import Decoder
from ..models.external import ExternalVAE, load_pythae
from ..models.finished import GANRun
from .loop import RunOptions
from .train import train_lsr_gan


def render_latent(vae: ExternalVAE, data: ImageData, *, profile: str | None = None, generator="paper",
                  out: str | Path = "runs", device=None, progress: bool = True, **options) -> GANRun:
    """Train an LSR-GAN (eq. 3 and 4) on the frozen encoder of ``vae`` over ``data``; returns the finished run.

    ``generator``: ``"paper"`` (Table 3's decoder sized to the latent: started from the VAE's decoder when that is
    the kit's own architecture, else from scratch), ``"vae-decoder"`` (the VAE's own decoder network, whatever it
    is, started from its weights, as the paper starts G from D), or a network (z -> images in [-1, 1]).
    The discriminator is the paper's (another network: :func:`~lsr_utils.training.train.train_lsr_gan`'s
    ``networks``). ``options``: as :func:`lsr_utils.method.config.make_config`'s (``lam``, ``gan_epochs``, ``seed``,
    ...); the profile's recipe applies.
    """
    v = vae.config
    if generator == "vae-decoder" and vae.decoder is None:
        raise LsrError("generator='vae-decoder' needs the VAE's decoder; give it, or use generator='paper'")
    kind = generator if isinstance(generator, str) else "custom"
    if kind not in ("paper", "vae-decoder", "custom"):
        raise LsrError(f"generator must be 'paper', 'vae-decoder' or a network, got {generator!r}")
    cfg = make_config(profile, dataset=v.dataset, **options)
    init = "vae" if kind == "paper" and isinstance(getattr(vae.decoder, "inner", vae.decoder), Decoder) else "scratch"
    cfg = cfg.replace(vae=v, generator=kind, discriminator="paper", init=init if kind == "paper" else cfg.init)
    return train_lsr_gan(cfg, data, vae=vae, out=out, device=device,
                         networks={"generator": generator} if kind == "custom" else None,
                         options=RunOptions(progress=progress))


PYTHAE_BATCH, PYTHAE_LR = 64, 1e-3  # the recipe of fit_pythae: Adam at 1e-3 over batches of 64 images


def fit_pythae(model, data, folder: str | Path, *, epochs: int, seed: int = 13, device=None, progress: bool = True):
    """Train a pythae model on ``data``'s training images with its own objective (``model({"data": x}).loss``; Adam,
    shuffled batches of [0, 1] images), then save it the way pythae saves it, in ``folder``.

    A folder that already holds this training (same model configuration, data, epochs, batch, learning rate and
    seed: ``lsr-training.json``) is reused: the model is loaded from it (weights only) instead.
    """
    folder, batch_size, lr = Path(folder), PYTHAE_BATCH, PYTHAE_LR
    device = resolve_device(device)
    recipe = {"model": type(model).__name__, "model_config": model.model_config.to_dict(), "data": data.fingerprint,
              "n_train": len(data.train_x), "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
    recipe = json.loads(json.dumps(recipe, default=str))
    stamp = folder / "lsr-training.json"
    if stamp.exists() and (folder / "model.pt").exists():
        try:
            done = read_json(stamp, "pythae training record", dict, damaged="training it again")
        except LsrError:
            done = None
        if done == recipe:
            return load_pythae(folder)
    set_seed(seed)
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x_all = data.train_x
    g = torch.Generator().manual_seed(seed)
    steps = epochs * (len(x_all) // batch_size)
    bar = progress_bar(total=steps, desc=f"training pythae {type(model).__name__}", disable=not progress, unit="step")
    for _ in range(epochs):
        perm = torch.randperm(len(x_all), generator=g)
        for i in range(len(x_all) // batch_size):
            x = x_all[perm[i * batch_size:(i + 1) * batch_size]].to(device).float() / 255
            loss = model({"data": x}, epoch=1).loss
            if not torch.isfinite(loss):
                raise LsrError(f"training pythae {type(model).__name__}: the loss became {float(loss)}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
    bar.close()
    model = model.cpu().eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save(str(folder))
    atomic_write_json(stamp, recipe)
    return model
