"""Imperfect views of aligned crops, for training the identity codec on descriptors of photos that
are not perfectly aligned, sharp or clean (issue 12: the codec also meets such faces).

Each view applies, with fixed per-view random draws: a small similarity jitter (shift up to 4 px,
scale 0.93-1.07, rotation up to 6 degrees), then one of blur (Gaussian, sigma 0.6-1.6), noise
(sigma 2-8 grey levels), JPEG (quality 15-60), colour (per-channel gain 0.85-1.15 and gamma
0.8-1.25), or nothing; half of the views are mirrored. Deterministic for a seed.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def _jitter(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = crop.shape[0]
    scale = rng.uniform(0.93, 1.07)
    angle = np.deg2rad(rng.uniform(-6, 6))
    shift = rng.uniform(-4, 4, 2)
    c, s = np.cos(angle) / scale, np.sin(angle) / scale
    centre = (size - 1) / 2
    # PIL's affine maps output pixels to input pixels: the inverse of the jitter
    a, b = c, s
    d, e = -s, c
    cx = centre - a * (centre + shift[0]) - b * (centre + shift[1])
    cy = centre - d * (centre + shift[0]) - e * (centre + shift[1])
    img = Image.fromarray(crop).transform((size, size), Image.AFFINE, (a, b, cx, d, e, cy), Image.BILINEAR)
    return np.asarray(img)


def _degrade(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(5)
    if kind == 0:
        return np.asarray(Image.fromarray(crop).filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.6))))
    if kind == 1:
        return np.clip(crop + rng.normal(0, rng.uniform(2, 8), crop.shape), 0, 255).astype(np.uint8)
    if kind == 2:
        buf = io.BytesIO()
        Image.fromarray(crop).save(buf, "JPEG", quality=int(rng.integers(15, 61)))
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    if kind == 3:
        x = (crop / 255.0) ** rng.uniform(0.8, 1.25) * rng.uniform(0.85, 1.15, 3)
        return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
    return crop


def view(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One imperfect view of a 128 x 128 x 3 uint8 crop."""
    out = _degrade(_jitter(crop, rng), rng)
    return np.ascontiguousarray(out[:, ::-1]) if rng.random() < 0.5 else out


def views(crops: np.ndarray, seed: int, start: int = 0) -> np.ndarray:
    """One view of every crop (N x 128 x 128 x 3), the draws fixed by `seed` and the crop's index
    in its set (`start` + position)."""
    return np.stack([view(np.asarray(c), np.random.default_rng([seed, start + i])) for i, c in enumerate(crops)])
