"""Single-label classification (EuroSAT): softmax + cross-entropy (optional label smoothing);
overall accuracy (= top-1), balanced accuracy (mean per-class recall), macro F1, per-class
recall and the confusion matrix, defined as scikit-learn defines them (zero_division = 0)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from jeoparda.config import TrainConfig
from jeoparda.errors import JeopardaError
from jeoparda.tasks.base import Task


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) counts: row = true class, column = predicted class."""
    return np.bincount(y_true * classes + y_pred, minlength=classes * classes).reshape(classes, classes)


def singlelabel_scores(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, Any]:
    """Truth as class indices (n,) or one-hot (n, K), scores (n, K) -> the metric dict."""
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_score.ndim != 2:
        raise ValueError(f"y_score must be (n, classes), got {y_score.shape}")
    k = y_score.shape[1]
    y_true = np.asarray(y_true)
    truth = y_true.argmax(1) if y_true.ndim == 2 else y_true.astype(np.int64)
    pred = y_score.argmax(1)
    cm = confusion(truth, pred, k)
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    # as scikit-learn: balanced accuracy over the classes that occur, macro F1 over the classes that
    # occur or are predicted
    present = support > 0
    return {
        "accuracy": float((truth == pred).mean()) if len(truth) else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "f1_macro": float(f1[present | (predicted > 0)].mean()) if len(truth) else 0.0,
        "per_class_recall": recall.tolist(),
        "confusion_matrix": cm.tolist(),
    }


class SingleLabel(Task):
    """Batches carry ``label`` as float32 (B, K) one-hot vectors (mixed, under mixup), so
    augmentation and gathering treat them as multi-label vectors."""

    name = "singlelabel"
    quality_key = "accuracy"
    targets = "singlelabel"
    quality_label = "accuracy"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    @classmethod
    def from_config(cls, train: TrainConfig) -> SingleLabel:
        if train.threshold != TrainConfig.threshold:
            raise JeopardaError("train.threshold applies to multi-label data; this data set is single-label "
                                "(each image has one class: the highest score wins)")
        return cls(train.label_smoothing)

    def synthetic_labels(self, n: int, classes: int, size: tuple[int, int], device: torch.device,
                         gen: torch.Generator) -> torch.Tensor:
        drawn = torch.randint(0, classes, (n,), device=device, generator=gen)
        return torch.nn.functional.one_hot(drawn, classes).float()

    def loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        # label is a (possibly mixed) distribution over classes: cross-entropy with soft targets
        return torch.nn.functional.cross_entropy(logits, label, label_smoothing=self.label_smoothing)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)

    def metrics(self, label: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        return singlelabel_scores(label, scores)

    def summary(self, metrics: dict[str, Any]) -> str:
        return f"val accuracy {metrics['accuracy']:.3f}"
