"""A single-band Cloud-Optimized GeoTIFF written tile by tile, in bounded memory.

The layout is GDAL's COG driver's (docs/inference.md): the 8-byte TIFF header, GDAL's structural
metadata ("ghost" text that tells readers the layout), every IFD (full resolution, then each
overview, halving until the image fits in one tile), then the tiles: the smallest overview's first,
full resolution last, each level row by row, each tile preceded by its size (4 bytes) and followed
by its last 4 bytes repeated. Tiles are 256 x 256, deflate-compressed; edge tiles are padded with
no-data. Overviews are decimated (nearest): a class map keeps only classes that exist.

Pixels come from ``rows(first, step, count)``: the full-resolution rows ``first, first + step, ...``
(``count`` of them), so only one row of tiles of one level is in memory at a time. The file is
written under a temporary name and renamed when complete: a map is there whole or not at all.
"""
from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jeoparda.errors import JeopardaError
from jeoparda.safe_files import open_write, replacing

TILE = 256
RowSource = Callable[[int, int, int], np.ndarray]

_GHOST = ("LAYOUT=IFDS_BEFORE_DATA\nBLOCK_ORDER=ROW_MAJOR\nBLOCK_LEADER=SIZE_AS_UINT4\n"
          "BLOCK_TRAILER=LAST_4_BYTES_REPEATED\nKNOWN_INCOMPATIBLE_EDITION=NO\n ")
_SHORT, _LONG, _ASCII, _DOUBLE = 3, 4, 2, 12
_SIZES = {_SHORT: 2, _LONG: 4, _ASCII: 1, _DOUBLE: 8}
_CLASSIC_LIMIT = 2 ** 32 - 1


@dataclass(frozen=True)
class Georef:
    """Where a north-up raster lies: projected CRS (EPSG code), upper-left corner, pixel size."""
    epsg: int
    x0: float
    y0: float
    pixel_m: float


@dataclass(frozen=True)
class Raster:
    """A single-band raster to write: its size, sample type, no-data value and place."""
    width: int
    height: int
    dtype: np.dtype
    nodata: float
    georef: Georef

    def levels(self) -> list[tuple[int, int]]:
        """(width, height) of full resolution and of each overview, halving until one tile holds it."""
        sizes = [(self.width, self.height)]
        while max(sizes[-1]) > TILE:
            step = 2 ** len(sizes)
            sizes.append((math.ceil(self.width / step), math.ceil(self.height / step)))
        return sizes

    def bound_bytes(self) -> int:
        """An upper bound of the file's size: every tile stored uncompressed, plus the directories."""
        tiles = sum(math.ceil(w / TILE) * math.ceil(h / TILE) for w, h in self.levels())
        return tiles * (TILE * TILE * np.dtype(self.dtype).itemsize + 64 + 8) + 4096


def overview_levels(width: int, height: int) -> int:
    """How many overviews a ``width`` x ``height`` map gets."""
    return len(Raster(width, height, np.dtype(np.uint8), 0, Georef(0, 0, 0, 1)).levels()) - 1


def write_cog(path: Path, raster: Raster, rows: RowSource, level: int = 6) -> None:
    """Write ``raster`` to ``path`` as a COG, taking its pixels from ``rows``."""
    if raster.bound_bytes() > _CLASSIC_LIMIT:
        raise JeopardaError(f"{path}: a {raster.width}x{raster.height} {raster.dtype} map may exceed the 4 GB "
                            "of a classic TIFF; label fewer patches at once")
    sizes = raster.levels()
    counts = [math.ceil(w / TILE) * math.ceil(h / TILE) for w, h in sizes]
    text = _GHOST + " " * ((8 + 43 + len(_GHOST)) % 2)  # the first IFD on a word boundary, as TIFF asks
    ghost = f"GDAL_STRUCTURAL_METADATA_SIZE={len(text):06d} bytes\n{text}".encode()
    blank = [[0] * n for n in counts]
    first_ifd = 8 + len(ghost)
    head = _directories(raster, sizes, blank, blank, first_ifd)
    with replacing(path) as tmp, os.fdopen(open_write(tmp), "wb") as fh:
        fh.write(b"\0" * (first_ifd + len(head)))
        offsets = [[0] * n for n in counts]
        lengths = [[0] * n for n in counts]
        for index in reversed(range(len(sizes))):  # smallest overview first, full resolution last
            for k, data in enumerate(_tiles(raster, sizes[index], 2 ** index, rows, level)):
                fh.write(struct.pack("<I", len(data)))
                offsets[index][k], lengths[index][k] = fh.tell(), len(data)
                fh.write(data)
                fh.write(data[-4:])
        fh.seek(0)
        fh.write(b"II*\0" + struct.pack("<I", first_ifd) + ghost)
        fh.write(_directories(raster, sizes, offsets, lengths, first_ifd))
        fh.flush()
        os.fsync(fh.fileno())


def _tiles(raster: Raster, size: tuple[int, int], step: int, rows: RowSource, level: int) -> Iterator[bytes]:
    """The compressed tiles of one level, row by row."""
    width, height = size
    for top in range(0, height, TILE):
        count = min(TILE, height - top)
        band = np.full((TILE, math.ceil(width / TILE) * TILE), raster.nodata, raster.dtype)
        band[:count, :width] = rows(top * step, step, count)[:, ::step]
        for left in range(0, width, TILE):
            yield zlib.compress(np.ascontiguousarray(band[:, left:left + TILE]).tobytes(), level)


def _directories(raster: Raster, sizes: list[tuple[int, int]], offsets: list[list[int]],
                 lengths: list[list[int]], start: int) -> bytes:
    """Every level's IFD with its out-of-line values, laid out from file offset ``start``."""
    out = bytearray()
    for index, (width, height) in enumerate(sizes):
        tags = _tags(raster, index, width, height, offsets[index], lengths[index])
        here = start + len(out)
        values_at = here + 2 + 12 * len(tags) + 4
        entries, values = bytearray(struct.pack("<H", len(tags))), bytearray()
        for tag, kind, data in tags:
            count = len(data) // _SIZES[kind]
            if len(data) <= 4:
                entries += struct.pack("<HHI", tag, kind, count) + data.ljust(4, b"\0")
            else:
                entries += struct.pack("<HHII", tag, kind, count, values_at + len(values))
                values += data + b"\0" * (len(data) % 2)
        last = index == len(sizes) - 1
        following = 0 if last else values_at + len(values)
        entries += struct.pack("<I", following)
        out += entries + values
    return bytes(out)


def _tags(raster: Raster, index: int, width: int, height: int, offsets: list[int],
          lengths: list[int]) -> list[tuple[int, int, bytes]]:
    """(tag, type, packed values) of one IFD, in ascending tag order as TIFF requires."""
    dtype = np.dtype(raster.dtype)
    short = lambda *v: struct.pack(f"<{len(v)}H", *v)  # noqa: E731
    long_ = lambda *v: struct.pack(f"<{len(v)}I", *v)  # noqa: E731
    nodata = "nan" if np.isnan(raster.nodata) else f"{raster.nodata:g}"
    tags: list[tuple[int, int, bytes]] = [
        (254, _LONG, long_(0 if index == 0 else 1)),            # NewSubfileType: overview
        (256, _LONG, long_(width)), (257, _LONG, long_(height)),
        (258, _SHORT, short(dtype.itemsize * 8)),               # BitsPerSample
        (259, _SHORT, short(8)),                                 # Compression: deflate
        (262, _SHORT, short(1)),                                 # Photometric: min-is-black
        (277, _SHORT, short(1)),                                 # SamplesPerPixel
        (284, _SHORT, short(1)),                                 # PlanarConfiguration: contiguous
        (322, _SHORT, short(TILE)), (323, _SHORT, short(TILE)),  # TileWidth, TileLength
        (324, _LONG, long_(*offsets)), (325, _LONG, long_(*lengths)),
        (339, _SHORT, short(3 if dtype.kind == "f" else 1)),    # SampleFormat: float or unsigned
    ]
    if index == 0:
        geo = raster.georef
        keys = (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, geo.epsg)
        tags += [(33550, _DOUBLE, struct.pack("<3d", geo.pixel_m, geo.pixel_m, 0.0)),
                 (33922, _DOUBLE, struct.pack("<6d", 0.0, 0.0, 0.0, geo.x0, geo.y0, 0.0)),
                 (34735, _SHORT, short(*keys))]
    tags.append((42113, _ASCII, nodata.encode() + b"\0"))        # GDAL_NODATA
    return tags
