"""A synthetic archive in the BigEarthNet-S2 v1.0 layout, with learnable signal.

Each of the 43 labels has a fixed spectral signature (12 reflectances, from a land-cover family
with per-label variation) and a fixed spatial texture (an oriented wave plus fine noise). A patch
is a Voronoi partition of the 120x120 grid into regions of 1-4 labels. The 10 m rendering is
averaged down to 20 m and 60 m, as the sensor would see it, and each band is written as a real
georeferenced GeoTIFF at its native resolution. The signatures do not depend on ``seed``, so
archives made with different seeds describe the same "world"; the seed only picks the patches.
Patches stream to disk, rendered by ``--workers`` processes (jeoparda.sources.synth_pool), each from
its own generator: the archive is the same for a seed whatever the number of workers.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np

from jeoparda.labels import LABEL43_TO_19, LABELS43
from jeoparda.sentinel2 import BANDS, TARGET_SIZE
from jeoparda.sources.bigearthnet_v1 import ARCHIVE_DIRNAME, LABELS_SUFFIX
from jeoparda.sources.geotiff import write_band
from jeoparda.sources.synth_pool import chunked, ordered_map

#: Reflectance x 10000 per family, in canonical band order (B01 ... B12).
_FAMILIES = {
    "artificial": (1400, 1500, 1600, 1750, 1850, 1900, 1950, 2050, 2100, 1500, 2500, 2200),
    "crop": (900, 700, 900, 700, 1300, 2600, 3100, 3400, 3500, 3000, 2300, 1300),
    "forest": (300, 250, 450, 250, 700, 1900, 2500, 2800, 2900, 2600, 1400, 600),
    "shrub": (600, 500, 750, 700, 1100, 1900, 2200, 2400, 2500, 2100, 2200, 1300),
    "bare": (1200, 1300, 1700, 2100, 2400, 2600, 2800, 2900, 3000, 2700, 3600, 3100),
    "wetland": (500, 450, 600, 450, 700, 1200, 1400, 1500, 1550, 1300, 900, 500),
    "water": (700, 650, 550, 350, 300, 250, 230, 200, 180, 120, 80, 60),
}
_FAMILY_OF_LABEL = (["artificial"] * 11 + ["crop"] * 11 + ["forest"] * 3 + ["shrub"] * 4
                    + ["bare"] * 4 + ["wetland"] * 5 + ["water"] * 5)
_WORLD_SEED = 20200926  # fixed: the "world" is the same for every archive
TILES = (
    ("S2A_MSIL2A_20170613T101031", "T33UUP", 32633, (500000.0, 5900000.0)),
    ("S2B_MSIL2A_20170924T093019", "T34VER", 32634, (600000.0, 6700000.0)),
    ("S2A_MSIL2A_20171208T112441", "T29SNB", 32629, (400000.0, 4300000.0)),
    ("S2B_MSIL2A_20180417T102019", "T32TNS", 32632, (500000.0, 5100000.0)),
)


@dataclass(frozen=True)
class World:
    """Per-label signatures (43, 12) and texture parameters (43, 4): freq, angle, wave, grain."""

    signatures: np.ndarray
    textures: np.ndarray


def make_world() -> World:
    rng = np.random.default_rng(_WORLD_SEED)
    base = np.array([_FAMILIES[f] for f in _FAMILY_OF_LABEL], dtype=np.float64)
    signatures = base * rng.uniform(0.2, 1.8, size=base.shape)
    textures = np.stack([rng.uniform(1, 12, 43), rng.uniform(0, np.pi, 43),
                         rng.uniform(0.0, 0.15, 43), rng.uniform(0.01, 0.03, 43)], axis=1)
    return World(signatures, textures)


def label_weights() -> np.ndarray:
    """Sampling weights for the 43 labels: labels without a 19-class counterpart are rarer."""
    w = np.array([1.0 if c is not None else 0.3 for c in LABEL43_TO_19])
    w[[11, 17, 19, 20, 22, 23, 24, 39, 42]] = 3.0  # frequent in the real archive
    return w / w.sum()


def _region_map(rng: np.random.Generator, k: int) -> np.ndarray:
    """Voronoi partition of the 120x120 grid into k regions, each at least 5 % of the patch."""
    yy, xx = np.mgrid[0:TARGET_SIZE, 0:TARGET_SIZE]
    while True:
        seeds = rng.uniform(0, TARGET_SIZE, size=(k, 2))
        d = (yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2
        regions = d.argmin(axis=0)
        if np.bincount(regions.ravel(), minlength=k).min() >= 0.05 * TARGET_SIZE**2:
            return regions


def render_patch(world: World, labels: np.ndarray, rng: np.random.Generator,
                 noisy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(12, 120, 120) float reflectance x 10000 for a patch with the given 43-label indices, and
    the (120, 120) region map: region r shows label ``labels[r]``."""
    regions = _region_map(rng, len(labels))
    yy, xx = np.mgrid[0:TARGET_SIZE, 0:TARGET_SIZE] / TARGET_SIZE
    image = np.empty((len(BANDS), TARGET_SIZE, TARGET_SIZE))
    gain = np.empty((TARGET_SIZE, TARGET_SIZE))
    for r, lab in enumerate(labels):
        freq, angle, wave, grain = world.textures[lab]
        phase = rng.uniform(0, 2 * np.pi)
        pattern = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
        mask = regions == r
        gain[mask] = (1 + wave * pattern + grain * rng.standard_normal(TARGET_SIZE**2)
                      .reshape(TARGET_SIZE, TARGET_SIZE))[mask]
        image[:, mask] = world.signatures[lab][:, None] * rng.uniform(0.97, 1.03)
    image *= gain[None]
    if noisy:  # snow or cloud: a bright, flat veil over part of the patch
        image = np.maximum(image, 6000 * (xx > rng.uniform(0.2, 0.6))[None])
    return image, regions


def to_native(image: np.ndarray, factor: int) -> np.ndarray:
    """Average a 10 m band down by ``factor`` (2: 20 m, 6: 60 m), as the sensor would see it."""
    n = TARGET_SIZE // factor
    return image.reshape(n, factor, n, factor).mean(axis=(1, 3))


def write_csv(path: Path, names: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([n] for n in names)


def split_names(names: list[str], rng: np.random.Generator) -> dict[str, list[str]]:
    """70/15/15 random split (the converter's fallback ratio), each split sorted."""
    order = rng.permutation(len(names))
    n_train, n_val = round(len(names) * 0.70), round(len(names) * 0.15)
    return {"train": sorted(names[i] for i in order[:n_train]),
            "val": sorted(names[i] for i in order[n_train:n_train + n_val]),
            "test": sorted(names[i] for i in order[n_train + n_val:])}


def write_patch(root: Path, name: str, image: np.ndarray, label_names: list[str],
                tile: tuple, row: int, col: int) -> None:
    """Write the 12 band GeoTIFFs and the labels JSON of one patch."""
    prefix, tile_id, epsg, (x0, y0) = tile
    ulx, uly = x0 + col * 1200.0, y0 - row * 1200.0
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for b, band in enumerate(BANDS):
        factor = band.resolution_m // 10
        data = to_native(image[b], factor) if factor > 1 else image[b]
        write_band(folder / f"{name}_{band.name}.tif", np.clip(np.rint(data), 0, 65535),
                   origin=(ulx, uly), pixel_size_m=band.resolution_m, epsg=epsg)
    date = prefix.split("_")[2]
    meta = {
        "labels": label_names,
        "coordinates": {"ulx": ulx, "uly": uly, "lrx": ulx + 1200.0, "lry": uly - 1200.0},
        "projection": f'PROJCS["WGS 84 / UTM",AUTHORITY["EPSG","{epsg}"]]',
        "tile_source": f"{prefix.replace('MSIL2A', 'MSIL1C')}_N0205_R022_{tile_id}",
        "acquisition_date": f"{date[0:4]}-{date[4:6]}-{date[6:8]} "
                            f"{date[9:11]}:{date[11:13]}:{date[13:15]}",
    }
    (folder / f"{name}{LABELS_SUFFIX}").write_text(json.dumps(meta), encoding="utf-8")


#: Folder (beside the archive) of the 10 m renderings that ``synthesize(truth=True)`` keeps.
TRUTH_DIRNAME = "sr-truth"


def truth_path(out: Path, name: str) -> Path:
    """Where the 10 m truth of patch ``name`` lies: (12, 120, 120) uint16, all bands at 10 m."""
    return Path(out) / TRUTH_DIRNAME / f"{name}.npy"


#: Patches per group of four tiles: a tile's 10,000 cells are at most half taken.
PATCHES_PER_FOUR_TILES = 20_000


def tile_count(patches: int) -> int:
    """Tiles an archive of ``patches`` patches is scattered over: the four of ``TILES`` up to
    20,000 patches, four more per 20,000 beyond (590,326, BigEarthNet's size, take 120)."""
    return len(TILES) * max(1, -(-patches // PATCHES_PER_FOUR_TILES))


def tile(t: int) -> tuple:
    """Tile ``t``: one of ``TILES``, from the fifth on a later acquisition (every 5 days, the
    revisit) of the same tile, as the real archive holds several dates of a tile."""
    prefix, tile_id, epsg, origin = TILES[t % len(TILES)]
    later = t // len(TILES)
    if later == 0:
        return TILES[t]
    mission, level, stamp = prefix.split("_")
    when = datetime.strptime(stamp, "%Y%m%dT%H%M%S") + timedelta(days=5 * later)
    return f"{mission}_{level}_{when:%Y%m%dT%H%M%S}", tile_id, epsg, origin


def pick_cells(rng: np.random.Generator, patches: int) -> np.ndarray:
    """Distinct grid cells for ``patches`` scattered patches (cell // 10,000 is the tile)."""
    return rng.choice(tile_count(patches) * 100 * 100, size=patches, replace=False)


def place(cell: int) -> tuple[tuple, int, int]:
    """The tile, row and column of grid cell ``cell`` (100 x 100 patches per tile)."""
    row, col = divmod(int(cell % 10000), 100)
    return tile(int(cell) // 10000), row, col


def patch_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of patch ``index``: its draws depend on neither the other patches nor the
    process that renders it, so an archive is the same whatever ``--workers``."""
    return np.random.default_rng([seed, index])


@dataclass(frozen=True)
class _Job:
    out: Path
    seed: int
    truth: bool


def _write_chunk(job: _Job, items: Sequence[tuple[int, int, int]]) -> int:
    """Render and write the patches ``(index, cell, kind)`` of one chunk (in a worker or here)."""
    world, weights = make_world(), label_weights()
    for index, cell, kind in items:
        rng = patch_rng(job.seed, index)
        tile, row, col = place(cell)
        name = f"{tile[0]}_{row}_{col}"
        labels = np.sort(rng.choice(43, size=rng.integers(1, 5), replace=False, p=weights))
        image, _ = render_patch(world, labels, rng, noisy=kind != 0)
        write_patch(job.out / ARCHIVE_DIRNAME, name, image, [LABELS43[j] for j in labels], tile, row, col)
        if job.truth:
            truth_path(job.out, name).parent.mkdir(exist_ok=True)
            np.save(truth_path(job.out, name), np.clip(np.rint(image), 0, 65535).astype(np.uint16))
    return len(items)


def synthesize(out: Path, patches: int, seed: int = 0, progress: Callable[[int], object] | None = None,
               truth: bool = False, workers: int = 1) -> dict[str, list[str]]:
    """Write a synthetic archive of ``patches`` patches under ``out``; returns the splits.

    With ``truth``, also ``out/sr-truth/<patch>.npy``: the 10 m rendering every band was averaged
    down from (what super-resolution should recover; the archive itself is unchanged).

    Layout: ``out/BigEarthNet-v1.0/<patch>/...``, ``out/splits/{train,val,test}.csv`` (70/15/15,
    every patch listed) and ``out/patches_with_seasonal_snow.csv`` /
    ``out/patches_with_cloud_and_shadow.csv`` (about 3 % and 2 % of the patches, rendered bright).

    Patches stream to disk (``workers`` processes render and write them; 1: this process); only
    their names stay in memory. The same archive for a seed, whatever ``workers``.
    """
    if patches < 1:
        raise ValueError("patches must be at least 1")
    out = Path(out)
    (out / ARCHIVE_DIRNAME).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cells = pick_cells(rng, patches)
    kinds = rng.choice(3, size=patches, p=[0.95, 0.03, 0.02])  # clean, snow, cloud
    names = [f"{tile[0]}_{row}_{col}" for tile, row, col in map(place, cells)]
    items = [(i, int(cell), int(kind)) for i, (cell, kind) in enumerate(zip(cells, kinds, strict=True))]
    for done in ordered_map(partial(_write_chunk, _Job(out, seed, truth)), chunked(items), workers):
        if progress is not None:
            progress(done)
    splits = split_names(names, rng)
    (out / "splits").mkdir(exist_ok=True)
    for split, members in splits.items():
        write_csv(out / "splits" / f"{split}.csv", members)
    for listed, kind in (("patches_with_seasonal_snow.csv", 1), ("patches_with_cloud_and_shadow.csv", 2)):
        write_csv(out / listed, sorted(n for n, k in zip(names, kinds, strict=True) if k == kind))
    return splits
