"""Single-band GeoTIFF reading and writing (tifffile; no GDAL needed), and band validation.

BigEarthNet stores one GeoTIFF per band and patch. Files written by GDAL (the real archive) and by
tifffile (the synthetic archive) both read through :func:`read_band`. A file is read only when it is
a regular file of at most ``BAND_FILE_LIMIT`` bytes; written files never follow a link.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from jeoparda.errors import JeopardaError
from jeoparda.safe_files import writing
from jeoparda.sentinel2 import BANDS, Band
from jeoparda.sources.base import BAND_FILE_LIMIT, PatchError, read_bounded
from jeoparda.sources.tiff_strips import decode

# GeoTIFF tags (OGC GeoTIFF 1.1): pixel scale, tie point and the GeoKey directory.
_MODEL_PIXEL_SCALE = 33550
_MODEL_TIEPOINT = 33922
_GEO_KEY_DIRECTORY = 34735
_PROJECTED_CRS_KEY = 3072


class TiffReadError(Exception):
    """A band file that cannot be read as a single-band raster."""


def read_band(path: Path) -> np.ndarray:
    """Read a single-band GeoTIFF as a 2-D array (any dtype; the caller checks it)."""
    arr = read_raster(path)
    if arr.ndim != 2:
        raise TiffReadError(f"expected one band, found array of shape {tuple(arr.shape)}")
    return arr


def read_raster(path: Path) -> np.ndarray:
    """The first image of a TIFF as stored: (H, W), or (H, W, S) for pixel-interleaved samples."""
    try:
        data = read_bounded(Path(path), BAND_FILE_LIMIT)
    except FileNotFoundError:
        raise  # the caller names what is missing
    except OSError as exc:
        raise TiffReadError(f"unreadable TIFF ({exc.strerror or exc})") from None
    except JeopardaError as exc:  # not a regular file, or too large: refused unread
        raise TiffReadError(_reason(path, exc)) from None
    fast = decode(data)
    if fast is not None:
        return fast
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            arr = tif.pages[0].asarray()
    except Exception as exc:  # tifffile raises many types for damaged files
        raise TiffReadError(f"unreadable TIFF ({type(exc).__name__}: {exc})") from None
    return arr


def read_origin(path: Path) -> tuple[int, float, float]:
    """EPSG code and upper-left corner (x, y) of a north-up projected GeoTIFF, as :func:`write_band`
    and GDAL write them; :class:`TiffReadError` when the file carries no such georeference."""
    try:
        with tifffile.TiffFile(io.BytesIO(read_bounded(Path(path), BAND_FILE_LIMIT))) as tif:
            tags = tif.pages[0].tags
            tie, keys = tags.get(_MODEL_TIEPOINT), tags.get(_GEO_KEY_DIRECTORY)
            tie_value = None if tie is None else tie.value
            geokeys = None if keys is None else keys.value
    except JeopardaError as exc:
        raise TiffReadError(_reason(path, exc)) from None
    except Exception as exc:  # tifffile raises many types for damaged files
        raise TiffReadError(f"unreadable TIFF ({type(exc).__name__}: {exc})") from None
    if tie_value is None or geokeys is None:
        raise TiffReadError("not a GeoTIFF (no tie point or GeoKey directory)")
    epsg = next((geokeys[i + 3] for i in range(4, len(geokeys), 4) if geokeys[i] == _PROJECTED_CRS_KEY), None)
    if epsg is None:
        raise TiffReadError("no projected CRS code (ProjectedCSTypeGeoKey)")
    return int(epsg), float(tie_value[3]), float(tie_value[4])


def _reason(path: Path, exc: Exception) -> str:
    """The message of ``exc`` without the file name it starts with (the caller names the file)."""
    return str(exc).removeprefix(f"{path}: ")


_GDAL_NODATA = 42113


def write_band(path: Path, data: np.ndarray, *, origin: tuple[float, float],
               pixel_size_m: float, epsg: int, dtype: type = np.uint16, nodata: float | None = None) -> None:
    """Write a 2-D array as a georeferenced single-band GeoTIFF (UTM, north-up) of ``dtype``;
    ``nodata`` goes into GDAL's no-data tag, which GIS readers honour."""
    x0, y0 = origin
    geokeys = (
        1, 1, 0, 3,          # directory version, revision, minor revision, number of keys
        1024, 0, 1, 1,       # GTModelTypeGeoKey = projected
        1025, 0, 1, 1,       # GTRasterTypeGeoKey = PixelIsArea
        _PROJECTED_CRS_KEY, 0, 1, epsg,  # ProjectedCSTypeGeoKey = EPSG code
    )
    extratags: list[tuple[Any, ...]] = [
        (_MODEL_PIXEL_SCALE, "d", 3, (pixel_size_m, pixel_size_m, 0.0), True),
        (_MODEL_TIEPOINT, "d", 6, (0.0, 0.0, 0.0, x0, y0, 0.0), True),
        (_GEO_KEY_DIRECTORY, "H", len(geokeys), geokeys, True),
    ]
    if nodata is not None:
        text = "nan" if np.isnan(nodata) else f"{nodata:g}"
        extratags.append((_GDAL_NODATA, "s", 0, text, True))
    buffer = io.BytesIO()  # tifffile wants a named file or a buffer; the file is opened here
    tifffile.imwrite(buffer, np.ascontiguousarray(data, dtype=dtype),
                     photometric="minisblack", extratags=extratags, metadata=None)
    with writing(path, text=False) as fh:  # a link at path is refused, not followed
        fh.write(buffer.getbuffer())


def check_band(patch: str, file: Path, band: Band, arr: np.ndarray) -> np.ndarray:
    """``arr`` if it is a uint16 raster of the band's native size, else :class:`PatchError`."""
    expected = (band.native_size, band.native_size)
    if arr.ndim != 2 or arr.shape != expected:
        got = "x".join(str(s) for s in arr.shape)
        raise PatchError(patch, file, f"band {band.name} has size {got}, expected {expected[0]}x{expected[1]}")
    if arr.dtype != np.uint16:
        raise PatchError(patch, file, f"band {band.name} is {arr.dtype}, expected uint16")
    return arr


def read_checked(patch: str, path: Path, what: str) -> np.ndarray:
    """Read one single-band raster of a patch; a missing or unreadable file is a PatchError."""
    try:
        return read_band(path)
    except FileNotFoundError:
        raise PatchError(patch, path, f"missing {what}") from None
    except TiffReadError as exc:
        raise PatchError(patch, path, str(exc)) from None


def read_s2_bands(patch: str, path_of: Callable[[str], Path]) -> tuple[np.ndarray, ...]:
    """The 12 optical bands of a patch stored one GeoTIFF per band, validated."""
    out = []
    for band in BANDS:
        path = path_of(band.name)
        out.append(check_band(patch, path, band, read_checked(patch, path, f"band {band.name}")))
    return tuple(out)
