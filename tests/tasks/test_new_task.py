"""A new task needs code in jeoparda/tasks/ only: a Task subclass added to the registry is chosen,
created, checked, loaded and trained with no other change. The toy tasks read targets the data
sets already offer under new names, so set-up or loaders that pick targets by task name (or by
the model's kind) fail here."""
from typing import Any

import numpy as np
import pytest
import torch

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.backends import Backend
from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import load_config
from jeoparda.errors import JeopardaError
from jeoparda.loaders.build import build_loader
from jeoparda.tasks import TASKS
from jeoparda.tasks.multilabel import MultiLabel
from jeoparda.tasks.segmentation import Segmentation
from jeoparda.training.loop import Trainer
from tests.training.test_train import SMALL, events


class ClassCount(MultiLabel):
    """Toy: how many classes a patch holds, right within one; trained on the multi-label targets."""

    name = "class_count"
    quality_key = "count_within_one"
    quality_label = "classes counted within one"

    def metrics(self, label: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        off = np.abs(label.sum(1) - (scores >= self.threshold).sum(1))
        return {"count_within_one": float((off <= 1).mean()), "count_error": float(off.mean())}

    def summary(self, metrics: dict[str, Any]) -> str:
        return f"val count within one {metrics['count_within_one']:.3f}"


class Labelled(Segmentation):
    """Toy dense task on the reference maps: pixel accuracy stands for quality."""

    name = "labelled_pixels"
    quality_key = "pixel_accuracy"
    quality_label = "pixel accuracy"


@pytest.fixture
def toys(monkeypatch):
    monkeypatch.setitem(TASKS, ClassCount.name, ClassCount)
    monkeypatch.setitem(TASKS, Labelled.name, Labelled)


def trainer(tmp_path, *overrides):
    cfg = load_config([], [*SMALL, "dist.backend=single", "train.epochs=1", "train.max_steps=2", *overrides])
    return Trainer(cfg, ClusterEnv(), Backend(ClusterEnv(), cfg.dist), Accelerator(), tmp_path / "run",
                   lambda text: None)


def test_a_toy_task_trains_an_epoch_on_a_converted_set(toys, dataset, tmp_path):
    run = trainer(tmp_path, f"data.path={dataset}", "train.task=class_count")
    assert isinstance(run.task, ClassCount) and run.train_loader.task == "class_count"
    assert run.run(resume=False) == 0
    start, epoch, end = events(tmp_path / "run")
    assert start["task"] == "class_count" and end["status"] == "completed"
    assert (start["quality_key"], start["quality_label"]) == ("count_within_one", "classes counted within one")
    assert 0 <= epoch["count_within_one"] <= 1 and end["test"]["samples"] == 7
    assert "count_within_one" in end["test"] and "f1_samples" not in epoch


def test_a_toy_dense_task_trains_on_the_synthetic_backend(toys, tmp_path):
    run = trainer(tmp_path, "data.backend=synthetic", "data.synthetic_patches=8", "train.task=labelled_pixels",
                  "model=fcn_maggiori", "data.resize=32", "train.test=false")
    assert run.train_loader.task == "labelled_pixels"
    assert run.run(resume=False) == 0
    start, epoch, end = events(tmp_path / "run")
    assert start["task"] == "labelled_pixels" and 0 <= epoch["pixel_accuracy"] <= 1 and end["status"] == "completed"
    assert (start["quality_key"], start["quality_label"]) == ("pixel_accuracy", "pixel accuracy")


def test_the_loaders_deliver_the_targets_the_task_reads(toys, reben_dataset):
    cfg = load_config([], [f"data.path={reben_dataset}", *SMALL, "train.task=labelled_pixels", "model=fcn_maggiori"])
    batch = next(iter(build_loader(cfg, ClusterEnv(), "val")))
    assert batch["label"].shape == (4, 120, 120) and batch["label"].dtype == torch.uint8
    cfg = load_config([], [f"data.path={reben_dataset}", *SMALL, "train.task=class_count"])
    batch = next(iter(build_loader(cfg, ClusterEnv(), "val")))
    assert batch["label"].shape == (4, 19) and batch["label"].dtype == torch.float32


def test_a_toy_task_is_checked_like_the_others(toys, dataset, eurosat_dataset):
    with pytest.raises(JeopardaError, match="train.task=class_count: .* offers singlelabel"):
        build_loader(load_config([], [f"data.path={eurosat_dataset}", "train.task=class_count"]), ClusterEnv(), "val")
    with pytest.raises(JeopardaError, match="model fcn_maggiori is a dense model; the class_count task needs a "
                                            "classification one"):
        build_loader(load_config([], ["data.backend=synthetic", "train.task=class_count", "model=fcn_maggiori"]),
                     ClusterEnv(), "val")
    with pytest.raises(JeopardaError, match="train.label_smoothing applies to single-label data"):
        build_loader(load_config([], [f"data.path={dataset}", "train.task=class_count", "train.label_smoothing=0.1"]),
                     ClusterEnv(), "val")
    with pytest.raises(JeopardaError, match="train.task: 'nothing' is not one of multilabel, singlelabel, "
                                            "segmentation, class_count, labelled_pixels"):
        build_loader(load_config([], [f"data.path={dataset}", "train.task=nothing"]), ClusterEnv(), "val")
