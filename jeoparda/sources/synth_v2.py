"""Synthetic archives in the BigEarthNet v2.0 layouts: the GeoTIFF tree and the rico-hdl LMDB.

The same "world" as the v1 writer (jeoparda.sources.synth): every patch is a Voronoi partition
into regions of 43-label land covers. The region map becomes the reference map (the CORINE code
of each region's label; now and then a strip of nodata), and a patch's labels are exactly the 19
classes its map covers, as in the real archive. Sentinel-1 VV and VH (dB) follow the optical
image (water is dark, vegetation brighter), so S1 carries signal too. Snowy or cloudy patches
(5 %) go to the noisy-patch table, as the real archive lists them apart.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jeoparda.labels import CLASSES19, CORINE_CODES43, CORINE_TO_19, NO_CLASS
from jeoparda.sentinel2 import BANDS
from jeoparda.sources.bigearthnet_v2 import MAPS_DIR, S1_DIR, S2_DIR, s1_product_of, tile_of
from jeoparda.sources.geotiff import write_band
from jeoparda.sources.reben_metadata import METADATA, NOISY_METADATA
from jeoparda.sources.synth import TILES, World, label_weights, make_world, render_patch, split_names, to_native

LMDB_DIRNAME = "BigEarthNet-lmdb"
_COUNTRIES = ("Austria", "Finland", "Portugal", "Serbia")
_SPLIT_WORDS = {"train": "train", "val": "validation", "test": "test"}


@dataclass
class V2Patch:
    patch_id: str
    s1_name: str
    s2v1_name: str
    country: str
    bands: list[np.ndarray]      # native resolution, canonical order, uint16
    codes: np.ndarray            # (120, 120) uint16 CORINE codes
    s1: np.ndarray               # (2, 120, 120) float32 dB
    classes: list[str]
    noisy: bool
    origin: tuple[float, float]
    epsg: int


def _sentinel1(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """VV, VH in dB from the optical image: brighter over vegetation (NIR), dark over water."""
    nir = image[7] / 10000.0
    vv = 10 * np.log10(0.01 + 0.25 * nir) + rng.normal(0, 0.8, nir.shape)
    vh = vv - 6.5 + rng.normal(0, 0.8, nir.shape)
    return np.stack([vv, vh]).astype(np.float32)


def make_patch(world: World, rng: np.random.Generator, cell: int, noisy: bool) -> V2Patch:
    """One patch with at least one of the 19 classes on its reference map."""
    weights = label_weights()
    prefix, tile_id, epsg, (x0, y0) = TILES[cell // 10000]
    row, col = divmod(int(cell % 10000), 100)
    while True:
        labels = np.sort(rng.choice(43, size=rng.integers(1, 5), replace=False, p=weights))
        image, regions = render_patch(world, labels, rng, noisy=noisy)
        codes = np.asarray(CORINE_CODES43, np.uint16)[labels][regions]
        if rng.random() < 0.1:  # a nodata strip along one edge, as at the border of a tile
            codes[:, : int(rng.integers(4, 16))] = 0
        present = sorted({CORINE_TO_19[int(c)] for c in np.unique(codes)} - {NO_CLASS})
        if present:
            break
    date = prefix.split("_")[2]
    tile = f"{prefix}_N9999_R022_{tile_id}"
    product = f"S1A_IW_GRDH_1SDV_{date[:8]}T165043"
    bands = []
    for b, band in enumerate(BANDS):
        factor = band.resolution_m // 10
        data = to_native(image[b], factor) if factor > 1 else image[b]
        bands.append(np.clip(np.rint(data), 0, 65535).astype(np.uint16))
    return V2Patch(f"{tile}_{col}_{row}", f"{product}_{tile_id[1:]}_{col}_{row}", f"{prefix}_{row}_{col}",
                   _COUNTRIES[cell // 10000 % len(_COUNTRIES)], bands, codes, _sentinel1(image, rng),
                   [CLASSES19[c] for c in present], noisy, (x0 + col * 1200.0, y0 - row * 1200.0), epsg)


def _write_tree(root: Path, p: V2Patch, with_s2: bool) -> None:
    if with_s2:
        folder = root / S2_DIR / tile_of(p.patch_id) / p.patch_id
        folder.mkdir(parents=True, exist_ok=True)
        for band, data in zip(BANDS, p.bands, strict=True):
            write_band(folder / f"{p.patch_id}_{band.name}.tif", data, origin=p.origin,
                       pixel_size_m=band.resolution_m, epsg=p.epsg)
        s1_folder = root / S1_DIR / s1_product_of(p.s1_name) / p.s1_name
        s1_folder.mkdir(parents=True, exist_ok=True)
        for name, data in zip(("VV", "VH"), p.s1, strict=True):
            write_band(s1_folder / f"{p.s1_name}_{name}.tif", data, origin=p.origin, pixel_size_m=10,
                       epsg=p.epsg, dtype=np.float32)
    maps = root / MAPS_DIR / tile_of(p.patch_id) / p.patch_id
    maps.mkdir(parents=True, exist_ok=True)
    write_band(maps / f"{p.patch_id}_reference_map.tif", p.codes, origin=p.origin, pixel_size_m=10, epsg=p.epsg)


def _write_tables(root: Path, rows: list[tuple[V2Patch, str]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for noisy, name in ((False, METADATA), (True, NOISY_METADATA)):
        mine = [(p, s) for p, s in rows if p.noisy == noisy]
        table = pa.table({
            "patch_id": [p.patch_id for p, _ in mine],
            "labels": pa.array([p.classes for p, _ in mine], type=pa.list_(pa.string())),
            "split": [_SPLIT_WORDS[s] for _, s in mine],
            "country": [p.country for p, _ in mine],
            "s1_name": [p.s1_name for p, _ in mine],
            "s2v1_name": [p.s2v1_name for p, _ in mine],
            "contains_seasonal_snow": [p.noisy and i % 2 == 0 for i, (p, _) in enumerate(mine)],
            "contains_cloud_or_shadow": [p.noisy and i % 2 == 1 for i, (p, _) in enumerate(mine)],
        })
        pq.write_table(table, root / name)


def _write_lmdb(path: Path, patches: list[V2Patch]) -> None:
    import lmdb
    from safetensors.numpy import save

    path.mkdir(parents=True, exist_ok=True)
    size = max(len(patches), 1) * 600_000 + (16 << 20)
    env = lmdb.open(str(path), map_size=size, subdir=True)
    with env.begin(write=True) as txn:
        for p in patches:
            txn.put(p.patch_id.encode(), save({b.name: d for b, d in zip(BANDS, p.bands, strict=True)}))
            txn.put(p.s1_name.encode(), save({"VV": p.s1[0], "VH": p.s1[1]}))
    env.close()


def synthesize_v2(out: Path, patches: int, seed: int = 0, lmdb: bool = False,
                  progress: Callable[[int], Any] | None = None, block: bool = False) -> dict[str, list[str]]:
    """Write a v2.0 archive of ``patches`` patches under ``out``; returns the splits (noisy
    patches included, as the tables list them).

    ``lmdb=False``: BigEarthNet-S2/, BigEarthNet-S1/ and Reference_Maps/ GeoTIFF trees.
    ``lmdb=True``: one LMDB (``BigEarthNet-lmdb/``) holding S2 and S1, plus Reference_Maps/.
    Both: metadata.parquet and the noisy-patch table beside them.
    ``block=True``: the patches lie side by side on the first tile's grid, row by row in a square
    block (a small tile to label with ``jeoparda predict``); otherwise scattered over all tiles.
    """
    if patches < 1:
        raise ValueError("patches must be at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world = make_world()
    rng = np.random.default_rng(seed)
    if block:
        side = int(np.ceil(np.sqrt(patches)))
        cells = np.array([(i // side) * 100 + i % side for i in range(patches)])
    else:
        cells = rng.choice(len(TILES) * 100 * 100, size=patches, replace=False)
    noisy = np.zeros(patches, bool)  # 5 % (at least one from 10 patches on), like the real archive's 12.6 %
    noisy[rng.permutation(patches)[:max(1, round(0.05 * patches)) if patches >= 10 else 0]] = True
    made = []
    for cell, bad in zip(cells, noisy, strict=True):
        patch = make_patch(world, rng, int(cell), bool(bad))
        _write_tree(out, patch, with_s2=not lmdb)
        made.append(patch)
        if progress is not None:
            progress(1)
    splits = split_names([p.patch_id for p in made], rng)
    split_of = {n: s for s, names in splits.items() for n in names}
    if lmdb:
        _write_lmdb(out / LMDB_DIRNAME, made)
    _write_tables(out, [(p, split_of[p.patch_id]) for p in made])
    return splits
