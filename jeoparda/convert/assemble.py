"""A source's native-resolution patch -> the arrays a shard stores, on the 10 m grid."""
from __future__ import annotations

from typing import Any

import numpy as np

from jeoparda.convert.resample import upsample
from jeoparda.sentinel2 import BANDS, TARGET_SIZE, band_indices
from jeoparda.sources.base import Patch


def to_10m(raw: tuple[np.ndarray, ...] | list[np.ndarray], method: str) -> np.ndarray:
    """Stack native-resolution bands into (12, 120, 120); 10 m bands are copied unchanged."""
    image = np.empty((len(BANDS), TARGET_SIZE, TARGET_SIZE), dtype=np.uint16)
    for res in (10, 20, 60):
        idx = band_indices(res)
        image[list(idx)] = upsample(np.stack([raw[i] for i in idx]), TARGET_SIZE, method)
    return image


def shard_arrays(patch: Patch, method: str, keep: list[int] | None = None) -> dict[str, Any]:
    """Keyword arguments for :meth:`ShardWriter.append`: the image on the target grid (resampled
    from native resolution where the source gives bands), the ``keep`` bands of it (all if None),
    and the targets as read."""
    image = patch.image if patch.image is not None else to_10m(patch.bands, method)
    if keep is not None:
        image = image[keep]
    return {"image": image, "labels": patch.labels, "labels43": patch.labels43, "mask": patch.mask,
            "s1": patch.s1, "label": patch.label}
