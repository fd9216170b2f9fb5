"""``jeoparda predict``: whole Sentinel-2 tiles labelled by a dense model, as Cloud-Optimized GeoTIFFs.

A tile's patches (BigEarthNet v2.0 ids ``<tile>_<col>_<row>``) are placed on their grid; only the
windows that hold patches are computed (:mod:`jeoparda.inference.plan`), in batches on the device,
each with the context its receptive field needs, sized to a memory budget (``max_memory``). Every
rank takes every ``world``-th batch and writes its rows into the map's scratch files; one rank then
streams them into a tiled, compressed GeoTIFF with overviews (:mod:`jeoparda.inference.cog`): the
class map (uint8, 255 where no patch lies; CRS and origin read from the source archive's GeoTIFFs,
the shards hold no coordinates), with ``probabilities`` the winning class's probability (float32,
NaN off-patch), and a quick-look PNG made from an overview. Several tiles also get a VRT mosaic per
coordinate system. Memory is bounded by the budget, not by the tile (docs/inference.md).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.session import Comm, Solo, root_decides
from jeoparda.errors import JeopardaError
from jeoparda.inference.budget import Layout, Options, check_space, layout, map_bytes, size_text
from jeoparda.inference.cog import Georef, Raster, overview_levels, write_cog
from jeoparda.inference.plan import TilePlan, Window, batches, choose_tiles, find_patches, grid_of
from jeoparda.inference.quicklook import quicklook_from_overview
from jeoparda.inference.scratch import Scratch
from jeoparda.inference.vrt import write_vrts
from jeoparda.inference.windows import Channels, CropReader, channels, label_batch
from jeoparda.labels import NO_CLASS
from jeoparda.progress import Progress
from jeoparda.shards.manifest import read_manifest
from jeoparda.sources.bigearthnet_v2 import MAPS_DIR, S2_DIR, map_path, tile_of
from jeoparda.sources.geotiff import TiffReadError, read_origin

__all__ = ["Options", "georef", "predict"]

PATCH_METRES = 1200


def georef(manifest: dict[str, Any], name: str, cols0: int, rows0: int) -> Georef:
    """CRS and map origin from the source archive's GeoTIFF of one patch."""
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


def predict(model: torch.nn.Module, dataset: Path, tiles: list[str], out: Path, opts: Options | None = None,
            accel: Accelerator | None = None, comm: Comm | None = None, one_file: bool = True,
            say: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Label ``tiles`` (``["all"]``: every tile of the split); ``one_file``: ``out`` is the map of the
    single tile, else the folder of ``<tile>.tif`` maps. Returns a summary per tile (rank 0; others: []);
    ``say`` hears, on rank 0, what each tile will take before its work starts.
    Rank 0 checks everything that can be refused and decides the windows before any rank works; every
    rank then cuts the same windows."""
    opts, accel, comm = opts or Options(), accel or Accelerator(), comm or Solo()
    prepared: list[Any] = []

    def prepare() -> tuple[dict[str, Any], Channels, list[TilePlan], list[Path]]:
        if not prepared:
            prepared.extend(_prepare(model, dataset, tiles, out, opts, one_file))
        manifest, chans, plans, targets = prepared
        return manifest, chans, plans, targets

    def decide() -> tuple[Layout, list[Georef]]:
        manifest, chans, plans, targets = prepare()
        lay = layout(model, chans.count, max(plans[0].patch_h, plans[0].patch_w), opts)
        geos = [georef(manifest, plan.patches[0].name, plan.cols0, plan.rows0) for plan in plans]
        check_space(plans, targets, opts.probabilities)
        return lay, geos

    lay, geos = root_decides(comm, decide)
    world = len(comm.gather_objects(comm.rank))
    manifest, chans, plans, targets = prepare()
    model.to(accel.device).eval()
    summaries = []
    for plan, target, geo in zip(plans, targets, geos, strict=True):
        if say is not None and comm.rank == 0:
            scratch = Scratch(target, plan.height, plan.width, opts.probabilities).bytes_needed()
            say(f"{plan.tile}: {len(plan.patches)} patches on a {plan.width}x{plan.height} map (files up to "
                f"{size_text(map_bytes(plan, opts.probabilities))}, scratch {size_text(scratch)} while it is "
                f"made), margin {lay.margin} px, on {accel.name}")
        summary = label_tile(model, dataset, manifest, plan, target, geo, chans, lay, opts, accel, comm, world)
        if comm.rank == 0:
            summaries.append(summary)
    if comm.rank == 0 and not one_file:
        vrts = write_vrts(out, [(Path(s["files"][0]), s) for s in summaries])
        for s in summaries:
            s["mosaics"] = [str(p) for p in vrts]
    return summaries


def _prepare(model: torch.nn.Module, dataset: Path, tiles: list[str], out: Path, opts: Options,
             one_file: bool) -> tuple[dict[str, Any], Channels, list[TilePlan], list[Path]]:
    """The data set's manifest and channels, each chosen tile's plan and map path; one line when the
    data set, the model's channels or a tile does not fit."""
    manifest = read_manifest(dataset)
    if manifest.get("dataset") != "bigearthnet-v2":
        raise JeopardaError(f"{dataset}: predict labels BigEarthNet v2.0 tiles (patch names carry the tile grid); "
                            f"this data set is {manifest.get('dataset')}")
    chans = channels(dataset, manifest, opts.bands_spec)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    if first.in_channels != chans.count:
        raise JeopardaError(f"{dataset}: the model takes {first.in_channels} channels but data.bands "
                            f"{opts.bands_spec or '(all)'} gives {chans.count} here ({', '.join(chans.names)})")
    found = find_patches(dataset, manifest, opts.split)
    h_px, w_px = (int(s) for s in manifest["size"])
    plans = [TilePlan(tile, found[tile], h_px, w_px) for tile in choose_tiles(dataset, found, tiles, opts.split)]
    return manifest, chans, plans, [out if one_file else out / f"{plan.tile}.tif" for plan in plans]


def label_tile(model: torch.nn.Module, dataset: Path, manifest: dict[str, Any], plan: TilePlan, target: Path,
               geo: Georef, chans: Channels, lay: Layout, opts: Options, accel: Accelerator,
               comm: Comm, world: int) -> dict[str, Any]:
    started = time.perf_counter()
    windows = plan.windows(lay.cells, lay.margin, lay.stride)
    groups = batches(windows, lay.crop_pixels)
    scratch = Scratch(target, plan.height, plan.width, opts.probabilities)
    if comm.rank == 0:
        scratch.create()
    try:
        comm.barrier()
        scratch.open()
        counts = compute(model, dataset, plan, groups[comm.rank::world], chans, opts, accel, comm, scratch)
        if comm.rank == 0:
            scratch.open()  # after every rank's rows are on disk (another node's too)
            summary = write_maps(manifest, plan, target, geo, scratch, opts)
    finally:
        scratch.close()
        if comm.rank == 0:
            scratch.remove()  # written, or failed: the scratch files go either way
    comm.barrier()
    if comm.rank != 0:
        return {}
    agree, labelled = (sum(c[i] for c in counts) for i in (0, 1))
    computed = sum((w.cy1 - w.cy0) * (w.cx1 - w.cx0) for w in windows)
    summary.update(split=opts.split, agreement=agree / labelled if labelled else None, labelled_pixels=labelled,
                   device=accel.kind, device_name=accel.name, windows=len(windows), batches=len(groups),
                   margin=lay.margin, computed_pixels=computed, seconds=round(time.perf_counter() - started, 3))
    return summary


def compute(model: torch.nn.Module, dataset: Path, plan: TilePlan, mine: list[list[Window]], chans: Channels,
            opts: Options, accel: Accelerator, comm: Comm, scratch: Scratch) -> list[tuple[int, int]]:
    """This rank's batches into the scratch files; every rank's (agreeing, labelled) pixels."""
    crops = CropReader(dataset, plan, chans)
    bar = Progress(len(mine), f"predict {plan.tile}", unit="batches") if comm.rank == 0 else None
    agree = labelled = 0
    try:
        for group in mine:
            classes, best = label_batch(model, np.stack([crops.crop(w) for w in group]), accel, opts.bf16)
            for w, cls, prob in zip(group, classes, best, strict=True):
                a, n = keep(w, cls, prob, plan, crops, scratch)
                agree, labelled = agree + a, labelled + n
            if bar:
                bar.update()
    finally:
        crops.close()
        if bar:
            bar.close()
    scratch.sync_close()  # on disk before the gather: rank 0 reads them next, maybe from another node
    return comm.gather_objects((agree, labelled))


def keep(w: Window, cls: np.ndarray, prob: np.ndarray, plan: TilePlan, crops: CropReader,
         scratch: Scratch) -> tuple[int, int]:
    """Write a window's covered cells into the scratch; (agreeing, labelled) pixels against the reference."""
    ys, xs = slice(w.y0 - w.cy0, w.y1 - w.cy0), slice(w.x0 - w.cx0, w.x1 - w.cx0)
    classes = cls[ys, xs].astype(np.uint8) + 1
    covered = np.zeros(classes.shape, bool)
    agree = labelled = 0
    for r, c in w.cells:
        cell = (slice(r * plan.patch_h - w.y0, (r + 1) * plan.patch_h - w.y0),
                slice(c * plan.patch_w - w.x0, (c + 1) * plan.patch_w - w.x0))
        covered[cell] = True
        reference = crops.reference((r, c))
        if reference is not None:
            known = reference != NO_CLASS
            agree += int((classes[cell][known] - 1 == reference[known]).sum())
            labelled += int(known.sum())
    classes[~covered] = 0
    scratch.write(w.y0, w.x0, classes, prob[ys, xs])
    return agree, labelled


def write_maps(manifest: dict[str, Any], plan: TilePlan, target: Path, geo: Georef, scratch: Scratch,
               opts: Options) -> dict[str, Any]:
    """The class map (and probabilities) as COGs from the scratch files, and the quick look."""
    write_cog(target, Raster(plan.width, plan.height, np.dtype(np.uint8), NO_CLASS, geo), scratch.class_rows)
    written, notes = [target], []
    if opts.probabilities:
        path = target.with_name(target.stem + "-probability.tif")
        write_cog(path, Raster(plan.width, plan.height, np.dtype(np.float32), float("nan"), geo),
                  scratch.probability_rows)
        written.append(path)
    try:
        written.append(quicklook_from_overview(target, manifest["classes"], target.with_suffix(".png"), plan.tile))
    except ImportError:  # a bare GPU image: the map is what matters
        notes.append("no PNG quick look: matplotlib is not installed (pip install matplotlib)")
    return {"tile": plan.tile, "patches": len(plan.patches), "width": plan.width, "height": plan.height,
            "epsg": geo.epsg, "origin": [geo.x0, geo.y0], "overviews": overview_levels(plan.width, plan.height),
            "files": [str(p) for p in written], "notes": notes}
