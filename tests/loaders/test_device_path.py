"""The input pipeline's GPU path, run on the stand-in accelerator (tests/standin_cuda.py).

The first CUDA batch of the torch loader used to raise IndexError (the pinned-buffer sets were
indexed before the first was made); these tests take the device path over several epochs, with
and without reader processes, and hold it to the CPU path's batches and to the rules of a GPU
input pipeline: uploads from page-locked memory on a side stream, the compute stream ordered after
them on the device, and no host wait for the compute stream anywhere on the step path.
"""
import numpy as np
import pytest
import torch

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import AugmentConfig
from jeoparda.devices import parse_device
from jeoparda.loaders.build import build_loader
from tests.loaders.test_loader import cfg


def epochs(loader, count):
    out = []
    for epoch in range(count):
        loader.set_epoch(epoch)
        out.append(list(loader))
    loader.close()
    return out


def assert_same(host_epochs, device_epochs):
    for host, dev in zip(host_epochs, device_epochs, strict=True):
        assert len(host) == len(dev) > 1
        for a, b in zip(host, dev, strict=True):
            assert set(a) == set(b)
            for key in a:
                assert torch.equal(a[key], b[key]), key


def assert_device_rules(runtime, batches):
    """Every tensor of every batch crossed to the GPU from page-locked memory on a side stream and
    was handed to the compute stream; the host never waited for the compute stream."""
    for batch in (b for epoch in batches for b in epoch):
        for key in ("label", "mask"):  # as uploaded; the image is normalised from its upload
            assert getattr(batch[key], "standin_device", None) == "cuda:0", key
            assert batch[key].standin_stream.startswith("side-"), key
        for key in ("image", "label", "mask"):
            assert batch[key].standin_used_by == ["compute-0"], key
    assert runtime.uploads and all(u["page_locked"] for u in runtime.uploads)
    assert not [w for w in runtime.host_waits if w[1].startswith("compute") or w[0] == "pageable copy"]


@pytest.mark.parametrize("workers", [0, 2])
def test_device_batches_equal_host_batches_over_epochs(standin_gpu, dataset, workers):
    config = cfg(dataset, workers=workers, augment=AugmentConfig(flip=True, rot90=True))
    host = epochs(build_loader(config, ClusterEnv(), "train", Accelerator()), 3)
    device = epochs(build_loader(config, ClusterEnv(), "train", parse_device("cuda")), 3)
    assert_same(host, device)
    assert_device_rules(standin_gpu, device)


def test_reader_ring_is_uploaded_in_place_without_a_host_copy(standin_gpu, dataset):
    """With reader processes the images go to the device straight from the shared ring, which is
    page-locked in place; only the small labels and masks pass through the pinned sets."""
    loader = build_loader(cfg(dataset, workers=1), ClusterEnv(), "train", parse_device("cuda"))
    loader.set_epoch(0)
    batches = list(loader)
    assert len(standin_gpu.registered) == 1
    images = [u for u in standin_gpu.uploads if len(u["shape"]) == 4]
    assert len(images) == len(batches) and {u["memory"] for u in images} == {"registered"}
    assert {u["dtype"] for u in images} == {torch.uint16}  # half the bytes of float32 cross
    assert {u["memory"] for u in standin_gpu.uploads if len(u["shape"]) < 4} == {"pinned"}
    loader.close()
    assert not standin_gpu.registered  # unregistered when the loader closes


def test_a_slot_is_refilled_only_after_its_upload_ran(standin_gpu, dataset):
    """Each ring slot's upload records an event on the side stream; before the sampler hands that
    slot to a reader again it waits for that event, never for one of the compute stream."""
    loader = build_loader(cfg(dataset, workers=1), ClusterEnv(), "train", parse_device("cuda"))
    loader.set_epoch(0)
    steps = len(list(loader))
    loader.close()
    event_waits = [w for w in standin_gpu.host_waits if w[0] == "event"]
    slots = 1 * loader.cfg.data.prefetch + 2
    assert steps > slots and len(event_waits) >= steps - slots
    assert all(w[1].startswith("side-") for w in event_waits)


def test_sentinel1_and_maps_on_the_device_equal_the_host(standin_gpu, reben_dataset):
    config = cfg(reben_dataset, bands="s2+s1", augment=AugmentConfig(flip=True, rot90=True))
    from dataclasses import replace

    config = replace(config, train=replace(config.train, task="segmentation"), model="fcn_maggiori")
    host = epochs(build_loader(config, ClusterEnv(), "train", Accelerator()), 2)
    device = epochs(build_loader(config, ClusterEnv(), "train", parse_device("cuda")), 2)
    assert_same(host, device)
    assert host[0][0]["image"].shape[1] == 14 and host[0][0]["label"].ndim == 3


def test_mixup_and_heavy_augmentation_draw_without_host_waits(standin_gpu, dataset):
    aug = AugmentConfig(mixup_alpha=0.4, crop_scale=0.6, jitter=0.2)
    host = epochs(build_loader(cfg(dataset, augment=aug), ClusterEnv(), "train", Accelerator()), 1)
    device = epochs(build_loader(cfg(dataset, augment=aug), ClusterEnv(), "train", parse_device("cuda")), 1)
    for a, b in zip(host[0], device[0], strict=True):
        assert torch.allclose(a["image"], b["image"], atol=1e-6) and torch.equal(a["label"], b["label"])
    assert not [w for w in standin_gpu.host_waits if w[0] == "pageable copy"]
    # the permutation, crop boxes and jitter went up as pinned non-blocking copies
    assert sum(1 for u in standin_gpu.uploads if u["page_locked"]) > 3 * len(device[0])


def test_dali_is_given_the_ranks_gpu(standin_gpu, dataset, monkeypatch):
    pytest.importorskip("nvidia.dali")
    from jeoparda.loaders import dali_loader

    seen = []
    real = dali_loader.build_pipeline

    def cpu_pipeline(feed, batch, mean, inv_std, device_id, *args, **kwargs):
        seen.append(device_id)  # the stand-in has no GPU for DALI: run its CPU pipeline
        return real(feed, batch, mean, inv_std, None, *args, **kwargs)

    monkeypatch.setattr(dali_loader, "build_pipeline", cpu_pipeline)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    loader = build_loader(cfg(dataset, "dali"), ClusterEnv(), "val", parse_device("cuda:1"))
    batch = next(iter(loader))
    loader.close()
    assert seen == [1] and np.isfinite(batch["image"].numpy()).all()


def test_a_ring_that_cannot_be_page_locked_goes_through_pinned_buffers(standin_gpu, dataset):
    """cudaHostRegister refused (a memlock limit): CUDA's error is taken so no later kernel reports
    it, and every batch crosses through the pinned sets instead, equal all the same."""
    standin_gpu.register_fails = True
    config = cfg(dataset, workers=1)
    host = epochs(build_loader(config, ClusterEnv(), "train", Accelerator()), 1)
    device = epochs(build_loader(config, ClusterEnv(), "train", parse_device("cuda")), 1)
    assert_same(host, device)
    assert standin_gpu.pending_error == 0 and not standin_gpu.registered
    assert {u["memory"] for u in standin_gpu.uploads} == {"pinned"}


def test_closing_waits_for_queued_uploads_before_unlocking_the_ring(standin_gpu, dataset):
    loader = build_loader(cfg(dataset, workers=1), ClusterEnv(), "train", parse_device("cuda"))
    loader.set_epoch(0)
    next(iter(loader))  # left mid-epoch, uploads possibly queued
    standin_gpu.host_waits.clear()
    loader.close()
    assert standin_gpu.host_waits[:2] == [("device", "cuda:0"), ("unregister", "host")]
    assert standin_gpu.pending_error == 0


def test_one_side_stream_per_gpu_whatever_the_epochs_and_loaders(standin_gpu, dataset):
    gpu = parse_device("cuda")
    for split in ("train", "val"):
        epochs(build_loader(cfg(dataset), ClusterEnv(), split, gpu), 2)
    assert standin_gpu.calls["new_stream"] == 1


def test_the_sampler_knows_the_steps_it_issues(dataset):
    loader = build_loader(cfg(dataset, workers=1), ClusterEnv(), "train", Accelerator())
    loader.set_epoch(0, start_step=1)
    batches = list(loader)
    assert len(loader._sampler) == len(batches) == loader.steps_per_epoch - 1
    loader.close()
