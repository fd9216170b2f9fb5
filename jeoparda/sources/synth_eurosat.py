"""A synthetic archive in the EuroSAT_MS layout, with learnable classes.

Each class has a fixed scene recipe: a background land cover and, for some classes, a second
cover drawn as a class-specific shape (a road across fields, a river band, building blocks, tree
rows), with per-class spectral signatures (13 bands, B10 cirrus low) and textures. Images are
64x64, written as EuroSAT ships them: one GeoTIFF per image, 13 pixel-interleaved uint16 bands in
the file order (B8A last), ``EuroSAT_MS/<Class>/<Class>_<n>.tif``. Class sizes follow the real
data set's proportions. The recipes do not depend on ``seed``; the seed picks the images, each
from its own generator, so ``--workers`` processes render them to the same files.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from jeoparda.sentinel2 import BAND_NAMES13
from jeoparda.sources.eurosat import CLASS_SIZES, CLASSES, FILE_BANDS, SIZE
from jeoparda.sources.synth import _FAMILIES, patch_rng
from jeoparda.sources.synth_pool import chunked, ordered_map

_WORLD_SEED = 20190401
#: class -> (background family, foreground family or None, shape of the foreground)
_RECIPES = {
    "AnnualCrop": ("crop", "bare", "stripes"), "Forest": ("forest", None, ""),
    "HerbaceousVegetation": ("shrub", None, ""), "Highway": ("crop", "artificial", "road"),
    "Industrial": ("artificial", "bare", "blocks"), "Pasture": ("crop", None, ""),
    "PermanentCrop": ("shrub", "forest", "rows"), "Residential": ("artificial", "forest", "dots"),
    "River": ("forest", "water", "river"), "SeaLake": ("water", None, ""),
}


def _signatures() -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Per class 13-band signatures (canonical order) of its background and foreground."""
    rng = np.random.default_rng(_WORLD_SEED)

    def spectrum(family: str) -> np.ndarray:
        twelve = np.array(_FAMILIES[family], np.float64) * rng.uniform(0.7, 1.3, 12)
        return np.insert(twelve, 10, 15.0)  # B10 (cirrus) between B09 and B11: nearly dark

    return {c: (spectrum(bg), spectrum(fg) if fg else None) for c, (bg, fg, _) in _RECIPES.items()}


def _shape(kind: str, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    if kind == "stripes":
        return np.sin(2 * np.pi * 6 * u + rng.uniform(0, 6.3)) > 0.3
    if kind == "road":
        return np.abs(u - rng.uniform(0.3, 0.7)) < 0.04
    if kind == "river":
        return np.abs(u - 0.5 - 0.1 * np.sin(2 * np.pi * 2 * (xx * np.sin(angle) - yy * np.cos(angle)))) < 0.1
    if kind == "blocks":
        return (np.sin(2 * np.pi * 3 * xx + rng.uniform(0, 6.3)) * np.sin(2 * np.pi * 3 * yy)) > 0.2
    if kind == "rows":
        return np.sin(2 * np.pi * 14 * u) > 0.5
    if kind == "dots":
        return (np.sin(2 * np.pi * 9 * xx) * np.sin(2 * np.pi * 9 * yy + rng.uniform(0, 6.3))) > 0.6
    return np.zeros((SIZE, SIZE), bool)


def render(cls: str, rng: np.random.Generator, signatures: dict) -> np.ndarray:
    """(13, 64, 64) reflectance x 10000 of one image of ``cls``, canonical band order."""
    background, foreground = signatures[cls]
    image = np.broadcast_to(background[:, None, None] * rng.uniform(0.9, 1.1), (13, SIZE, SIZE)).copy()
    if foreground is not None:
        mask = _shape(_RECIPES[cls][2], rng)
        image[:, mask] = (foreground * rng.uniform(0.9, 1.1))[:, None]
    image *= 1 + 0.04 * rng.standard_normal((1, SIZE, SIZE))
    return np.clip(np.rint(image), 0, 65535)


def _write_chunk(root: Path, seed: int, items: Sequence[tuple[int, str, int]]) -> int:
    """Render and write the images ``(index, class, n)`` of one chunk (in a worker or here)."""
    signatures = _signatures()
    to_file = [BAND_NAMES13.index(b) for b in FILE_BANDS]
    for index, cls, n in items:
        image = render(cls, patch_rng(seed, index), signatures)[to_file].transpose(1, 2, 0).astype(np.uint16)
        tifffile.imwrite(root / cls / f"{cls}_{n}.tif", image, photometric="minisblack",
                         planarconfig="contig", metadata=None)
    return len(items)


def synthesize_eurosat(out: Path, images: int, seed: int = 0, progress: Callable[[int], Any] | None = None,
                       workers: int = 1) -> dict[str, list[str]]:
    """Write ``images`` images under ``out/EuroSAT_MS``; returns {"all": names} (no split lists:
    convert's class-stratified split applies, as for the real download). ``workers`` processes
    render and write them (1: this one); each image has its own generator, so the files are the
    same whatever ``workers``."""
    if images < len(CLASSES):
        raise ValueError(f"images must be at least {len(CLASSES)} (one per class)")
    root = Path(out) / "EuroSAT_MS"
    share = np.floor(np.array(CLASS_SIZES) / sum(CLASS_SIZES) * images).astype(int)
    share[: images - share.sum()] += 1
    items = [(cls, n) for cls, count in zip(CLASSES, share, strict=True) for n in range(1, count + 1)]
    for cls in CLASSES:
        (root / cls).mkdir(parents=True, exist_ok=True)
    work = [(i, cls, n) for i, (cls, n) in enumerate(items)]
    for done in ordered_map(partial(_write_chunk, root, seed), chunked(work), workers):
        if progress is not None:
            progress(done)
    return {"all": [f"{cls}_{n}" for cls, n in items]}
