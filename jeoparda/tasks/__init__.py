"""Learning tasks as strategies: what a batch's targets hold, what the
head's scores mean, the loss, the metrics over the predictions of all ranks, and the options each
task refuses. The loop calls a task; it never asks which one.

:data:`TASKS` is the one list of tasks: choosing the task, creating it, validating ``train.task``
and the messages read it. A new task is a :class:`Task` subclass added to it."""
from __future__ import annotations

from collections.abc import Sequence

from jeoparda.config import RunConfig, TrainConfig
from jeoparda.errors import JeopardaError
from jeoparda.models import model_kind
from jeoparda.tasks.base import Task
from jeoparda.tasks.multilabel import MultiLabel
from jeoparda.tasks.segmentation import Segmentation
from jeoparda.tasks.singlelabel import SingleLabel

#: Name -> task, in the order chosen when a data set offers several.
TASKS: dict[str, type[Task]] = {task.name: task for task in (MultiLabel, SingleLabel, Segmentation)}


def task_class(name: str) -> type[Task]:
    """The registered task ``name``; another name is refused with a line listing the known ones."""
    if name not in TASKS:
        raise JeopardaError(f"configuration: train.task: {name!r} is not one of {', '.join(TASKS)} "
                            "(or empty: the data set's)")
    return TASKS[name]


def choose_task(offered: Sequence[str], cfg: TrainConfig, where: str, dense: bool = False) -> str:
    """``train.task`` if set (the data set must offer its targets), else the first task for the
    model's kind (dense or not) whose targets the data set offers: for a dense model segmentation,
    else the first classification task."""
    if cfg.task:
        if task_class(cfg.task).targets not in offered:
            raise JeopardaError(f"train.task={cfg.task}: {where} offers {', '.join(offered)}")
        return cfg.task
    for name, task in TASKS.items():
        if task.dense == dense and task.targets in offered:
            return name
    if dense:
        raise JeopardaError(f"a dense model needs reference maps: {where} offers {', '.join(offered)} "
                            "(convert BigEarthNet v2.0 with its Reference_Maps/)")
    raise JeopardaError(f"{where} offers only {', '.join(offered)}: train it with a dense model "
                        "(jeoparda models lists them) or set train.task")


def create_task(name: str, cfg: TrainConfig) -> Task:
    """The task strategy; options that belong to another task are refused with one line."""
    if name not in TASKS:
        raise JeopardaError(f"task {name!r}: the training loop trains {' or '.join(TASKS)}")
    return TASKS[name].from_config(cfg)


def decide_task(cfg: RunConfig, offered: Sequence[str], where: str) -> Task:
    """The run's task, decided once at set-up from the configuration, the model's kind and what
    the data (named ``where`` in messages) offers; the model and the data options are checked
    against it here, so loaders and the loop receive it and ask nothing."""
    kind = model_kind(cfg.model)
    task = create_task(choose_task(offered, cfg.train, where, dense=kind == "dense"), cfg.train)
    if (kind == "dense") != task.dense:
        raise JeopardaError(f"model {cfg.model} is a {kind} model; the {task.name} task "
                            f"needs a {'dense' if task.dense else 'classification'} one (jeoparda models)")
    task.check_data(cfg.data)
    return task


__all__ = ["TASKS", "Task", "choose_task", "create_task", "decide_task", "task_class"]
