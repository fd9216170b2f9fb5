"""Dense labelling (BigEarthNet v2.0 reference maps): per-pixel softmax cross-entropy ignoring
255; pixel accuracy, per-class IoU, mean IoU over the classes present, frequency-weighted IoU, and
the area under the ROC curve (one-vs-rest per class, averaged over classes with both positive and
negative pixels).

Metrics come from counts every rank can sum (each pixel counted once): a confusion matrix over
labelled pixels and, per class, histograms of the predicted probability of labelled pixels of
that class and of the others, in ``AUC_BINS`` equal bins on [0, 1]. The AUC from histograms
treats pixels in the same bin as tied (half a correct pair), as scikit-learn treats equal
scores, so it is exact when scores fall into distinct bins and otherwise off by at most the
fraction of positive-negative pairs that share a bin. The counts are taken on the batch's device
(evaluation copies only the summed counts to the host, once).

Under train.deterministic the loss avoids ``nll_loss2d``, which CUDA refuses in that mode.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from jeoparda.config import DataConfig, TrainConfig
from jeoparda.errors import JeopardaError
from jeoparda.labels import NO_CLASS
from jeoparda.tasks.base import Task

AUC_BINS = 1000


def count_pixels(labels: torch.Tensor, scores: torch.Tensor, keep: torch.Tensor | None = None,
                 bins: int = AUC_BINS) -> dict[str, torch.Tensor]:
    """Confusion matrix (K, K) and score histograms (K, 2, bins) of labelled pixels, int64 on the
    tensors' own device: no copy of the maps to the host, and ``bincount`` without weights, which
    is deterministic. Pixels left out go to a spare last bin instead of being selected by a mask.

    ``labels`` (n, H, W) class indices with NO_CLASS for unlabelled, ``scores`` (n, K, H, W)
    probabilities, ``keep`` (n,) False for samples to leave out (padding). Histogram [k, 1] holds
    pixels of class k, [k, 0] the others."""
    k = scores.shape[1]
    truth = labels.long()
    valid = truth != NO_CLASS
    if keep is not None:
        valid &= keep.bool().view(-1, *[1] * (truth.dim() - 1))
    cells = torch.where(valid, truth * k + scores.argmax(1), k * k)
    cm = tally(cells, k * k + 1)[:k * k].view(k, k)
    classes = torch.arange(k, device=scores.device, dtype=torch.int32).view(1, k, *[1] * (scores.dim() - 2))
    slots = (scores * bins).to(torch.int32).clamp_(0, bins - 1)          # the bin of each score
    slots += (2 * classes + (truth.unsqueeze(1) == classes)) * bins      # [class, positive, bin]
    slots.masked_fill_(~valid.unsqueeze(1), 2 * k * bins)
    hist = tally(slots, 2 * k * bins + 1)[:2 * k * bins].view(k, 2, bins)
    return {"confusion": cm, "histograms": hist}


def tally(indices: torch.Tensor, size: int) -> torch.Tensor:
    """How often each of 0..size-1 occurs in ``indices``, int64, on their device. Unlike
    ``bincount``, which reads the indices' range back to the host on a GPU (two synchronisations a
    call), a scatter-add of ones needs no host; integer sums are exact in any order, and CUDA's
    scatter_add_ is deterministic in deterministic mode."""
    flat = indices.reshape(-1).long()
    return torch.zeros(size, dtype=torch.int64, device=indices.device).scatter_add_(0, flat, torch.ones_like(flat))


def pixel_counts(labels: np.ndarray, scores: np.ndarray, bins: int = AUC_BINS) -> dict[str, np.ndarray]:
    """:func:`count_pixels` of host arrays, as host arrays."""
    counts = count_pixels(torch.as_tensor(np.ascontiguousarray(labels)),
                          torch.as_tensor(np.ascontiguousarray(scores)), bins=bins)
    return {key: value.numpy() for key, value in counts.items()}


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
    """Per-pixel cross-entropy, the mean over labelled pixels (NO_CLASS ignored); while
    deterministic algorithms are enabled, :func:`masked_cross_entropy` (same value)."""
    if torch.are_deterministic_algorithms_enabled():
        return masked_cross_entropy(logits, target)
    return torch.nn.functional.cross_entropy(logits, target.long(), ignore_index=NO_CLASS)


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy without ``nll_loss2d``, which has no deterministic CUDA kernel: the
    log-probability of each pixel's class picked by a one-hot comparison (no scatter), summed over
    the labelled pixels and divided by their number."""
    target = target.long().unsqueeze(1)                                   # (B, 1, H, W)
    classes = torch.arange(logits.shape[1], device=logits.device).view(1, -1, *[1] * (logits.dim() - 2))
    log_probs = torch.log_softmax(logits, dim=1)
    picked = torch.where(target == classes, log_probs, 0.0).sum()         # NO_CLASS matches no class
    return -picked / (target != NO_CLASS).sum()


class Segmentation(Task):
    """Batches carry ``label`` as uint8 (B, H, W) class indices, NO_CLASS where unlabelled (the
    reference maps, turned with their images; never mixed)."""

    name = "segmentation"
    quality_key = "miou"
    targets = "segmentation"
    quality_label = "mIoU"
    dense = True

    @classmethod
    def from_config(cls, train: TrainConfig) -> Segmentation:
        if train.threshold != TrainConfig.threshold or train.label_smoothing:
            raise JeopardaError("train.threshold and train.label_smoothing apply to classification; this run "
                                "labels pixels")
        return cls()

    def check_data(self, data: DataConfig) -> None:
        if data.augment.mixup_alpha or data.augment.crop < 1:
            raise JeopardaError("data.augment.mixup_alpha and crops (crop_scale, preset heavy) mix or warp images "
                                "without their reference maps; for segmentation use flips, rot90 and jitter")

    def synthetic_labels(self, n: int, classes: int, size: tuple[int, int], device: torch.device,
                         gen: torch.Generator) -> torch.Tensor:
        return torch.randint(0, classes, (n, *size), device=device, generator=gen).to(torch.uint8)

    def loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return segmentation_loss(logits, label)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)

    def counts(self, labels: torch.Tensor, scores: torch.Tensor, keep: torch.Tensor | None = None
               ) -> dict[str, torch.Tensor]:
        """A batch's summable counts, on the batch's device (see :func:`count_pixels`)."""
        return count_pixels(labels, scores, keep)

    def metrics_from_counts(self, counts: dict[str, np.ndarray]) -> dict[str, Any]:
        return segmentation_scores(counts["confusion"], counts["histograms"])

    def metrics(self, label: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        return self.metrics_from_counts(pixel_counts(label, scores))

    def summary(self, metrics: dict[str, Any]) -> str:
        return f"val mIoU {metrics['miou']:.3f}  pixel accuracy {metrics['pixel_accuracy']:.3f}"
