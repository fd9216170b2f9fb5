"""Learning tasks as strategies (DESIGN.md, Tasks): what the head's scores mean, the loss, and the
metrics over the predictions of all ranks. The loop calls a task; it never asks which one."""
from __future__ import annotations

from jeoparda.config import TrainConfig
from jeoparda.errors import JeopardaError
from jeoparda.tasks.base import Task
from jeoparda.tasks.multilabel import MultiLabel
from jeoparda.tasks.singlelabel import SingleLabel

#: Tasks the training loop can train, in the order chosen when a data set offers several.
TRAINABLE = ("multilabel", "singlelabel")


def choose_task(offered: list[str], cfg: TrainConfig, where: str) -> str:
    """``train.task`` if set (it must be offered), else the first trainable task the data set offers."""
    if cfg.task:
        if cfg.task not in offered:
            raise JeopardaError(f"train.task={cfg.task}: {where} offers {', '.join(offered)}")
        return cfg.task
    for name in TRAINABLE:
        if name in offered:
            return name
    raise JeopardaError(f"{where} offers only {', '.join(offered)}; the training loop trains "
                        f"{' or '.join(TRAINABLE)}")


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
    raise JeopardaError(f"task {name!r}: the training loop trains {' or '.join(TRAINABLE)}")


__all__ = ["TRAINABLE", "Task", "choose_task", "create_task"]
