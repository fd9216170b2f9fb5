"""The accelerator a process computes on: one object that the loop, the loaders and the tools receive.

Everything jeoparda does that is specific to a GPU goes through here: the GPU's identity
(name, compute capability, memory, UUID, PCI bus id), synchronisation, random states, pinned and
host-registered memory, streams, events and host-to-device copies. The CUDA calls themselves sit in
:class:`jeoparda.cuda_runtime.CudaRuntime`, one line each, so that the test suite can put a
stand-in runtime in its place and run every other line of the GPU path on a CPU
(tests/standin_cuda.py; `make coverage`).

:class:`Accelerator` is the CPU: no streams, nothing to copy, nothing to wait for.
:class:`GpuAccelerator` is one GPU of a runtime. ``device`` is where tensors live: ``cuda:N`` on a
real GPU, the CPU under the stand-in.
"""
from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class GpuInfo:
    """What identifies a GPU across CUDA, NVML and the other ranks of a job."""

    index: int  # CUDA's index in this process (after CUDA_VISIBLE_DEVICES)
    name: str
    capability: tuple[int, int]
    total_memory: int  # bytes
    uuid: str  # "GPU-xxxxxxxx-...": NVML's spelling, the same in every process of the node
    pci_bus_id: str  # "00000000:0A:00.0": NVML's spelling


def nvml_uuid(raw: Any) -> str:
    """CUDA's UUID (bytes, a UUID object or its string) in NVML's spelling, ``GPU-`` + 36 characters."""
    text = raw.hex() if isinstance(raw, bytes) else str(raw)
    if text.startswith(("GPU-", "MIG-")):
        return text
    if len(text) == 32 and "-" not in text:
        text = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return f"GPU-{text}"


def pci_bus_id(domain: int, bus: int, device: int) -> str:
    """NVML's bus-id string (domain, bus, device; function 0)."""
    return f"{domain:08X}:{bus:02X}:{device:02X}.0"


def cpu_model() -> str:
    """The CPU's model name (for reports)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Accelerator:
    """The CPU as an accelerator: tensors stay where they are, nothing runs asynchronously."""

    kind = "cpu"
    gpu = False
    collectives = "gloo"
    index: int | None = None
    info: GpuInfo | None = None

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind}{'' if self.index is None else f':{self.index}'})"

    @property
    def name(self) -> str:
        """What the rank computes on, for the report."""
        return cpu_model()

    def synchronize(self) -> None:
        """Wait for queued device work before a clock is read (nothing is queued on a CPU)."""

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """A small host tensor on the device without a host synchronisation (a no-op on CPU)."""
        return tensor

    def rng_state(self) -> torch.Tensor | None:
        """The device's random state (dropout on a GPU); None on CPU."""
        return None

    def set_rng_state(self, state: torch.Tensor) -> None:
        """Restore :meth:`rng_state`."""

    def copier(self) -> Copier | None:
        """Host-to-device copies on a side stream (None on CPU: batches are made on the host)."""
        return None

    def register_host(self, tensor: torch.Tensor) -> bool:
        """Page-lock ``tensor`` in place (shared memory included) so the device reads it directly."""
        return False

    def unregister_host(self, tensor: torch.Tensor) -> None:
        """Undo :meth:`register_host`."""

    def set_tf32(self, allowed: bool) -> None:
        """Whether float32 matrix products may round through TF32 (GPUs of compute capability >= 8)."""

    def tf32_convolutions(self) -> bool:
        """Whether float32 convolutions may run through TF32 now (cuDNN's default on a GPU): the
        precision whose peak MFU is measured against."""
        return False

    def configure(self, deterministic: bool) -> None:
        """The kernels' choice for a training run: deterministic algorithms only, or the fastest."""
        if deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False

    def exact_kernels(self) -> None:
        """The same bytes from run to run and GPU generation to generation (learned conversion)."""


class GpuAccelerator(Accelerator):
    """One GPU of ``runtime`` (the process's own: :func:`jeoparda.devices.bind_gpu` chooses it)."""

    kind = "cuda"
    gpu = True

    def __init__(self, runtime: Any, index: int) -> None:
        self.runtime, self.index = runtime, index
        self.device = runtime.tensor_device(index)
        self.info = runtime.info(index)
        self.collectives = runtime.collectives
        self._copier: Copier | None = None

    @property
    def name(self) -> str:
        assert self.info is not None
        return self.info.name

    def make_current(self) -> None:
        """Streams, events and allocations without an explicit device land on this GPU, not on cuda:0."""
        self.runtime.set_device(self.index)

    def synchronize(self) -> None:
        self.runtime.synchronize(self.index)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.runtime.upload(self.runtime.pin(tensor), self.device)

    def rng_state(self) -> torch.Tensor | None:
        return self.runtime.rng_state(self.index)

    def set_rng_state(self, state: torch.Tensor) -> None:
        self.runtime.set_rng_state(state, self.index)

    def copier(self) -> Copier:
        if self._copier is None:  # one side stream per GPU and process, made once
            self._copier = Copier(self)
        return self._copier

    def register_host(self, tensor: torch.Tensor) -> bool:
        if self.runtime.register_host(tensor) == 0:
            return True
        self.runtime.take_error()  # then the caller copies through pinned buffers instead
        return False

    def unregister_host(self, tensor: torch.Tensor) -> None:
        if self.runtime.unregister_host(tensor) != 0:
            self.runtime.take_error()

    def set_tf32(self, allowed: bool) -> None:
        self.runtime.set_tf32(allowed)

    def tf32_convolutions(self) -> bool:
        return self.runtime.tf32_convolutions()

    def configure(self, deterministic: bool) -> None:
        if deterministic:  # cuBLAS refuses deterministic mode without a fixed workspace
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        super().configure(deterministic)
        if not deterministic:
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels

    def exact_kernels(self) -> None:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        self.set_tf32(False)


class Copier:
    """Host-to-device copies on a side stream, so they overlap the compute stream's kernels.

    :meth:`copying` opens a block whose uploads and work run on the side stream; at its end the
    compute stream waits for them (on the device: the host never blocks) and the results are
    marked as used by the compute stream (so the allocator keeps them until its kernels ran).
    :meth:`mark`, right after the uploads, gives the event that tells when their host buffers may
    be written again. The stream is a high-priority one, apart from NCCL's.
    """

    def __init__(self, accel: GpuAccelerator) -> None:
        self.runtime, self.device = accel.runtime, accel.device
        assert accel.index is not None
        self.compute = self.runtime.current_stream(accel.index)
        self.side = self.runtime.new_stream(accel.index)

    def upload(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (pinned or host-registered) on the device; call inside :meth:`copying`."""
        return self.runtime.upload(tensor, self.device)

    def pinned(self, like: torch.Tensor) -> torch.Tensor:
        """A new page-locked host buffer shaped like ``like``."""
        return self.runtime.pinned_empty(like)

    def mark(self) -> Any:
        """An event recorded on the side stream now: once it has passed, the uploads queued so far
        have read their host memory (the kernels queued after them need not have run)."""
        event = self.runtime.new_event()
        event.record(self.side)
        return event

    @contextlib.contextmanager
    def copying(self, outputs: list[torch.Tensor]) -> Iterator[None]:
        """Run the block on the side stream; tensors appended to ``outputs`` inside it are handed
        to the compute stream, which waits for the block's work on the device."""
        with self.runtime.use_stream(self.side):
            yield
        self.compute.wait_stream(self.side)
        for tensor in outputs:
            self.runtime.record_stream(tensor, self.compute)
