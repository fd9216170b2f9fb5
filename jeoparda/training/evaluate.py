"""Evaluation over all ranks: predictions are gathered, padding dropped by the loader's mask, and
the metrics computed once over the whole split (never an average of per-rank scores)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from jeoparda.cluster.backends import Backend
from jeoparda.loaders.base import Loader
from jeoparda.tasks import Task


@torch.no_grad()
def predict(model: nn.Module, loader: Loader, backend: Backend, autocast: dict,
            task: Task) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) of every patch of the split exactly once, in the same order on all ranks."""
    was_training = model.training
    model.eval()
    scores, labels, masks = [], [], []
    for batch in loader:
        with torch.autocast(**autocast):
            logits = model(batch["image"])
        scores.append(task.scores(logits.float()))
        labels.append(batch["label"])
        masks.append(batch["mask"])
    model.train(was_training)
    scores_t, labels_t = torch.cat(scores), torch.cat(labels)
    mask_t = torch.cat(masks).to(scores_t.dtype)
    stacked = torch.cat([scores_t, labels_t, mask_t[:, None]], dim=1)
    every = backend.all_gather(stacked).cpu().numpy()
    keep = every[:, -1] > 0.5
    n = scores_t.shape[1]
    return every[keep, :n], every[keep, n:2 * n]


@torch.no_grad()
def count(model: nn.Module, loader: Loader, backend: Backend, autocast: dict, task: Any) -> dict[str, Any]:
    """Dense tasks: per-batch counts (pixels), summed on each rank, then all-reduced; every pixel of
    every patch counted once (padding samples, mask False, are left out). The counting and the
    sums stay on the batch's device: the maps never go to the host, only the summed counts, once."""
    was_training = model.training
    model.eval()
    totals: dict[str, torch.Tensor] = {}
    samples = torch.zeros((), dtype=torch.int64, device=backend.device)
    for batch in loader:
        with torch.autocast(**autocast):
            logits = model(batch["image"])
        keep = batch["mask"].bool()
        counts = task.counts(batch["label"], task.scores(logits.float()), keep)
        for key, value in counts.items():
            totals[key] = totals[key] + value if key in totals else value
        samples += keep.sum().to(samples.device)
    model.train(was_training)
    # one all-reduce of every count (float64: exact far beyond any split's pixel count)
    keys = list(totals)
    flat = torch.cat([totals[key].flatten().to(backend.device, torch.float64) for key in keys]
                     + [samples.to(torch.float64).view(1)])
    summed = backend.all_reduce(flat).cpu().numpy().round().astype(np.int64)
    reduced, start = {}, 0
    for key in keys:
        size = totals[key].numel()
        reduced[key] = summed[start:start + size].reshape(totals[key].shape)
        start += size
    return {**task.metrics_from_counts(reduced), "samples": int(summed[-1])}


def evaluate(model: nn.Module, loader: Loader, backend: Backend, task: Task, autocast: dict) -> dict[str, Any]:
    """The task's metrics over the whole split, the same on every rank."""
    if getattr(task, "dense", False):
        return count(model, loader, backend, autocast, task)
    scores, labels = predict(model, loader, backend, autocast, task)
    return {**task.metrics(labels, scores), "samples": int(len(labels))}
