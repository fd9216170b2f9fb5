"""Dense labelling (BigEarthNet v2.0 reference maps): per-pixel softmax cross-entropy ignoring
255; pixel accuracy, per-class IoU, mean IoU over the classes present, frequency-weighted IoU, and
the area under the ROC curve (one-vs-rest per class, averaged over classes with both positive and
negative pixels).

Metrics come from counts every rank can sum (each pixel counted once): a confusion matrix over
labelled pixels and, per class, histograms of the predicted probability of labelled pixels of
that class and of the others, in ``AUC_BINS`` equal bins on [0, 1]. The AUC from histograms
treats pixels in the same bin as tied (half a correct pair), as scikit-learn treats equal
scores, so it is exact when scores fall into distinct bins and otherwise off by at most the
fraction of positive-negative pairs that share a bin.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from jeoparda.labels import NO_CLASS
from jeoparda.tasks.base import Task

AUC_BINS = 1000


def pixel_counts(labels: np.ndarray, scores: np.ndarray, bins: int = AUC_BINS) -> dict[str, np.ndarray]:
    """Confusion matrix (K, K) and score histograms (K, 2, bins) of labelled pixels.

    ``labels`` (n, H, W) class indices with NO_CLASS for unlabelled, ``scores`` (n, K, H, W)
    probabilities. Histogram [k, 1] holds pixels of class k, [k, 0] the others."""
    k = scores.shape[1]
    valid = labels != NO_CLASS
    truth = labels[valid].astype(np.int64)
    probs = np.moveaxis(scores, 1, -1)[valid]            # (pixels, K)
    pred = probs.argmax(1)
    cm = np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)
    which = np.minimum((probs * bins).astype(np.int64), bins - 1)
    hist = np.zeros((k, 2, bins), np.int64)
    for c in range(k):
        positive = truth == c
        hist[c, 1] = np.bincount(which[positive, c], minlength=bins)
        hist[c, 0] = np.bincount(which[~positive, c], minlength=bins)
    return {"confusion": cm, "histograms": hist}


def auc_from_histograms(pos: np.ndarray, neg: np.ndarray) -> float | None:
    """P(score of a positive > score of a negative) + half the ties; None without both kinds."""
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return None
    below = np.concatenate([[0], np.cumsum(neg)[:-1]])   # negatives in lower bins
    return float((pos * (below + 0.5 * neg)).sum() / (n_pos * n_neg))


def segmentation_scores(confusion: np.ndarray, histograms: np.ndarray) -> dict[str, Any]:
    """The metric dict from summed counts."""
    cm = confusion.astype(np.float64)
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    union = support + predicted - tp
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=union > 0)
    present = support > 0
    total = cm.sum()
    aucs = [auc_from_histograms(histograms[c, 1], histograms[c, 0]) for c in range(len(cm))]
    valid_aucs = [a for a in aucs if a is not None]
    return {
        "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
        "miou": float(iou[present].mean()) if present.any() else 0.0,
        "fw_iou": float((support / total * iou).sum()) if total else 0.0,
        "iou_per_class": [float(v) if p else None for v, p in zip(iou, present, strict=True)],
        "roc_auc": float(np.mean(valid_aucs)) if valid_aucs else None,
        "labelled_pixels": int(total),
    }


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy over labelled pixels (NO_CLASS ignored)."""
    return torch.nn.functional.cross_entropy(logits, target.long(), ignore_index=NO_CLASS)


class Segmentation(Task):
    """Batches carry ``label`` as (B, H, W) class indices, NO_CLASS where unlabelled."""

    name = "segmentation"
    quality_key = "miou"
    dense = True

    def loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return segmentation_loss(logits, label)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)

    def counts(self, labels: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
        return pixel_counts(labels, scores)

    def metrics_from_counts(self, counts: dict[str, np.ndarray]) -> dict[str, Any]:
        return segmentation_scores(counts["confusion"], counts["histograms"])

    def metrics(self, label: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        return self.metrics_from_counts(self.counts(label, scores))

    def summary(self, metrics: dict[str, Any]) -> str:
        return f"val mIoU {metrics['miou']:.3f}  pixel accuracy {metrics['pixel_accuracy']:.3f}"
