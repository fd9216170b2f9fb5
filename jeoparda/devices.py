"""The device a rank computes on, and honest clock readings on it."""
from __future__ import annotations

import platform

import torch

from jeoparda.cluster.env import ClusterEnv


def default_device(env: ClusterEnv) -> torch.device:
    """One process per GPU, pinned to its local rank; CPU without CUDA."""
    if torch.cuda.is_available():
        return torch.device("cuda", env.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    """What the rank computes on, for the report: the GPU's name, else the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def synchronize(device: torch.device) -> None:
    """Wait for queued device work before a clock is read (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
