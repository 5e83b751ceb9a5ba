"""Imagine any VAE's latent space: LSR-GAN as a renderer for a frozen encoder trained elsewhere.

The paper: "This modification of the objective function can clearly be applied
to any GAN or used with any VAE" (section 1). Here a VAE is whatever maps
images to the mean and log-variance of a diagonal Gaussian q(z|x):

* :func:`from_module`: any ``torch.nn.Module`` or callable (and, optionally,
  its decoder), taking images in a stated pixel range (``"model"``: [-1, 1];
  ``"unit"``: [0, 1]) and returning ``(mu, logvar)`` (a pair, or a mapping with
  ``mu``/``logvar`` or pythae's ``embedding``/``log_covariance``);
* :func:`from_pythae`: a pythae model, or the folder pythae saved it in. The
  kit reads that folder's ``model_config.json`` and loads ``model.pt`` with
  ``weights_only=True``; it never unpickles the ``encoder.pkl``/``decoder.pkl``
  that pythae writes for custom networks (cloudpickle: loading them runs code
  from the folder) unless the caller passes ``trust_pickles=True``
  (``--trust-pickles``), saying so.

Either becomes an :class:`ExternalVAE`: a run folder of the kit (``runs/<dataset>
/ext-.../``) that binds the VAE's weights by their SHA-256, so LSR-GANs train
inside it and every tool of the kit (``lsr evaluate``, ``lsr report``, the latent
explorer) works on them as on the kit's own VAEs. :func:`render_latent` trains
the LSR-GAN (eq. 3 and 4, the reference's lambda scale) on its frozen encoder.

Eq. 4 needs the encoder's variance: the LSR term is -log q(z | G(z)) under
N(mu, exp(logvar)). An encoder that gives only a code (an autoencoder, a WAE,
a deterministic model) is refused, with the reason, unless a fixed
log-variance is stated (``fixed_logvar``).
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..base.errors import LsrError
from ..base.files import load_tensors, present, read_json
from ..base.runtime import now, resolve_device
from ..data import geometry
from ..method.config import VAEConfig
from ..storage.runs import RunDir, run_dir
from .run import Finished

NO_VARIANCE = ("this encoder gives a code but no variance (an autoencoder, a WAE or another deterministic model). "
               "LSR-GAN's generator loss (eq. 4) is -log q(z | G(z)) under the encoder's Gaussian N(mu, exp(logvar)), "
               "which such an encoder does not define: the paper's point is that the LSR term needs a VAE's posterior "
               "(an autoencoder's code has no spread for the GAN to imagine within). State a fixed log-variance "
               "(fixed_logvar=..., --fixed-logvar) to render it anyway, knowing that you chose it")
PYTHAE_PICKLES = ("encoder.pkl", "decoder.pkl")


def _mu_logvar(out):
    """(mu, logvar or None) from what an encoder returns."""
    if isinstance(out, (tuple, list)):
        if len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out):
            return out[0], out[1]
        if len(out) >= 1 and isinstance(out[0], torch.Tensor):
            return out[0], None
    if isinstance(out, torch.Tensor):
        return out, None
    get = out.get if hasattr(out, "get") else (lambda k, d=None: getattr(out, k, d))
    mu = get("mu", None)
    mu = get("embedding", None) if mu is None else mu
    logvar = get("logvar", None)
    logvar = get("log_covariance", None) if logvar is None else logvar
    if not isinstance(mu, torch.Tensor):
        raise LsrError("the encoder must return (mu, logvar), or a mapping with mu and logvar (or pythae's embedding "
                       "and log_covariance)")
    return mu, logvar


class AdaptedEncoder(nn.Module):
    """A VAE's encoder as the kit uses one: images in [-1, 1] -> (mu, logvar), each (B, latent_dim)."""

    def __init__(self, encoder, pixel_range: str = "model", fixed_logvar: float | None = None):
        super().__init__()
        if pixel_range not in ("model", "unit"):
            raise LsrError(f"pixel_range must be 'model' ([-1, 1]) or 'unit' ([0, 1]), got {pixel_range!r}")
        self.inner = encoder if isinstance(encoder, nn.Module) else _Callable(encoder)
        self.pixel_range, self.fixed_logvar = pixel_range, fixed_logvar

    def forward(self, x: torch.Tensor):
        mu, logvar = _mu_logvar(self.inner((x + 1) / 2 if self.pixel_range == "unit" else x))
        if logvar is None:
            if self.fixed_logvar is None:
                raise LsrError(NO_VARIANCE)
            logvar = torch.full_like(mu, self.fixed_logvar)
        return mu.flatten(1), logvar.flatten(1)


class AdaptedDecoder(nn.Module):
    """A VAE's decoder as the kit uses one: z -> images in [-1, 1] (a mapping's ``reconstruction``, as pythae's)."""

    def __init__(self, decoder, pixel_range: str = "model", image_shape: tuple | None = None):
        super().__init__()
        self.inner = decoder if isinstance(decoder, nn.Module) else _Callable(decoder)
        self.pixel_range, self.image_shape = pixel_range, image_shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.inner(z)
        if not isinstance(out, torch.Tensor):
            get = out.get if hasattr(out, "get") else (lambda k, d=None: getattr(out, k, d))
            out = get("reconstruction", None)
            if not isinstance(out, torch.Tensor):
                raise LsrError("the decoder must return images, or a mapping with 'reconstruction' (pythae's)")
        if self.image_shape is not None:
            out = out.reshape(out.shape[0], *self.image_shape)
        return out * 2 - 1 if self.pixel_range == "unit" else out


class _Callable(nn.Module):
    """A plain callable as a module (its parameters, if any, are its own business)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *a):
        return self.fn(*a)


@dataclass
class ExternalVAE(Finished):
    """A VAE trained elsewhere, bound to a kit run folder: what :class:`lsr_utils.models.finished.VAERun` offers."""

    encoder: AdaptedEncoder
    decoder: AdaptedDecoder | None

    @property
    def device(self) -> torch.device:
        p = next(iter(self.encoder.parameters()), None)
        return p.device if p is not None else torch.device("cpu")

    @torch.no_grad()
    def encode(self, x: torch.Tensor):
        return self.encoder.eval()(x.to(self.device))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.decoder is None:
            raise LsrError(f"{self.path}: this VAE was given without its decoder; its reconstructions D(mu(x)) cannot "
                           f"be drawn (give the decoder too)")
        return self.decoder.eval()(z.to(self.device))


def _state_bytes(*modules) -> bytes:
    buf = io.BytesIO()
    torch.save([{k: v.detach().cpu() for k, v in m.state_dict().items()} for m in modules if m is not None], buf)
    return buf.getvalue()


def _probe(encoder: AdaptedEncoder, dataset: str) -> int:
    """The latent size, read from the encoder itself (two blank images of the dataset's geometry)."""
    size, channels = geometry(dataset)
    device = next(iter(encoder.parameters()), torch.empty(0)).device
    with torch.no_grad():
        mu, logvar = encoder.eval()(torch.zeros(2, channels, size, size, device=device))
    if mu.shape != logvar.shape or mu.dim() != 2:
        raise LsrError(f"the encoder's mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} must both be (batch, "
                       f"latent_dim)")
    return int(mu.shape[1])


def _bind(encoder: AdaptedEncoder, decoder: AdaptedDecoder | None, data, out, fields: dict, record: dict,
          weights: dict) -> ExternalVAE:
    """The run folder of a VAE trained elsewhere, on ``data``'s dataset (written once; an existing one with the same
    weights is reused). ``fields``: its configuration's (source, source_sha256, pixel_range, fixed_logvar, beta);
    ``record``: what its run.json says besides."""
    from ..data import bind_data

    size, channels = geometry(data.name)
    cfg = VAEConfig(dataset=data.name, image_size=size, channels=channels, latent_dim=_probe(encoder, data.name),
                    epochs=1, **fields)
    cfg = bind_data(cfg, data)[0]
    folder = RunDir(run_dir(cfg, out))
    if folder.status != "finished":
        with folder.lock():
            started = folder.start(cfg, "vae", "cpu")
            folder.finish(weights, {"note": "a VAE trained elsewhere; the kit did not train it"}, "cpu", started,
                          source=cfg.source, bound=now(), **record)
    return ExternalVAE(folder.path, cfg, encoder, decoder, reused=folder.status == "finished",
                       weights_sha256=cfg.source_sha256)


def from_module(encoder, decoder=None, *, data, pixel_range: str = "model", fixed_logvar: float | None = None,
                out: str | Path = "runs", name: str = "module") -> ExternalVAE:
    """Any encoder (and its decoder) as a VAE the kit can render, on ``data``'s dataset (:class:`ImageData`): see
    the module's docstring. Its weights are bound by their SHA-256; the run folder cannot rebuild Python code, so
    loading its runs later takes the same modules (:func:`load_external`)."""
    enc = AdaptedEncoder(encoder, pixel_range, fixed_logvar)
    size, channels = geometry(data.name)
    dec = None if decoder is None else AdaptedDecoder(decoder, pixel_range, (channels, size, size))
    sha = hashlib.sha256(_state_bytes(enc, dec)).hexdigest()
    return _bind(enc.eval(), dec, data, out,
                 dict(source=name, source_sha256=sha, pixel_range=pixel_range, fixed_logvar=fixed_logvar), {},
                 {"encoder": enc.state_dict(), **({"decoder": dec.state_dict()} if dec else {})})


# ----------------------------------------------------------------------------- pythae
def _pythae():
    try:
        import pythae.models as pm
    except ImportError:
        raise LsrError("this needs pythae: pip install -e \".[pythae]\" (pythae 0.1.2)") from None
    return pm


def load_pythae(folder: str | Path, *, trust_pickles: bool = False):
    """A pythae model from the folder pythae saved it in, without unpickling anything from it by default.

    ``model_config.json`` names the model and its sizes; ``model.pt`` holds its weights (loaded with
    ``weights_only=True``); default networks are rebuilt from the configuration. Custom networks
    (``encoder.pkl``/``decoder.pkl``, cloudpickle) are loaded only with ``trust_pickles``.
    """
    pm = _pythae()
    folder = Path(folder)
    if not folder.is_dir():
        raise LsrError(f"{folder}: no such folder (give the folder pythae saved the model in)")
    cfg = read_json(folder / "model_config.json", "pythae model configuration", {"name": str},
                    damaged="not a pythae model folder")
    name = cfg["name"]
    if not name.endswith("Config") or not hasattr(pm, name) or not hasattr(pm, name[:-len("Config")].rstrip("_")):
        raise LsrError(f"{folder / 'model_config.json'}: {name[:60]!r} is not a pythae model this kit knows")
    pickles = [p for p in PYTHAE_PICKLES if present(folder / p)]
    if pickles and not trust_pickles:
        raise LsrError(f"{folder}: holds {' and '.join(pickles)}, custom networks that pythae saved with cloudpickle; "
                       f"loading them runs code from that folder, so the kit refuses to. If you trust where this "
                       f"folder comes from, pass --trust-pickles (trust_pickles=True): that loads them with pythae's "
                       f"own loader")
    if pickles:
        return pm.AutoModel.load_from_folder(str(folder))  # the caller said the folder is trusted
    model_cls = getattr(pm, name[:-len("Config")].rstrip("_"))
    try:
        config = getattr(pm, name).from_json_file(str(folder / "model_config.json"))
        model = model_cls(config)
    except Exception as e:  # pythae's own validation of its configuration
        raise LsrError(f"{folder / 'model_config.json'}: pythae cannot build {name} from it ({type(e).__name__}: "
                       f"{str(e)[:200]})") from None
    state = load_tensors(folder / "model.pt", "pythae weights file", kit_file=False)
    if not isinstance(state, dict) or not isinstance(state.get("model_state_dict"), dict):
        raise LsrError(f"{folder / 'model.pt'}: not a pythae weights file (no model_state_dict)")
    try:
        model.load_state_dict(state["model_state_dict"])
    except RuntimeError as e:
        raise LsrError(f"{folder / 'model.pt'}: its weights do not fit {name} ({str(e).splitlines()[0][:200]})") \
            from None
    return model.eval()


def from_pythae(model, *, data, pixel_range: str = "unit", fixed_logvar: float | None = None,
                trust_pickles: bool = False, out: str | Path = "runs") -> ExternalVAE:
    """A pythae model (or the folder it was saved in) as a VAE the kit can render, on ``data``'s dataset. pythae's
    image models take and give [0, 1] images (``pixel_range="unit"``); its encoders return ``embedding`` (mu) and
    ``log_covariance``."""
    source_folder = None
    if isinstance(model, (str, Path)):
        source_folder = Path(model).resolve()
        model = load_pythae(source_folder, trust_pickles=trust_pickles)
    name = type(model).__name__
    size, channels = geometry(data.name)
    enc = AdaptedEncoder(model.encoder, pixel_range, fixed_logvar)
    dec = AdaptedDecoder(model.decoder, pixel_range, (channels, size, size))
    try:
        probe = _probe(enc, data.name)
    except LsrError as e:
        raise LsrError(f"pythae {name}: {e}") from None
    if probe != model.model_config.latent_dim:
        raise LsrError(f"pythae {name}: its encoder gives {probe} dimensions, its configuration says "
                       f"{model.model_config.latent_dim}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    model_config = model.model_config.to_dict() if hasattr(model.model_config, "to_dict") else {}
    beta = model_config.get("beta", 1.0)
    fields = dict(source=f"pythae:{name}", source_sha256=hashlib.sha256(buf.getvalue()).hexdigest(),
                  pixel_range=pixel_range, fixed_logvar=fixed_logvar,
                  beta=float(beta) if isinstance(beta, (int, float)) else 1.0)
    record = {"pythae_folder": str(source_folder) if source_folder else None,
              "custom_networks": not (model_config.get("uses_default_encoder", True) and
                                      model_config.get("uses_default_decoder", True))}
    return _bind(enc.eval(), dec, data, out, fields, record,
                 {"model_state_dict": state, "model_config_json": json.dumps(model_config, default=str)})


def load_external(folder: RunDir, cfg: VAEConfig, device=None, *, encoder=None, decoder=None,
                  trust_pickles: bool = False) -> ExternalVAE:
    """The VAE a run folder binds: a pythae model rebuilt from the configuration and weights the folder holds (its
    default networks; custom ones from their pythae folder, with ``trust_pickles``), or the ``encoder`` (and
    ``decoder``) given again for a module. Refused when their weights are not the ones bound."""
    device = resolve_device(device)
    w, file_sha = load_tensors(folder / "weights.pt", "weights file", with_hash=True)
    info = folder.run_info()
    if info.get("weights_sha256") not in (None, file_sha):
        raise LsrError(f"{folder / 'weights.pt'}: not the weights this run folder bound (SHA-256 differs)")
    size, channels = cfg.image_size, cfg.channels
    if cfg.source.startswith("pythae:"):

        if encoder is not None:
            model = None
            enc = AdaptedEncoder(encoder, cfg.pixel_range, cfg.fixed_logvar)
            dec = None if decoder is None else AdaptedDecoder(decoder, cfg.pixel_range, (channels, size, size))
        else:
            pm = _pythae()
            raw = w.get("model_config_json")
            if not isinstance(raw, str):
                raise LsrError(f"{folder / 'weights.pt'}: lacks the pythae configuration; the run folder is damaged")
            from ..base.files import parse_json

            mc = parse_json(raw, str(folder / "weights.pt"), "pythae configuration", dict)
            if not (mc.get("uses_default_encoder", True) and mc.get("uses_default_decoder", True)):
                src = info.get("pythae_folder")
                if not trust_pickles or not src:
                    raise LsrError(f"{folder.path}: this VAE has custom pythae networks, which only their pythae "
                                   f"folder can rebuild (by unpickling); pass --trust-pickles if you trust "
                                   f"{src or 'that folder'}")
                model = load_pythae(src, trust_pickles=True)
            else:
                name = cfg.source.split(":", 1)[1] + "Config"
                cls = getattr(pm, cfg.source.split(":", 1)[1])
                known = {k: v for k, v in mc.items() if k not in ("name",)}
                try:
                    model = cls(getattr(pm, name)(**{k: (tuple(v) if isinstance(v, list) else v)
                                                     for k, v in known.items()}))
                except Exception as e:
                    raise LsrError(f"{folder.path}: pythae cannot rebuild {name} ({type(e).__name__})") from None
                model.load_state_dict(w["model_state_dict"])
            enc = AdaptedEncoder(model.encoder, cfg.pixel_range, cfg.fixed_logvar)
            dec = AdaptedDecoder(model.decoder, cfg.pixel_range, (channels, size, size))
    else:
        if encoder is None:
            raise LsrError(f"{folder.path}: this VAE is a module given in Python ({cfg.source}), which the kit cannot "
                           f"rebuild from a folder; load it with lsr_utils.models.external.from_module(<the same encoder, "
                           f"decoder>, ...)")
        enc = AdaptedEncoder(encoder, cfg.pixel_range, cfg.fixed_logvar)
        dec = None if decoder is None else AdaptedDecoder(decoder, cfg.pixel_range, (channels, size, size))
    got = hashlib.sha256(_state_bytes(enc, dec)).hexdigest() if not cfg.source.startswith("pythae:") else None
    if cfg.source.startswith("pythae:") and encoder is None:
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
        got = hashlib.sha256(buf.getvalue()).hexdigest()
    if got is not None and got != cfg.source_sha256:
        raise LsrError(f"{folder.path}: the VAE given is not the one this run folder bound (its weights' SHA-256 "
                       f"differs)")
    for m in (enc, dec):
        if m is not None:
            m.to(device).eval().requires_grad_(False)
    return ExternalVAE(folder.path, cfg, enc, dec, history=folder.history(), weights_sha256=cfg.source_sha256)
