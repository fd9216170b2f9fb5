"""Loaders read shard format v1 (an earlier jeoparda's data set) and v2 alike; data.bands chooses
channels, Sentinel-1 normalised with its own statistics after the optical bands."""
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from jeoparda.cluster.env import ClusterEnv
from jeoparda.errors import JeopardaError
from jeoparda.loaders.build import build_loader
from jeoparda.shards.manifest import read_manifest
from tests.conftest import FIXTURES
from tests.loaders.test_loader import batches, cfg

V1 = FIXTURES / "v1-dataset"


def test_v1_data_set_reads_as_before():
    manifest = read_manifest(V1)
    assert manifest["version"] == 1 and manifest["tasks"] == ["multilabel"] and manifest["size"] == [120, 120]
    loader = build_loader(cfg(V1, batch=2), ClusterEnv(), "val")
    (batch,) = batches(loader)
    assert batch["image"].shape == (2, 12, 120, 120) and batch["mask"].tolist() == [True, False]
    entry = manifest["splits"]["val"]["shards"][0]
    with h5py.File(V1 / entry["file"]) as f:
        image, labels = f["images"][0].astype(np.float32), f["labels19"][0]
    mean = np.array(manifest["band_stats"]["mean"], np.float32)[:, None, None]
    inv = (1 / np.array(manifest["band_stats"]["std"])).astype(np.float32)[:, None, None]
    assert torch.allclose(batch["image"][0], torch.from_numpy((image - mean) * inv), atol=1e-6)
    assert batch["label"][0].tolist() == labels.astype(np.float32).tolist()
    assert (loader.channels, loader.num_classes) == (12, 19)


def test_v1_data_set_still_trains(tmp_path):
    out = tmp_path / "run"
    sets = [f"data.path={V1}", "train.batch_size=2", "data.workers=0", "train.epochs=1", "dist.backend=single"]
    proc = subprocess.run([sys.executable, "-m", "jeoparda", "train", "--out", str(out)]
                          + [a for s in sets for a in ("--set", s)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    end = json.loads((out / "results.jsonl").read_text().splitlines()[-1])
    assert end["status"] == "completed" and end["test"]["samples"] == 1


@pytest.mark.parametrize("workers", [0, 1])
def test_s2_plus_s1_delivers_14_channels_normalised_apart(reben_dataset, workers):
    manifest = read_manifest(reben_dataset)
    loader = build_loader(cfg(reben_dataset, batch=2, workers=workers, bands="s2+s1"), ClusterEnv(), "val")
    got = batches(loader)
    assert loader.channels == 14 and got[0]["image"].shape == (2, 14, 120, 120)
    entry = manifest["splits"]["val"]["shards"][0]
    with h5py.File(reben_dataset / entry["file"]) as f:
        optical, s1 = f["images"][0].astype(np.float32), f["s1"][0]
    mean = np.array(manifest["band_stats"]["mean"], np.float32)[:, None, None]
    inv = (1 / np.array(manifest["band_stats"]["std"])).astype(np.float32)[:, None, None]
    expected = np.concatenate([(optical - mean[:12]) * inv[:12], (s1 - mean[12:]) * inv[12:]])
    assert torch.allclose(got[0]["image"][0], torch.from_numpy(expected), atol=1e-5)
    assert abs(float(got[0]["image"][:, 12:].mean())) < 3  # dB normalised, not raw (-12 dB)


def test_band_subset_in_canonical_order(reben_dataset):
    full = batches(build_loader(cfg(reben_dataset, batch=2, bands="s2+s1"), ClusterEnv(), "val"))
    some = batches(build_loader(cfg(reben_dataset, batch=2, bands="VH,B08,B02"), ClusterEnv(), "val"))
    assert some[0]["image"].shape[1] == 3
    assert torch.equal(some[0]["image"], full[0]["image"][:, [1, 7, 13]])  # B02, B08, then VH


def test_augmentation_moves_s1_with_the_image(reben_dataset):
    from jeoparda.config import AugmentConfig

    plain = batches(build_loader(cfg(reben_dataset, batch=4, bands="B02,VV"), ClusterEnv(), "train"))
    turned = batches(build_loader(cfg(reben_dataset, batch=4, bands="B02,VV", augment=AugmentConfig()),
                                  ClusterEnv(), "train"))
    for a, b in zip(plain, turned, strict=True):
        for x, y in zip(a["image"], b["image"], strict=True):
            # whatever turn or flip was drawn, both channels moved together
            matches = [torch.equal(torch.rot90(x, k, dims=(1, 2)).flip(dims), y)
                       for k in range(4) for dims in ((), (1,), (2,), (1, 2))]
            assert any(matches)


@pytest.mark.parametrize("spec,message", [
    ("B02,VV", "holds no Sentinel-1 data"),
    ("B02,B99", "B99 is not a band of"),
    ("VV", "holds no Sentinel-1"),
])
def test_band_errors_name_the_data_set(dataset, spec, message):
    with pytest.raises(JeopardaError, match=message):
        build_loader(cfg(dataset, bands=spec), ClusterEnv(), "train")


def test_dali_reads_v2_and_refuses_s1(reben_dataset):
    pytest.importorskip("nvidia.dali")
    t = batches(build_loader(cfg(reben_dataset, batch=2), ClusterEnv(), "val"))
    d = batches(build_loader(cfg(reben_dataset, "dali", batch=2, workers=1), ClusterEnv(), "val"))
    for x, y in zip(t, d, strict=True):
        assert torch.allclose(x["image"], y["image"], atol=1e-6)
    with pytest.raises(JeopardaError, match="dali does not deliver Sentinel-1"):
        build_loader(cfg(reben_dataset, "dali", bands="s2+s1"), ClusterEnv(), "val")


def test_v2_data_set_trains_with_s1_channels(reben_dataset, tmp_path):
    out = tmp_path / "run"
    sets = [f"data.path={reben_dataset}", "train.batch_size=4", "data.workers=0", "train.epochs=1",
            "dist.backend=single", "data.bands=s2+s1", "train.max_steps=2"]
    proc = subprocess.run([sys.executable, "-m", "jeoparda", "train", "--out", str(out)]
                          + [a for s in sets for a in ("--set", s)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    start = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert (start["dataset"], start["task"]) == ("bigearthnet-v2", "multilabel")
    assert start["bands"][-2:] == ["VV", "VH"] and len(start["bands"]) == 14
    end = json.loads((out / "results.jsonl").read_text().splitlines()[-1])
    assert end["status"] == "completed"


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_bench_loader_reads_both_formats(which, reben_dataset, capsys):
    from jeoparda.cli import main

    data = V1 if which == "v1" else reben_dataset
    assert main(["bench", "loader", "--data", str(data), "--batch-size", "2", "--steps", "2", "--workers", "0",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["images"] == 4 and result["mb_per_s"] == pytest.approx(result["images_per_s"] * 345600 / 1e6)
