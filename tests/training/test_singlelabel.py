"""Single-label (EuroSAT) data through loaders and training: one-hot targets, resize, the results
log's single-label metrics, two ranks in step."""
import subprocess

import h5py
import numpy as np
import pytest
import torch

from jeoparda.cluster.env import ClusterEnv
from jeoparda.loaders.build import build_loader
from jeoparda.shards.manifest import read_manifest
from tests.convert.test_run_mpi import mpi_env, mpirun
from tests.loaders.test_loader import batches, cfg
from tests.training.test_train import events, train_cmd


def test_single_label_batches_are_one_hot_of_the_stored_class(eurosat_dataset):
    loader = build_loader(cfg(eurosat_dataset, batch=8), ClusterEnv(), "val")
    assert (loader.task, loader.channels, loader.num_classes) == ("singlelabel", 13, 10)
    got = batches(loader)
    labels = torch.cat([b["label"][b["mask"]] for b in got])
    manifest = read_manifest(eurosat_dataset)
    stored = []
    for entry in manifest["splits"]["val"]["shards"]:
        with h5py.File(eurosat_dataset / entry["file"]) as f:
            stored += f["label"][...].tolist()
    assert labels.sum(1).eq(1).all() and labels.argmax(1).tolist() == stored
    assert got[0]["image"].shape == (8, 13, 64, 64)


@pytest.mark.parametrize("backend", ["torch", "synthetic"])
def test_resize_on_the_device(eurosat_dataset, backend):
    got = batches(build_loader(cfg(eurosat_dataset, backend, batch=4, resize=96), ClusterEnv(), "val"))
    assert got[0]["image"].shape == (4, 13, 96, 96)
    plain = batches(build_loader(cfg(eurosat_dataset, backend, batch=4), ClusterEnv(), "val"))
    expected = torch.nn.functional.interpolate(plain[0]["image"], size=(96, 96), mode="bilinear")
    assert torch.allclose(got[0]["image"], expected)


def test_dali_resizes_alike(eurosat_dataset):
    pytest.importorskip("nvidia.dali")
    t = batches(build_loader(cfg(eurosat_dataset, batch=4, resize=96), ClusterEnv(), "val"))
    d = batches(build_loader(cfg(eurosat_dataset, "dali", workers=1, batch=4, resize=96), ClusterEnv(), "val"))
    assert torch.allclose(t[0]["image"], d[0]["image"], atol=1e-5) and torch.equal(t[0]["label"], d[0]["label"])


def test_single_label_run_logs_its_metrics(eurosat_dataset, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(train_cmd(eurosat_dataset, out, "train.epochs=1", "train.max_steps=3", "dist.backend=single",
                                    "train.label_smoothing=0.1"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "val accuracy" in proc.stdout
    log = events(out)
    assert (log[0]["task"], log[0]["dataset"]) == ("singlelabel", "eurosat")
    for key in ("accuracy", "balanced_accuracy", "f1_macro", "per_class_recall", "confusion_matrix"):
        assert key in log[1] and key in log[-1]["test"], key
    cm = np.array(log[1]["confusion_matrix"])
    val_images = read_manifest(eurosat_dataset)["splits"]["val"]["patches"]
    assert cm.shape == (10, 10) and cm.sum() == log[1]["samples"] == val_images


def test_multi_label_option_on_single_label_data_is_one_line(eurosat_dataset, tmp_path):
    proc = subprocess.run(train_cmd(eurosat_dataset, tmp_path / "r", "train.threshold=0.3", "dist.backend=single"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("jeoparda: error: train.threshold applies to multi-label data; this data set is "
                                   "single-label (each image has one class: the highest score wins)")


@pytest.mark.mpi
def test_two_ranks_single_label_in_step(eurosat_dataset, tmp_path):
    out = tmp_path / "run"
    cmd = [mpirun(), "-np", "2", "--oversubscribe"] + train_cmd(eurosat_dataset, out, "train.epochs=1",
                                                                 "dist.backend=ddp")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr
    end = events(out)[-1]
    test_images = read_manifest(eurosat_dataset)["splits"]["test"]["patches"]
    assert len(set(end["replica_sha256"])) == 1 and end["test"]["samples"] == test_images
    assert np.array(end["test"]["confusion_matrix"]).sum() == test_images  # every test image once
