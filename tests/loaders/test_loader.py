"""build_loader: the batch contract, backend equivalence, coverage across ranks, errors, staging."""
import hashlib
import json
import os

import numpy as np
import pytest
import torch

from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import AugmentConfig, DataConfig, RunConfig, TrainConfig
from jeoparda.errors import JeopardaError
from jeoparda.loaders.build import build_loader
from jeoparda.shards.reader import ShardReader

NO_AUG = AugmentConfig(flip=False, rot90=False)


def cfg(path, backend="torch", batch=4, workers=0, augment=NO_AUG, **data):
    return RunConfig(data=DataConfig(path=str(path), backend=backend, workers=workers, augment=augment,
                                     block_size=2, **data),
                     train=TrainConfig(batch_size=batch, seed=3))


def batches(loader, epoch=0):
    loader.set_epoch(epoch)
    return list(loader)


def digest(image):
    return hashlib.sha1(image.numpy().tobytes()).hexdigest()


def normalised_split(dataset, split):
    """Every image of a split, normalised by hand from the shard files, keyed by digest."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    mean = np.array(manifest["band_stats"]["mean"], np.float32)[:, None, None]
    inv = (1 / np.array(manifest["band_stats"]["std"])).astype(np.float32)[:, None, None]
    out = {}
    for entry in manifest["splits"][split]["shards"]:
        with ShardReader(dataset / entry["file"]) as shard:
            for img, lab in zip(shard.read_images(0, len(shard)), shard.labels19):
                x = torch.from_numpy((img.astype(np.float32) - mean) * inv)
                out[digest(x)] = lab
    return out


@pytest.mark.parametrize("backend", ["torch", "dali", "synthetic"])
def test_batch_contract(dataset, backend):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    loader = build_loader(cfg(dataset, backend), ClusterEnv(), "train")
    got = batches(loader)
    assert len(got) == loader.steps_per_epoch == 34 // 4
    for b in got:
        assert b["image"].shape == (4, 12, 120, 120) and b["image"].dtype == torch.float32
        assert b["label"].shape == (4, 19) and b["label"].dtype == torch.float32
        assert b["mask"].dtype == torch.bool and b["mask"].all()


def test_torch_batches_are_the_normalised_shards(dataset):
    truth = normalised_split(dataset, "val")
    seen = []
    for b in batches(build_loader(cfg(dataset), ClusterEnv(), "val")):
        for img, lab, m in zip(b["image"], b["label"], b["mask"]):
            if m:
                key = digest(img)
                assert np.array_equal(truth[key], lab.numpy().astype(np.uint8))
                seen.append(key)
    assert sorted(seen) == sorted(truth)


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("split", ["train", "val"])
def test_simulated_ranks_read_each_patch_at_most_once(dataset, world, split):
    truth = normalised_split(dataset, split)
    per_rank = []
    for r in range(world):
        env = ClusterEnv(rank=r, world_size=world, local_rank=r, local_size=world)
        loader = build_loader(cfg(dataset, batch=3), env, split)
        per_rank.append([digest(img) for b in batches(loader) for img, m in zip(b["image"], b["mask"]) if m])
        assert loader.steps_per_epoch == len(batches(loader))
    steps = {len(x) // 3 for x in per_rank} if split == "train" else None
    flat = [k for keys in per_rank for k in keys]
    assert len(flat) == len(set(flat)) and set(flat) <= set(truth)
    if split == "train":
        assert len(steps) == 1 and len(flat) == (34 // (world * 3)) * world * 3
    else:
        assert sorted(flat) == sorted(truth)  # evaluation covers the split exactly once


def test_deterministic_and_new_order_each_epoch(dataset):
    a = batches(build_loader(cfg(dataset), ClusterEnv(), "train"))
    b = batches(build_loader(cfg(dataset), ClusterEnv(), "train"))
    c = batches(build_loader(cfg(dataset), ClusterEnv(), "train"), epoch=1)
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(a, b))
    assert [digest(i) for x in a for i in x["image"]] != [digest(i) for x in c for i in x["image"]]


def test_background_workers_give_the_same_batches(dataset):
    a = batches(build_loader(cfg(dataset, workers=0, augment=AugmentConfig()), ClusterEnv(), "train"))
    b = batches(build_loader(cfg(dataset, workers=2, augment=AugmentConfig()), ClusterEnv(), "train"))
    assert all(torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"]) for x, y in zip(a, b))


def test_readers_outlive_preemption_signals(dataset):
    """Slurm signals every process of a step; the readers must leave SIGTERM/SIGUSR1 to the trainer."""
    import signal

    ref = batches(build_loader(cfg(dataset), ClusterEnv(), "train"))
    loader = build_loader(cfg(dataset, workers=2), ClusterEnv(), "train")
    loader.set_epoch(0)
    it = iter(loader)
    got = [next(it), next(it)]  # one batch from each reader: both are up
    readers = loader._stream._iterator._workers  # the DataLoader's reader processes
    assert len(readers) == 2
    for proc in readers:
        os.kill(proc.pid, signal.SIGTERM)
        os.kill(proc.pid, signal.SIGUSR1)
    got += list(it)
    assert all(p.is_alive() for p in readers)
    assert len(got) == len(ref) and all(torch.equal(x["image"], y["image"]) for x, y in zip(got, ref))
    loader.close()


def test_augmentation_keeps_labels_and_skips_evaluation(dataset):
    plain = batches(build_loader(cfg(dataset), ClusterEnv(), "train"))
    aug = batches(build_loader(cfg(dataset, augment=AugmentConfig()), ClusterEnv(), "train"))
    assert all(torch.equal(x["label"], y["label"]) for x, y in zip(plain, aug))
    assert any(not torch.equal(x["image"], y["image"]) for x, y in zip(plain, aug))
    for x, y in zip(plain, aug):  # same pixels per band, moved
        assert torch.allclose(x["image"].flatten(2).sort(-1).values, y["image"].flatten(2).sort(-1).values)
    full = AugmentConfig(mixup_alpha=0.4)
    ev = batches(build_loader(cfg(dataset, augment=full), ClusterEnv(), "val"))
    ref = batches(build_loader(cfg(dataset), ClusterEnv(), "val"))
    assert all(torch.equal(x["image"], y["image"]) and "mix_weight" not in x for x, y in zip(ev, ref))
    mixed = batches(build_loader(cfg(dataset, augment=full), ClusterEnv(), "train"))
    assert all(0 < float(b["mix_weight"]) < 1 for b in mixed)


@pytest.mark.parametrize("augment", [NO_AUG, AugmentConfig()])
@pytest.mark.parametrize("split", ["train", "val"])
def test_dali_equals_torch(dataset, augment, split):
    pytest.importorskip("nvidia.dali")
    t = batches(build_loader(cfg(dataset, augment=augment), ClusterEnv(), split))
    d = batches(build_loader(cfg(dataset, "dali", workers=1, augment=augment), ClusterEnv(), split))
    assert len(t) == len(d)
    for x, y in zip(t, d):
        for key in ("image", "label", "mask"):
            assert torch.allclose(x[key].float(), y[key].float(), atol=1e-6), key


def test_synthetic_follows_the_real_split_or_its_own_size(dataset):
    real = build_loader(cfg(dataset, "synthetic"), ClusterEnv(), "train")
    assert real.steps_per_epoch == 34 // 4
    own = build_loader(RunConfig(data=DataConfig(backend="synthetic", synthetic_patches=40),
                                 train=TrainConfig(batch_size=8)), ClusterEnv(), "train")
    assert own.steps_per_epoch == 5 and len(list(own)) == 5


def test_damaged_shard_is_one_clear_error(copy):
    shard = copy / "train" / "shard-00001.h5"
    data = bytearray(shard.read_bytes())
    data[-100] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(JeopardaError, match=f"{shard}: checksum mismatch"):
        build_loader(cfg(copy), ClusterEnv(), "train")


def test_missing_shard_split_and_foreign_manifest(copy):
    (copy / "val" / "shard-00000.h5").unlink()
    with pytest.raises(JeopardaError, match="shard-00000.h5: shard file is missing"):
        build_loader(cfg(copy, verify_checksums=False), ClusterEnv(), "val")
    with pytest.raises(JeopardaError, match="no split 'holdout'"):
        build_loader(cfg(copy), ClusterEnv(), "holdout")
    (copy / "manifest.json").write_text(json.dumps({"format": "tfrecord", "version": 1}))
    with pytest.raises(JeopardaError, match="is not jeoparda-shards"):
        build_loader(cfg(copy), ClusterEnv(), "train")
    with pytest.raises(JeopardaError, match="data.backend"):
        DataConfig(backend="ffcv")


def test_staging_copies_verifies_and_reuses(dataset, tmp_path):
    stage = tmp_path / "local"
    staged = build_loader(cfg(dataset, stage=True, stage_dir=str(stage)), ClusterEnv(), "train")
    plain = build_loader(cfg(dataset), ClusterEnv(), "train")
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(batches(staged), batches(plain)))
    assert staged.stage_time_s > 0 and staged.source.root.parent == stage
    files = sorted(p.relative_to(staged.source.root).as_posix() for p in staged.source.root.rglob("*.h5"))
    assert files == [f"train/shard-0000{i}.h5" for i in range(5)]  # only the split it reads
    stamp = os.stat(staged.source.root / files[0]).st_mtime_ns
    build_loader(cfg(dataset, stage=True, stage_dir=str(stage)), ClusterEnv(), "train")
    assert os.stat(staged.source.root / files[0]).st_mtime_ns == stamp  # kept, not copied again


def test_staging_refuses_a_bad_copy(copy, tmp_path):
    shard = copy / "train" / "shard-00002.h5"
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(JeopardaError, match="checksum mismatch after staging"):
        build_loader(cfg(copy, stage=True, stage_dir=str(tmp_path / "local")), ClusterEnv(), "train")
    assert not list((tmp_path / "local").rglob("*.tmp-*"))


def test_node_local_staging_gives_each_node_its_shards(dataset, tmp_path):
    roots = []
    for r in range(4):  # 2 nodes x 2 ranks, each node with its own local disk
        env = ClusterEnv(rank=r, world_size=4, local_rank=r % 2, local_size=2, nodes=2)
        node = tmp_path / f"node{r // 2}"
        if r % 2 == 0:
            loader = build_loader(cfg(dataset, batch=2, stage=True, stage_dir=str(node)), env, "train")
            roots.append(sorted(p.name for p in loader.source.root.rglob("*.h5")))
    assert roots == [["shard-00000.h5", "shard-00002.h5", "shard-00004.h5"], ["shard-00001.h5", "shard-00003.h5"]]


def test_reader_processes_survive_a_dali_pipeline_in_the_caller(dataset):
    """Regression: forked readers died finalising the caller's DALI pipeline."""
    pytest.importorskip("nvidia.dali")
    dali = build_loader(cfg(dataset, "dali", workers=1), ClusterEnv(), "train")
    first = batches(dali)
    torch_loader = build_loader(cfg(dataset, workers=2), ClusterEnv(), "train")
    for epoch in range(3):
        assert len(batches(torch_loader, epoch)) == torch_loader.steps_per_epoch
    del dali
    assert all(torch.allclose(x["image"], y["image"], atol=1e-6) for x, y in zip(first, batches(torch_loader)))


@pytest.mark.parametrize("backend, workers", [("torch", 0), ("torch", 2), ("dali", 1), ("synthetic", 0)])
def test_start_step_continues_the_epoch(dataset, backend, workers):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    full_cfg = cfg(dataset, backend, workers=workers, augment=AugmentConfig(mixup_alpha=0.3))
    full = batches(build_loader(full_cfg, ClusterEnv(), "train"), epoch=1)
    resumed = build_loader(full_cfg, ClusterEnv(), "train")
    resumed.set_epoch(1, start_step=4)
    rest = list(resumed)
    assert len(rest) == len(full) - 4
    for x, y in zip(full[4:], rest):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])


@pytest.mark.parametrize("backend", ["torch", "dali"])
def test_an_epoch_left_early_does_not_leak_into_the_next(dataset, backend):
    """train.max_steps (or a preemption) leaves an epoch early; the next epoch must be whole and
    its own (DALI's pipeline once replayed the rest of the old epoch, then ran out)."""
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    fresh = build_loader(cfg(dataset), ClusterEnv(), "train")
    want = batches(fresh, epoch=1)
    loader = build_loader(cfg(dataset, backend, workers=1), ClusterEnv(), "train")
    loader.set_epoch(0)
    stream = iter(loader)
    next(stream), next(stream)
    got = batches(loader, epoch=1)
    assert len(got) == len(want) == loader.steps_per_epoch
    for a, b in zip(want, got, strict=True):
        assert torch.allclose(a["image"], b["image"], atol=1e-6) and torch.equal(a["label"], b["label"])


def test_dali_consecutive_epochs_are_each_their_own(dataset):
    """With DALI's auto-reset the next epoch's first batches were prefetched before set_epoch():
    every epoch after the first repeated the old epoch's order (and augmentation)."""
    pytest.importorskip("nvidia.dali")
    t = build_loader(cfg(dataset, augment=AugmentConfig()), ClusterEnv(), "train")
    d = build_loader(cfg(dataset, "dali", workers=1, augment=AugmentConfig()), ClusterEnv(), "train")
    for epoch in range(3):
        a, b = batches(t, epoch), batches(d, epoch)
        assert len(a) == len(b) == t.steps_per_epoch
        for x, y in zip(a, b, strict=True):
            assert torch.allclose(x["image"], y["image"], atol=1e-6) and torch.equal(x["label"], y["label"])
