"""``convert --resample learned``: a super-resolution model in place of interpolation."""
import json

import h5py
import numpy as np
import pytest
import torch

from jeoparda.cli import main
from jeoparda.errors import JeopardaError
from jeoparda.sentinel2 import band_indices
from jeoparda.superres.data import load_split
from jeoparda.superres.model_file import load_model
from tests.conftest import convert
from tests.convert.test_run import same_tree


def _images(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    out = []
    for entry in manifest["splits"]["val"]["shards"]:
        with h5py.File(dataset / entry["file"]) as f:
            out.append(f["images"][...])
    return np.concatenate(out)


def test_learned_conversion_is_deterministic_and_recorded(archive_master, dataset, sr_model, tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    threads = torch.get_num_threads()
    manifest = convert(archive_master, one, resample="learned", sr_model=sr_model)
    assert torch.get_num_threads() == threads  # one thread while converting, then as before
    convert(archive_master, two, resample="learned", sr_model=sr_model, workers=2)
    assert same_tree(one, two)
    model = load_model(sr_model)
    assert manifest["resample"] == "learned"
    assert manifest["sr_model"]["sha256"] == model.sha256 and manifest["sr_model"]["eval"] == model.eval
    if not torch.cuda.is_available():
        assert manifest["sr_model"]["device"] == "cpu"  # --device auto
    learned, bicubic = _images(one), _images(dataset)
    ten = list(band_indices(10))
    np.testing.assert_array_equal(learned[:, ten], bicubic[:, ten])  # 10 m bands are copied, not touched
    coarse = list(band_indices(20) + band_indices(60))
    assert not np.array_equal(learned[:, coarse], bicubic[:, coarse])
    assert main(["inspect", str(one)]) == 0
    assert f"sr model   {sr_model} (sha256 {model.sha256[:12]})" in capsys.readouterr().out
    # the networks correct bicubic, they do not replace it: close to it on smooth synthetic fields
    assert np.abs(learned[:, coarse].astype(float) - bicubic[:, coarse]).mean() < 200


def test_another_model_is_another_data_set(archive_master, sr_model, tmp_path):
    out = tmp_path / "out"
    convert(archive_master, out, resample="learned", sr_model=sr_model)
    other = tmp_path / "other.pt"
    doc = torch.load(sr_model, weights_only=True)
    doc["training"]["note"] = "changed"
    torch.save(doc, other)
    with pytest.raises(JeopardaError, match="already holds a different converted data set"):
        convert(archive_master, out, resample="learned", sr_model=other)


def test_a_learned_data_set_cannot_feed_training(archive_master, sr_model, tmp_path):
    out = tmp_path / "out"
    convert(archive_master, out, resample="learned", sr_model=sr_model)
    with pytest.raises(JeopardaError, match="resample 'learned'"):
        load_split(out, "train", 2)


def test_bad_input_is_one_line_each(archive_master, sr_model, tmp_path, capsys):
    base = ["convert", "--source", str(archive_master), "--out", str(tmp_path / "o")]
    assert main(base + ["--resample", "learned"]) == 1
    assert "--resample learned needs --sr-model MODEL" in capsys.readouterr().err
    assert main(base + ["--sr-model", str(sr_model)]) == 1
    assert "--sr-model applies to --resample learned" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a model")
    assert main(base + ["--resample", "learned", "--sr-model", str(junk)]) == 1
    err = capsys.readouterr().err
    assert "junk.pt: not a jeoparda super-resolution model" in err and len(err.strip().splitlines()) == 1
    if not torch.cuda.is_available():
        assert main(base + ["--resample", "learned", "--sr-model", str(sr_model), "--device", "cuda"]) == 1
        assert "no CUDA GPU" in capsys.readouterr().err
    assert main(base + ["--resample", "learned", "--sr-model", str(sr_model), "--device", "tpu"]) == 1
    assert "use auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_eurosat_has_nothing_to_super_resolve(sr_model, tmp_path, capsys):
    from jeoparda.sources.synth_eurosat import synthesize_eurosat

    synthesize_eurosat(tmp_path / "es", 20, seed=1)
    rc = main(["convert", "--source", str(tmp_path / "es"), "--out", str(tmp_path / "o"), "--resample", "learned",
               "--sr-model", str(sr_model)])
    assert rc == 1 and "needs bands at native resolution" in capsys.readouterr().err


@pytest.mark.mpi
def test_two_mpi_ranks_write_the_same_bytes(archive_master, sr_model, tmp_path):
    import subprocess
    import sys

    from tests.convert.test_run_mpi import mpi_env, mpirun

    convert(archive_master, tmp_path / "one", resample="learned", sr_model=sr_model)
    proc = subprocess.run([mpirun(), "-np", "2", "--oversubscribe", sys.executable, "-m", "jeoparda", "convert",
                           "--source", str(archive_master), "--out", str(tmp_path / "two"), "--shard-size", "8",
                           "--resample", "learned", "--sr-model", str(sr_model)],
                          capture_output=True, text=True, env=mpi_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "x 2 rank(s)" in proc.stdout and same_tree(tmp_path / "one", tmp_path / "two")
