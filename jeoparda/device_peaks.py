"""Dense peak FLOP/s of accelerators by precision: the denominator of MFU (model FLOPs utilisation).

One row per device: a regular expression matched against the name torch gives the device
(``torch.cuda.get_device_name``: "NVIDIA A100-SXM4-40GB", "NVIDIA H100 80GB HBM3", "Tesla
V100-PCIE-16GB", "AMD Instinct MI250X/MI250"), the peaks in TFLOP/s and the vendor document they
come from. Figures are dense: NVIDIA's data sheets print the tensor-core figures of Ampere and
later with 2:4 structured sparsity (marked "*"), which a convolutional network does not use, so
those are halved here. Rows are tried in order and the first match wins (PCIe and NVL before the
plain name, GH200 before H200).

Precisions: ``fp32`` is plain float32 arithmetic, ``tf32`` float32 through tensor cores with a
10-bit mantissa, ``bf16`` and ``fp16`` the 16-bit tensor-core figures. AMD's matrix cores compute
float32 exactly, so the fp32 figure of an AMD row is its FP32 *matrix* peak (a vector-only figure
would let a good run exceed 100 %). A device without a figure for the precision (V100 has no
bf16) gives no peak, like a CPU or a device not in the table: MFU is then "n/a".
"""
from __future__ import annotations

import re
from dataclasses import dataclass

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
TFLOPS = 1e12

_NV_V100 = ("NVIDIA V100 Tensor Core GPU, specifications (SXM2, PCIe, V100S PCIe)",
            "https://www.nvidia.com/en-us/data-center/v100/")
_NV_A100 = ("NVIDIA A100 Tensor Core GPU data sheet (A100 40GB/80GB PCIe and SXM)",
            "https://www.nvidia.com/en-us/data-center/a100/")
_NV_H100 = ("NVIDIA H100 Tensor Core GPU data sheet (H100 SXM, PCIe, NVL)",
            "https://www.nvidia.com/en-us/data-center/h100/")
_NV_H200 = ("NVIDIA H200 Tensor Core GPU, specifications (H200 SXM, H200 NVL)",
            "https://www.nvidia.com/en-us/data-center/h200/")
_NV_GH200 = ("NVIDIA GH200 Grace Hopper Superchip data sheet",
             "https://www.nvidia.com/en-us/data-center/grace-hopper-superchip/")
_NV_L40S = ("NVIDIA L40S GPU data sheet", "https://www.nvidia.com/en-us/data-center/l40s/")
_NV_A40 = ("NVIDIA A40 data sheet", "https://www.nvidia.com/en-us/data-center/a40/")
_AMD = "https://www.amd.com/en/products/accelerators/instinct/"


@dataclass(frozen=True)
class DevicePeak:
    """One device: its name pattern, dense peaks (TFLOP/s; None: no such arithmetic) and source."""

    device: str
    pattern: str
    fp32: float
    tf32: float | None
    bf16: float | None
    fp16: float | None
    source: tuple[str, str]  # (document title, URL)
    tf32_default: bool = False  # PyTorch runs float32 convolutions through TF32 by default here

    def matches(self, name: str) -> bool:
        return re.search(self.pattern, name, re.IGNORECASE) is not None


#: Dense peaks, TFLOP/s. Hopper's data sheets print only the figures with sparsity (989*, 1979*):
#: halved (NVIDIA's architecture paper gives the dense 494.7 and 989.4), NVL's as "/ 2" here.
PEAKS: tuple[DevicePeak, ...] = (
    DevicePeak("V100S PCIe", r"\bV100S\b", 16.4, None, None, 130.0, _NV_V100),
    DevicePeak("V100 PCIe", r"\bV100\b.*PCI", 14.0, None, None, 112.0, _NV_V100),
    DevicePeak("V100 SXM2", r"\bV100\b", 15.7, None, None, 125.0, _NV_V100),
    DevicePeak("A100 PCIe", r"\bA100\b.*PCI", 19.5, 156.0, 312.0, 312.0, _NV_A100, True),
    DevicePeak("A100 SXM", r"\bA100\b", 19.5, 156.0, 312.0, 312.0, _NV_A100, True),
    DevicePeak("H100 PCIe", r"\bH100\b.*PCI", 51.0, 378.0, 756.0, 756.0, _NV_H100, True),
    DevicePeak("H100 NVL", r"\bH100 NVL\b", 60.0, 835 / 2, 1671 / 2, 1671 / 2, _NV_H100, True),
    DevicePeak("H100 SXM", r"\bH100\b", 67.0, 494.7, 989.4, 989.4, _NV_H100, True),
    DevicePeak("GH200", r"\bGH200\b", 67.0, 494.7, 989.4, 989.4, _NV_GH200, True),
    DevicePeak("H200 NVL", r"\bH200 NVL\b", 60.0, 835 / 2, 1671 / 2, 1671 / 2, _NV_H200, True),
    DevicePeak("H200 SXM", r"\bH200\b", 67.0, 494.7, 989.4, 989.4, _NV_H200, True),
    DevicePeak("L40S", r"\bL40S\b", 91.6, 183.0, 362.05, 362.05, _NV_L40S, True),
    DevicePeak("A40", r"\bA40\b", 37.4, 74.8, 149.7, 149.7, _NV_A40, True),
    # An MI250X or MI250 module is two GCDs (dies) and PyTorch shows each as a device, one rank
    # each: the figures are per GCD, half the module's data-sheet figures (95.7/383 and 90.5/362.1).
    # "AMD Instinct MI250X/MI250" (one PCI id for both boards) is read as the MI250X.
    DevicePeak("MI250X GCD", r"\bMI250X\b", 95.7 / 2, None, 383.0 / 2, 383.0 / 2,
               ("AMD Instinct MI250X accelerator specifications (per module of 2 GCDs, halved)",
                _AMD + "mi200/mi250x.html")),
    DevicePeak("MI250 GCD", r"\bMI250\b", 90.5 / 2, None, 362.1 / 2, 362.1 / 2,
               ("AMD Instinct MI250 accelerator specifications (per module of 2 GCDs, halved)",
                _AMD + "mi200/mi250.html")),
    DevicePeak("MI210", r"\bMI210\b", 45.3, None, 181.0, 181.0,
               ("AMD Instinct MI210 accelerator specifications", _AMD + "mi200/mi210.html")),
    DevicePeak("MI300X", r"\bMI300X\b", 163.4, 653.7, 1307.4, 1307.4,
               ("AMD Instinct MI300X accelerator specifications", _AMD + "mi300/mi300x.html")),
    DevicePeak("MI300A", r"\bMI300A\b", 122.6, 490.3, 980.6, 980.6,
               ("AMD Instinct MI300A APU specifications", _AMD + "mi300/mi300a.html")),
)


def find(device_name: str) -> DevicePeak | None:
    """The table's row for a device name, or None."""
    return next((row for row in PEAKS if row.matches(device_name)), None)


def precision_used(row: DevicePeak, precision: str, tf32: bool = True) -> tuple[str, str]:
    """The arithmetic a run of ``precision`` (fp32, bf16, fp16) runs its convolutions in, and why:
    float32 on an NVIDIA GPU with TF32 goes through TF32 while ``tf32`` (cuDNN's allow_tf32,
    True unless turned off) holds."""
    if precision == "fp32" and tf32 and row.tf32_default and row.tf32 is not None:
        return "tf32", "tf32 (cuDNN default for fp32 convolutions)"
    return precision, precision


def peak(device_name: str | None, precision: str, tf32: bool = True) -> tuple[float | None, str]:
    """Dense peak FLOP/s of one device at the run's precision and where the figure comes from;
    (None, why) for a CPU, a device not in the table or a precision it has no figure for."""
    row = find(device_name or "")
    if row is None:
        return None, f"no peak known for {device_name or 'this device'!r} (not in jeoparda's table)"
    used, why = precision_used(row, precision, tf32)
    figure = getattr(row, used, None) if used in PRECISIONS else None
    if figure is None:
        return None, f"{row.device}: no {used} peak"
    title, url = row.source
    return figure * TFLOPS, f"{row.device}, {why}, dense: {title}, {url}"
