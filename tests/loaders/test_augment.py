"""Augmentation keeps labels, is deterministic, and mixup mixes labels like images."""
import numpy as np
import torch

from jeoparda.config import AugmentConfig
from jeoparda.loaders.augment import apply_geometry, geometry_codes, mixup, normalise, normaliser


def test_normalise_matches_definition():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 10000, (3, 12, 8, 8)).astype(np.uint16)
    mean, std = rng.uniform(500, 2000, 12), rng.uniform(100, 900, 12)
    m, inv = normaliser(mean.tolist(), std.tolist())
    out = normalise(x, m, inv)
    assert out.dtype == torch.float32
    assert np.allclose(out.numpy(), (x - mean[:, None, None]) / std[:, None, None], rtol=1e-5, atol=1e-5)
    # the same float32 operations, in the same order, as numpy (and DALI): bit-identical
    assert np.array_equal(out.numpy(), (x.astype(np.float32) - m) * inv)


def test_geometry_is_a_dihedral_transform_of_each_sample():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 12, 6, 6)).astype(np.float32)
    codes = geometry_codes(AugmentConfig(), 64, seed=0, epoch=0, rank=0, step=0)
    y = apply_geometry(x.copy(), codes)
    for i in range(64):
        k, h, v = codes[i]
        ref = np.rot90(x[i], k, axes=(1, 2))
        ref = ref[..., ::-1] if h else ref
        ref = ref[..., ::-1, :] if v else ref
        assert np.array_equal(y[i], ref)
    assert len({tuple(c) for c in codes}) > 8  # several transforms in one batch
    # pixel values (per band) are only moved, never changed
    assert np.allclose(np.sort(y.reshape(64, 12, -1), -1), np.sort(x.reshape(64, 12, -1), -1))


def test_switches_and_determinism():
    off = geometry_codes(AugmentConfig(flip=False, rot90=False), 32, 0, 0, 0, 0)
    assert not off.any()
    flips = geometry_codes(AugmentConfig(flip=True, rot90=False), 32, 0, 0, 0, 0)
    assert not flips[:, 0].any() and flips[:, 1:].any()
    a = geometry_codes(AugmentConfig(), 32, 5, 2, 1, 7)
    assert np.array_equal(a, geometry_codes(AugmentConfig(), 32, 5, 2, 1, 7))
    assert not np.array_equal(a, geometry_codes(AugmentConfig(), 32, 5, 3, 1, 7))


def test_mixup_uses_one_weight_for_images_and_labels():
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(16, 12, 4, 4, generator=g),
             "label": (torch.rand(16, 19, generator=g) > 0.7).float(), "mask": torch.ones(16, dtype=torch.bool)}
    out = mixup(batch, alpha=0.4, seed=0, epoch=0, rank=0, step=0)
    lam = float(out["mix_weight"])
    assert 0 < lam < 1
    # recover the partner of each sample from the images, then check the labels used the same lam
    partner = ((out["image"] - lam * batch["image"]) / (1 - lam))
    for i in range(16):
        j = int(torch.argmin(((batch["image"] - partner[i]) ** 2).sum((1, 2, 3))))
        assert torch.allclose(out["label"][i], lam * batch["label"][i] + (1 - lam) * batch["label"][j], atol=1e-5)
