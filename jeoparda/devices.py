"""The device a rank computes on, and honest clock readings on it."""
from __future__ import annotations

import platform
from typing import Any

import torch

from jeoparda.cluster.env import ClusterEnv


def default_device(env: ClusterEnv) -> torch.device:
    """One process per GPU, pinned to its local rank; CPU without CUDA."""
    if torch.cuda.is_available():
        return torch.device("cuda", env.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def select_device(env: ClusterEnv) -> torch.device:
    """:func:`default_device`, made the current CUDA device of this process: streams, events and
    allocations without an explicit device then land on the rank's own GPU, not on cuda:0."""
    device = default_device(env)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


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


def amp_precision(requested: str, device: torch.device, capability: tuple[int, int] | None = None) -> str:
    """The precision a run computes in: ``auto`` is bf16 on GPUs of compute capability 8.0 and up
    (A100, H100: bf16 tensor cores), fp16 with loss scaling below (V100 has no bf16 tensor
    cores), fp32 on CPU; anything else as requested."""
    if requested != "auto":
        return requested
    if device.type != "cuda":
        return "fp32"
    major, _ = capability or torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"


def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's random states: the CPU generator and, on a GPU, the device's (dropout)."""
    out = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def set_rng_states(states: Any, device: torch.device) -> None:
    """Restore :func:`rng_states` (a bare CPU state from older checkpoints is accepted)."""
    if isinstance(states, torch.Tensor):
        torch.set_rng_state(states)
        return
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work before a clock is read (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
