"""A source's native-resolution patch -> the arrays a shard stores, on the 10 m grid."""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from jeoparda.resample import upsample
from jeoparda.sentinel2 import BANDS, TARGET_SIZE, band_indices
from jeoparda.sources.base import Patch


class Upsampler(Protocol):
    """Brings native-resolution band tuples to the 10 m grid, ``batch`` patches at a time."""

    batch: int

    def to_10m_many(self, raws: list[Any]) -> list[np.ndarray]: ...


def to_10m(raw: tuple[np.ndarray, ...] | list[np.ndarray], method: str) -> np.ndarray:
    """Stack native-resolution bands into (12, 120, 120); 10 m bands are copied unchanged."""
    image = np.empty((len(BANDS), TARGET_SIZE, TARGET_SIZE), dtype=np.uint16)
    for res in (10, 20, 60):
        idx = band_indices(res)
        image[list(idx)] = upsample(np.stack([raw[i] for i in idx]), TARGET_SIZE, method)
    return image


class Interpolator:
    """Upsampling by interpolation (``jeoparda.resample``), one patch at a time."""

    batch = 1

    def __init__(self, method: str) -> None:
        self.method = method

    def to_10m_many(self, raws: list[Any]) -> list[np.ndarray]:
        return [to_10m(r, self.method) for r in raws]


def shard_arrays(patches: list[Patch], upsampler: Upsampler, keep: list[int] | None = None) -> list[dict[str, Any]]:
    """Keyword arguments for :meth:`ShardWriter.append`, one per patch: the image on the target grid
    (upsampled from native resolution where the source gives bands), the ``keep`` bands of it (all
    if None), and the targets as read."""
    native = [p for p in patches if p.image is None]
    upsampled = iter(upsampler.to_10m_many([p.bands for p in native]))
    out = []
    for patch in patches:
        image = patch.image if patch.image is not None else next(upsampled)
        if keep is not None:
            image = image[keep]
        out.append({"image": image, "labels": patch.labels, "labels43": patch.labels43, "mask": patch.mask,
                    "s1": patch.s1, "label": patch.label})
    return out
