"""Energy counters with a fake powercap tree (including a wrap-around) and a fake NVML module:
this machine has neither, so the real path is in tests/gpu for a lent GPU."""
import sys
import types
from pathlib import Path

import pytest

from jeoparda.training.energy import EnergyMeter, RaplPackages, Reading, combine


def powercap(root: Path, packages: dict[int, tuple[int, int]]) -> Path:
    """intel-rapl:N zones with (energy_uj, max_energy_range_uj), and a subzone that must not count."""
    for n, (energy, top) in packages.items():
        zone = root / f"intel-rapl:{n}"
        zone.mkdir(parents=True)
        (zone / "name").write_text(f"package-{n}\n")
        (zone / "energy_uj").write_text(f"{energy}\n")
        (zone / "max_energy_range_uj").write_text(f"{top}\n")
        sub = root / f"intel-rapl:{n}:0"
        sub.mkdir()
        (sub / "energy_uj").write_text("123\n")
        (sub / "max_energy_range_uj").write_text(f"{top}\n")
    return root


def set_energy(root: Path, n: int, value: int) -> None:
    (root / f"intel-rapl:{n}" / "energy_uj").write_text(f"{value}\n")


def test_rapl_packages_counted_once_with_wrap_around(tmp_path):
    root = powercap(tmp_path / "powercap", {0: (1_000_000, 262_143_328_850), 1: (262_143_000_000, 262_143_328_850)})
    meter = EnergyMeter(None, read_cpu=True, powercap=root)
    meter.start()
    set_energy(root, 0, 51_000_000)            # +50 J
    set_energy(root, 1, 20_000_000)            # wrapped: +328,850 uJ to the top, +20 J after it
    reading = meter.stop()
    assert reading.joules == {"cpu": pytest.approx(50 + 0.32885 + 20)} and reading.notes == []


def test_unreadable_counters_give_null_with_the_reason(tmp_path):
    root = powercap(tmp_path / "powercap", {0: (5, 100)})
    (root / "intel-rapl:0" / "energy_uj").unlink()  # as root a mode 0 file still reads: take it away
    meter = EnergyMeter(None, read_cpu=True, powercap=root)
    meter.start()
    out = combine([meter.stop()], images=64)
    assert out["energy_j"] is None and "energy_uj: not readable" in out["energy_note"]
    assert combine([Reading({}, ["no RAPL package zones under /x"])], 64)["energy_note"] == \
        "no RAPL package zones under /x"


def test_nvml_gpu_counter_and_ranks_summed(tmp_path, monkeypatch):
    counters = {0: 10_000_000, 1: 20_000_000}  # millijoules since the driver loaded

    class Handle:
        def __init__(self, index):
            self.index = index

    fake = types.SimpleNamespace(nvmlInit=lambda: None, nvmlDeviceGetHandleByIndex=Handle,
                                 nvmlDeviceGetTotalEnergyConsumption=lambda h: counters[h.index])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    root = powercap(tmp_path / "powercap", {0: (0, 10**12)})
    rank0 = EnergyMeter(0, read_cpu=True, powercap=root)   # local rank 0 reads the packages too
    rank1 = EnergyMeter(1, read_cpu=False, powercap=root)  # the node's packages count once
    rank0.start()
    rank1.start()
    counters[0] += 300_000                                  # 300 J on GPU 0
    counters[1] += 250_000                                  # 250 J on GPU 1
    set_energy(root, 0, 100_000_000)                        # 100 J on the package
    out = combine([rank0.stop(), rank1.stop()], images=1000)
    assert out["energy_j"] == pytest.approx(650.0) and out["energy_per_image_j"] == pytest.approx(0.65)
    assert out["energy_sources"] == ["cpu", "gpu"] and "energy_note" not in out


def test_no_nvml_module_is_a_note_not_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    meter = EnergyMeter(0, read_cpu=False)
    meter.start()
    assert combine([meter.stop()], 10)["energy_note"].startswith("nvidia-ml-py not installed")


def test_the_results_log_carries_energy_fields(dataset, tmp_path):
    import json
    import subprocess

    from tests.training.test_train import train_cmd

    out = tmp_path / "run"
    proc = subprocess.run(train_cmd(dataset, out, "train.epochs=1", "train.max_steps=1", "dist.backend=single"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    epoch = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()][1]
    assert "energy_j" in epoch and "energy_per_image_j" in epoch and "energy_sources" in epoch
    if epoch["energy_j"] is None:  # this machine: no RAPL, no GPU
        assert epoch["energy_note"]
    assert isinstance(RaplPackages(tmp_path).note, str)
