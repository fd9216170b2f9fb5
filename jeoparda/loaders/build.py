"""``build_loader(cfg, env, split)``: the input pipeline of one rank.

Selects the backend named by ``cfg.data.backend`` from jeoparda.backend_tables.DATA_BACKENDS
(torch, dali, synthetic; each imported only when chosen); all of them yield the same batch dict
(see jeoparda.loaders.base), know ``steps_per_epoch`` and take ``set_epoch(e)``.
"""
from __future__ import annotations

from jeoparda.accelerator import Accelerator
from jeoparda.backend_tables import DATA_BACKENDS
from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import RunConfig
from jeoparda.loaders.base import Loader, open_split


def build_loader(cfg: RunConfig, env: ClusterEnv, split: str, accel: Accelerator | None = None) -> Loader:
    """The loader of ``split`` for this rank, delivering batches on ``accel`` (the CPU when None;
    :func:`jeoparda.devices.bind_gpu` gives a rank its GPU)."""
    device = accel or Accelerator()
    entry = DATA_BACKENDS[cfg.data.backend]
    source = open_split(cfg, env, split) if cfg.data.path or not entry.data_optional else None
    loader: Loader = entry.load()(cfg, env, split, source, device)
    return loader
