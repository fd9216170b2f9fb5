"""Native-resolution patches for super-resolution, from an archive or a converted data set.

Archives give the bands as the sensor delivered them. A converted data set holds every band on the
10 m grid, interpolated by the method its manifest records; the interpolation is a known linear map
of full column rank, so the native bands come back by least squares: exactly for ``nearest``, within
the uint16 rounding (under one digital number) for ``bilinear`` and ``bicubic``, except along rows
where bicubic's overshoot fell below 0 and was clipped (dark water next to bright land): there the
error of a few pixels spreads; on the synthetic archive the mean error stays under one number.
"""
from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np

from jeoparda.errors import JeopardaError
from jeoparda.resample import METHODS, weight_matrix
from jeoparda.sentinel2 import BAND_NAMES, BANDS, TARGET_SIZE
from jeoparda.shards.manifest import MANIFEST_NAME, read_manifest
from jeoparda.shards.reader import ShardReader
from jeoparda.sources.base import PatchError
from jeoparda.sources.detect import SourceOptions, open_source

Native = tuple[np.ndarray, ...]  # 12 bands, canonical order, at native resolution


def missing_bands(have: tuple[str, ...] | list[str], where: Path) -> None:
    """One line when ``have`` lacks any of the twelve bands super-resolution needs."""
    absent = [b for b in BAND_NAMES if b not in have]
    if absent:
        raise JeopardaError(f"{where}: has {len(have)} bands ({', '.join(have)}); super-resolution needs the 12 "
                            f"BigEarthNet bands {', '.join(BAND_NAMES)} (absent: {', '.join(absent)})")


@cache
def _inverse(n_native: int, method: str) -> np.ndarray:
    """Left inverse of the (120, n_native) interpolation matrix."""
    return np.linalg.pinv(weight_matrix(n_native, TARGET_SIZE, method))


def native_from_10m(image: np.ndarray, method: str) -> Native:
    """Undo a data set's interpolation: (12, 120, 120) uint16 -> native bands (float64)."""
    out = []
    for b, band in enumerate(BANDS):
        n = band.native_size
        if n == TARGET_SIZE:
            out.append(image[b].astype(np.float64))
            continue
        inv = _inverse(n, method)
        out.append(np.clip(inv @ image[b].astype(np.float64) @ inv.T, 0, 65535))
    return tuple(out)


def _from_dataset(root: Path, split: str, limit: int, part: tuple[int, int]) -> Iterator[tuple[str, Native]]:
    manifest = read_manifest(root)
    missing_bands(manifest["bands"], root / MANIFEST_NAME)
    method = manifest["resample"]
    if method not in METHODS:
        raise JeopardaError(f"{root / MANIFEST_NAME}: resample {method!r}; super-resolution recovers the native "
                            f"bands only from an interpolated data set ({', '.join(METHODS)}); give the archive")
    keep = [manifest["bands"].index(b) for b in BAND_NAMES]
    index = 0
    for shard in manifest["splits"].get(split, {}).get("shards", []):
        with ShardReader(root / shard["file"]) as reader:
            for i, name in enumerate(reader.names):
                if index >= limit:
                    return
                if index % part[1] == part[0]:
                    yield name, native_from_10m(reader.read_images(i, i + 1)[0][keep], method)
                index += 1


def _from_archive(root: Path, split: str, limit: int, part: tuple[int, int]) -> Iterator[tuple[str, Native]]:
    source = open_source(SourceOptions(root))
    if not source.resamples:
        raise JeopardaError(f"{root}: {source.kind} stores its bands on one grid already; super-resolution "
                            "needs an archive with bands at native resolution (BigEarthNet v1.0 or v2.0)")
    missing_bands(source.bands, root)
    present = source.present()
    names = [n for n in source.listing().splits.get(split, []) if n in present][:limit][part[0]::part[1]]
    try:
        for name in names:
            try:
                patch = source.read(name)
            except PatchError:
                continue  # damaged patches are convert's business; training just skips them
            yield name, tuple(np.asarray(b) for b in patch.bands)
    finally:
        source.close()


def native_patches(data: Path, split: str, limit: int, part: tuple[int, int] = (0, 1)
                   ) -> Iterator[tuple[str, Native]]:
    """(name, native bands) of the first ``limit`` patches of ``split``, from a data set or an
    archive; ``part = (rank, world)`` keeps every world-th of them, starting at rank."""
    data = Path(data)
    if (data / MANIFEST_NAME).is_file():
        return _from_dataset(data, split, limit, part)
    return _from_archive(data, split, limit, part)


def load_split(data: Path, split: str, limit: int, part: tuple[int, int] = (0, 1)) -> list[Native]:
    """The native bands of :func:`native_patches` as a list; none is one line naming the data."""
    patches = [bands for _, bands in native_patches(data, split, limit, part)]
    if not patches:
        extra = f" for rank {part[0]} of {part[1]} (fewer patches than ranks)" if part[1] > 1 else ""
        raise JeopardaError(f"{data}: no {split} patches{extra}")
    return patches
