"""Bilinear resizing that stays deterministic on CUDA.

CUDA has no deterministic backward for ``F.interpolate(mode="bilinear")`` (its kernel adds
gradients with atomics), so under ``torch.use_deterministic_algorithms(True)`` (train.deterministic)
the backward pass raises. Bilinear resizing is separable and linear: ``R @ x @ C^T`` with fixed
interpolation matrices R (rows) and C (columns) gives the same values, and matrix products have
deterministic kernels both ways. Outside deterministic mode the fast kernel is used unchanged.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import torch


def interpolation_weights(n_in: int, n_out: int, align_corners: bool = False) -> torch.Tensor:
    """(n_out, n_in) float64: row i holds the weights bilinear resizing from ``n_in`` to ``n_out``
    samples gives output sample i (PyTorch's source-index rule, edges clamped)."""
    dst = torch.arange(n_out, dtype=torch.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        src = ((dst + 0.5) * (n_in / n_out) - 0.5).clamp(min=0.0)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)  # at the last sample both taps are the same one
    frac = (src - lo)[:, None]
    eye = torch.eye(n_in, dtype=torch.float64)
    return (1 - frac) * eye[lo] + frac * eye[hi]


@functools.lru_cache(maxsize=64)
def _matrix(n_in: int, n_out: int, align_corners: bool, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """:func:`interpolation_weights` on the device, built once per shape (no copy per step); a
    normal tensor even when first built under inference mode, so training can save it for backward."""
    with torch.inference_mode(False):
        return interpolation_weights(n_in, n_out, align_corners).to(device=device, dtype=dtype)


def matmul_bilinear(x: torch.Tensor, size: Sequence[int], align_corners: bool = False) -> torch.Tensor:
    """``x`` (..., H, W) resized to ``size`` (H', W') as two matrix products: the values of
    ``F.interpolate(mode="bilinear")`` up to float rounding, deterministic forward and backward."""
    rows = _weights_for(x, x.shape[-2], int(size[0]), align_corners)
    cols = _weights_for(x, x.shape[-1], int(size[1]), align_corners)
    return rows @ (x @ cols.T)


def _weights_for(x: torch.Tensor, n_in: int, n_out: int, align_corners: bool) -> torch.Tensor:
    """The cached matrix in eager mode; under torch.compile built in the graph (constants there)."""
    if torch.compiler.is_compiling():
        return interpolation_weights(n_in, n_out, align_corners).to(device=x.device, dtype=x.dtype)
    return _matrix(n_in, n_out, align_corners, x.dtype, x.device)


def bilinear(x: torch.Tensor, size: Sequence[int], align_corners: bool = False) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W) to ``size``: the interpolation kernel, or
    :func:`matmul_bilinear` while deterministic algorithms are enabled."""
    if torch.are_deterministic_algorithms_enabled():
        return matmul_bilinear(x, size, align_corners)
    return torch.nn.functional.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)
