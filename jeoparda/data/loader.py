"""``build_loader(cfg, env, split)``: the input pipeline of one rank.

Selects the backend named by ``cfg.data.backend`` (torch, dali, synthetic); all of them yield the
same batch dict (see jeoparda.data.loader_base), know ``steps_per_epoch`` and take
``set_epoch(e)``.
"""
from __future__ import annotations

import torch

from jeoparda.config import RunConfig
from jeoparda.data.loader_base import Loader, open_split
from jeoparda.devices import default_device
from jeoparda.dist.env import ClusterEnv


def build_loader(cfg: RunConfig, env: ClusterEnv, split: str, device: torch.device | None = None) -> Loader:
    device = device or default_device(env)
    backend = cfg.data.backend
    if backend == "synthetic":
        from jeoparda.data.synthetic_loader import SyntheticLoader

        source = open_split(cfg, env, split) if cfg.data.path else None
        return SyntheticLoader(cfg, env, split, source, device)
    source = open_split(cfg, env, split)
    if backend == "dali":
        from jeoparda.data.dali_loader import DaliLoader

        return DaliLoader(cfg, env, split, source, device)
    from jeoparda.data.torch_loader import TorchLoader

    return TorchLoader(cfg, env, split, source, device)
