"""ShardReader: the raw-offset fast path and the HDF5 path read the same arrays."""
import h5py
import numpy as np
import pytest

from jeoparda.shards.reader import ShardReader
from tests.conftest import convert


@pytest.mark.parametrize("compression, direct", [("none", True), ("lzf", False), ("gzip", False)])
def test_fast_and_hdf5_paths_agree(archive_master, tmp_path, compression, direct):
    manifest = convert(archive_master, tmp_path / "ds", shard_size=24, compression=compression)
    path = tmp_path / "ds" / manifest["splits"]["train"]["shards"][0]["file"]
    with h5py.File(path) as f:
        truth = f["images"][...]
    with ShardReader(path) as shard:
        assert shard.direct is direct
        assert np.array_equal(shard.read_images(0, len(shard)), truth)
        out = np.zeros((10, 12, 120, 120), np.uint16)
        assert np.array_equal(shard.read_images(7, 17, out), truth[7:17]) and np.array_equal(out, truth[7:17])
        assert shard.read_images(3, 3).shape == (0, 12, 120, 120)


def test_truncated_file_is_a_clear_error(dataset, tmp_path):
    from jeoparda.shards.format import ShardError

    src = dataset / "train" / "shard-00000.h5"
    with ShardReader(src) as shard:
        assert shard.direct
        offsets = shard._offsets
    data = src.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[:int(offsets[-1]) + 1000])  # the last patch's chunk is cut short
    with pytest.raises(ShardError, match=f"{cut}: unreadable HDF5 file"):
        ShardReader(cut)
    shrinking = tmp_path / "shrinking.h5"
    shrinking.write_bytes(data)
    with ShardReader(shrinking) as shard:
        import os

        os.truncate(shrinking, int(offsets[-1]) + 1000)  # shrinks while open (e.g. a bad copy)
        with pytest.raises(ShardError, match="short read"):
            shard.read_images(0, len(shard))
