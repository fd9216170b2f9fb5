"""``build_loader(cfg, env, split, accel, task)``: the input pipeline of one rank.

Selects the backend named by ``cfg.data.backend`` from jeoparda.backend_tables.DATA_BACKENDS
(torch, dali, synthetic; each imported only when chosen); all of them yield the same batch dict
(see jeoparda.loaders.base), know ``steps_per_epoch`` and take ``set_epoch(e)``. The task is
decided once, before, by :func:`run_task`, and handed to every loader of the run.
"""
from __future__ import annotations

from pathlib import Path

from jeoparda.accelerator import Accelerator
from jeoparda.backend_tables import DATA_BACKENDS
from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import RunConfig
from jeoparda.errors import JeopardaError
from jeoparda.loaders.base import Loader, open_split
from jeoparda.shards.manifest import read_manifest
from jeoparda.tasks import TASKS, Task, decide_task


def offered_tasks(cfg: RunConfig) -> tuple[list[str], str]:
    """What the configured data can train (its manifest's ``tasks``; every task for the synthetic
    backend without a data set) and the words that name the data in messages."""
    if DATA_BACKENDS[cfg.data.backend].data_optional and not cfg.data.path:
        return generated_offers(), f"the {cfg.data.backend} data"
    if not cfg.data.path:
        raise JeopardaError("configuration: data.path is empty; set it to a converted data set")
    root = Path(cfg.data.path)
    manifest = read_manifest(root)
    return list(manifest["tasks"]), f"{root / 'manifest.json'} (data set {manifest['dataset']})"


def generated_offers() -> list[str]:
    """What a backend that makes its batches (no data set) can train: every task's targets (each
    task draws its own, :meth:`jeoparda.tasks.Task.synthetic_labels`)."""
    return list(dict.fromkeys(task.targets for task in TASKS.values()))


def run_task(cfg: RunConfig) -> Task:
    """The run's task: from the configuration, the model's kind and what the data offers."""
    return decide_task(cfg, *offered_tasks(cfg))


def build_loader(cfg: RunConfig, env: ClusterEnv, split: str, accel: Accelerator | None = None,
                 task: Task | None = None) -> Loader:
    """The loader of ``split`` for this rank, delivering the targets of ``task`` (None:
    :func:`run_task`'s) on ``accel`` (the CPU when None; :func:`jeoparda.devices.bind_gpu` gives
    a rank its GPU)."""
    device = accel or Accelerator()
    task = task or run_task(cfg)
    entry = DATA_BACKENDS[cfg.data.backend]
    if task.dense and not entry.dense:
        raise JeopardaError(f"data.backend={entry.name} does not deliver reference maps yet; use data.backend=torch")
    source = open_split(cfg, env, split, task) if cfg.data.path or not entry.data_optional else None
    loader: Loader = entry.load()(cfg, env, split, source, device, task)
    return loader
