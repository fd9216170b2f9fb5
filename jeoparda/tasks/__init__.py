"""Learning tasks as strategies (DESIGN.md, Tasks): what the head's scores mean, the loss, and the
metrics over the predictions of all ranks. The loop calls a task; it never asks which one."""
from __future__ import annotations

from jeoparda.config import TrainConfig
from jeoparda.errors import JeopardaError
from jeoparda.tasks.base import Task
from jeoparda.tasks.multilabel import MultiLabel
from jeoparda.tasks.segmentation import Segmentation
from jeoparda.tasks.singlelabel import SingleLabel

#: Tasks the training loop can train, in the order chosen when a data set offers several.
TRAINABLE = ("multilabel", "singlelabel", "segmentation")


def choose_task(offered: list[str], cfg: TrainConfig, where: str, dense: bool = False) -> str:
    """``train.task`` if set (it must be offered), else: segmentation for a dense model, else the
    first classification task the data set offers."""
    if cfg.task:
        if cfg.task not in offered:
            raise JeopardaError(f"train.task={cfg.task}: {where} offers {', '.join(offered)}")
        return cfg.task
    if dense:
        if "segmentation" not in offered:
            raise JeopardaError(f"a dense model needs reference maps: {where} offers {', '.join(offered)} "
                                "(convert BigEarthNet v2.0 with its Reference_Maps/)")
        return "segmentation"
    for name in TRAINABLE[:2]:
        if name in offered:
            return name
    raise JeopardaError(f"{where} offers only {', '.join(offered)}: train it with a dense model "
                        "(jeoparda models lists them) or set train.task")


def create_task(name: str, cfg: TrainConfig) -> Task:
    """The task strategy; options that belong to another task are refused with one line."""
    if name == "multilabel":
        if cfg.label_smoothing:
            raise JeopardaError("train.label_smoothing applies to single-label data; this data set is multi-label")
        return MultiLabel(cfg.threshold)
    if name == "singlelabel":
        if cfg.threshold != TrainConfig.threshold:
            raise JeopardaError("train.threshold applies to multi-label data; this data set is single-label "
                                "(each image has one class: the highest score wins)")
        return SingleLabel(cfg.label_smoothing)
    if name == "segmentation":
        if cfg.threshold != TrainConfig.threshold or cfg.label_smoothing:
            raise JeopardaError("train.threshold and train.label_smoothing apply to classification; this run "
                                "labels pixels")
        return Segmentation()
    raise JeopardaError(f"task {name!r}: the training loop trains {' or '.join(TRAINABLE)}")


__all__ = ["TRAINABLE", "Task", "choose_task", "create_task"]
