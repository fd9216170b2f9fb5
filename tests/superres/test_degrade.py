import numpy as np
import pytest

from jeoparda.superres.degrade import decimation_matrix, degrade, mtf_sigma


@pytest.mark.parametrize("factor", [2, 6])
def test_gaussian_response_at_coarse_nyquist_is_the_mtf(factor):
    d = decimation_matrix(120, factor, 0.3)
    row = d[len(d) // 2]  # an interior row: no clamped taps
    taps = np.arange(120) - ((len(d) // 2 + 0.5) * factor - 0.5)
    response = abs(np.sum(row * np.exp(-2j * np.pi * taps / (2 * factor))))
    assert response == pytest.approx(0.3, abs=0.01)


def test_rows_sum_to_one_so_constants_survive():
    band = np.full((1, 60, 60), 1234.0)
    out = degrade(band, 2)
    assert out.shape == (1, 30, 30)
    np.testing.assert_allclose(out, 1234.0)


def test_degrade_is_centred_on_the_coarse_pixel():
    ramp = np.tile(np.arange(120, dtype=float), (120, 1))[None]
    out = degrade(ramp, 6)[0]
    # away from the clamped edges a linear ramp is sampled at the coarse pixel centres
    np.testing.assert_allclose(out[5, 3:-3], (np.arange(20) * 6 + 2.5)[3:-3], atol=1e-9)


def test_bad_arguments():
    with pytest.raises(ValueError, match="divide"):
        decimation_matrix(20, 6)
    with pytest.raises(ValueError, match="between 0 and 1"):
        mtf_sigma(2, 1.0)
