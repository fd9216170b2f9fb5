"""``jeoparda predict``: a whole Sentinel-2 tile labelled by a dense model, as a georeferenced map.

The patches of one tile (BigEarthNet v2.0 ids are ``<tile>_<col>_<row>``) are mosaicked on their
grid, normalised as the loaders do, and labelled in one pass (or in overlapping windows when
``window`` is given: each window's border of ``overlap`` pixels is run but not kept). The map is a
uint8 GeoTIFF of class indices, 255 where no patch lies, with the CRS and origin read from the
source archive's GeoTIFFs (the converted shards hold pixels, not coordinates); ``--probabilities``
adds the winning class's probability as a float32 GeoTIFF; a quick-look PNG with a legend of the
classes lies beside.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jeoparda.accelerator import Accelerator
from jeoparda.errors import JeopardaError
from jeoparda.labels import NO_CLASS
from jeoparda.loaders.bands import choose_bands
from jeoparda.loaders.base import normalisers
from jeoparda.safe_files import writing
from jeoparda.shards.manifest import read_manifest
from jeoparda.shards.reader import ShardReader
from jeoparda.sources.bigearthnet_v2 import MAPS_DIR, S2_DIR, map_path, tile_of
from jeoparda.sources.geotiff import TiffReadError, read_origin, write_band

PATCH_METRES = 1200


@dataclass
class Georef:
    epsg: int
    x0: float          # upper-left corner of the mosaic
    y0: float
    pixel_m: float


def tile_patches(dataset: Path, manifest: dict[str, Any], split: str, tile: str) -> list[tuple[str, str, int]]:
    """(name, shard file, index in shard) of the tile's patches in ``split`` (``all``: every split)."""
    if split != "all" and split not in manifest["splits"]:
        raise JeopardaError(f"{dataset}: no split {split!r} (has {', '.join(manifest['splits'])}, or all)")
    found, tiles = [], set()
    chosen = manifest["splits"] if split == "all" else [split]
    for entry in (e for s in chosen for e in manifest["splits"][s]["shards"]):
        with ShardReader(dataset / entry["file"]) as shard:
            for i, name in enumerate(shard.names):
                tiles.add(tile_of(name))
                if tile_of(name) == tile:
                    found.append((name, entry["file"], i))
    if not found:
        some = ", ".join(sorted(tiles)[:5])
        where = "any split" if split == "all" else f"the {split} split"
        raise JeopardaError(f"{dataset}: tile {tile} has no patch in {where} (tiles there: {some}"
                            + (", ..." if len(tiles) > 5 else "") + ")")
    return found


def grid_of(name: str) -> tuple[int, int]:
    col, row = name.rsplit("_", 2)[1:]
    return int(col), int(row)


def georef(manifest: dict[str, Any], name: str, cols0: int, rows0: int) -> Georef:
    """CRS and mosaic origin from the source archive's GeoTIFF of one patch."""
    source = Path(manifest.get("source", {}).get("path", ""))
    candidates = [source / S2_DIR / tile_of(name) / name / f"{name}_B02.tif", map_path(source / MAPS_DIR, name)]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise JeopardaError(f"{source}: georeferencing needs the source archive's GeoTIFFs of {name} "
                            f"({S2_DIR}/ or {MAPS_DIR}/); the shards hold no coordinates")
    try:
        epsg, x, y = read_origin(path)
    except TiffReadError as exc:
        raise JeopardaError(f"{path}: {exc}") from None
    col, row = grid_of(name)
    return Georef(epsg, x - (col - cols0) * PATCH_METRES, y + (row - rows0) * PATCH_METRES, 10.0)


@torch.no_grad()
def label_mosaic(model: torch.nn.Module, image: torch.Tensor, window: int, overlap: int,
                 accel: Accelerator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Class index and its probability per pixel (on the host); in windows when ``window`` > 0.
    The model runs on ``accel`` (the CPU when None): each window crosses to it and its answer back."""
    accel = accel or Accelerator()
    c, h, w = image.shape

    def infer(part: torch.Tensor, pinned: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        # windows (bounded) cross pinned; a whole mosaic as a plain copy, not kept in pinned memory
        x = accel.to_device(part.contiguous()) if pinned else part.to(accel.device)
        probs = torch.softmax(model(x[None]).float(), dim=1)[0]
        p, k = probs.max(0)
        return p.cpu(), k.cpu()

    if not window or (h <= window and w <= window):
        best, cls = infer(image, pinned=False)
        return cls, best
    cls = torch.empty((h, w), dtype=torch.long)
    best = torch.empty((h, w))
    step = window - 2 * overlap
    for y in range(0, h, step):
        for x in range(0, w, step):
            y0, x0 = max(0, y - overlap), max(0, x - overlap)
            y1, x1 = min(h, y + step + overlap), min(w, x + step + overlap)
            p, k = infer(image[:, y0:y1, x0:x1])
            ys, xs = y - y0, x - x0
            ye, xe = min(step, h - y), min(step, w - x)
            cls[y:y + ye, x:x + xe] = k[ys:ys + ye, xs:xs + xe]
            best[y:y + ye, x:x + xe] = p[ys:ys + ye, xs:xs + xe]
    return cls, best


def predict_tile(model: torch.nn.Module, dataset: Path, split: str, tile: str, out: Path, window: int = 0,
                 overlap: int = 32, probabilities: bool = False, max_pixels: int = 50_000_000,
                 bands_spec: str = "", accel: Accelerator | None = None) -> dict[str, Any]:
    """Write the tile's class map (and quick look); returns a summary. ``bands_spec`` is the
    training run's ``data.bands``: the same channels, normalised the same way, reach the model."""
    manifest = read_manifest(dataset)
    if manifest.get("dataset") != "bigearthnet-v2":
        raise JeopardaError(f"{dataset}: predict labels BigEarthNet v2.0 tiles (patch names carry the tile grid); "
                            f"this data set is {manifest.get('dataset')}")
    if window and window <= 2 * overlap:
        raise JeopardaError(f"--window {window} must be larger than twice the overlap ({overlap})")
    stride = getattr(model, "stride", 1)  # the FCNs' output stride (a plain Conv2d's is a tuple)
    stride = stride if isinstance(stride, int) else 1
    if window and (window % stride or overlap % stride):
        raise JeopardaError(f"--window {window} and --overlap {overlap} must be multiples of the model's "
                            f"output stride ({stride}): its inputs must be")
    bands = choose_bands(bands_spec, manifest["bands"], bool(manifest.get("s1_bands")), str(dataset))
    mean, inv, s1_mean, s1_inv = normalisers(manifest, bands, dataset)
    optical = bands.optical if bands.optical is not None else list(range(len(manifest["bands"])))
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    if first.in_channels != len(bands.names):
        raise JeopardaError(f"{dataset}: the model takes {first.in_channels} channels but data.bands "
                            f"{bands_spec or '(all)'} gives {len(bands.names)} here ({', '.join(bands.names)})")
    patches = tile_patches(dataset, manifest, split, tile)
    grid = [grid_of(name) for name, _, _ in patches]
    cols0, rows0 = min(c for c, _ in grid), min(r for _, r in grid)
    h_px, w_px = [int(s) for s in manifest["size"]]
    height = (max(r for _, r in grid) - rows0 + 1) * h_px
    width = (max(c for c, _ in grid) - cols0 + 1) * w_px
    if not window and height * width > max_pixels:
        raise JeopardaError(f"tile {tile}: a {width}x{height} mosaic is larger than one pass should take "
                            f"({max_pixels:,} pixels); give --window (e.g. 1024)")
    geo = georef(manifest, patches[0][0], cols0, rows0)
    mosaic = np.zeros((len(bands.names), height, width), np.float32)
    covered = np.zeros((height, width), bool)
    reference = np.full((height, width), NO_CLASS, np.uint8)
    readers: dict[str, ShardReader] = {}
    try:
        for (_, file, index), (col, row) in zip(patches, grid, strict=True):
            if file not in readers:
                readers[file] = ShardReader(dataset / file)
            reader = readers[file]
            y, x = (row - rows0) * h_px, (col - cols0) * w_px
            image = reader.read_images(index, index + 1)[0][optical]
            mosaic[:len(optical), y:y + h_px, x:x + w_px] = (image - mean) * inv
            if bands.s1:
                s1 = reader.read_s1(index, index + 1)[0][bands.s1]
                mosaic[len(optical):, y:y + h_px, x:x + w_px] = (s1 - s1_mean) * s1_inv
            covered[y:y + h_px, x:x + w_px] = True
            if reader.has_masks:
                reference[y:y + h_px, x:x + w_px] = reader.read_masks(index, index + 1)[0]
    finally:
        for reader in readers.values():
            reader.close()
    accel = accel or Accelerator()
    model.to(accel.device).eval()
    cls, best = label_mosaic(model, torch.from_numpy(mosaic), window, overlap, accel)
    classes = cls.numpy().astype(np.uint8)
    classes[~covered] = NO_CLASS
    out.parent.mkdir(parents=True, exist_ok=True)
    write_band(out, classes, origin=(geo.x0, geo.y0), pixel_size_m=geo.pixel_m, epsg=geo.epsg, dtype=np.uint8,
                nodata=NO_CLASS)
    written = [out]
    if probabilities:
        prob = best.numpy().astype(np.float32)
        prob[~covered] = np.nan
        path = out.with_name(out.stem + "-probability.tif")
        write_band(path, prob, origin=(geo.x0, geo.y0), pixel_size_m=geo.pixel_m, epsg=geo.epsg, dtype=np.float32,
                   nodata=float("nan"))
        written.append(path)
    notes = []
    try:
        written.append(quicklook(classes, manifest["classes"], out.with_suffix(".png"), tile))
    except ImportError:  # a bare GPU image: the map is what matters
        notes.append("no PNG quick look: matplotlib is not installed (pip install matplotlib)")
    labelled = reference != NO_CLASS
    agreement = float((classes[labelled] == reference[labelled]).mean()) if labelled.any() else None
    return {"tile": tile, "split": split, "patches": len(patches), "width": width, "height": height,
            "epsg": geo.epsg, "origin": [geo.x0, geo.y0], "agreement": agreement,
            "labelled_pixels": int(labelled.sum()), "files": [str(p) for p in written],
            "device": accel.kind, "device_name": accel.name, "notes": notes}


def quicklook(classes: np.ndarray, names: list[str], path: Path, tile: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch as LegendPatch

    colours = plt.get_cmap("tab20")(np.arange(len(names)) % 20)
    rgb = np.ones((*classes.shape, 3))
    for k in range(len(names)):
        rgb[classes == k] = colours[k][:3]
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=100)
    ax.imshow(rgb, interpolation="nearest")
    ax.set_title(f"{tile}: predicted classes (white: no patch or no class)", fontsize=9)
    ax.set_axis_off()
    present = sorted(set(np.unique(classes).tolist()) - {NO_CLASS})
    ax.legend(handles=[LegendPatch(color=colours[k], label=names[k][:40]) for k in present],
              loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    with writing(path, text=False) as fh:  # a link at path is refused, never followed
        fig.savefig(fh, format="png")
    plt.close(fig)
    return path
