"""``shapes``: the kit's embedded dataset, generated here, deterministic from a seed.

32x32 RGB images of one simple object on a background. Each image is made of

* **compressible factors** (its labels): shape class (circle, square,
  triangle, cross), object hue, background hue and brightness, position
  (x, y), scale and rotation; and
* **incompressible detail**: an i.i.d. random texture on every pixel of the
  object and of the background, different in every image.

A VAE's latent space can afford to keep the factors (a few numbers explain
many pixels) but not the texture (each pixel needs its own number), so its
reconstructions come out as the clean, untextured object; LSR-GAN has to
*imagine* a texture. :func:`generate_shapes` also returns the texture-free
version of each image, so that this can be measured.

The design (:data:`DESIGN`: object size, position range, rotation, texture
strength) is chosen so that, within the budget of ``lsr demo`` on a 2-core
laptop CPU in fp32, the VAE's latent keeps which shape the object is: the
objects are large enough that the shapes differ in many pixels, and upright
(version 4). With rotations over the full circle (version 3) the VAE needed
about 3,100 steps to keep the shape, which only bf16 on a CPU with bf16
instructions could afford; upright shapes are kept after about 1,000 steps
(95-99 % of reconstructions classified correctly in the design trials).
Rotation stays a factor (its range is part of the design), so another design
can bring it back. The reasons and the measurements behind the design are in
the README ("What `lsr demo` shows").

Classes are balanced by construction (image i of a split has shape i mod 4,
the rest of its factors random), and generation is prefix-stable: the first k
images of a set of size n are the same for every n >= k (images are made in
chunks, each seeded from (seed, split, chunk)).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..base.errors import LsrError
from ..base.limits import LIMITS
from .images import ImageData

SHAPE_CLASSES = ("circle", "square", "triangle", "cross")
FACTOR_NAMES = ("shape", "hue", "bg_hue", "bg_value", "x", "y", "scale", "rotation")
IMAGE_SIZE = 32
_CHUNK = 1024
_SPLIT_CODE = {"train": 0, "test": 1}


@dataclass(frozen=True)
class Design:
    """The ranges of the compressible factors and the strength of the incompressible texture."""

    version: int = 4
    scale: tuple[float, float] = (0.30, 0.40)     # object radius as a fraction of the image side
    position: tuple[float, float] = (0.38, 0.62)  # object centre (x and y), fraction of the side
    bg_value: tuple[float, float] = (0.15, 0.45)  # background brightness
    rotation: tuple[float, float] = (0.0, 0.0)    # object rotation, radians: upright shapes (see the module notes)
    texture_object: float = 0.22                  # amplitude of the uniform per-pixel texture, [0, 1] scale
    texture_background: float = 0.0               # a flat background: the texture to imagine is the object's
    texture_grain: int = 1                        # side of the texture's cells in pixels (1: every pixel its own)


DESIGN = Design()


class Shapes(NamedTuple):
    images: np.ndarray   # uint8 (n, 3, 32, 32)
    factors: dict        # arrays of the factors; "shape" is the class label
    clean: np.ndarray    # uint8 texture-free images


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB; inputs broadcastable arrays in [0, 1]; output (..., 3)."""
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    i = i.astype(np.int64) % 6
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


def _signed_distance(shape: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) of each class's unit-size outline; u, v: (n, H, W)."""
    s = shape[:, None, None]
    circle = np.sqrt(u ** 2 + v ** 2) - 1.0
    square = np.maximum(np.abs(u), np.abs(v)) - 0.82
    tri = np.maximum(-v - 0.55, 0.5 * v + (math.sqrt(3) / 2) * np.abs(u) - 0.55)
    cross = np.minimum(np.maximum(np.abs(u) - 0.34, np.abs(v) - 1.0), np.maximum(np.abs(u) - 1.0, np.abs(v) - 0.34))
    return np.select([s == 0, s == 1, s == 2], [circle, square, tri], cross)


def sample_factors(n: int, rng: np.random.Generator, design: Design | None = None, first: int = 0) -> dict:
    """The compressible factors of n images; image ``first + i`` has shape ``(first + i) mod 4``."""
    design = design or DESIGN
    return {
        "shape": (first + np.arange(n)) % len(SHAPE_CLASSES),
        "hue": rng.random(n),
        "bg_hue": rng.random(n),
        "bg_value": rng.uniform(*design.bg_value, n),
        "x": rng.uniform(*design.position, n),
        "y": rng.uniform(*design.position, n),
        "scale": rng.uniform(*design.scale, n),
        "rotation": rng.uniform(*design.rotation, n),
    }


def render(factors: dict, rng: np.random.Generator | None, size: int = IMAGE_SIZE, design: Design | None = None):
    """Render images from factors. Returns (textured, clean), float32 (n, 3, size, size) in [0, 1].

    ``rng=None`` renders without texture (textured == clean).
    """
    design = design or DESIGN
    n = len(factors["shape"])
    coords = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(coords, coords, indexing="ij")  # (H, W)
    dx = xx[None] - factors["x"][:, None, None]
    dy = yy[None] - factors["y"][:, None, None]
    c, s = np.cos(factors["rotation"])[:, None, None], np.sin(factors["rotation"])[:, None, None]
    scale = factors["scale"][:, None, None]
    u, v = (c * dx + s * dy) / scale, (-s * dx + c * dy) / scale
    d = _signed_distance(factors["shape"], u, v) * scale * size  # distance in pixels
    cover = np.clip(0.5 - d, 0.0, 1.0)[:, None]  # anti-aliased coverage, (n, 1, H, W)

    obj = _hsv_to_rgb(factors["hue"], np.full(n, 0.85), np.full(n, 0.95))[:, :, None, None]
    bg = _hsv_to_rgb(factors["bg_hue"], np.full(n, 0.35), factors["bg_value"])[:, :, None, None]
    clean = cover * obj + (1 - cover) * bg
    if rng is None:
        clean = clean.astype(np.float32)
        return clean, clean
    g = design.texture_grain
    cells = -(-size // g)
    grain = lambda t: t.repeat(g, axis=2).repeat(g, axis=3)[:, :, :size, :size] if g > 1 else t
    tex_obj = grain(rng.uniform(-1, 1, (n, 3, cells, cells))) * design.texture_object
    tex_bg = grain(rng.uniform(-1, 1, (n, 3, cells, cells))) * design.texture_background
    textured = np.clip(clean + cover * tex_obj + (1 - cover) * tex_bg, 0.0, 1.0)
    return textured.astype(np.float32), np.clip(clean, 0, 1).astype(np.float32)


def generate_shapes(n: int, *, seed: int = 0, split: str = "train", design: Design | None = None) -> Shapes:
    """``n`` images of ``split`` ("train" or "test"): textured images, their factors, their clean versions."""
    design = design or DESIGN
    if split not in _SPLIT_CODE:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, cleans, parts = [], [], []
    for k, start in enumerate(range(0, n, _CHUNK)):
        m = min(_CHUNK, n - start)
        rng = np.random.default_rng([seed, _SPLIT_CODE[split], k])
        f = sample_factors(_CHUNK, rng, design, first=start)
        textured, clean = render(f, rng, design=design)  # always a whole chunk, so prefixes are stable
        images.append(np.round(textured[:m] * 255).astype(np.uint8))
        cleans.append(np.round(clean[:m] * 255).astype(np.uint8))
        parts.append({key: val[:m] for key, val in f.items()})
    if n == 0:
        empty = np.zeros((0, 3, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        return Shapes(empty, {k: np.zeros(0) for k in FACTOR_NAMES}, empty)
    factors = {key: np.concatenate([p[key] for p in parts]) for key in FACTOR_NAMES}
    return Shapes(np.concatenate(images), factors, np.concatenate(cleans))


def fingerprint(seed: int, design: Design | None = None) -> str:
    """The identity of generated data: the generator's design (its version and every range) and the seed."""
    design = design or DESIGN
    import hashlib
    import json

    return f"generated-v{design.version}-{hashlib.sha1(json.dumps(asdict(design)).encode()).hexdigest()[:8]}" \
           f"-seed{seed}"


def load(n_train: int | None, n_test: int | None, seed: int):
    """``shapes`` as :class:`~lsr_utils.data.ImageData` (20,000 / 2,000 images by default)."""
    n_train = 20000 if n_train is None else n_train
    n_test = 2000 if n_test is None else n_test
    if max(n_train, n_test) > LIMITS["generated_images"]:
        raise LsrError(f"shapes: {max(n_train, n_test):,} images to generate is over the kit's limit of "
                       f"{LIMITS['generated_images']:,} (about {LIMITS['generated_images'] * 3072 / 1e9:.0f} GB); "
                       f"raise LIMITS['generated_images'] in lsr_utils/base/limits.py if you really need more")
    tr = generate_shapes(n_train, seed=seed, split="train")
    te = generate_shapes(n_test, seed=seed, split="test")
    return ImageData("shapes", torch.from_numpy(tr.images), torch.from_numpy(tr.factors["shape"]).long(),
                     torch.from_numpy(te.images), torch.from_numpy(te.factors["shape"]).long(), SHAPE_CLASSES,
                     source=f"generated (seed {seed})", fingerprint=f"shapes:{fingerprint(seed)}",
                     factors={"train": tr.factors, "test": te.factors}, test_clean=torch.from_numpy(te.clean))
