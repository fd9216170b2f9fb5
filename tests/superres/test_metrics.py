import math

import numpy as np
import pytest

from jeoparda.superres.metrics import Accumulator


def test_rmse_and_sre_match_their_definitions_over_several_batches():
    rng = np.random.default_rng(0)
    truth = rng.uniform(100, 3000, size=(5, 2, 8, 8))
    estimate = truth + rng.normal(0, 50, size=truth.shape)
    acc = Accumulator(("B05", "B06"))
    acc.add(truth[:2], estimate[:2])
    acc.add(truth[2:], estimate[2:])
    scores = acc.scores("20m")
    for b, name in enumerate(("B05", "B06")):
        mse = np.mean((truth[:, b] - estimate[:, b]) ** 2)
        assert scores[f"rmse_{name}"] == pytest.approx(math.sqrt(mse))
        assert scores[f"sre_{name}"] == pytest.approx(10 * math.log10(np.mean(truth[:, b]) ** 2 / mse))
    assert scores["rmse_20m"] == pytest.approx(math.sqrt(np.mean((truth - estimate) ** 2)))
    assert scores["sre_20m"] == pytest.approx((scores["sre_B05"] + scores["sre_B06"]) / 2)


def test_sam_is_the_mean_angle_between_spectra():
    truth = np.zeros((1, 2, 1, 3))
    truth[0, :, 0, :] = [[1, 1, 0], [0, 1, 1]]  # spectra per pixel: (1, 0), (1, 1), (0, 1)
    estimate = np.zeros_like(truth)
    estimate[0, :, 0, :] = [[3, 1, 1], [0, -1, 1]]  # (3, 0): 0 deg, (1, -1): 90 deg, (1, 1): 45 deg
    acc = Accumulator(("B01", "B09"))
    acc.add(truth, estimate)
    assert acc.scores("60m")["sam_60m"] == pytest.approx((0 + 90 + 45) / 3)


def test_perfect_estimate():
    truth = np.full((1, 1, 4, 4), 500.0)
    acc = Accumulator(("B05",))
    acc.add(truth, truth.copy())
    scores = acc.scores("20m")
    assert scores["rmse_20m"] == 0 and scores["sam_20m"] == 0 and math.isinf(scores["sre_B05"])
