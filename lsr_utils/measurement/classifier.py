"""The classifier behind the paper's classification metrics (Tables 1, 2; Figures 5b, 6a-b).

The paper uses "a simple classifier trained on the CIFAR-10 training set" that
reaches 84 % on raw test images, without describing it. The kit's is a small
ResNet (a narrow ResNet-9: conv-BN-ReLU stages with max-pooling and two
residual blocks), trained on the training split of the dataset in use with
random crops and flips, SGD with Nesterov momentum, a one-cycle learning rate
and label smoothing. It is cached like a run (``runs/<dataset>/classifier-...``)
and records its test accuracy and training time.

Its penultimate features (``8 * width`` dims) also give the kit's offline
image-quality score, the *classifier Frechet distance* (``kit_cfd``): the
Frechet distance of FID computed in this classifier's feature space. It needs
no download and is always reported under its own name, never as FID.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..base.errors import LsrError
from ..base.files import atomic_write_json, load_tensors, read_json
from ..base.pixels import check_unit_images, uint8_to_model, unit_to_model
from ..base.progress import progress_bar
from ..base.runtime import resolve_device, set_seed
from ..data import DeviceBatches, ImageData, bind_data, load_data
from ..method.config import DEFAULT_PROFILE, ClassifierConfig, classifier_settings, measuring_profile
from ..method.stage import Stage
from ..storage.runs import RunDir, load_state, run_dir
from ..training.loop import RunOptions, fit
from .fid import FeatureExtractor


def classifier_config(dataset: str, profile: str = DEFAULT_PROFILE, **kw) -> ClassifierConfig:
    """The classifier of ``dataset`` as ``profile`` sizes it (lsr_utils.method.config.classifier_settings), with ``kw``."""
    return ClassifierConfig(**{**classifier_settings(dataset, profile), **kw})


def evaluation_classifier_config(dataset: str, profile: str) -> ClassifierConfig:
    """The classifier ``lsr evaluate`` measures a run of ``profile`` with (lsr_utils.method.config.measuring_profile)."""
    return classifier_config(dataset, measuring_profile(dataset, profile))


def _conv_bn(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(ch, ch), _conv_bn(ch, ch))

    def forward(self, x):
        return x + self.body(x)


class SmallResNet(nn.Module):
    """Narrow ResNet-9: (B, C, H, W) in [-1, 1] -> logits; ``features`` gives the (B, 8w) penultimate layer."""

    def __init__(self, *, channels: int = 3, num_classes: int = 10, width: int = 24):
        super().__init__()
        w = width
        self.body = nn.Sequential(_conv_bn(channels, w), _conv_bn(w, 2 * w, pool=True), _Residual(2 * w),
                                  _conv_bn(2 * w, 4 * w, pool=True), _conv_bn(4 * w, 8 * w, pool=True),
                                  _Residual(8 * w))
        self.head = nn.Linear(8 * w, num_classes)
        self.feature_dim = 8 * w

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.amax(self.body(x), dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crops (reflect-padded by ``pad``) and horizontal flips, vectorised on the device."""
    b, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    oy = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=gen)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(b, x.shape[1], h, w + 2 * pad)
    x = torch.gather(xp, 2, rows)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(b, x.shape[1], h, w)
    x = torch.gather(x, 3, cols)
    flip = torch.rand(b, device=x.device, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


@dataclass
class ClassifierRun:
    path: Path
    config: ClassifierConfig
    model: SmallResNet
    metrics: dict
    weights_sha256: str | None = None  # of weights.pt, as loaded

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def logits(self, images_unit: torch.Tensor, batch_size: int = 500, progress: bool = False) -> torch.Tensor:
        x = check_unit_images(images_unit, "classifier input")
        if x.shape[1] != self.config.channels or x.shape[-1] != self.config.image_size:
            raise LsrError(f"this classifier takes {self.config.channels}x{self.config.image_size}x"
                           f"{self.config.image_size} images ({self.config.dataset}); got {tuple(x.shape[1:])}")
        self.model.eval()
        starts = progress_bar(range(0, len(x), batch_size), desc="classifying", leave=False,
                              disable=not progress or len(x) <= 2 * batch_size)
        return torch.cat([self.model(unit_to_model(x[i:i + batch_size].to(self.device))).float().cpu()
                          for i in starts])

    def predict(self, images_unit: torch.Tensor, progress: bool = False) -> torch.Tensor:
        return self.logits(images_unit, progress=progress).argmax(1)

    def feature_extractor(self) -> ClassifierFeatures:
        return ClassifierFeatures(self)


class ClassifierFeatures(FeatureExtractor):
    """Penultimate-layer features of the kit's classifier: the space of the offline score ``kit_cfd``."""

    def __init__(self, run: ClassifierRun):
        self.run, self.device, self.dim = run, run.device, run.model.feature_dim
        self.name = f"kit-classifier-{run.config.dataset}-{run.path.name}"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.run.config.channels:
            x = x[:, :self.run.config.channels]
        self.run.model.eval()
        return self.run.model.features(unit_to_model(x))


@torch.no_grad()
def raw_test_accuracy(model: nn.Module, data: ImageData, device, batch_size: int = 500) -> float:
    """Fraction of the raw test images ``model`` classifies correctly."""
    model.eval()
    correct = 0
    for i in range(0, len(data.test_x), batch_size):
        x = uint8_to_model(data.test_x[i:i + batch_size].to(device))
        correct += int((model(x).argmax(1).cpu() == data.test_y[i:i + batch_size]).sum())
    return correct / len(data.test_x)


def _bound(cfg: ClassifierConfig, data: ImageData | None, data_root, progress: bool):
    if data is None:
        data = load_data(cfg.dataset, root=data_root, seed=cfg.data_seed, progress=progress,
                         n_train=cfg.n_train if cfg.dataset != "shapes" else (cfg.n_train or 10000))
    # the classes come from the data (an image folder has as many as it has class folders); labels are checked
    n_classes = max(len(data.classes), 1)
    for split, y in (("training", data.train_y), ("test", data.test_y)):
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
            raise LsrError(f"{cfg.dataset}: {split} labels run from {int(y.min())} to {int(y.max())}, outside the "
                           f"{n_classes} classes the data name; the dataset is damaged")
    if n_classes != cfg.num_classes and cfg.dataset not in ("celeba", "imagenet64"):
        cfg = cfg.replace(num_classes=n_classes)
    return bind_data(cfg, data)


def classifier_finished(cfg: ClassifierConfig, *, out: str | Path = "runs", data_root=None,
                        progress: bool = False) -> bool:
    """Whether :func:`train_classifier` would reuse a finished classifier of ``cfg`` in ``out`` (loads the data)."""

    return RunDir(run_dir(_bound(cfg, None, data_root, progress)[0], out)).status == "finished"


def build_classifier_stage(cfg: ClassifierConfig, device, *, total_steps: int) -> Stage:
    """The classifier's network, SGD optimiser, one-cycle schedule, augmentation noise and step."""
    set_seed(cfg.seed)
    model = SmallResNet(channels=cfg.channels, num_classes=cfg.num_classes, width=cfg.width).to(device)
    model = model.to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, momentum=cfg.momentum,
                          nesterov=True)
    noise = torch.Generator(device=device).manual_seed(cfg.seed + 1)

    def lr_at(step: int) -> float:  # one cycle: linear warm-up over 20 %, then cosine to zero
        warm = max(1, int(0.2 * total_steps))
        if step < warm:
            return cfg.lr * (step + 1) / warm
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total_steps - warm)))

    def step(batch, global_step):
        x, y = batch
        if cfg.augment:
            x = _augment(x, noise)
        for g in opt.param_groups:
            g["lr"] = lr_at(global_step)
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return torch.stack([loss.detach(), (logits.detach().argmax(1) == y).float().mean()])

    step.names = ("loss", "train_accuracy")
    return Stage("classifier", cfg, {"model": model}, {"sgd": opt}, step, noise)


def train_classifier(cfg: ClassifierConfig, data: ImageData | None = None, *, out: str | Path = "runs",
                     device=None, data_root=None, fresh: bool = False, options: RunOptions | None = None,
                     announce=None) -> ClassifierRun:
    """Train (or reuse) the classifier of ``cfg.dataset``; records test accuracy and training time.

    ``data``: its images (else loaded from ``data_root``, at the classifier's
    own sizes). ``options``: how it trains (progress, checkpoints, waiting for
    another process). ``announce(folder name)`` is called when it is about to
    train (not when reused).
    """
    opts = options or RunOptions()
    device = resolve_device(device)
    cfg, data = _bound(cfg, data, data_root, opts.progress)
    folder = RunDir(run_dir(cfg, out))
    if folder.status == "finished" and not fresh:
        folder.check_config(cfg)
        return load_classifier(folder.path, device)
    if announce:
        announce(folder.path.name)
    with folder.lock(wait=opts.wait):
        started = folder.start(cfg, "classifier", device, fresh)
        batches = DeviceBatches(data.train_x, cfg.batch_size, device, channels_last=True, labels=data.train_y)
        stage = build_classifier_stage(cfg, device, total_steps=cfg.epochs * len(batches))
        history = fit(folder, stage, batches, opts)
        model = stage.models["model"]
        model = model.to(memory_format=torch.contiguous_format)
        metrics = {"test_accuracy": raw_test_accuracy(model, data, device), "n_test": len(data.test_x),
                   "n_train": len(data.train_x), "train_seconds": history.get("seconds"), "device": str(device),
                   "parameters": sum(p.numel() for p in model.parameters())}
        atomic_write_json(folder / "metrics.json", metrics)
        folder.finish({"model": model.state_dict()}, history, device, started)
    return ClassifierRun(folder.path, cfg, model.eval(), metrics)


def load_classifier(path: str | Path, device=None) -> ClassifierRun:
    """A finished classifier run (weights loaded as tensors only)."""
    folder = RunDir(path)
    folder.require_finished()
    kind, cfg = folder.read_config()
    if kind != "classifier":
        raise LsrError(f"{folder.path}: a {kind} run, not a classifier")
    model = SmallResNet(channels=cfg.channels, num_classes=cfg.num_classes, width=cfg.width)
    weights, sha = load_tensors(folder / "weights.pt", "weights file", with_hash=True)
    if folder.run_info().get("weights_sha256") not in (None, sha):
        raise LsrError(f"{folder / 'weights.pt'}: not the weights this classifier finished with (SHA-256 differs)")
    load_state(model, weights.get("model"), folder / "weights.pt", "classifier")
    metrics = read_json(folder / "metrics.json", "classifier record", dict, root=folder.path) \
        if (folder / "metrics.json").exists() else {}
    return ClassifierRun(folder.path, cfg, model.to(resolve_device(device)).eval(), metrics, sha)
