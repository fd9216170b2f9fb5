"""A stand-in for the CUDA runtime and NVML, so that every line of jeoparda's GPU path runs in CI.

It implements the methods of :class:`jeoparda.accelerator.CudaRuntime` over the CPU: a node of
GPUs with names, compute capabilities, memory, UUIDs and PCI bus ids, filtered by
``CUDA_VISIBLE_DEVICES`` as the driver does; streams and events that keep their order; pinned and
host-registered memory; uploads that copy into a new CPU tensor which remembers the GPU, the
stream and whether its source was page-locked; per-GPU random states. Everything the host had to
wait for is written down in ``host_waits``, so a test can prove a path never blocks on the compute
stream. The ``pynvml`` stand-in numbers the node's GPUs as NVML does (ignoring
``CUDA_VISIBLE_DEVICES``) and counts energy per board.
"""
from __future__ import annotations

import contextlib
import os
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from jeoparda.accelerator import GpuInfo, pci_bus_id


@dataclass
class Board:
    """One GPU of the stand-in node."""

    name: str = "NVIDIA H100 80GB HBM3"
    capability: tuple[int, int] = (9, 0)
    total_memory: int = 80 * 2**30
    energy_mj: int = 0


class StandInStream:
    def __init__(self, runtime: StandInCuda, index: int, name: str) -> None:
        self.runtime, self.index, self.name = runtime, index, name
        self.waits_for: list[StandInStream] = []

    def wait_stream(self, other: StandInStream) -> None:
        """The device orders this stream after ``other``'s queued work; the host goes on."""
        self.waits_for.append(other)

    def synchronize(self) -> None:
        self.runtime.host_waits.append(("stream", self.name))

    def __repr__(self) -> str:
        return f"<stream {self.name}>"


class StandInEvent:
    def __init__(self, runtime: StandInCuda) -> None:
        self.runtime, self.stream = runtime, None

    def record(self, stream: StandInStream | None = None) -> None:
        self.stream = stream or self.runtime.active

    def synchronize(self) -> None:
        self.runtime.host_waits.append(("event", self.stream.name if self.stream else "never recorded"))

    def query(self) -> bool:
        return True


@dataclass
class StandInCuda:
    """The stand-in runtime (see the module's docstring)."""

    boards: list[Board] = field(default_factory=lambda: [Board(), Board()])
    collectives: str = "gloo"  # the tensors are CPU tensors: gloo carries them
    current: int = 0
    tf32: bool | None = None
    host_waits: list[tuple[str, str]] = field(default_factory=list)
    registered: dict[int, int] = field(default_factory=dict)  # data_ptr -> bytes
    pinned: dict[int, tuple[int, torch.Tensor]] = field(default_factory=dict)  # data_ptr -> bytes, buffer
    uploads: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    energy_per_read_mj: int = 0  # how far a board's energy counter moves between two readings
    register_fails: bool = False  # cudaHostRegister refuses (a memlock limit, say)
    pending_error: int = 0  # CUDA's sticky "last error": the next kernel launch check would raise it

    def __post_init__(self) -> None:
        self._compute: dict[int, StandInStream] = {}
        self._rng: dict[int, torch.Generator] = {}
        self.active: StandInStream | None = None

    # --- what the process sees -------------------------------------------------------------------
    def uuid_of(self, board: int) -> str:
        return f"GPU-{board:08x}-1111-2222-3333-{board:012x}"

    def bus_of(self, board: int) -> str:
        return pci_bus_id(0, 0x17 + board, 0)

    def visible(self) -> list[int]:
        """Node board numbers this process sees, in CUDA order (CUDA_VISIBLE_DEVICES: indices or UUIDs)."""
        spec = os.environ.get("CUDA_VISIBLE_DEVICES")
        if spec is None:
            return list(range(len(self.boards)))
        out = []
        for item in (s.strip() for s in spec.split(",")):
            if not item:
                break
            if item.isdigit() and int(item) < len(self.boards):
                out.append(int(item))
            elif item.startswith("GPU-") and item in [self.uuid_of(b) for b in range(len(self.boards))]:
                out.append([self.uuid_of(b) for b in range(len(self.boards))].index(item))
            else:
                break  # the driver stops at the first entry it cannot use
        return out

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def _board(self, index: int) -> int:
        seen = self.visible()
        if not 0 <= index < len(seen):
            raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
        return seen[index]

    # --- the CudaRuntime interface ---------------------------------------------------------------
    def is_available(self) -> bool:
        return bool(self.visible())

    def device_count(self) -> int:
        return len(self.visible())

    def info(self, index: int) -> GpuInfo:
        b = self._board(index)
        board = self.boards[b]
        return GpuInfo(index, board.name, board.capability, board.total_memory, self.uuid_of(b), self.bus_of(b))

    def tensor_device(self, index: int) -> torch.device:
        self._board(index)
        return torch.device("cpu")

    def set_device(self, index: int) -> None:
        self._board(index)
        self.current = index

    def synchronize(self, index: int) -> None:
        self.host_waits.append(("device", f"cuda:{index}"))

    def new_stream(self, index: int) -> StandInStream:
        self._count("new_stream")
        return StandInStream(self, index, f"side-{index}-{self.calls['new_stream']}")

    def current_stream(self, index: int) -> StandInStream:
        return self._compute.setdefault(index, StandInStream(self, index, f"compute-{index}"))

    @contextlib.contextmanager
    def use_stream(self, stream: StandInStream) -> Iterator[None]:
        before, self.active = self.active, stream
        try:
            yield
        finally:
            self.active = before

    def new_event(self) -> StandInEvent:
        return StandInEvent(self)

    def pin(self, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()  # pin_memory() returns a page-locked copy
        self.pinned[out.data_ptr()] = (out.nbytes, out)  # views of it are page-locked too
        return out

    def pinned_empty(self, like: torch.Tensor) -> torch.Tensor:
        return self.pin(torch.empty_like(like))

    def register_host(self, tensor: torch.Tensor) -> int:
        if self.register_fails:
            self.pending_error = 2  # cudaErrorMemoryAllocation
            return 2
        self.registered[tensor.data_ptr()] = tensor.nbytes
        return 0

    def unregister_host(self, tensor: torch.Tensor) -> int:
        if self.registered.pop(tensor.data_ptr(), None) is None:
            self.pending_error = 712  # cudaErrorHostMemoryNotRegistered
            return 712
        self.host_waits.append(("unregister", "host"))
        return 0

    def take_error(self) -> None:
        self.pending_error = 0

    def memory_of(self, tensor: torch.Tensor) -> str:
        """registered (host memory page-locked in place), pinned (a pin_memory() buffer) or pageable."""
        ptr = tensor.data_ptr()
        if tensor.numel() == 0 or any(s <= ptr < s + n for s, (n, _) in self.pinned.items()):
            return "pinned"  # nothing crosses, or a pinned buffer (or a view of one)
        return "registered" if any(s <= ptr < s + n for s, n in self.registered.items()) else "pageable"

    def upload(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        if self.pending_error:  # what torch's launch check would raise on a real GPU
            raise RuntimeError(f"CUDA error {self.pending_error} left over from an earlier call")
        stream = self.active or self.current_stream(self.current)
        out = tensor.clone()  # a copy, as a real upload is: later writes to the host buffer do not show
        out.standin_device = f"cuda:{self.current}"  # type: ignore[attr-defined]
        out.standin_stream = stream.name  # type: ignore[attr-defined]
        out.standin_used_by = []  # type: ignore[attr-defined]
        memory = self.memory_of(tensor)
        if memory == "pageable":  # a pageable non_blocking copy is synchronous: the host waits
            self.host_waits.append(("pageable copy", stream.name))
        self.uploads.append({"shape": tuple(tensor.shape), "dtype": tensor.dtype, "stream": stream.name,
                             "memory": memory, "page_locked": memory != "pageable"})
        return out

    def record_stream(self, tensor: torch.Tensor, stream: StandInStream) -> None:
        tensor.standin_used_by = [*getattr(tensor, "standin_used_by", []), stream.name]  # type: ignore[attr-defined]

    def rng_state(self, index: int) -> torch.Tensor:
        return self._rng.setdefault(index, torch.Generator().manual_seed(index)).get_state()

    def set_rng_state(self, state: torch.Tensor, index: int) -> None:
        self._rng.setdefault(index, torch.Generator()).set_state(state)

    def set_tf32(self, allowed: bool) -> None:
        self.tf32 = allowed

    def tf32_convolutions(self) -> bool:
        return True if self.tf32 is None else self.tf32  # torch's default until set_tf32


def standin_nvml(runtime: StandInCuda) -> types.SimpleNamespace:
    """A ``pynvml`` over the stand-in's boards: handles by index (NVML's own numbering of the
    node, blind to CUDA_VISIBLE_DEVICES), UUID or PCI bus id; the counter is the board's."""

    class NVMLError(Exception):
        pass

    def by(key: Any) -> int:
        for b in range(len(runtime.boards)):
            if key in (runtime.uuid_of(b), runtime.bus_of(b)):
                return b
        raise NVMLError("Not Found")

    def read(board: Board) -> int:
        board.energy_mj += runtime.energy_per_read_mj
        return board.energy_mj

    return types.SimpleNamespace(
        NVMLError=NVMLError, nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: i if i < len(runtime.boards) else by(None),
        nvmlDeviceGetHandleByUUID=by, nvmlDeviceGetHandleByPciBusId=by,
        nvmlDeviceGetTotalEnergyConsumption=lambda h: read(runtime.boards[h]))
