"""Network inputs at full resolution, and training pairs at reduced scale (Wald's protocol).

Two networks, as DSen2: ``20m`` sharpens the six 20 m bands from the four 10 m bands and the 20 m
bands upsampled; ``60m`` sharpens the two 60 m bands from all twelve. Inputs are on the grid of the
output: bands coarser than it are brought there by bicubic interpolation (float, unrounded), and the
network's output is a correction added to the bicubic estimate of its target bands.

At reduced scale every band is degraded by the network's factor (2 or 6), so the original coarse
bands are a truth the network learns to restore. A 120 px patch has 20 px of 60 m data, which does
not divide by 6: the ``60m`` pairs use 108 px crops at 60 m offsets 0, 1 and 2 (nine per patch).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jeoparda.resample import weight_matrix
from jeoparda.sentinel2 import BANDS, TARGET_SIZE, band_indices
from jeoparda.superres.degrade import degrade

#: Reflectance x 10000 -> network units (reflectance).
SCALE = 1.0 / 10000.0


@dataclass(frozen=True)
class Group:
    """One network: which bands (canonical indices) go in, which come out, and the resolution ratio."""

    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    factor: int

    @property
    def residual_channels(self) -> list[int]:
        """Positions of the output bands among the inputs (the bicubic estimate the output corrects)."""
        return [self.inputs.index(b) for b in self.outputs]


B10M, B20M, B60M = band_indices(10), band_indices(20), band_indices(60)
GROUPS: dict[str, Group] = {
    "20m": Group("20m", B10M + B20M, B20M, 2),
    "60m": Group("60m", B10M + B20M + B60M, B60M, 6),
}
CROP_60M = 108  # 10 m pixels: 18 px of 60 m data, divisible by 6


def upsample_float(bands: np.ndarray, size: int, method: str = "bicubic") -> np.ndarray:
    """(k, n, n) -> (k, size, size) float64 without rounding (copy when n == size)."""
    n = bands.shape[-1]
    if n == size:
        return bands.astype(np.float64)
    w = weight_matrix(n, size, method)
    return w @ bands.astype(np.float64) @ w.T


def stack_inputs(group: Group, native: dict[int, np.ndarray], size: int, method: str = "bicubic") -> np.ndarray:
    """The group's input bands brought to ``size`` px, float32 in network units."""
    return np.concatenate([upsample_float(native[b][None], size, method) for b in group.inputs]
                          ).astype(np.float32) * np.float32(SCALE)


def full_inputs(group: Group, bands: tuple[np.ndarray, ...] | list[np.ndarray],
                method: str = "bicubic") -> np.ndarray:
    """Inputs for applying the network to a native-resolution patch: (C, 120, 120); ``method`` is the
    interpolation of the coarse bands (bicubic for the network, others for comparisons)."""
    return stack_inputs(group, {b: bands[b] for b in group.inputs}, TARGET_SIZE, method)


def _crops(group: Group) -> list[tuple[int, int]]:
    """Top-left corners (10 m pixels) of the crops a patch yields for this group."""
    if group.factor == 2:
        return [(0, 0)]
    steps = range(0, TARGET_SIZE - CROP_60M + 1, 6)
    return [(r, c) for r in steps for c in steps]


def _crop(bands: tuple[np.ndarray, ...] | list[np.ndarray], b: int, r: int, c: int, size: int) -> np.ndarray:
    """Band ``b``'s pixels under the 10 m window of side ``size`` at (r, c)."""
    ratio = BANDS[b].resolution_m // 10
    return bands[b][r // ratio:(r + size) // ratio, c // ratio:(c + size) // ratio]


def reduced_inputs(group: Group, bands: tuple[np.ndarray, ...] | list[np.ndarray], mtf: float,
                   methods: tuple[str, ...] = ("bicubic",)) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Wald pairs of one patch, the bands degraded once: for each interpolation method the inputs
    (n, C, s, s), and the targets (n, K, s, s), in network units."""
    size = CROP_60M if group.factor == 6 else TARGET_SIZE
    xs: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    ys = []
    for r, c in _crops(group):
        degraded = {b: degrade(_crop(bands, b, r, c, size)[None], group.factor, mtf)[0] for b in group.inputs}
        for method, x in xs.items():
            x.append(stack_inputs(group, degraded, size // group.factor, method))
        ys.append(np.stack([_crop(bands, b, r, c, size) for b in group.outputs]).astype(np.float32)
                  * np.float32(SCALE))
    return {m: np.stack(x) for m, x in xs.items()}, np.stack(ys)


def reduced_pairs(group: Group, bands: tuple[np.ndarray, ...] | list[np.ndarray],
                  mtf: float) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs of one patch: the network's (bicubic) inputs and the targets."""
    xs, y = reduced_inputs(group, bands, mtf)
    return xs["bicubic"], y
