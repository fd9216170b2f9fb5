import numpy as np
import pytest

from jeoparda.errors import JeopardaError
from jeoparda.sources.detect import SourceOptions, open_source
from jeoparda.superres.data import load_split, native_patches
from tests.conftest import convert


def _archive_bands(archive, name):
    source = open_source(SourceOptions(archive))
    return source.read(name).bands


@pytest.mark.parametrize("method,tolerance", [("nearest", 1e-9), ("bicubic", 1.0)])
def test_native_bands_come_back_from_a_converted_data_set(archive_master, tmp_path, method, tolerance):
    """Exact for nearest; bicubic within 1 DN on average: the uint16 rounding, and around pixels where
    its overshoot below 0 was clipped (the least-squares inverse spreads that error along the row)."""
    data = tmp_path / method
    convert(archive_master, data, resample=method)
    for name, bands in native_patches(data, "train", 3):
        truth = _archive_bands(archive_master, name)
        for b, t in zip(bands, truth, strict=True):
            assert b.shape == t.shape
            assert np.abs(b - t.astype(float)).mean() <= tolerance


def test_archive_and_data_set_give_the_same_patches(archive_master, dataset):
    from_archive = dict(native_patches(archive_master, "val", 100))
    from_shards = dict(native_patches(dataset, "val", 100))
    assert from_archive.keys() == from_shards.keys() and from_archive


def test_ranks_share_the_patches_without_overlap(dataset):
    names = [n for n, _ in native_patches(dataset, "train", 10)]
    parts = [[n for n, _ in native_patches(dataset, "train", 10, (r, 3))] for r in range(3)]
    assert sorted(sum(parts, [])) == sorted(names) and len(names) == 10


def test_data_without_every_band_is_one_line(archive_master, tmp_path):
    data = tmp_path / "rgb"
    convert(archive_master, data, bands=("B02", "B03", "B04"))
    with pytest.raises(JeopardaError, match="needs the 12 BigEarthNet bands.*absent: B01"):
        load_split(data, "train", 5)


def test_eurosat_is_refused(tmp_path):
    from jeoparda.sources.synth_eurosat import synthesize_eurosat

    synthesize_eurosat(tmp_path, 20, seed=1)
    with pytest.raises(JeopardaError, match="native resolution"):
        load_split(tmp_path, "train", 5)


def test_empty_split(dataset):
    with pytest.raises(JeopardaError, match="no nosuch patches"):
        load_split(dataset, "nosuch", 5)


def test_v1_data_sets_written_by_the_old_converter_and_v2_data_sets_read(reben_dataset):
    from jeoparda.sentinel2 import BANDS
    from tests.conftest import FIXTURES

    for data in (FIXTURES / "v1-dataset", reben_dataset):
        patches = load_split(data, "train", 2)
        assert len(patches) == 2
        assert [b.shape for b in patches[0]] == [(band.native_size,) * 2 for band in BANDS]
