"""Dense labelling through the loaders and the loop: reference maps as targets, turned with their
images, evaluation from pixel counts over all ranks, and the one-line refusals."""
import subprocess

import h5py
import numpy as np
import pytest
import torch

from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import AugmentConfig
from jeoparda.errors import JeopardaError
from jeoparda.labels import NO_CLASS
from jeoparda.loaders.build import build_loader
from jeoparda.shards.manifest import read_manifest
from tests.convert.test_run_mpi import mpi_env, mpirun
from tests.loaders.test_loader import NO_AUG, batches, cfg
from tests.training.test_train import events, train_cmd


def seg_cfg(path, **kw):
    c = cfg(path, **kw)
    return c.__class__(model="fcn_maggiori", data=c.data, train=c.train, dist=c.dist, mlperf=c.mlperf)


def test_dense_model_gets_the_reference_maps(reben_dataset):
    loader = build_loader(seg_cfg(reben_dataset, batch=2), ClusterEnv(), "val")
    assert loader.task == "segmentation"
    got = batches(loader)
    entry = read_manifest(reben_dataset)["splits"]["val"]["shards"][0]
    with h5py.File(reben_dataset / entry["file"]) as f:
        stored = f["masks"][:2]
    assert got[0]["label"].shape == (2, 120, 120) and got[0]["label"].dtype == torch.uint8
    assert np.array_equal(got[0]["label"].numpy(), stored)


def test_maps_turn_with_their_images(reben_dataset):
    plain = batches(build_loader(seg_cfg(reben_dataset, batch=4, augment=NO_AUG, bands="B02"), ClusterEnv(),
                                 "train"))
    turned = batches(build_loader(seg_cfg(reben_dataset, batch=4, augment=AugmentConfig(), bands="B02"),
                                  ClusterEnv(), "train"))
    for a, b in zip(plain, turned, strict=True):
        for x, y, mx, my in zip(a["image"], b["image"], a["label"], b["label"], strict=True):
            options = [(k, dims) for k in range(4) for dims in ((), (0,), (1,), (0, 1))]
            hit = [(k, d) for k, d in options if torch.equal(torch.rot90(x[0], k, (0, 1)).flip(d), y[0])]
            assert hit and any(torch.equal(torch.rot90(mx, k, (0, 1)).flip(d), my) for k, d in hit)


def test_refusals_are_one_line(reben_dataset, dataset):
    with pytest.raises(JeopardaError, match="mixup_alpha and crops"):
        build_loader(seg_cfg(reben_dataset, augment=AugmentConfig(mixup_alpha=0.2)), ClusterEnv(), "train")
    with pytest.raises(JeopardaError, match="dali does not deliver reference maps"):
        build_loader(seg_cfg(reben_dataset, backend="dali"), ClusterEnv(), "train")
    with pytest.raises(JeopardaError, match="a dense model needs reference maps"):
        build_loader(seg_cfg(dataset), ClusterEnv(), "train")  # BigEarthNet v1: no maps


def test_a_dense_run_logs_the_segmentation_metrics(reben_dataset, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(train_cmd(reben_dataset, out, "train.epochs=1", "train.max_steps=2", "dist.backend=single",
                                    model="fcn_maggiori"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    log = events(out)
    assert log[0]["task"] == "segmentation" and "val mIoU" in proc.stdout
    for key in ("pixel_accuracy", "miou", "fw_iou", "iou_per_class", "roc_auc"):
        assert key in log[1] and key in log[-1]["test"], key
    with h5py.File(next((reben_dataset / "val").glob("*.h5"))) as f:
        labelled = int((f["masks"][...] != NO_CLASS).sum())
    assert log[1]["labelled_pixels"] == labelled  # every labelled pixel of the split, once


def test_model_and_task_must_agree(reben_dataset, tmp_path):
    proc = subprocess.run(train_cmd(reben_dataset, tmp_path / "r", "train.task=segmentation", "dist.backend=single"),
                          capture_output=True, text=True, timeout=300)  # resnet18 is a classifier
    assert proc.returncode == 1
    assert "model resnet18 is a classification model; the segmentation task needs a dense one" in proc.stderr


@pytest.mark.mpi
def test_two_ranks_count_every_pixel_once(reben_dataset, tmp_path):
    out = tmp_path / "run"
    cmd = [mpirun(), "-np", "2", "--oversubscribe"] + train_cmd(reben_dataset, out, "train.epochs=1",
                                                                 "train.max_steps=2", "dist.backend=ddp",
                                                                 model="fcn_maggiori")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr
    end = events(out)[-1]
    with h5py.File(next((reben_dataset / "test").glob("*.h5"))) as f:
        labelled = int((f["masks"][...] != NO_CLASS).sum())
    assert end["test"]["labelled_pixels"] == labelled and len(set(end["replica_sha256"])) == 1
