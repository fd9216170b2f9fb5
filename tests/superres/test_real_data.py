"""Super-resolution on a real BigEarthNet v2.0 patch (rico-hdl's test GeoTIFFs and LMDB, tests/fixtures)."""
import h5py
import numpy as np
import pytest

from jeoparda.superres.train import SRTrainOptions, train_sr
from tests.conftest import convert
from tests.sources.test_bigearthnet_v2 import real_archive  # noqa: F401  (a fixture)


def test_one_real_patch_trains_a_model_that_beats_bicubic_on_it(real_archive, tmp_path):  # noqa: F811
    """A single 120 px patch yields enough windows: after 200 steps the 20 m bands of the real patch are
    restored better than by bicubic at reduced scale (no held-out split: figures on the patch itself)."""
    opts = SRTrainOptions(data=real_archive, out=tmp_path / "sr.pt", run_dir=tmp_path / "run", steps=200,
                          features=16, blocks=2, backend="single", log_every=100)
    with pytest.warns(UserWarning, match="no val patches; the model's figures are on training patches"):
        figures = train_sr(opts, say=lambda line: None)
    assert figures["split"] == "train" and figures["patches"] == 1
    assert figures["rmse_20m"] < figures["bicubic_rmse_20m"]


def test_learned_conversion_reads_both_real_layouts_alike(real_archive, sr_model, tmp_path):  # noqa: F811
    images = []
    for fmt in ("bigearthnet-v2", "rico-lmdb"):
        out = tmp_path / fmt
        manifest = convert(real_archive, out, resample="learned", sr_model=sr_model, format=fmt)
        assert manifest["resample"] == "learned" and manifest["splits"]["train"]["patches"] == 1
        with h5py.File(out / manifest["splits"]["train"]["shards"][0]["file"]) as f:
            images.append(f["images"][...])
    assert np.array_equal(images[0], images[1])
