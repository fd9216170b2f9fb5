"""Wald's protocol: make a coarser copy of the data whose original is the truth.

Each band is blurred with a Gaussian whose frequency response at the Nyquist frequency of the
coarse grid equals ``mtf`` (the modulation transfer a real sensor of that coarser resolution would
have there), then decimated by ``factor``. For a Gaussian of standard deviation sigma (fine pixels),
H(f) = exp(-2 pi^2 sigma^2 f^2); H(1 / (2 factor)) = mtf gives sigma = factor sqrt(-2 ln mtf) / pi.
Coarse pixel ``i`` is centred on fine coordinate ``(i + 0.5) factor - 0.5`` (the convention of
``jeoparda.resample``); taps beyond the edge are clamped. Everything is float64 matrix products.
"""
from __future__ import annotations

import math
from functools import cache

import numpy as np

#: Default gain at Nyquist; set your sensor's figure with --mtf.
DEFAULT_MTF = 0.3


def mtf_sigma(factor: int, mtf: float = DEFAULT_MTF) -> float:
    """Standard deviation (fine pixels) of the Gaussian whose response at the coarse Nyquist is ``mtf``."""
    if not 0.0 < mtf < 1.0:
        raise ValueError(f"mtf must lie strictly between 0 and 1, got {mtf}")
    return factor * math.sqrt(-2.0 * math.log(mtf)) / math.pi


@cache
def decimation_matrix(n_in: int, factor: int, mtf: float = DEFAULT_MTF) -> np.ndarray:
    """The (n_in // factor, n_in) matrix D with ``degraded = D @ band @ D.T``."""
    if n_in % factor:
        raise ValueError(f"{n_in} pixels do not divide by the factor {factor}")
    sigma = mtf_sigma(factor, mtf)
    reach = math.ceil(3 * sigma) + factor
    n_out = n_in // factor
    d = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * factor - 0.5
        taps = np.arange(math.floor(centre) - reach, math.ceil(centre) + reach + 1)
        weights = np.exp(-0.5 * ((taps - centre) / sigma) ** 2)
        np.add.at(d[i], np.clip(taps, 0, n_in - 1), weights / weights.sum())
    d.flags.writeable = False
    return d


def degrade(bands: np.ndarray, factor: int, mtf: float = DEFAULT_MTF) -> np.ndarray:
    """Blur and decimate a (k, n, n) stack by ``factor``: float64 (k, n / factor, n / factor)."""
    d = decimation_matrix(bands.shape[-1], factor, mtf)
    return d @ bands.astype(np.float64) @ d.T
