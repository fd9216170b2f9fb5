"""Energy counters with a fake powercap tree (including a wrap-around) and the stand-in NVML
(tests/standin_cuda.py): this machine has neither; benchmarks/gpu_check.py reads a real GPU's."""
import sys
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


def test_nvml_gpu_counter_and_ranks_summed(tmp_path, monkeypatch, standin_gpu):
    """Per-task binding (Slurm --gpus-per-task=1): each rank sees one GPU as CUDA's index 0, and
    NVML, blind to CUDA_VISIBLE_DEVICES, must still be asked for that rank's own board."""
    from jeoparda.devices import parse_device

    standin_gpu.boards[0].energy_mj, standin_gpu.boards[1].energy_mj = 10_000_000, 20_000_000
    root = powercap(tmp_path / "powercap", {0: (0, 10**12)})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    rank0 = EnergyMeter(parse_device("cuda:0").info, read_cpu=True, powercap=root)  # local rank 0 reads packages
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    rank1 = EnergyMeter(parse_device("cuda:0").info, read_cpu=False, powercap=root)  # CUDA index 0 here too
    rank0.start()
    rank1.start()
    standin_gpu.boards[0].energy_mj += 300_000              # 300 J on board 0
    standin_gpu.boards[1].energy_mj += 250_000              # 250 J on board 1
    set_energy(root, 0, 100_000_000)                        # 100 J on the package
    readings = [rank0.stop(), rank1.stop()]
    assert [r.joules["gpu"] for r in readings] == [pytest.approx(300.0), pytest.approx(250.0)]
    out = combine(readings, images=1000)
    assert out["energy_j"] == pytest.approx(650.0) and out["energy_per_image_j"] == pytest.approx(0.65)
    assert out["energy_sources"] == ["cpu", "gpu"] and "energy_note" not in out


def test_nvml_without_uuid_lookup_falls_back_to_the_bus_id(monkeypatch, standin_gpu):
    from jeoparda.devices import parse_device

    nvml = sys.modules["pynvml"]

    def no_uuid(uuid):
        raise nvml.NVMLError("Not Supported")

    monkeypatch.setattr(nvml, "nvmlDeviceGetHandleByUUID", no_uuid)
    standin_gpu.boards[1].energy_mj = 5_000
    meter = EnergyMeter(parse_device("cuda:1").info, read_cpu=False)
    meter.start()
    standin_gpu.boards[1].energy_mj += 2_000
    assert meter.stop().joules == {"gpu": pytest.approx(2.0)}
    monkeypatch.setattr(nvml, "nvmlDeviceGetHandleByPciBusId", no_uuid)  # neither: a note, not an error
    meter = EnergyMeter(parse_device("cuda:1").info, read_cpu=False)
    meter.start()
    assert "not readable" in combine([meter.stop()], 10)["energy_note"]


def test_mig_instances_and_unknown_boards_are_notes_not_the_whole_boards_energy(monkeypatch, standin_gpu):
    """A MIG instance: NVML has no counter per instance, and its board's would count every
    instance; a GPU whose UUID NVML does not know and whose bus id torch could not read likewise."""
    from dataclasses import replace

    from jeoparda.devices import parse_device

    nvml = sys.modules["pynvml"]
    info = parse_device("cuda:1").info
    mig = replace(info, uuid="GPU-" + info.uuid[4:].replace("1111", "9999"))  # CUDA's spelling of an instance
    real = nvml.nvmlDeviceGetHandleByUUID
    monkeypatch.setattr(nvml, "nvmlDeviceGetHandleByUUID",
                        lambda u: 1 if u == "MIG-" + mig.uuid[4:] else real(u))
    meter = EnergyMeter(mig, read_cpu=False)
    meter.start()
    assert "MIG instance" in combine([meter.stop()], 10)["energy_note"]
    monkeypatch.setattr(nvml, "nvmlDeviceGetHandleByUUID", lambda u: (_ for _ in ()).throw(nvml.NVMLError("x")))
    monkeypatch.setattr(nvml, "nvmlDeviceGetMigMode", lambda h: (1, 1), raising=False)
    meter = EnergyMeter(info, read_cpu=False)  # found by bus id, but the board is split
    meter.start()
    assert "split into MIG instances" in combine([meter.stop()], 10)["energy_note"]
    meter = EnergyMeter(replace(info, pci_bus_id="00000000:00:00.0"), read_cpu=False)
    meter.start()
    assert "no PCI bus id" in combine([meter.stop()], 10)["energy_note"]


def test_no_nvml_module_is_a_note_not_an_error(monkeypatch, standin_gpu):
    from jeoparda.devices import parse_device

    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    meter = EnergyMeter(parse_device("cuda").info, read_cpu=False)
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
