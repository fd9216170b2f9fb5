"""A fast reader for the simple GeoTIFFs the archives hold: strips of one band (BigEarthNet) or of
pixel-interleaved bands (EuroSAT), uncompressed or deflate, with or without horizontal differencing.

Opening a file with tifffile costs about 0.2-0.5 ms of Python work before any pixel is read; a
BigEarthNet v2.0 patch is 13-15 files, so that overhead alone caps conversion at a few hundred
patches per second. This reader parses the first IFD with ``struct`` and decodes the strips
directly. Anything else (tiles, LZW, BigTIFF, several samples, bit depths other than 8/16/32/64)
returns None and the caller falls back to tifffile, so every TIFF still reads.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

_TYPES = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}  # SHORT, LONG, LONG8 (values we need)
_WIDTH, _LENGTH, _BITS, _COMPRESSION = 256, 257, 258, 259
_OFFSETS, _SAMPLES, _ROWS, _COUNTS, _PLANAR, _PREDICTOR, _FORMAT = 273, 277, 278, 279, 284, 317, 339
_TILE_WIDTH = 322
_DTYPES = {(1, 8): "u1", (1, 16): "u2", (1, 32): "u4", (2, 8): "i1", (2, 16): "i2", (2, 32): "i4",
           (3, 32): "f4", (3, 64): "f8"}


def _tags(data: bytes, order: str) -> dict[int, tuple[int, ...]] | None:
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    if ifd + 2 > len(data):
        return None
    (count,) = struct.unpack_from(order + "H", data, ifd)
    tags: dict[int, tuple[int, ...]] = {}
    for i in range(count):
        pos = ifd + 2 + 12 * i
        if pos + 12 > len(data):
            return None
        tag, kind, n = struct.unpack_from(order + "HHI", data, pos)
        if kind not in _TYPES:
            continue
        fmt, size = _TYPES[kind]
        where = pos + 8 if n * size <= 4 else struct.unpack_from(order + "I", data, pos + 8)[0]
        if where + n * size > len(data):
            return None
        tags[tag] = struct.unpack_from(f"{order}{n}{fmt}", data, where)
    return tags


def decode(data: bytes) -> np.ndarray | None:
    """The first image of a TIFF held in ``data`` as an (H, W) array, or (H, W, S) for S
    pixel-interleaved samples; None if not a simple case (or damaged: tifffile then says what is
    wrong)."""
    if len(data) < 8 or data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    try:
        return _decode(data)
    except (struct.error, zlib.error, ValueError):
        return None


def _decode(data: bytes) -> np.ndarray | None:
    order = "<" if data[:2] == b"II" else ">"
    tags = _tags(data, order)
    if tags is None or _TILE_WIDTH in tags or not {_WIDTH, _LENGTH, _OFFSETS, _COUNTS} <= tags.keys():
        return None
    samples = tags.get(_SAMPLES, (1,))[0]
    if samples > 1 and tags.get(_PLANAR, (1,))[0] != 1:  # only pixel-interleaved ("chunky") samples
        return None
    bits = tags.get(_BITS, (1,))
    if len(set(bits)) != 1:
        return None
    kind = _DTYPES.get((tags.get(_FORMAT, (1,))[0], bits[0]))
    compression, predictor = tags.get(_COMPRESSION, (1,))[0], tags.get(_PREDICTOR, (1,))[0]
    if kind is None or compression not in (1, 8, 32946) or predictor not in (1, 2):
        return None
    if predictor == 2 and kind[0] == "f":
        return None
    width, height = tags[_WIDTH][0], tags[_LENGTH][0]
    dtype = np.dtype(order + kind)
    count = width * height * samples
    need = count * dtype.itemsize
    parts = []
    for offset, size in zip(tags[_OFFSETS], tags[_COUNTS], strict=False):
        if offset + size > len(data):
            return None
        strip = data[offset:offset + size]
        parts.append(zlib.decompress(strip) if compression != 1 else strip)
    raw = b"".join(parts)
    if len(raw) < need:
        return None
    native = dtype.newbyteorder("=")
    shape = (height, width) if samples == 1 else (height, width, samples)
    arr = np.frombuffer(raw, dtype, count).reshape(shape).astype(native)
    if predictor == 2:
        arr = np.cumsum(arr, axis=1, dtype=native)  # wraps, like the integer differences it undoes
    return arr
