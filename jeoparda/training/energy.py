"""Energy counters: RAPL for CPU packages, NVML for NVIDIA GPUs; joules per epoch and per image.

RAPL: ``/sys/class/powercap/intel-rapl:N/energy_uj`` of each package (top-level zones only; their
subzones are parts of them), wrapping at ``max_energy_range_uj``. NVML: the total-energy counter
of the rank's GPU, found by UUID (millijoules since the driver loaded; nvidia-ml-py). Each rank reads its own GPU;
the CPU packages are read by local rank 0 only, so a node's packages count once; the loop sums the
ranks. Where no counter is readable the reading is None with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jeoparda.accelerator import GpuInfo

POWERCAP = Path("/sys/class/powercap")


@dataclass
class Reading:
    """Counter values at one moment: joules per source, and why a source is missing."""

    joules: dict[str, float]
    notes: list[str]


class RaplPackages:
    def __init__(self, root: Path = POWERCAP) -> None:
        self.zones = sorted(p for p in Path(root).glob("intel-rapl:*") if p.name.count(":") == 1)
        self.note = "" if self.zones else f"no RAPL package zones under {root}"
        self.ranges: dict[Path, int] = {}
        for zone in self.zones:
            try:
                self.ranges[zone] = int((zone / "max_energy_range_uj").read_text())
                int((zone / "energy_uj").read_text())
            except (OSError, ValueError) as exc:
                self.note = f"{zone / 'energy_uj'}: not readable ({getattr(exc, 'strerror', None) or exc})"
                self.zones = []
                break

    def read(self) -> dict[str, int] | None:
        if not self.zones:
            return None
        return {str(z): int((z / "energy_uj").read_text()) for z in self.zones}

    def joules(self, start: dict[str, int], end: dict[str, int]) -> float:
        """Energy between two readings, a counter that wrapped counted once around."""
        total = 0
        for zone, before in start.items():
            after = end[zone]
            total += after - before if after >= before else after + self.ranges[Path(zone)] - before
        return total / 1e6


class NvmlDevice:
    """NVML's total-energy counter of one GPU, found by its UUID (or PCI bus id), never by CUDA's
    index: NVML numbers every GPU of the node and ignores CUDA_VISIBLE_DEVICES, so with per-task
    binding CUDA's index 0 is another GPU in every rank (possibly another job's)."""

    def __init__(self, gpu: GpuInfo | None) -> None:
        self.handle: Any = None
        self.note = ""
        if gpu is None:
            self.note = "no GPU"
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handle = _handle(pynvml, gpu)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except ImportError:
            self.note = "nvidia-ml-py not installed (pip install nvidia-ml-py)"
            self.handle = None
        except Exception as exc:  # NVMLError_* (no driver, not supported, no permission, not found)
            self.note = f"NVML total-energy counter of {gpu.uuid} not readable ({exc})"
            self.handle = None

    def read(self) -> int | None:
        return None if self.handle is None else int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))


NO_BUS = "00000000:00:00.0"  # what a torch without the pci_* properties leaves


def _handle(nvml: Any, gpu: GpuInfo) -> Any:
    """The NVML handle of ``gpu``: by UUID (CUDA spells a MIG instance's as a GPU's; NVML as
    ``MIG-``), else by PCI bus id, but never a whole board for one of its MIG instances: NVML has
    no energy counter per instance, and the board's would count every instance (other jobs too)."""
    for uuid in dict.fromkeys((gpu.uuid, "MIG-" + gpu.uuid.split("-", 1)[1])):
        try:
            handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
        except Exception:  # NVMLError_NotFound / NotSupported: try the next spelling
            continue
        if uuid.startswith("MIG-") or _is_mig(nvml, handle):
            raise RuntimeError("a MIG instance: NVML counts energy per board only")
        return handle
    if gpu.pci_bus_id == NO_BUS:
        raise RuntimeError(f"no NVML device with UUID {gpu.uuid}, and no PCI bus id to look for")
    handle = nvml.nvmlDeviceGetHandleByPciBusId(gpu.pci_bus_id)
    if _mig_enabled(nvml, handle):
        raise RuntimeError("the board is split into MIG instances: its counter is every instance's")
    return handle


def _is_mig(nvml: Any, handle: Any) -> bool:
    try:
        return bool(nvml.nvmlDeviceIsMigDeviceHandle(handle))
    except Exception:  # a driver or board without MIG
        return False


def _mig_enabled(nvml: Any, handle: Any) -> bool:
    try:
        return bool(nvml.nvmlDeviceGetMigMode(handle)[0])
    except Exception:  # a driver or board without MIG
        return False


class EnergyMeter:
    """This rank's share of the node's energy between :meth:`start` and :meth:`stop`."""

    def __init__(self, gpu: GpuInfo | None, read_cpu: bool, powercap: Path = POWERCAP) -> None:
        self.rapl = RaplPackages(powercap) if read_cpu else None
        self.gpu = NvmlDevice(gpu)
        self._start: tuple[dict[str, int] | None, int | None] = (None, None)

    def start(self) -> None:
        self._start = (self.rapl.read() if self.rapl else None, self.gpu.read())

    def stop(self) -> Reading:
        cpu0, gpu0 = self._start
        joules: dict[str, float] = {}
        notes: list[str] = []
        if self.rapl is not None:
            cpu1 = self.rapl.read()
            if cpu0 is not None and cpu1 is not None:
                joules["cpu"] = self.rapl.joules(cpu0, cpu1)
            else:
                notes.append(self.rapl.note)
        gpu1 = self.gpu.read()
        if gpu0 is not None and gpu1 is not None:
            joules["gpu"] = (gpu1 - gpu0) / 1e3
        elif self.gpu.note != "no GPU":
            notes.append(self.gpu.note)
        return Reading(joules, notes)


def combine(readings: list[Reading], images: int) -> dict[str, Any]:
    """The results-log fields from every rank's reading of one interval."""
    sources = sorted({k for r in readings for k in r.joules})
    notes = sorted({n for r in readings for n in r.notes if n})
    if not sources:
        return {"energy_j": None, "energy_per_image_j": None, "energy_sources": [],
                "energy_note": "; ".join(notes) or "no energy counter readable"}
    total = sum(v for r in readings for v in r.joules.values())
    return {"energy_j": total, "energy_per_image_j": total / images if images else None,
            "energy_sources": sources, **({"energy_note": "; ".join(notes)} if notes else {})}
