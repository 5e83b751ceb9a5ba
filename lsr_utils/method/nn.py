"""The three networks of LSR-GAN (paper Table 3, Appendix D; Figure 7 blocks).

Constructed with no arguments they are the paper's CIFAR-10 networks
(32x32x3 images, latent size 128) with the reference implementation's exact
parameter counts: ``Encoder`` 418,496, ``Decoder`` 404,896,
``Discriminator`` 171,904. ``image_size`` (28, 32 or 64), ``channels`` (1 or
3) and ``latent_dim`` adapt them to MNIST, CelebA and ImageNet 64x64.

Shapes are noted as ``(B, C, H, W)``.

Also here: the one :func:`reparameterize` (z = mu + sigma * eps, section
2.1), :func:`fold_batchnorm` (the frozen encoder of stage 2 as one affine map
per layer) and :func:`standing_statistics`. How sweep members are stacked side
by side is the speed layer's (:mod:`lsr_utils.speed.stacked`).
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..base.errors import LsrError

SUPPORTED_IMAGE_SIZES = (28, 32, 64)
SUPPORTED_CHANNELS = (1, 3)


def _check_geometry(image_size: int, channels: int, latent_dim: int) -> None:
    if image_size not in SUPPORTED_IMAGE_SIZES:
        raise LsrError(f"image_size must be one of {SUPPORTED_IMAGE_SIZES}, got {image_size!r}")
    if channels not in SUPPORTED_CHANNELS:
        raise LsrError(f"channels must be one of {SUPPORTED_CHANNELS}, got {channels!r}")
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise LsrError(f"latent_dim must be a positive integer, got {latent_dim!r}")


class DownBlock(nn.Module):
    """Residual block that halves the spatial size (Table 3 "ResBlock down").

    conv3x3 - BN - ReLU - conv3x3 - BN, plus a shortcut (conv1x1 - BN when the
    channel count changes), add, ReLU, then 2x2 average pooling. Pooling uses
    ``ceil_mode`` so odd sizes (7 -> 4 for 28x28 inputs) keep their border.
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        if in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in, H, W) -> (B, out, H/2, W/2)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = F.relu(out + self.shortcut(x))
        return F.avg_pool2d(out, 2, ceil_mode=True)


def _upsampled_taps(w: torch.Tensor) -> torch.Tensor:
    """The 3 taps of a 3x3 kernel (last dim) seen from a 2x nearest-upsampled input -> 4 taps.

    A 3x3 convolution (padding 1) of the 2x nearest-upsampled signal u[p] = x[p // 2]
    gives out[2i] = w0 x[i-1] + (w1 + w2) x[i] and out[2i+1] = (w0 + w1) x[i] + w2 x[i+1],
    which is a stride-2 transposed convolution of x (padding 1) with the taps
    [w2, w1 + w2, w0 + w1, w0].
    """
    w0, w1, w2 = w.unbind(-1)
    return torch.stack([w2, w1 + w2, w0 + w1, w0], dim=-1)


def upsample_conv3x3(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(interpolate(x, scale_factor=2, mode="nearest"))`` for a 3x3, padding-1, stride-1 ``conv``, fused.

    The same linear map, computed as one stride-2 transposed convolution of the
    small input with 4x4 kernels built from ``conv.weight`` (16 instead of 36
    multiply-adds per input pixel and channel pair; nothing is upsampled).
    Equal in exact arithmetic; in floating point only the order of the sums
    changes (``tests/test_models.py`` compares both in float64). ``conv.groups``
    is honoured (sweep batching stacks members as groups).
    """
    if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1) or conv.dilation != (1, 1):
        raise LsrError("upsample_conv3x3 needs a 3x3 convolution with padding 1, stride 1, dilation 1")
    w = _upsampled_taps(_upsampled_taps(conv.weight).transpose(-1, -2)).transpose(-1, -2)  # (out, in/g, 4, 4)
    g = conv.groups
    out_ch, in_g = w.shape[:2]
    # conv_transpose2d wants (in, out/g, kH, kW)
    w = w.reshape(g, out_ch // g, in_g, 4, 4).transpose(1, 2).reshape(g * in_g, out_ch // g, 4, 4)
    return F.conv_transpose2d(x, w, conv.bias, stride=2, padding=1, groups=g)


class UpBlock(nn.Module):
    """Residual block that doubles the spatial size (Table 3 "ResBlock up").

    Nearest 2x upsampling, then conv3x3(in->in) - BN - ReLU - conv3x3(in->out)
    - BN, plus a shortcut conv1x1 (no BN) when the channel count changes, add,
    ReLU.

    Computed without materialising the upsampled input: the first conv runs
    as :func:`upsample_conv3x3` and the 1x1 shortcut runs before the upsampling
    (a per-pixel linear map commutes with nearest upsampling). Same function,
    about half the multiply-adds of the block. ``fused = False`` computes it
    literally, as the reference does (the speed baseline uses that).

    Reference quirk, kept on purpose: the reference block *registers* a
    BatchNorm for its shortcut but never applies it. ``shortcut_bn`` is kept
    (unused in ``forward``) so that the parameter count (404,896 for the
    CIFAR-10 decoder) and the state-dict layout match the reference; pass
    ``reference_layout=False`` to drop it. Its parameters receive no gradient.
    """

    def __init__(self, in_ch: int, out_ch: int, reference_layout: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, bias=False) if in_ch != out_ch else nn.Identity()
        self.shortcut_bn = nn.BatchNorm2d(out_ch) if (in_ch != out_ch and reference_layout) else None

    fused = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in, H, W) -> (B, out, 2H, 2W)
        if not self.fused:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))
        out = F.relu(self.bn1(upsample_conv3x3(x, self.conv1)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + F.interpolate(self.shortcut(x), scale_factor=2, mode="nearest"))


def _bottleneck_size(image_size: int) -> int:
    """Spatial size after three ceil-mode halvings (32 -> 4, 28 -> 4, 64 -> 8)."""
    s = image_size
    for _ in range(3):
        s = math.ceil(s / 2)
    return s


class Encoder(nn.Module):
    """VAE encoder q_phi(z|x) (Table 3, first column).

    down(C->64), down(64->128), down(128->32), Linear(32*s*s -> 128, no bias) -
    BatchNorm1d - ReLU, then two Linear(128 -> latent_dim) heads giving the
    mean and the log-variance of the axis-aligned Gaussian of section 2.1.
    """

    def __init__(self, *, image_size: int = 32, channels: int = 3, latent_dim: int = 128, hidden: int = 128):
        super().__init__()
        _check_geometry(image_size, channels, latent_dim)
        self.image_size, self.channels, self.latent_dim = image_size, channels, latent_dim
        s = _bottleneck_size(image_size)
        self.features = nn.Sequential(DownBlock(channels, 64), DownBlock(64, 128), DownBlock(128, 32))
        self.fc = nn.Sequential(nn.Linear(32 * s * s, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C, H, W) in [-1, 1] -> (mu, logvar), each (B, latent_dim)."""
        h = self.fc(self.features(x).flatten(1))
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """VAE decoder D_theta(z), also the LSR-GAN generator G(z) (Table 3, middle column).

    Linear(latent_dim -> 32*s*s, no bias) - BatchNorm1d - ReLU, reshape to
    (32, s, s), up(32->128), up(128->64), up(64->32), conv1x1(32->C, no bias),
    tanh. Output in [-1, 1]. For 28x28 images the 32x32 output is centre-cropped.
    """

    def __init__(self, *, image_size: int = 32, channels: int = 3, latent_dim: int = 128,
                 reference_layout: bool = True):
        super().__init__()
        _check_geometry(image_size, channels, latent_dim)
        self.image_size, self.channels, self.latent_dim = image_size, channels, latent_dim
        self.start = _bottleneck_size(image_size)
        self.fc = nn.Sequential(nn.Linear(latent_dim, 32 * self.start ** 2, bias=False),
                                nn.BatchNorm1d(32 * self.start ** 2), nn.ReLU())
        self.blocks = nn.Sequential(UpBlock(32, 128, reference_layout), UpBlock(128, 64, reference_layout),
                                    UpBlock(64, 32, reference_layout))
        self.to_image = nn.Conv2d(32, channels, 1, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) -> images (B, C, H, W) in [-1, 1]."""
        h = self.fc(z).view(z.shape[0], -1, self.start, self.start)  # (B, 32, s, s); members side by side
        x = torch.tanh(self.to_image(self.blocks(h)))
        extra = x.shape[-1] - self.image_size
        if extra:
            lo = extra // 2
            x = x[..., lo:lo + self.image_size, lo:lo + self.image_size]
        return x


class Discriminator(nn.Module):
    """DCGAN-style discriminator (Table 3, last column).

    conv4x4/2 (C->32) LeakyReLU(0.2); (32->64) BN LeakyReLU; (64->128) BN
    LeakyReLU; (128->3). For 32x32 inputs the output is a 3x2x2 map.

    ``forward`` returns **logits**; the reference applies a sigmoid and uses
    ``binary_cross_entropy``. The kit's GAN losses use the logit form
    (``binary_cross_entropy_with_logits``), which is the same function of the
    weights without the reference's clamp of log-probabilities at -100 and is
    safe under mixed precision. ``probability(x)`` gives the sigmoid output.
    Weights are initialised DCGAN style as in the reference.
    """

    def __init__(self, *, image_size: int = 32, channels: int = 3):
        super().__init__()
        _check_geometry(image_size, channels, 1)
        self.image_size, self.channels = image_size, channels
        lrelu = lambda: nn.LeakyReLU(0.2)
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 4, 2, 1, bias=False), lrelu(),
            nn.Conv2d(32, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), lrelu(),
            nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), lrelu(),
            nn.Conv2d(128, 3, 4, 2, 1, bias=False),
        )
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) in [-1, 1] -> logits (B, 3, H/16, W/16)."""
        return self.net(x)

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward(x))


def dcgan_init(m: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02); BN weight N(1, 0.02), bias 0."""
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None, *,
                   samples: int | None = None) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I), sigma = exp(logvar / 2) (section 2.1): a sample of q(z|x).

    ``samples=K``: K draws for every row, shape (K, B, D) (Figure 1, the variance
    metric of Tables 1-2, the explorer's posterior strip).
    """
    shape = mu.shape if samples is None else (samples, *mu.shape)
    eps = torch.randn(shape, device=mu.device, dtype=mu.dtype, generator=generator)
    return mu + torch.exp(0.5 * logvar) * eps


def _fold_into(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Give ``layer`` (conv or linear) the per-channel affine map of eval-mode ``bn`` (weights scaled, bias set)."""
    if not bn.track_running_stats or bn.running_mean is None:
        raise LsrError("fold_batchnorm needs BatchNorm layers with running statistics")
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var + bn.eps)
        shift = -bn.running_mean * scale
        if bn.affine:
            scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
        w = layer.weight
        fmt = torch.channels_last if w.dim() == 4 and w.is_contiguous(memory_format=torch.channels_last) \
            else torch.contiguous_format
        new_w = (w * scale.view(-1, *([1] * (w.dim() - 1)))).contiguous(memory_format=fmt)
        bias = shift if layer.bias is None else layer.bias * scale + shift
    layer.weight = nn.Parameter(new_w, requires_grad=False)
    layer.bias = nn.Parameter(bias.to(w.dtype), requires_grad=False)


def fold_batchnorm(encoder: Encoder) -> Encoder:
    """A frozen inference copy of ``encoder`` with each BatchNorm folded into the layer before it.

    In eval mode a BatchNorm is a fixed per-channel affine map, so conv-then-BN
    is one conv with scaled weights and a bias: the same function, with the
    BatchNorm passes (forward and backward) gone. Stage 2 encodes G(z) with
    the frozen encoder on every step, and uses this copy (the run's encoder
    weights are not touched). Equal to the original in exact arithmetic;
    ``tests/test_models.py`` compares both in float64, values and input gradients.
    """
    if not isinstance(encoder, Encoder):
        raise LsrError(f"fold_batchnorm expects an Encoder, got {type(encoder).__name__}")
    if encoder.training:
        raise LsrError("fold_batchnorm: the encoder is in training mode (its BatchNorm uses batch statistics); "
                       "call .eval() first")
    folded = copy.deepcopy(encoder).eval()
    for block in folded.features:
        _fold_into(block.conv1, block.bn1)
        _fold_into(block.conv2, block.bn2)
        block.bn1, block.bn2 = nn.Identity(), nn.Identity()
        if isinstance(block.shortcut, nn.Sequential):
            _fold_into(block.shortcut[0], block.shortcut[1])
            block.shortcut[1] = nn.Identity()
    _fold_into(folded.fc[0], folded.fc[1])
    folded.fc[1] = nn.Identity()
    folded.requires_grad_(False)
    return folded


def literal_upsampling(module: nn.Module) -> nn.Module:
    """Make every :class:`UpBlock` in ``module`` upsample, then convolve, literally (as the reference does).

    The kit's blocks compute the same map fused (:func:`upsample_conv3x3`);
    the literal form is the speed baseline's and the equivalence tests'.
    """
    for m in module.modules():
        if isinstance(m, UpBlock):
            m.fused = False
    return module


@torch.no_grad()
def standing_statistics(net: nn.Module, batches: int, draw, *, first_only: bool = False) -> nn.Module:
    """A copy of ``net`` (in eval mode) whose BatchNorm statistics are the plain average over ``batches`` forward
    passes of ``draw(b)`` (BigGAN's "standing statistics"); ``first_only``: only the first BatchNorm's, the others
    kept as they were. ``net`` itself is left as it was."""
    g = copy.deepcopy(net)
    norms = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    chosen = norms[:1] if first_only else norms
    for m in chosen:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    g.train()
    for m in norms[len(chosen):]:
        m.eval()  # kept: normalise with their own statistics, never update them
    for b in range(batches):
        g(draw(b))
    return g.eval()


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_vae(cfg) -> tuple[Encoder, Decoder]:
    """The encoder and decoder of a :class:`~lsr_utils.method.config.VAEConfig` (Table 3), freshly initialised."""
    kw = dict(image_size=cfg.image_size, channels=cfg.channels, latent_dim=cfg.latent_dim)
    return Encoder(**kw), Decoder(**kw)


def build_gan(cfg) -> tuple[Decoder, Discriminator]:
    """The generator (the VAE decoder's architecture) and discriminator of a :class:`~lsr_utils.method.config.GANConfig`."""
    v = cfg.vae
    return (Decoder(image_size=v.image_size, channels=v.channels, latent_dim=v.latent_dim),
            Discriminator(image_size=v.image_size, channels=v.channels))
