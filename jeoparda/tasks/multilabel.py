"""Multi-label classification (BigEarthNet): sigmoid + binary cross-entropy; sample/micro/macro
F1, sample-Jaccard accuracy, subset accuracy, Hamming and ranking loss."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from jeoparda.config import TrainConfig
from jeoparda.errors import JeopardaError
from jeoparda.tasks.base import Task
from jeoparda.tasks.metrics import multilabel_scores


class MultiLabel(Task):
    """Batches carry ``label`` as float32 (B, K) multi-hot vectors (mixed, under mixup)."""

    name = "multilabel"
    quality_key = "f1_samples"
    targets = "multilabel"
    quality_label = "F1 (samples)"

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    @classmethod
    def from_config(cls, train: TrainConfig) -> MultiLabel:
        if train.label_smoothing:
            raise JeopardaError("train.label_smoothing applies to single-label data; this data set is multi-label")
        return cls(train.threshold)

    def synthetic_labels(self, n: int, classes: int, size: tuple[int, int], device: torch.device,
                         gen: torch.Generator) -> torch.Tensor:
        return (torch.rand(n, classes, device=device, generator=gen) < 0.2).float()

    def loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, label)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def metrics(self, label: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        return multilabel_scores(label, scores, self.threshold)

    def summary(self, metrics: dict[str, Any]) -> str:
        return f"val F1 {metrics['f1_samples']:.3f}"
