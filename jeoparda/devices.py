"""The device a rank computes on, and honest clock readings on it."""
from __future__ import annotations

import torch

from jeoparda.dist.env import ClusterEnv


def default_device(env: ClusterEnv) -> torch.device:
    """One process per GPU, pinned to its local rank; CPU without CUDA."""
    if torch.cuda.is_available():
        return torch.device("cuda", env.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for queued device work before a clock is read (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
