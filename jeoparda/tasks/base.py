"""The interface the training loop, evaluation and the loaders call."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

from jeoparda.config import DataConfig, TrainConfig


class Task(ABC):
    """A learning task: what its batches' ``label`` holds (each task's class docstring says), the
    loss, the head's activation, the metrics, and the options it refuses. Batches of every task
    carry ``image`` and ``mask`` alike (see jeoparda.loaders.base)."""

    name: str
    #: The validation metric that stands for quality in logs and reports.
    quality_key: str
    #: What reports call that metric ("F1 (samples)", "accuracy", ...).
    quality_label: str
    #: The data set's task (an entry of the manifest's ``tasks``) whose targets this task trains
    #: on: a data set offers this task when it offers that one.
    targets: str
    #: Dense tasks train on reference maps (a class per pixel) and are evaluated from counts each
    #: rank sums (see :meth:`counts`), not by gathering every prediction: a map per patch is too
    #: much to gather.
    dense: bool = False

    @classmethod
    def from_config(cls, train: TrainConfig) -> Task:
        """The task with its options from ``train``; options of other tasks are refused with one line."""
        return cls()

    def check_data(self, data: DataConfig) -> None:
        """Refuse, with one line, data options this task cannot train with (none by default)."""
        return None

    @abstractmethod
    def synthetic_labels(self, n: int, classes: int, size: tuple[int, int], device: torch.device,
                         gen: torch.Generator) -> torch.Tensor:
        """Random targets of ``n`` samples, as the loaders deliver them (the synthetic backend)."""

    @abstractmethod
    def loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch (float32 logits, the batch's ``label``)."""

    @abstractmethod
    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """The head's activation: what the metrics are computed from."""

    @abstractmethod
    def metrics(self, label: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        """Metrics over every sample of a split exactly once (gathered from all ranks)."""

    def summary(self, metrics: dict[str, Any]) -> str:
        """A few words for the per-epoch line."""
        return f"val {self.quality_key} {metrics[self.quality_key]:.3f}"
