"""Up-sampling of 20 m and 60 m bands to the 10 m grid (120x120) as separable matrix products.

Pixel centres are aligned the way GDAL, OpenCV and PyTorch (``align_corners=False``) align them:
output pixel ``i`` samples the input at ``(i + 0.5) * n_in / n_out - 0.5``; indices beyond the edge
are clamped. Bicubic uses the Keys kernel with a = -0.5 (GDAL's "cubic", Catmull-Rom). Values are
rounded to the nearest integer and clipped to the uint16 range.
"""
from __future__ import annotations

from functools import cache

import numpy as np

METHODS = ("bicubic", "bilinear", "nearest")
#: ``--resample learned``: a super-resolution model (jeoparda.superres) instead of an interpolation.
LEARNED = "learned"


def _keys_cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    t = np.abs(t)
    near = (a + 2) * t**3 - (a + 3) * t**2 + 1
    far = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


@cache
def weight_matrix(n_in: int, n_out: int, method: str) -> np.ndarray:
    """The (n_out, n_in) matrix W with ``resampled = W @ image @ W.T``."""
    if method not in METHODS:
        raise ValueError(f"unknown resampling method {method!r}; choose one of {', '.join(METHODS)}")
    w = np.zeros((n_out, n_in))
    centres = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    for i, x in enumerate(centres):
        if method == "nearest":
            w[i, min(int(np.floor(x + 0.5)), n_in - 1)] = 1.0
            continue
        base = int(np.floor(x))
        taps = np.arange(base - 1, base + 3) if method == "bicubic" else np.arange(base, base + 2)
        dist = x - taps
        weights = _keys_cubic(dist) if method == "bicubic" else np.maximum(0.0, 1 - np.abs(dist))
        for tap, wt in zip(np.clip(taps, 0, n_in - 1), weights):
            w[i, tap] += wt
    w.flags.writeable = False
    return w


def upsample(bands: np.ndarray, size: int, method: str) -> np.ndarray:
    """Resample a (k, n, n) stack of uint16 bands to (k, size, size) uint16."""
    n = bands.shape[-1]
    if n == size:
        return bands.astype(np.uint16, copy=False)
    w = weight_matrix(n, size, method)
    out = w @ bands.astype(np.float64) @ w.T
    return np.clip(np.rint(out), 0, 65535).astype(np.uint16)
