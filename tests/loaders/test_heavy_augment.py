"""The heavy augmentation preset: crops and jitter drawn from the shared stream, on the device, so
torch and DALI batches are the same; labels and evaluation untouched."""
import numpy as np
import pytest
import torch

from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import AugmentConfig
from jeoparda.loaders.augment import device_augment, photometric_params
from jeoparda.loaders.build import build_loader
from tests.loaders.test_loader import NO_AUG, batches, cfg

HEAVY = AugmentConfig(flip=False, rot90=False, preset="heavy")


def test_heavy_preset_values_and_explicit_settings_win():
    assert (HEAVY.crop, HEAVY.strength) == (0.5, 0.2)
    assert (AugmentConfig(preset="heavy", crop_scale=0.8, jitter=0.1).crop, AugmentConfig().crop) == (0.8, 1.0)


def test_draws_stay_in_their_ranges_and_repeat():
    p = photometric_params(HEAVY, 4000, 12, seed=1, epoch=2, rank=0, step=5)
    area = p["w"] * p["h"]
    assert area.min() >= 0.5 - 1e-9 and area.max() <= 1 + 1e-9 and np.median(area) > 0.6
    assert (np.abs(p["cx"]) <= 1 - p["w"] + 1e-9).all() and (np.abs(p["cy"]) <= 1 - p["h"] + 1e-9).all()
    assert p["contrast"].min() >= 0.8 and p["contrast"].max() <= 1.2 and abs(p["brightness"].mean()) < 0.01
    q = photometric_params(HEAVY, 4000, 12, seed=1, epoch=2, rank=0, step=5)
    assert all(np.array_equal(p[k], q[k]) for k in p)


def test_full_crop_and_no_jitter_is_the_identity():
    x = torch.randn(3, 4, 16, 16)
    cfg_id = AugmentConfig(crop_scale=1.0, jitter=0.0)
    assert torch.equal(device_augment(x, cfg_id, 0, 0, 0, 0), x)
    flat = torch.arange(16.0).repeat(16, 1)[None, None]  # a ramp along W: a crop is a ramp again
    crop = device_augment(flat, AugmentConfig(crop_scale=0.5), 0, 0, 0, 0)
    p = photometric_params(AugmentConfig(crop_scale=0.5), 1, 1, 0, 0, 0, 0)
    step = (crop[0, 0, 0, 1:] - crop[0, 0, 0, :-1]).mean().item()
    assert step == pytest.approx(p["w"][0], rel=0.05)  # slope shrinks by the crop's width


def test_jitter_moves_band_means_and_spreads_by_the_drawn_amounts():
    x = torch.randn(2, 3, 32, 32)
    y = device_augment(x, AugmentConfig(jitter=0.2), 0, 0, 0, 0)
    p = photometric_params(AugmentConfig(jitter=0.2), 2, 3, 0, 0, 0, 0)
    shift = (y.mean(dim=(2, 3)) - x.mean(dim=(2, 3))).numpy()
    spread = (y.std(dim=(2, 3)) / x.std(dim=(2, 3))).numpy()
    assert np.allclose(shift, p["brightness"], atol=1e-5) and np.allclose(spread, p["contrast"], atol=1e-5)


def test_loader_applies_it_to_training_only_and_keeps_labels(dataset):
    plain_train = batches(build_loader(cfg(dataset, augment=NO_AUG), ClusterEnv(), "train"))
    heavy_train = batches(build_loader(cfg(dataset, augment=HEAVY), ClusterEnv(), "train"))
    assert not torch.allclose(plain_train[0]["image"], heavy_train[0]["image"])
    for a, b in zip(plain_train, heavy_train, strict=True):
        assert torch.equal(a["label"], b["label"])
    plain_val = batches(build_loader(cfg(dataset, augment=NO_AUG), ClusterEnv(), "val"))
    heavy_val = batches(build_loader(cfg(dataset, augment=HEAVY), ClusterEnv(), "val"))
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(plain_val, heavy_val, strict=True))


def test_torch_and_dali_give_the_same_heavy_batches(dataset):
    pytest.importorskip("nvidia.dali")
    heavy = AugmentConfig(preset="heavy")  # with flips and quarter turns too
    t = batches(build_loader(cfg(dataset, augment=heavy), ClusterEnv(), "train"))
    d = batches(build_loader(cfg(dataset, "dali", workers=1, augment=heavy), ClusterEnv(), "train"))
    for x, y in zip(t, d, strict=True):
        assert torch.allclose(x["image"], y["image"], atol=1e-5) and torch.equal(x["label"], y["label"])
