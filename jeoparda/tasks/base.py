"""The interface the training loop and evaluation call."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch


class Task(ABC):
    """A learning task. Batches carry ``label`` as float32 (B, K): multi-hot for multi-label,
    one-hot (mixed, under mixup) for single-label, so augmentation and gathering treat both alike."""

    name: str
    #: The validation metric that stands for quality in logs and reports.
    quality_key: str
    #: What reports call that metric ("F1 (samples)", "accuracy", ...).
    quality_label: str
    #: Dense tasks are evaluated from counts each rank sums (see :meth:`counts`), not by gathering
    #: every prediction: a map per patch is too much to gather.
    dense: bool = False

    @abstractmethod
    def loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch (float32 logits, float32 targets)."""

    @abstractmethod
    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """The head's activation: what the metrics are computed from."""

    @abstractmethod
    def metrics(self, label: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        """Metrics over every sample of a split exactly once (gathered from all ranks)."""

    def summary(self, metrics: dict[str, Any]) -> str:
        """A few words for the per-epoch line."""
        return f"val {self.quality_key} {metrics[self.quality_key]:.3f}"
