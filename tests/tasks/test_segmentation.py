"""Dense-labelling metrics from summed counts equal scikit-learn on small cases; the counts taken on
the device equal the host counts; the deterministic loss equals cross-entropy without nll_loss2d."""
import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from jeoparda.labels import NO_CLASS
from jeoparda.tasks.segmentation import (
    AUC_BINS,
    count_pixels,
    masked_cross_entropy,
    pixel_counts,
    segmentation_loss,
    segmentation_scores,
)
from tests.models.test_fcn import OpLog, deterministic


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


def reference_counts(labels, scores, bins=AUC_BINS):
    """The counts as they were taken on the host with numpy before counting moved to the device."""
    k = scores.shape[1]
    valid = labels != NO_CLASS
    truth = labels[valid].astype(np.int64)
    probs = np.moveaxis(scores, 1, -1)[valid]
    pred = probs.argmax(1)
    cm = np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)
    which = np.minimum((probs * bins).astype(np.int64), bins - 1)
    hist = np.zeros((k, 2, bins), np.int64)
    for c in range(k):
        positive = truth == c
        hist[c, 1] = np.bincount(which[positive, c], minlength=bins)
        hist[c, 0] = np.bincount(which[~positive, c], minlength=bins)
    return {"confusion": cm, "histograms": hist}


def float32_case(seed, n=4, k=6, size=9):
    """Softmax scores as evaluation has them (float32), with scores on bin edges, 1.0 and tied maxima."""
    labels, _ = case(seed, n, k, size)
    scores = torch.softmax(torch.randn(n, k, size, size, generator=torch.Generator().manual_seed(seed)), 1)
    scores[0, :, 3, 3] = torch.tensor([0.5, 0.5, 0, 0, 0, 0])       # a tie: the first class wins
    scores[1, :, 4, 4] = torch.tensor([1.0, 0, 0, 0, 0, 0])         # 1.0 falls into the last bin
    scores[2, :, 5, 5] = torch.tensor([0.25, 0.125, 0.375, 0.001, 0.124, 0.125])  # bin edges
    return torch.from_numpy(labels), scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_device_counts_equal_the_host_counts(seed):
    labels, scores = float32_case(seed)
    keep = torch.tensor([True, False, True, True])  # sample 1 is padding
    got = count_pixels(labels, scores, keep)
    want = reference_counts(labels[keep].numpy(), scores[keep].numpy())
    for key, value in want.items():
        assert got[key].device == scores.device and got[key].dtype == torch.int64
        assert np.array_equal(got[key].numpy(), value), key
    whole = pixel_counts(labels.numpy(), scores.numpy())   # host arrays in, host arrays out
    for key, value in reference_counts(labels.numpy(), scores.numpy()).items():
        assert np.array_equal(whole[key], value), key


def test_deterministic_loss_equals_cross_entropy():
    logits = torch.randn(3, 5, 6, 7, generator=torch.Generator().manual_seed(0), requires_grad=True)
    target = torch.randint(0, 5, (3, 6, 7), generator=torch.Generator().manual_seed(1)).to(torch.uint8)
    target[0, :2] = NO_CLASS
    target[2] = NO_CLASS  # a sample without labelled pixels
    fast = torch.nn.functional.cross_entropy(logits, target.long(), ignore_index=NO_CLASS)
    with deterministic(True):
        exact = segmentation_loss(logits, target)
    assert torch.allclose(exact, fast, rtol=1e-6)
    grad_fast, = torch.autograd.grad(fast, logits)
    grad_exact, = torch.autograd.grad(exact, logits)
    assert torch.allclose(grad_exact, grad_fast, rtol=1e-5, atol=1e-7)
    assert torch.equal(masked_cross_entropy(logits, target), exact)


def test_deterministic_loss_avoids_nll_loss():
    logits = torch.randn(2, 4, 5, 5, requires_grad=True)
    target = torch.randint(0, 4, (2, 5, 5)).to(torch.uint8)
    with deterministic(True), OpLog() as log:
        segmentation_loss(logits, target).backward()
    assert not [n for n in log.names if "nll_loss" in n], log.names
    with deterministic(False), OpLog() as log:
        segmentation_loss(logits, target)
    assert "nll_loss2d_forward.default" in log.names  # outside deterministic mode: the fast kernel
