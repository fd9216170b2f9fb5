"""The data backends and the distributed backends, by name: one table of each.

``config.py`` validates ``data.backend`` and ``dist.backend`` against these tables, the CLI's
``choices=`` read them, and ``jeoparda.loaders.build`` and ``jeoparda.cluster.backends`` build
from them. A target is ``"module:attribute"``, imported only when that backend is built: this
module sits below both (it imports nothing of jeoparda's) and optional packages (DALI, Horovod)
stay unimported until chosen. Adding a backend: write its class, then one ``register`` line here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BackendEntry:
    """One backend: its name (what a configuration says), where its class lives, a line of help."""

    name: str
    target: str                  # "package.module:attribute", imported when the backend is built
    summary: str
    data_optional: bool = False  # data backends: runs without data.path (generates its batches)
    dense: bool = True           # data backends: delivers reference maps (dense tasks)

    def load(self) -> Any:
        """The class (or factory) this entry names, imported now."""
        return load_target(self.target)


def load_target(target: str) -> Any:
    """The attribute a ``"package.module:attribute"`` target names, its module imported now."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


#: Data backends (``data.backend``): classes ``(cfg, env, split, source, accel, task) -> Loader``.
DATA_BACKENDS: dict[str, BackendEntry] = {}
#: Distributed backends (``dist.backend``): classes ``(env, cfg, collectives) -> Backend``.
DIST_BACKENDS: dict[str, BackendEntry] = {}


def register(table: dict[str, BackendEntry], name: str, target: str, summary: str,
             data_optional: bool = False, dense: bool = True) -> BackendEntry:
    """Add (or replace) ``name`` in ``table``; the CLI and configuration validation see it at once."""
    table[name] = BackendEntry(name, target, summary, data_optional, dense)
    return table[name]


register(DATA_BACKENDS, "torch", "jeoparda.loaders.torch_loader:TorchLoader",
         "reader processes decode shards into a shared-memory ring")
register(DATA_BACKENDS, "dali", "jeoparda.loaders.dali_loader:DaliLoader",
         "NVIDIA DALI pipeline (optional package nvidia-dali)", dense=False)
register(DATA_BACKENDS, "synthetic", "jeoparda.loaders.synthetic_loader:SyntheticLoader",
         "random batches made on the device: compute and communication without I/O", data_optional=True)

register(DIST_BACKENDS, "ddp", "jeoparda.cluster.backends:DDPBackend",
         "PyTorch DistributedDataParallel (NCCL on GPUs, gloo on CPUs)")
register(DIST_BACKENDS, "horovod", "jeoparda.cluster.backends:HorovodBackend",
         "Horovod over MPI (optional package horovod)")
register(DIST_BACKENDS, "single", "jeoparda.cluster.backends:Backend", "one process, no communication")
