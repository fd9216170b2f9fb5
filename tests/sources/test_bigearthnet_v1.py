"""Reading patches: GDAL- and tifffile-written GeoTIFFs, and every rejection reason."""
import json

import numpy as np
import pytest
import tifffile

from jeoparda.convert.assemble import to_10m
from jeoparda.sentinel2 import BANDS, band_indices
from jeoparda.sources.base import PatchError
from jeoparda.sources.bigearthnet_v1 import BigEarthNetV1, band_path, labels_path, list_patches, locate_root
from jeoparda.sources.geotiff import read_band

rasterio = pytest.importorskip("rasterio")


def read_patch(root, patch, method):
    """The patch as the converter sees it: the source's record and its image on the 10 m grid."""
    record = BigEarthNetV1(root).read(patch)
    return record, to_10m(record.bands, method)


def rewrite_with_gdal(path, **profile):
    """Rewrite a band GeoTIFF through GDAL (rasterio), keeping its georeferencing."""
    with rasterio.open(path) as src:
        data, meta = src.read(1), src.profile
    meta.update(driver="GTiff", **profile)
    path.unlink()
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(data, 1)
    return data


@pytest.mark.parametrize("profile", [{}, {"tiled": True, "blockxsize": 16, "blockysize": 16},
                                     {"compress": "deflate"}])
def test_gdal_written_bands_read_identically(archive, profile):
    root = locate_root(archive)
    patch = list_patches(root)[0]
    _, before = read_patch(root, patch, "bicubic")
    for band in BANDS:
        data = rewrite_with_gdal(band_path(root, patch, band.name), **profile)
        assert np.array_equal(read_band(band_path(root, patch, band.name)), data)
    _, after = read_patch(root, patch, "bicubic")
    assert np.array_equal(before, after)


def test_synthetic_bands_are_georeferenced_for_gdal(archive_master):
    root = locate_root(archive_master)
    patch = list_patches(root)[0]
    meta = json.loads(labels_path(root, patch).read_text())
    with rasterio.open(band_path(root, patch, "B05")) as src:
        assert src.crs.to_epsg() == int(meta["projection"].split('"')[-2])
        assert src.transform.a == 20 and src.transform.c == meta["coordinates"]["ulx"]
        assert (src.width, src.height, src.dtypes[0]) == (60, 60, "uint16")


def test_ten_metre_bands_are_copied_unchanged(archive_master):
    root = locate_root(archive_master)
    patch = list_patches(root)[3]
    _, image = read_patch(root, patch, "bilinear")
    for i in band_indices(10):
        assert np.array_equal(image[i], tifffile.imread(band_path(root, patch, BANDS[i].name)))


def damage(root, patch, how):
    if how == "missing band":
        band_path(root, patch, "B8A").unlink()
    elif how == "truncated TIFF":
        p = band_path(root, patch, "B04")
        p.write_bytes(p.read_bytes()[:300])
    elif how == "unreadable TIFF":
        band_path(root, patch, "B11").write_bytes(b"this is not a tiff at all" * 10)
    elif how == "wrong size":
        tifffile.imwrite(band_path(root, patch, "B06"), np.zeros((59, 60), np.uint16))
    elif how == "wrong type":
        tifffile.imwrite(band_path(root, patch, "B06"), np.zeros((60, 60), np.float32))
    elif how == "unreadable JSON":
        labels_path(root, patch).write_text("{not json")
    elif how == "missing JSON":
        labels_path(root, patch).unlink()
    elif how == "unknown label":
        meta = json.loads(labels_path(root, patch).read_text())
        labels_path(root, patch).write_text(json.dumps({**meta, "labels": ["Moon dust"]}))
    elif how == "no labels":
        meta = json.loads(labels_path(root, patch).read_text())
        labels_path(root, patch).write_text(json.dumps({**meta, "labels": []}))


DAMAGE = {"missing band": ("B8A.tif", "missing band B8A"),
          "truncated TIFF": ("B04.tif", "unreadable TIFF"),
          "unreadable TIFF": ("B11.tif", "unreadable TIFF"),
          "wrong size": ("B06.tif", "has size 59x60, expected 60x60"),
          "wrong type": ("B06.tif", "is float32, expected uint16"),
          "unreadable JSON": ("labels_metadata.json", "unreadable labels JSON"),
          "missing JSON": ("labels_metadata.json", "missing labels JSON"),
          "unknown label": ("labels_metadata.json", "unknown label 'Moon dust'"),
          "no labels": ("labels_metadata.json", "no list of label names")}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_every_damage_raises_patch_error_naming_the_file(archive, how):
    root = locate_root(archive)
    patch = list_patches(root)[1]
    damage(root, patch, how)
    with pytest.raises(PatchError) as info:
        read_patch(root, patch, "bicubic")
    suffix, reason = DAMAGE[how]
    assert info.value.file.name == f"{patch}_{suffix}"
    assert reason in info.value.reason
    assert info.value.patch == patch


def test_missing_patch_folder(archive):
    root = locate_root(archive)
    with pytest.raises(PatchError, match="patch folder not found"):
        read_patch(root, "S2A_nonexistent_1_1", "bicubic")


def test_locate_root_accepts_both_levels(archive_master):
    assert locate_root(archive_master) == locate_root(archive_master / "BigEarthNet-v1.0")


def test_record_carries_both_label_sets(archive_master):
    root = locate_root(archive_master)
    patch = list_patches(root)[2]
    record, _ = read_patch(root, patch, "nearest")
    names = json.loads(labels_path(root, patch).read_text())["labels"]
    assert record.labels43.sum() == len(names)
    assert record.labels is not None and record.labels.shape == (19,)
    assert [b.shape for b in record.bands] == [(b.native_size, b.native_size) for b in BANDS]
