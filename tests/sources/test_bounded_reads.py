"""Archive files are read only when they are regular files within their kind's bound
(jeoparda/sources/base.py): a device, a FIFO or a huge file is refused at once, never read."""
import os

import numpy as np
import pytest

from jeoparda.errors import JeopardaError
from jeoparda.safe_files import UnsafePathError
from jeoparda.sources.base import BAND_FILE_LIMIT, PatchError, read_bounded
from jeoparda.sources.bigearthnet_v1 import read_labels
from jeoparda.sources.geotiff import TiffReadError, read_origin, read_raster, write_band
from jeoparda.sources.splits import read_name_list


@pytest.fixture
def hostile(tmp_path):
    """name -> a path that is not a readable regular file of a sane size."""
    (tmp_path / "zero").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo")
    with open(tmp_path / "huge", "wb") as fh:
        fh.truncate(BAND_FILE_LIMIT + 1)  # sparse
    (tmp_path / "folder").mkdir()
    return {"zero": (tmp_path / "zero", "a character device"), "fifo": (tmp_path / "fifo", "a FIFO"),
            "huge": (tmp_path / "huge", "more than the"), "folder": (tmp_path / "folder", "a folder")}


@pytest.mark.parametrize("kind", ["zero", "fifo", "huge", "folder"])
def test_read_bounded_refuses_without_reading_or_waiting(hostile, kind):
    path, words = hostile[kind]
    with pytest.raises(UnsafePathError, match=words) as err:
        read_bounded(path, BAND_FILE_LIMIT)
    assert str(err.value).startswith(f"{path}: ") and str(err.value).endswith("refused")


def test_read_bounded_reads_a_file_and_a_link_to_one(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    assert read_bounded(tmp_path / "f", 3) == read_bounded(tmp_path / "l", 3) == b"abc"
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "missing", 3)


@pytest.mark.parametrize("kind", ["zero", "fifo", "huge"])
def test_band_readers_give_the_reason_without_the_file_name(hostile, kind):
    path, words = hostile[kind]
    for read in (read_raster, read_origin):
        with pytest.raises(TiffReadError, match=words) as err:
            read(path)
        assert str(path) not in str(err.value)  # the PatchError around it names the file


def test_a_labels_file_that_is_a_device_is_a_damaged_patch(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "p_labels_metadata.json").symlink_to("/dev/zero")
    with pytest.raises(PatchError, match=r"not a regular file \(a character device\); refused"):
        read_labels(tmp_path, "p")


@pytest.mark.parametrize("kind", ["zero", "fifo"])
def test_a_patch_list_that_is_not_a_file_is_one_line(hostile, kind):
    path, words = hostile[kind]
    with pytest.raises(JeopardaError, match=words):
        read_name_list(path)


def test_write_band_refuses_a_link_at_its_path(tmp_path):
    (tmp_path / "victim").write_bytes(b"keep")
    (tmp_path / "b.tif").symlink_to(tmp_path / "victim")
    with pytest.raises(UnsafePathError):
        write_band(tmp_path / "b.tif", np.zeros((2, 2)), origin=(0, 0), pixel_size_m=10, epsg=32632)
    assert (tmp_path / "victim").read_bytes() == b"keep"
    write_band(tmp_path / "c.tif", np.arange(4).reshape(2, 2), origin=(0, 0), pixel_size_m=10, epsg=32632)
    assert read_raster(tmp_path / "c.tif").tolist() == [[0, 1], [2, 3]]
