import numpy as np

from jeoparda.sentinel2 import BANDS
from jeoparda.superres.pairs import GROUPS, SCALE, full_inputs, reduced_pairs


def _constant_patch(values):
    return tuple(np.full((b.native_size, b.native_size), v, np.uint16) for b, v in zip(BANDS, values, strict=True))


def test_pair_shapes_follow_walds_protocol():
    bands = _constant_patch(range(100, 1300, 100))
    x, y = reduced_pairs(GROUPS["20m"], bands, 0.3)
    assert x.shape == (1, 10, 60, 60) and y.shape == (1, 6, 60, 60)
    x, y = reduced_pairs(GROUPS["60m"], bands, 0.3)
    assert x.shape == (9, 12, 18, 18) and y.shape == (9, 2, 18, 18)


def test_targets_are_the_original_bands_and_inputs_their_degraded_copies():
    rng = np.random.default_rng(1)
    bands = tuple(rng.integers(0, 5000, (b.native_size, b.native_size)).astype(np.uint16) for b in BANDS)
    g = GROUPS["60m"]
    _, y = reduced_pairs(g, bands, 0.3)
    # the third crop starts at 60 m pixel (0, 2): 18 x 18 of the original B01, B09
    np.testing.assert_allclose(y[2] / SCALE, np.stack([bands[0][0:18, 2:20], bands[9][0:18, 2:20]]), rtol=1e-6)


def test_constant_fields_are_restored_exactly_by_bicubic():
    bands = _constant_patch(range(100, 1300, 100))
    for g in GROUPS.values():
        x, y = reduced_pairs(g, bands, 0.3)
        np.testing.assert_allclose(x[:, g.residual_channels], y, rtol=1e-6)


def test_full_inputs_keep_the_10m_bands_and_upsample_the_rest():
    rng = np.random.default_rng(2)
    bands = tuple(rng.integers(0, 5000, (b.native_size, b.native_size)).astype(np.uint16) for b in BANDS)
    x = full_inputs(GROUPS["20m"], bands)
    assert x.shape == (10, 120, 120)
    np.testing.assert_allclose(x[0] / SCALE, bands[1], rtol=1e-6)  # B02 first
    assert full_inputs(GROUPS["60m"], bands).shape == (12, 120, 120)
