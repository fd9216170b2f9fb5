"""``build_loader(cfg, env, split)``: the input pipeline of one rank.

Selects the backend named by ``cfg.data.backend`` (torch, dali, synthetic); all of them yield the
same batch dict (see jeoparda.loaders.base), know ``steps_per_epoch`` and take
``set_epoch(e)``.
"""
from __future__ import annotations

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import RunConfig
from jeoparda.loaders.base import Loader, open_split


def build_loader(cfg: RunConfig, env: ClusterEnv, split: str, accel: Accelerator | None = None) -> Loader:
    """The loader of ``split`` for this rank, delivering batches on ``accel`` (the CPU when None;
    :func:`jeoparda.devices.bind_gpu` gives a rank its GPU)."""
    device = accel or Accelerator()
    backend = cfg.data.backend
    if backend == "synthetic":
        from jeoparda.loaders.synthetic_loader import SyntheticLoader

        source = open_split(cfg, env, split) if cfg.data.path else None
        return SyntheticLoader(cfg, env, split, source, device)
    source = open_split(cfg, env, split)
    if backend == "dali":
        from jeoparda.loaders.dali_loader import DaliLoader

        return DaliLoader(cfg, env, split, source, device)
    from jeoparda.loaders.torch_loader import TorchLoader

    return TorchLoader(cfg, env, split, source, device)
