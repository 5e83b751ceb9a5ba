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
*imagine* a texture. ``generate_shapes(..., with_clean=True)`` also returns
the texture-free version of each image so that this can be measured.

Generation is prefix-stable: the first k images of a set of size n are the
same for every n >= k (images are generated in chunks, each seeded from
(seed, split, chunk)).
"""
from __future__ import annotations

import math

import numpy as np

SHAPE_CLASSES = ("circle", "square", "triangle", "cross")
FACTOR_NAMES = ("shape", "hue", "bg_hue", "bg_value", "x", "y", "scale", "rotation")
IMAGE_SIZE = 32
_CHUNK = 1024
_SPLIT_CODE = {"train": 0, "test": 1}

# Amplitude of the per-pixel texture (uniform, on the [0, 1] scale).
TEXTURE_AMPLITUDE_OBJECT = 0.22
TEXTURE_AMPLITUDE_BACKGROUND = 0.12


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


def sample_factors(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw the compressible factors of n images."""
    return {
        "shape": rng.integers(0, len(SHAPE_CLASSES), n),
        "hue": rng.random(n),
        "bg_hue": rng.random(n),
        "bg_value": rng.uniform(0.15, 0.45, n),
        "x": rng.uniform(0.3, 0.7, n),
        "y": rng.uniform(0.3, 0.7, n),
        "scale": rng.uniform(0.18, 0.32, n),
        "rotation": rng.uniform(0.0, 2 * math.pi, n),
    }


def render(factors: dict[str, np.ndarray], rng: np.random.Generator | None, size: int = IMAGE_SIZE):
    """Render images from factors. Returns (textured, clean), float32 (n, 3, size, size) in [0, 1].

    ``rng=None`` renders without texture (textured == clean).
    """
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
    tex_obj = rng.uniform(-1, 1, (n, 3, size, size)) * TEXTURE_AMPLITUDE_OBJECT
    tex_bg = rng.uniform(-1, 1, (n, 3, size, size)) * TEXTURE_AMPLITUDE_BACKGROUND
    textured = np.clip(clean + cover * tex_obj + (1 - cover) * tex_bg, 0.0, 1.0)
    return textured.astype(np.float32), np.clip(clean, 0, 1).astype(np.float32)


def generate_shapes(n: int, *, seed: int = 0, split: str = "train", with_clean: bool = False):
    """Generate ``n`` images of ``split`` ("train" or "test").

    Returns ``(images, factors)`` or ``(images, factors, clean)``: images are
    uint8 arrays (n, 3, 32, 32); factors a dict of arrays (``shape`` is the
    class label); clean the texture-free images, uint8.
    """
    if split not in _SPLIT_CODE:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, cleans, parts = [], [], []
    for k, start in enumerate(range(0, n, _CHUNK)):
        m = min(_CHUNK, n - start)
        rng = np.random.default_rng([seed, _SPLIT_CODE[split], k])
        f = sample_factors(_CHUNK, rng)
        textured, clean = render(f, rng)  # always a whole chunk, so prefixes are stable
        images.append(np.round(textured[:m] * 255).astype(np.uint8))
        if with_clean:
            cleans.append(np.round(clean[:m] * 255).astype(np.uint8))
        parts.append({key: val[:m] for key, val in f.items()})
    if n == 0:
        empty = np.zeros((0, 3, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        factors = {k: np.zeros(0) for k in FACTOR_NAMES}
        return (empty, factors, empty) if with_clean else (empty, factors)
    factors = {key: np.concatenate([p[key] for p in parts]) for key in FACTOR_NAMES}
    out = np.concatenate(images)
    return (out, factors, np.concatenate(cleans)) if with_clean else (out, factors)
