"""The fast strip reader equals tifffile on every file it accepts, and declines the rest."""
from pathlib import Path

import numpy as np
import pytest
import tifffile

from jeoparda.sources.geotiff import read_band
from jeoparda.sources.tiff_strips import decode
from tests.conftest import FIXTURES


@pytest.mark.parametrize("path", sorted((FIXTURES / "reben").rglob("*.tif")), ids=lambda p: p.name[-20:])
def test_real_archive_files_decode_like_tifffile(path: Path):
    fast = decode(path.read_bytes())
    assert fast is not None  # uncompressed strips, and deflate with horizontal differencing (the map)
    reference = tifffile.imread(path)
    assert fast.dtype == reference.dtype and np.array_equal(fast, reference)


CASES = [("uint16", {}), ("uint16", {"compression": "zlib"}), ("uint16", {"compression": "zlib", "predictor": 2}),
         ("int16", {"compression": "zlib", "predictor": 2}), ("float32", {}), ("float32", {"compression": "zlib"}),
         ("uint8", {"rowsperstrip": 7}), ("uint16", {"byteorder": ">"}),
         ("uint16", {"byteorder": ">", "compression": "zlib", "predictor": 2, "rowsperstrip": 13})]


@pytest.mark.parametrize("dtype,options", CASES)
def test_written_variants_decode_like_tifffile(tmp_path, dtype, options):
    rng = np.random.default_rng(0)
    data = (rng.normal(0, 3000, (45, 37)) if dtype == "float32" else rng.integers(0, 200, (45, 37))).astype(dtype)
    tifffile.imwrite(tmp_path / "x.tif", data, **options)
    fast = decode((tmp_path / "x.tif").read_bytes())
    assert fast is not None and fast.dtype == data.dtype and np.array_equal(fast, data)


def test_declines_tiles_several_samples_and_damage(tmp_path):
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    tifffile.imwrite(tmp_path / "tiled.tif", data, tile=(16, 16))
    planes = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)
    tifffile.imwrite(tmp_path / "planar.tif", planes, photometric="minisblack", planarconfig="separate")
    assert decode((tmp_path / "tiled.tif").read_bytes()) is None
    assert decode((tmp_path / "planar.tif").read_bytes()) is None  # bands one after another: tifffile's job
    assert np.array_equal(read_band(tmp_path / "tiled.tif"), data)  # tifffile reads what it declines
    tifffile.imwrite(tmp_path / "t.tif", data, compression="zlib")
    blob = (tmp_path / "t.tif").read_bytes()
    assert decode(blob[: len(blob) // 2]) is None and decode(b"not a tiff") is None


def test_pixel_interleaved_bands_decode_like_tifffile(tmp_path):
    """EuroSAT stores 13 bands per pixel: (H, W, S) comes back as stored."""
    data = np.random.default_rng(1).integers(0, 4000, (64, 64, 13)).astype(np.uint16)
    for options in ({}, {"compression": "zlib"}, {"compression": "zlib", "predictor": 2}):
        tifffile.imwrite(tmp_path / "x.tif", data, photometric="minisblack", planarconfig="contig", **options)
        fast = decode((tmp_path / "x.tif").read_bytes())
        assert fast is not None and np.array_equal(fast, data)
        assert np.array_equal(fast, tifffile.imread(tmp_path / "x.tif"))
