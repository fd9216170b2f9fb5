"""The map writer's Cloud-Optimized GeoTIFF, read by GDAL (through rasterio) beside one GDAL's own
COG driver writes from the same pixels: the same layout verdict, overviews, pixels and place."""
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from jeoparda.inference.cog import TILE, Georef, Raster, write_cog

GEO = Georef(32633, 399960.0, 5900040.0, 10.0)


def source(image, requests=None):
    def rows(first, step, count):
        if requests is not None:
            requests.append((first, step, count))
        return image[first:first + step * count:step]
    return rows


@pytest.mark.parametrize("dtype,nodata", [(np.uint8, 255), (np.float32, float("nan"))])
def test_gdal_reads_our_cog_as_it_reads_its_own(tmp_path, dtype, nodata):
    rng = np.random.default_rng(0)
    image = (rng.integers(0, 19, (1000, 1300)) if dtype == np.uint8 else rng.random((1000, 1300))).astype(dtype)
    image[:300, :500] = nodata
    requests = []
    write_cog(tmp_path / "ours.tif", Raster(1300, 1000, np.dtype(dtype), nodata, GEO), source(image, requests))
    with rasterio.open(tmp_path / "gdal.tif", "w", driver="COG", width=1300, height=1000, count=1, dtype=dtype,
                       crs="EPSG:32633", transform=from_origin(GEO.x0, GEO.y0, 10, 10), nodata=nodata,
                       blocksize=TILE, compress="deflate", overview_resampling="nearest") as dst:
        dst.write(image, 1)
    with rasterio.open(tmp_path / "ours.tif") as ours, rasterio.open(tmp_path / "gdal.tif") as gdal:
        for ds in (ours, gdal):
            assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert ds.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
        assert ours.overviews(1) == gdal.overviews(1) == [2, 4, 8]
        assert ours.block_shapes == gdal.block_shapes == [(TILE, TILE)]
        assert (ours.crs, ours.transform, ours.dtypes) == (gdal.crs, gdal.transform, gdal.dtypes)
        assert ours.nodata == gdal.nodata or (np.isnan(ours.nodata) and np.isnan(gdal.nodata))
        assert np.array_equal(ours.read(1), gdal.read(1), equal_nan=True)
        half = ours.read(1, out_shape=(500, 650))
    assert np.array_equal(half, image[::2, ::2], equal_nan=True)  # overviews decimate: classes stay classes
    head = (tmp_path / "ours.tif").read_bytes()[:8]
    assert head[:4] == b"II*\0" and int.from_bytes(head[4:], "little") % 2 == 0  # IFDs on a word boundary
    # bounded memory: never more than one row of tiles of one level at a time
    assert max(count for _, _, count in requests) <= TILE
    assert {step for _, step, _ in requests} == {1, 2, 4, 8}


def test_a_failure_half_way_leaves_no_map(tmp_path):
    def broken(first, step, count):
        if step == 1 and first >= TILE:
            raise OSError(28, "No space left on device")
        return np.zeros((count, 600), np.uint8)
    with pytest.raises(OSError):
        write_cog(tmp_path / "map.tif", Raster(600, 700, np.dtype(np.uint8), 255, GEO), broken)
    assert list(tmp_path.iterdir()) == []


def test_a_map_that_fits_one_tile_has_no_overviews(tmp_path):
    image = np.arange(200 * 240, dtype=np.uint8).reshape(200, 240) % 19
    write_cog(tmp_path / "small.tif", Raster(240, 200, np.dtype(np.uint8), 255, GEO), source(image))
    with rasterio.open(tmp_path / "small.tif") as ds:
        assert ds.overviews(1) == [] and np.array_equal(ds.read(1), image)
