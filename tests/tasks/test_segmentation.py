"""Dense-labelling metrics from summed counts equal scikit-learn on small cases."""
import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from jeoparda.labels import NO_CLASS
from jeoparda.tasks.segmentation import AUC_BINS, pixel_counts, segmentation_loss, segmentation_scores


def case(seed, n=3, k=5, size=8):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k - 1, (n, size, size)).astype(np.uint8)   # class k-1 never occurs
    labels[:, :2, :2] = NO_CLASS
    logits = rng.normal(size=(n, k, size, size)) + 2.0 * np.eye(k)[np.minimum(labels, k - 1)].transpose(0, 3, 1, 2)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs = (np.floor(probs * AUC_BINS) + 0.5) / AUC_BINS   # bin centres: histogram AUC is exact
    return labels, probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_scikit_learn(seed):
    labels, probs = case(seed)
    k = probs.shape[1]
    got = segmentation_scores(**pixel_counts(labels, probs))
    valid = labels != NO_CLASS
    truth = labels[valid].astype(int)
    scores = np.moveaxis(probs, 1, -1)[valid]
    pred = scores.argmax(1)
    present = sorted(set(truth))
    assert got["pixel_accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
    per_class = skm.jaccard_score(truth, pred, labels=range(k), average=None, zero_division=0)
    assert got["miou"] == pytest.approx(per_class[present].mean())
    freq = np.bincount(truth, minlength=k) / len(truth)
    assert got["fw_iou"] == pytest.approx((freq * per_class).sum())
    assert got["iou_per_class"][k - 1] is None  # absent class: no IoU
    aucs = [skm.roc_auc_score(truth == c, scores[:, c]) for c in present]
    assert got["roc_auc"] == pytest.approx(np.mean(aucs), abs=1e-12)
    assert got["labelled_pixels"] == valid.sum()


def test_counts_of_parts_sum_to_the_counts_of_the_whole():
    """What every rank counts, summed (all-reduce), equals counting everything at once."""
    labels, probs = case(5, n=6)
    whole = pixel_counts(labels, probs)
    parts = [pixel_counts(labels[i:i + 2], probs[i:i + 2]) for i in range(0, 6, 2)]
    for key in whole:
        assert np.array_equal(sum(p[key] for p in parts), whole[key])


def test_loss_ignores_unlabelled_pixels():
    logits = torch.randn(2, 4, 3, 3)
    target = torch.randint(0, 4, (2, 3, 3))
    with_gaps = target.clone()
    with_gaps[0, 0, 0] = NO_CLASS
    keep = with_gaps != NO_CLASS
    expected = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[keep], with_gaps[keep])
    assert torch.allclose(segmentation_loss(logits, with_gaps.to(torch.uint8)), expected)
