import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jeoparda.resample import upsample, weight_matrix


@pytest.fixture
def bands():
    return np.random.default_rng(0).integers(0, 12000, size=(3, 60, 60), dtype=np.uint16)


def torch_resize(x, mode):
    t = torch.from_numpy(x.astype(np.float64))[None]
    kw = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(t, size=120, mode=mode, **kw)[0].numpy()


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_matches_pytorch_resampling(bands, mode):
    expected = np.clip(np.rint(torch_resize(bands, mode)), 0, 65535)
    assert np.array_equal(upsample(bands, 120, mode), expected)


def test_bicubic_reproduces_smooth_surfaces_and_keeps_constants():
    const = np.full((1, 20, 20), 1234, dtype=np.uint16)
    assert (upsample(const, 120, "bicubic") == 1234).all()
    yy, xx = np.mgrid[0:60, 0:60]
    ramp = (1000 + 10 * xx + 5 * yy).astype(np.uint16)[None]
    out = upsample(ramp, 120, "bicubic").astype(float)[0]
    # A linear ramp is reproduced exactly by the cubic kernel away from the clamped border.
    centres = (np.arange(120) + 0.5) / 2 - 0.5
    expected = 1000 + 10 * centres[None, :] + 5 * centres[:, None]
    assert np.abs(out[4:-4, 4:-4] - expected[4:-4, 4:-4]).max() <= 0.5


def test_rows_sum_to_one_and_clip():
    for method in ("bicubic", "bilinear", "nearest"):
        assert np.allclose(weight_matrix(20, 120, method).sum(axis=1), 1.0)
    step = np.zeros((1, 60, 60), dtype=np.uint16)
    step[0, :, 30:] = 65535
    w = weight_matrix(60, 120, "bicubic")
    raw = w @ step[0].astype(float) @ w.T
    assert raw.max() > 65535 and raw.min() < 0  # the cubic kernel overshoots at an edge ...
    out = upsample(step, 120, "bicubic")
    assert out.dtype == np.uint16 and out.max() == 65535 and out.min() == 0  # ... and is clipped


def test_unknown_method():
    with pytest.raises(ValueError, match="lanczos"):
        weight_matrix(60, 120, "lanczos")
