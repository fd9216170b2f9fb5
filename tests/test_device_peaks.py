"""The table of dense peaks: torch's device names find their row, the precision a run computes in
picks the figure, unknown devices and CPUs have none, every row names its source."""
import re

import pytest

from jeoparda.device_peaks import PEAKS, PRECISIONS, TFLOPS, find, peak


@pytest.mark.parametrize("name, device", [
    ("NVIDIA A100-SXM4-40GB", "A100 SXM"), ("NVIDIA A100-SXM4-80GB", "A100 SXM"),
    ("NVIDIA A100-PCIE-40GB", "A100 PCIe"), ("NVIDIA A100 80GB PCIe", "A100 PCIe"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200 SXM"), ("NVIDIA H200 NVL", "H200 NVL"), ("NVIDIA GH200 480GB", "GH200"),
    ("Tesla V100-SXM2-32GB", "V100 SXM2"), ("Tesla V100-PCIE-16GB", "V100 PCIe"),
    ("Tesla V100S-PCIE-32GB", "V100S PCIe"), ("NVIDIA L40S", "L40S"), ("NVIDIA A40", "A40"),
    ("AMD Instinct MI250X", "MI250X GCD"), ("AMD Instinct MI250X/MI250", "MI250X GCD"),
    ("AMD Instinct MI250", "MI250 GCD"),
    ("AMD Instinct MI210", "MI210"), ("AMD Instinct MI300X", "MI300X"), ("AMD Instinct MI300A", "MI300A")])
def test_torch_device_names_find_their_row(name, device):
    row = find(name)
    assert row is not None and row.device == device


@pytest.mark.parametrize("name", ["NVIDIA L40", "NVIDIA RTX A4000", "NVIDIA A400", "AMD Radeon Graphics",
                                  "AMD EPYC 7763 64-Core Processor", "Intel(R) Xeon(R) Platinum 8480+", "", None])
def test_unknown_devices_and_cpus_have_no_peak(name):
    figure, why = peak(name, "fp32")
    assert figure is None and "no peak known" in why


def test_fp32_on_a_gpu_with_tf32_is_counted_at_the_tf32_peak_unless_tf32_is_off():
    row = find("NVIDIA A100-SXM4-40GB")
    figure, why = peak("NVIDIA A100-SXM4-40GB", "fp32")
    assert figure == row.tf32 * TFLOPS and why.startswith("A100 SXM, tf32 (cuDNN default for fp32 convolutions)")
    figure, why = peak("NVIDIA A100-SXM4-40GB", "fp32", tf32=False)
    assert figure == row.fp32 * TFLOPS and "tf32" not in why
    # no TF32 on a V100; AMD's fp32 convolutions stay fp32 under PyTorch
    assert peak("Tesla V100-SXM2-32GB", "fp32")[0] == find("Tesla V100-SXM2-32GB").fp32 * TFLOPS
    assert peak("AMD Instinct MI300X", "fp32")[0] == find("AMD Instinct MI300X").fp32 * TFLOPS


def test_half_precisions_take_their_figure_and_a_missing_one_gives_none():
    row = find("NVIDIA H100 80GB HBM3")
    assert peak("NVIDIA H100 80GB HBM3", "bf16")[0] == row.bf16 * TFLOPS
    assert peak("NVIDIA H100 80GB HBM3", "fp16")[0] == row.fp16 * TFLOPS
    figure, why = peak("Tesla V100-SXM2-32GB", "bf16")
    assert figure is None and "no bf16 peak" in why


def test_figures_are_dense_and_ordered_and_every_row_names_its_source():
    for row in PEAKS:
        title, url = row.source
        assert title and re.match(r"https://www\.(nvidia|amd)\.com/", url), row.device
        figures = [getattr(row, p) for p in PRECISIONS]
        assert all(f is None or f > 0 for f in figures)
        # half precision is never slower than float32, and dense H100 bf16 is about 1000, not 2000
        assert (row.bf16 or row.fp16 or 0) >= row.fp32
    assert find("NVIDIA H100 80GB HBM3").bf16 < 1000
    # a worker of an MI250X is one of its two GCDs: half the module's 383 TFLOP/s
    assert find("AMD Instinct MI250X").bf16 == pytest.approx(383.0 / 2)
    assert {r.device for r in PEAKS} >= {"V100 SXM2", "V100 PCIe", "A100 SXM", "A100 PCIe", "H100 SXM", "H100 PCIe",
                                         "H100 NVL", "H200 SXM", "GH200", "L40S", "A40", "MI250X GCD", "MI250 GCD",
                                         "MI300X", "MI300A", "MI210"}
