"""Synthetic archives in the BigEarthNet v2.0 layouts: the GeoTIFF tree and the rico-hdl LMDB.

The same "world" as the v1 writer (jeoparda.sources.synth): every patch is a Voronoi partition
into regions of 43-label land covers. The region map becomes the reference map (the CORINE code
of each region's label; now and then a strip of nodata), and a patch's labels are exactly the 19
classes its map covers, as in the real archive. Sentinel-1 VV and VH (dB) follow the optical
image (water is dark, vegetation brighter), so S1 carries signal too. Snowy or cloudy patches
(5 %) go to the noisy-patch table, as the real archive lists them apart.

Patches stream: ``--workers`` processes render them (jeoparda.sources.synth_pool) and write the
GeoTIFFs; for the LMDB they hand back the encoded blobs and this process alone writes them, in
transactions of about ``LMDB_BATCH_BYTES``. Only names and classes stay in memory.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jeoparda.labels import CLASSES19, CORINE_CODES43, CORINE_TO_19, NO_CLASS
from jeoparda.sentinel2 import BANDS
from jeoparda.sources.bigearthnet_v2 import MAPS_DIR, S1_DIR, S2_DIR, s1_product_of, tile_of
from jeoparda.sources.geotiff import write_band
from jeoparda.sources.reben_metadata import METADATA, NOISY_METADATA
from jeoparda.sources.synth import (
    World,
    label_weights,
    make_world,
    patch_rng,
    pick_cells,
    place,
    render_patch,
    split_names,
    to_native,
)
from jeoparda.sources.synth_pool import chunked, ordered_map

LMDB_DIRNAME = "BigEarthNet-lmdb"
#: Bytes of values per LMDB transaction: a commit frees what the transaction held in memory.
LMDB_BATCH_BYTES = 64 << 20
_COUNTRIES = ("Austria", "Finland", "Portugal", "Serbia")
_SPLIT_WORDS = {"train": "train", "val": "validation", "test": "test"}


@dataclass(frozen=True)
class V2Names:
    """What a patch's grid cell fixes: its names, country and georeference."""

    patch_id: str
    s1_name: str
    s2v1_name: str
    country: str
    origin: tuple[float, float]
    epsg: int


def names_of(cell: int) -> V2Names:
    """The names and georeference of the patch at grid cell ``cell``."""
    (prefix, tile_id, epsg, (x0, y0)), row, col = place(cell)
    date = prefix.split("_")[2]
    product = f"S1A_IW_GRDH_1SDV_{date[:8]}T165043"
    return V2Names(f"{prefix}_N9999_R022_{tile_id}_{col}_{row}", f"{product}_{tile_id[1:]}_{col}_{row}",
                   f"{prefix}_{row}_{col}", _COUNTRIES[cell // 10000 % len(_COUNTRIES)],
                   (x0 + col * 1200.0, y0 - row * 1200.0), epsg)


@dataclass
class V2Patch:
    """One rendered patch: its arrays live only until it is written (or encoded for the LMDB)."""

    names: V2Names
    bands: list[np.ndarray]      # native resolution, canonical order, uint16
    codes: np.ndarray            # (120, 120) uint16 CORINE codes
    s1: np.ndarray               # (2, 120, 120) float32 dB
    classes: list[str]


def _sentinel1(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """VV, VH in dB from the optical image: brighter over vegetation (NIR), dark over water."""
    nir = image[7] / 10000.0
    vv = 10 * np.log10(0.01 + 0.25 * nir) + rng.normal(0, 0.8, nir.shape)
    vh = vv - 6.5 + rng.normal(0, 0.8, nir.shape)
    return np.stack([vv, vh]).astype(np.float32)


def make_patch(world: World, rng: np.random.Generator, cell: int, noisy: bool) -> V2Patch:
    """One patch with at least one of the 19 classes on its reference map."""
    weights = label_weights()
    while True:
        labels = np.sort(rng.choice(43, size=rng.integers(1, 5), replace=False, p=weights))
        image, regions = render_patch(world, labels, rng, noisy=noisy)
        codes = np.asarray(CORINE_CODES43, np.uint16)[labels][regions]
        if rng.random() < 0.1:  # a nodata strip along one edge, as at the border of a tile
            codes[:, : int(rng.integers(4, 16))] = 0
        present = sorted({CORINE_TO_19[int(c)] for c in np.unique(codes)} - {NO_CLASS})
        if present:
            break
    bands = []
    for b, band in enumerate(BANDS):
        factor = band.resolution_m // 10
        data = to_native(image[b], factor) if factor > 1 else image[b]
        bands.append(np.clip(np.rint(data), 0, 65535).astype(np.uint16))
    return V2Patch(names_of(cell), bands, codes, _sentinel1(image, rng), [CLASSES19[c] for c in present])


def _write_tree(root: Path, p: V2Patch, with_s2: bool) -> None:
    n = p.names
    if with_s2:
        folder = root / S2_DIR / tile_of(n.patch_id) / n.patch_id
        folder.mkdir(parents=True, exist_ok=True)
        for band, data in zip(BANDS, p.bands, strict=True):
            write_band(folder / f"{n.patch_id}_{band.name}.tif", data, origin=n.origin,
                       pixel_size_m=band.resolution_m, epsg=n.epsg)
        s1_folder = root / S1_DIR / s1_product_of(n.s1_name) / n.s1_name
        s1_folder.mkdir(parents=True, exist_ok=True)
        for name, data in zip(("VV", "VH"), p.s1, strict=True):
            write_band(s1_folder / f"{n.s1_name}_{name}.tif", data, origin=n.origin, pixel_size_m=10,
                       epsg=n.epsg, dtype=np.float32)
    maps = root / MAPS_DIR / tile_of(n.patch_id) / n.patch_id
    maps.mkdir(parents=True, exist_ok=True)
    write_band(maps / f"{n.patch_id}_reference_map.tif", p.codes, origin=n.origin, pixel_size_m=10, epsg=n.epsg)


def _blobs(p: V2Patch) -> list[tuple[bytes, bytes]]:
    """The patch's LMDB entries as rico-hdl encodes them: S2 and S1 safetensors blobs."""
    from safetensors.numpy import save

    return [(p.names.patch_id.encode(), save({b.name: d for b, d in zip(BANDS, p.bands, strict=True)})),
            (p.names.s1_name.encode(), save({"VV": p.s1[0], "VH": p.s1[1]}))]


@dataclass(frozen=True)
class _Job:
    out: Path
    seed: int
    lmdb: bool


def _make_chunk(job: _Job, items: Sequence[tuple[int, int, bool]]) -> list[tuple[list[str], list[tuple[bytes, bytes]]]]:
    """Render the patches ``(index, cell, noisy)`` of one chunk and write their GeoTIFFs; returns
    each patch's classes and (for the LMDB) its encoded entries."""
    world, made = make_world(), []
    for index, cell, noisy in items:
        patch = make_patch(world, patch_rng(job.seed, index), cell, noisy)
        _write_tree(job.out, patch, with_s2=not job.lmdb)
        made.append((patch.classes, _blobs(patch) if job.lmdb else []))
    return made


def _drop_page_cache(file: Path) -> None:
    """Let the kernel drop ``file``'s cached pages (written and synced: clean), where it can."""
    if hasattr(os, "posix_fadvise"):
        fd = os.open(file, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class _LMDBWriter:
    """Puts entries into a new LMDB, committing every ``LMDB_BATCH_BYTES`` of values; the last
    batch is committed on a clean exit, dropped on an error. After each commit the environment is
    closed and the file's (synced, clean) pages dropped from the page cache before it reopens: the
    B-tree lookups of the next batch then map in the pages they read, not their neighbours too."""

    def __init__(self, path: Path, patches: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path  # the map is virtual (the file grows as written): 2 MiB a patch and 1 GiB over
        self.map_size = patches * (2 << 20) + (1 << 30)
        self._begin()

    def _begin(self) -> None:
        import lmdb

        self.env = lmdb.open(str(self.path), map_size=self.map_size, subdir=True, readahead=False)
        self.txn, self.held = self.env.begin(write=True), 0

    def put(self, key: bytes, value: bytes) -> None:
        self.txn.put(key, value)
        self.held += len(value)
        if self.held >= LMDB_BATCH_BYTES:
            self.txn.commit()
            self.env.close()
            _drop_page_cache(self.path / "data.mdb")
            self._begin()

    def __enter__(self) -> _LMDBWriter:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.txn.commit()
        else:
            self.txn.abort()
        self.env.close()


def _stream(job: _Job, items: list[tuple[int, int, bool]], workers: int,
            progress: Callable[[int], Any] | None, put: Callable[[bytes, bytes], None]) -> list[list[str]]:
    """Make every patch (chunks in order, over ``workers``), ``put`` its entries; their classes."""
    classes = []
    for made in ordered_map(partial(_make_chunk, job), chunked(items), workers):
        for patch_classes, entries in made:
            classes.append(patch_classes)
            for key, value in entries:
                put(key, value)
        if progress is not None:
            progress(len(made))
    return classes


class _Row(NamedTuple):
    """What the tables say of a patch: all that stays in memory per patch."""

    names: V2Names
    classes: list[str]
    noisy: bool
    split: str


def _write_tables(root: Path, rows: list[_Row]) -> None:
    """metadata.parquet and the noisy-patch table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for noisy, name in ((False, METADATA), (True, NOISY_METADATA)):
        mine = [r for r in rows if r.noisy == noisy]
        table = pa.table({
            "patch_id": [r.names.patch_id for r in mine],
            "labels": pa.array([r.classes for r in mine], type=pa.list_(pa.string())),
            "split": [_SPLIT_WORDS[r.split] for r in mine],
            "country": [r.names.country for r in mine],
            "s1_name": [r.names.s1_name for r in mine],
            "s2v1_name": [r.names.s2v1_name for r in mine],
            "contains_seasonal_snow": [noisy and i % 2 == 0 for i in range(len(mine))],
            "contains_cloud_or_shadow": [noisy and i % 2 == 1 for i in range(len(mine))],
        })
        pq.write_table(table, root / name)


def synthesize_v2(out: Path, patches: int, seed: int = 0, lmdb: bool = False,
                  progress: Callable[[int], Any] | None = None, block: bool = False,
                  workers: int = 1) -> dict[str, list[str]]:
    """Write a v2.0 archive of ``patches`` patches under ``out``; returns the splits (noisy
    patches included, as the tables list them).

    ``lmdb=False``: BigEarthNet-S2/, BigEarthNet-S1/ and Reference_Maps/ GeoTIFF trees.
    ``lmdb=True``: one LMDB (``BigEarthNet-lmdb/``) holding S2 and S1, plus Reference_Maps/.
    Both: metadata.parquet and the noisy-patch table beside them.
    ``block=True``: the patches lie side by side on the first tile's grid, row by row in a square
    block (a small tile to label with ``jeoparda predict``); otherwise scattered over all tiles.
    ``workers``: processes rendering the patches (1: this one); the archive does not depend on it.
    """
    if patches < 1:
        raise ValueError("patches must be at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    import pyarrow.parquet  # noqa: F401  (the tables' writer: loaded now, not on top of the stream's heap)

    rng = np.random.default_rng(seed)
    if block:
        side = int(np.ceil(np.sqrt(patches)))
        cells = np.array([(i // side) * 100 + i % side for i in range(patches)])
    else:
        cells = pick_cells(rng, patches)
    noisy = np.zeros(patches, bool)  # 5 % (at least one from 10 patches on), like the real archive's 12.6 %
    noisy[rng.permutation(patches)[:max(1, round(0.05 * patches)) if patches >= 10 else 0]] = True
    names = [names_of(int(cell)) for cell in cells]
    splits = split_names([n.patch_id for n in names], rng)
    items = [(i, int(cell), bool(bad)) for i, (cell, bad) in enumerate(zip(cells, noisy, strict=True))]
    job = _Job(out, seed, lmdb)
    if lmdb:
        with _LMDBWriter(out / LMDB_DIRNAME, patches) as writer:
            classes = _stream(job, items, workers, progress, writer.put)
    else:  # the GeoTIFFs are all the workers write: no entries come back
        classes = _stream(job, items, workers, progress, lambda key, value: None)
    split_of = {n: s for s, members in splits.items() for n in members}
    _write_tables(out, [_Row(n, c, bool(bad), split_of[n.patch_id])
                        for n, c, bad in zip(names, classes, noisy, strict=True)])
    return splits
