"""multilabel_scores against scikit-learn (the definitions of the BigEarthNet papers)."""
import numpy as np
import pytest

from jeoparda.tasks.metrics import METRIC_KEYS, multilabel_scores

sk = pytest.importorskip("sklearn.metrics")


def reference(y, s, t=0.5):
    p = (s >= t).astype(int)
    return {"f1_samples": sk.f1_score(y, p, average="samples", zero_division=0),
            "f1_micro": sk.f1_score(y, p, average="micro", zero_division=0),
            "f1_macro": sk.f1_score(y, p, average="macro", zero_division=0),
            "accuracy": sk.jaccard_score(y, p, average="samples", zero_division=0),
            "subset_accuracy": sk.accuracy_score(y, p),
            "hamming_loss": sk.hamming_loss(y, p),
            "ranking_loss": sk.label_ranking_loss(y, s)}


@pytest.mark.parametrize("seed", range(4))
def test_equals_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((300, 19)) < 0.15).astype(int)
    y[:5] = 0            # samples without any label
    y[5, :] = 1          # a sample with every label
    y[:, 7] = 0          # a class that never occurs
    s = np.clip(y * 0.4 + rng.random((300, 19)) * 0.7, 0, 1)
    s[10] = 0.5          # ties and a score exactly at the threshold
    s = np.round(s, 1)   # more ties for the ranking loss
    ours, ref = multilabel_scores(y, s), reference(y, s)
    assert set(ours) == set(METRIC_KEYS)
    for key in METRIC_KEYS:
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key


def test_perfect_and_threshold():
    y = np.eye(19)[np.arange(40) % 19]
    perfect = multilabel_scores(y, y * 0.9)
    assert perfect["f1_samples"] == perfect["accuracy"] == perfect["subset_accuracy"] == 1.0
    assert perfect["hamming_loss"] == perfect["ranking_loss"] == 0.0
    assert multilabel_scores(y, y * 0.9, threshold=0.95)["f1_micro"] == 0.0


def test_shape_mismatch():
    with pytest.raises(ValueError, match="must be equal"):
        multilabel_scores(np.zeros((3, 19)), np.zeros((3, 18)))


def test_the_old_import_path_still_answers():
    """jeoparda.training.metrics was the public path (other code relies on it): the same functions."""
    from jeoparda.tasks import metrics as new
    from jeoparda.training import metrics as old

    assert old.multilabel_scores is new.multilabel_scores and old.ranking_loss is new.ranking_loss
    assert old.METRIC_KEYS == new.METRIC_KEYS
