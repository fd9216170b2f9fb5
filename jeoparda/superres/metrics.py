"""Reconstruction quality: RMSE, signal-to-reconstruction error (SRE) and spectral angle (SAM).

Accumulated over patches, then: RMSE per band and per group over all pixels (digital numbers,
reflectance x 10000); SRE per band 10 log10(mean(x)^2 / MSE) in dB (DSen2's definition), per group
the mean of its bands; SAM per group the mean over pixels of the angle (degrees) between the true
and the estimated spectrum of the group's bands (pixels where either is all zero count as 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Accumulator:
    """Running sums for one method on one band group."""

    bands: tuple[str, ...]
    sse: np.ndarray = field(init=False)
    total: np.ndarray = field(init=False)
    pixels: int = 0
    angle_sum: float = 0.0

    def __post_init__(self) -> None:
        self.sse = np.zeros(len(self.bands))
        self.total = np.zeros(len(self.bands))

    def add(self, truth: np.ndarray, estimate: np.ndarray) -> None:
        """``truth`` and ``estimate``: (n, K, H, W) in digital numbers."""
        t, e = truth.astype(np.float64), estimate.astype(np.float64)
        self.sse += ((t - e) ** 2).sum(axis=(0, 2, 3))
        self.total += t.sum(axis=(0, 2, 3))
        self.pixels += t.shape[0] * t.shape[2] * t.shape[3]
        dot = (t * e).sum(axis=1)
        norms = np.sqrt((t * t).sum(axis=1) * (e * e).sum(axis=1))
        cos = np.divide(dot, norms, out=np.ones_like(dot), where=norms > 0)
        self.angle_sum += float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).sum())

    def scores(self, group: str) -> dict[str, float]:
        """``rmse_<band>``, ``sre_<band>`` and ``rmse_<group>``, ``sre_<group>``, ``sam_<group>``."""
        n = max(self.pixels, 1)
        mse = self.sse / n
        mean = self.total / n
        sre = [10 * math.log10(m * m / e) if e > 0 and m > 0 else math.inf for m, e in zip(mean, mse, strict=True)]
        out: dict[str, float] = {}
        for b, name in enumerate(self.bands):
            out[f"rmse_{name}"] = float(math.sqrt(mse[b]))
            out[f"sre_{name}"] = float(sre[b])
        out[f"rmse_{group}"] = float(math.sqrt(mse.mean()))
        out[f"sre_{group}"] = float(np.mean(sre))
        out[f"sam_{group}"] = self.angle_sum / n
        return out
