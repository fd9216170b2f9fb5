"""Which pixels of a tile to compute, in which windows: work follows the patches, not the tile.

A tile's patches (BigEarthNet v2.0 names ``<tile>_<col>_<row>``) lie on a grid of cells one patch
wide. The map spans the cells' bounding box; its windows lie within blocks of ``cells x cells`` grid
cells (the memory budget's size), and compute the bounding box of covered cells, halved while two
halves with their margins cost fewer pixels than the whole, with ``margin`` pixels of input
context each side (the model's receptive field; clipped at the map's edge). A block without a
patch is never computed. Crops start and end on the model's output stride (the map is zero-padded
to a multiple of it), so a window sees the grid that one pass over the whole map sees.
Windows are batched in a fixed order, whatever the number of ranks, so every rank count computes
the same batches and writes the same bytes.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jeoparda.errors import JeopardaError
from jeoparda.shards.reader import ShardReader
from jeoparda.sources.bigearthnet_v2 import tile_of


@dataclass(frozen=True)
class Patch:
    name: str
    file: str      # shard file, relative to the data set
    index: int     # position in the shard
    col: int       # grid cell
    row: int


@dataclass(frozen=True)
class Window:
    """Output rows/columns ``[y0, y1) x [x0, x1)`` and the input crop ``[cy0, cy1) x [cx0, cx1)``
    around them, in map pixels; ``cells``: the covered grid cells whose pixels it writes."""
    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int
    cells: tuple[tuple[int, int], ...]

    @property
    def crop_shape(self) -> tuple[int, int]:
        return self.cy1 - self.cy0, self.cx1 - self.cx0


@dataclass
class TilePlan:
    """One tile's patches on their grid and the map they make."""
    tile: str
    patches: list[Patch]
    patch_h: int
    patch_w: int
    cols0: int = field(init=False)
    rows0: int = field(init=False)
    height: int = field(init=False)
    width: int = field(init=False)

    def __post_init__(self) -> None:
        self.cols0 = min(p.col for p in self.patches)
        self.rows0 = min(p.row for p in self.patches)
        self.height = (max(p.row for p in self.patches) - self.rows0 + 1) * self.patch_h
        self.width = (max(p.col for p in self.patches) - self.cols0 + 1) * self.patch_w

    def cell_of(self, patch: Patch) -> tuple[int, int]:
        """(row, column) of the patch's cell counted from the map's upper-left cell."""
        return patch.row - self.rows0, patch.col - self.cols0

    def windows(self, cells: int, margin: int, stride: int) -> list[Window]:
        """Windows within blocks of ``cells x cells`` grid cells, row-major: each block's covered cells,
        split while two windows with their margins cost fewer pixels than one (scattered patches get
        a window each, patches side by side share one)."""
        blocks: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for patch in self.patches:
            r, c = self.cell_of(patch)
            blocks.setdefault((r // cells, c // cells), []).append((r, c))
        out = []
        for key in sorted(blocks):
            out += [self._window(group, margin, stride) for group in self._split(sorted(blocks[key]), margin)]
        return out

    def _cost(self, covered: list[tuple[int, int]], margin: int) -> int:
        rows = max(r for r, _ in covered) - min(r for r, _ in covered) + 1
        cols = max(c for _, c in covered) - min(c for _, c in covered) + 1
        return (rows * self.patch_h + 2 * margin) * (cols * self.patch_w + 2 * margin)

    def _split(self, covered: list[tuple[int, int]], margin: int) -> list[list[tuple[int, int]]]:
        """``covered`` as one group, or halved across its longer side where that costs fewer pixels."""
        rows = [r for r, _ in covered]
        cols = [c for _, c in covered]
        axis = 0 if max(rows) - min(rows) >= max(cols) - min(cols) else 1
        low, high = (min(rows), max(rows)) if axis == 0 else (min(cols), max(cols))
        if low == high:
            return [covered]
        middle = (low + high + 1) // 2
        first = [cell for cell in covered if cell[axis] < middle]
        second = [cell for cell in covered if cell[axis] >= middle]
        if not first or not second or \
                self._cost(first, margin) + self._cost(second, margin) >= self._cost(covered, margin):
            return [covered]
        return self._split(first, margin) + self._split(second, margin)

    def _window(self, covered: list[tuple[int, int]], margin: int, stride: int) -> Window:
        up = lambda v: -(-v // stride) * stride  # noqa: E731  (the next multiple of the stride)
        y0 = min(r for r, _ in covered) * self.patch_h
        y1 = (max(r for r, _ in covered) + 1) * self.patch_h
        x0 = min(c for _, c in covered) * self.patch_w
        x1 = (max(c for _, c in covered) + 1) * self.patch_w
        cy0, cx0 = max(0, y0 - margin) // stride * stride, max(0, x0 - margin) // stride * stride
        return Window(y0, y1, x0, x1, cy0, min(up(self.height), up(y1 + margin)), cx0,
                      min(up(self.width), up(x1 + margin)), tuple(covered))


def grid_of(name: str) -> tuple[int, int]:
    """(column, row) of a BigEarthNet v2.0 patch on its tile's grid."""
    col, row = name.rsplit("_", 2)[1:]
    return int(col), int(row)


def find_patches(dataset: Path, manifest: dict[str, Any], split: str) -> dict[str, list[Patch]]:
    """Every tile's patches in ``split`` (``all``: every split), from one pass over the shards' names."""
    if split != "all" and split not in manifest["splits"]:
        raise JeopardaError(f"{dataset}: no split {split!r} (has {', '.join(manifest['splits'])}, or all)")
    chosen = manifest["splits"] if split == "all" else [split]
    tiles: dict[str, list[Patch]] = {}
    for entry in (e for s in chosen for e in manifest["splits"][s]["shards"]):
        with ShardReader(dataset / entry["file"]) as shard:
            for i, name in enumerate(shard.names):
                col, row = grid_of(name)
                tiles.setdefault(tile_of(name), []).append(Patch(name, entry["file"], i, col, row))
    return tiles


def choose_tiles(dataset: Path, found: dict[str, list[Patch]], wanted: Iterable[str], split: str) -> list[str]:
    """The tiles asked for (``all``: every tile of the split), each refused in one line when it has no patch."""
    wanted = list(wanted)
    if wanted == ["all"]:
        return sorted(found)
    for tile in wanted:
        if tile not in found:
            some = ", ".join(sorted(found)[:5]) + (", ..." if len(found) > 5 else "")
            where = "any split" if split == "all" else f"the {split} split"
            raise JeopardaError(f"{dataset}: tile {tile} has no patch in {where} (tiles there: {some or 'none'})")
    return wanted


def cells_for(budget_bytes: float, bytes_per_pixel: float, margin: int, patch_side: int) -> tuple[int, int]:
    """Cells per window side and the largest crop (pixels) that ``budget_bytes`` allows, or one line
    saying how much one patch with its context needs."""
    crop_pixels = budget_bytes / bytes_per_pixel
    side = math.isqrt(int(crop_pixels))
    cells = (side - 2 * margin) // patch_side
    if cells < 1:
        need = (patch_side + 2 * margin) ** 2 * bytes_per_pixel
        raise JeopardaError(f"--max-memory {budget_bytes / 2**20:.0f} MiB cannot hold one patch with its context "
                            f"({patch_side + 2 * margin} px square needs {math.ceil(need / 2**20)} MiB)")
    return cells, int(crop_pixels)


def batches(windows: list[Window], crop_pixels: int) -> list[list[Window]]:
    """Windows grouped into model calls: equal crop shapes together, at most ``crop_pixels`` per call,
    in a fixed order (independent of the number of ranks)."""
    by_shape: dict[tuple[int, int], list[Window]] = {}
    for window in windows:
        by_shape.setdefault(window.crop_shape, []).append(window)
    out: list[list[Window]] = []
    for shape in sorted(by_shape):
        per_call = max(1, crop_pixels // (shape[0] * shape[1]))
        group = by_shape[shape]
        out += [group[i:i + per_call] for i in range(0, len(group), per_call)]
    return out
