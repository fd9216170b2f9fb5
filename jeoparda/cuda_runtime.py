"""The CUDA runtime as jeoparda calls it: the only module that names ``torch.cuda``.

One line per call, so that tests/standin_cuda.py can stand in for all of it and every other line
of the GPU path runs in CI (jeoparda/accelerator.py). The lines that need a real GPU are listed
with reasons in tests/gpu_only_lines.txt; benchmarks/gpu_check.py runs them on one.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from jeoparda.accelerator import GpuInfo, nvml_uuid, pci_bus_id


class CudaRuntime:
    """The CUDA calls jeoparda makes, one line each: the only place that names ``torch.cuda``.

    Not run in CI (no GPU there); tests/standin_cuda.py implements the same methods and
    benchmarks/gpu_check.py proves these on a GPU. The lines are listed in tests/gpu_only_lines.txt.
    """

    collectives = "nccl"  # the torch.distributed backend for tensors on these devices

    def is_available(self) -> bool:
        return torch.cuda.is_available()

    def device_count(self) -> int:
        return torch.cuda.device_count()

    def info(self, index: int) -> GpuInfo:
        p = torch.cuda.get_device_properties(index)
        bus = pci_bus_id(getattr(p, "pci_domain_id", 0), getattr(p, "pci_bus_id", 0), getattr(p, "pci_device_id", 0))
        return GpuInfo(index, p.name, (p.major, p.minor), p.total_memory, nvml_uuid(p.uuid), bus)

    def tensor_device(self, index: int) -> torch.device:
        return torch.device("cuda", index)

    def set_device(self, index: int) -> None:
        torch.cuda.set_device(index)

    def synchronize(self, index: int) -> None:
        torch.cuda.synchronize(index)

    def new_stream(self, index: int) -> Any:
        # high priority: copies first, and not from the low-priority pool NCCL takes its streams from
        return torch.cuda.Stream(index, priority=-1)

    def current_stream(self, index: int) -> Any:
        return torch.cuda.current_stream(index)

    def use_stream(self, stream: Any) -> Any:
        return torch.cuda.stream(stream)

    def new_event(self) -> Any:
        return torch.cuda.Event()

    def pin(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.pin_memory()

    def pinned_empty(self, like: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(like, pin_memory=True)

    def register_host(self, tensor: torch.Tensor) -> int:
        return int(torch.cuda.cudart().cudaHostRegister(tensor.data_ptr(), tensor.nbytes, 0))

    def unregister_host(self, tensor: torch.Tensor) -> int:
        return int(torch.cuda.cudart().cudaHostUnregister(tensor.data_ptr()))

    def take_error(self) -> None:
        # A failed runtime call leaves CUDA's "last error" set, and the next kernel launch check
        # would report it as its own; the runtime torch loaded hands it over and clears it.
        import ctypes

        for name in ("libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so"):
            try:
                ctypes.CDLL(name, mode=getattr(os, "RTLD_NOLOAD", 0)).cudaGetLastError()
                break
            except (OSError, AttributeError):  # not this version, or not loaded
                continue
        else:
            torch.cuda.synchronize()  # a statically linked runtime: surface the error here, not in a kernel

    def upload(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        return tensor.to(device, non_blocking=True)

    def record_stream(self, tensor: torch.Tensor, stream: Any) -> None:
        tensor.record_stream(stream)

    def rng_state(self, index: int) -> torch.Tensor:
        return torch.cuda.get_rng_state(index)

    def set_rng_state(self, state: torch.Tensor, index: int) -> None:
        torch.cuda.set_rng_state(state, index)

    def set_tf32(self, allowed: bool) -> None:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allowed

    def tf32_convolutions(self) -> bool:
        return bool(torch.backends.cudnn.allow_tf32)
