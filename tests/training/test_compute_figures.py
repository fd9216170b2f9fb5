"""Achieved FLOP/s, MFU and the bottleneck verdict of a training run: in run_start, every epoch,
run_end and the ``jeoparda-perf: compute`` line; on a CPU (no peak: MFU n/a) and on the stand-in
accelerator posing as an H100 (MFU against its dense peak at the precision the run computes in)."""
import json
import re
import statistics
from pathlib import Path

import pytest

from jeoparda.config import load_config
from jeoparda.device_peaks import peak
from jeoparda.models.complexity import training_flops
from jeoparda.training.bottleneck import SENTENCES
from jeoparda.training.launch import train
from tests.training.test_train import SMALL

COMPUTE_LINE = (r"^jeoparda-perf: compute tflops_per_worker=([0-9.]+|n/a) mfu=([0-9.]+|n/a) "
                r"data_wait=([0-9.]+|n/a) compute=([0-9.]+|n/a) communication=([0-9.]+|n/a) bottleneck=(\w+)$")
RUN = [*SMALL, "dist.backend=single", "train.epochs=3", "train.max_steps=2", "train.test=false",
       "train.val_every=0", "data.resize=32"]


def run(dataset, out, *overrides):
    cfg = load_config([], [f"data.path={dataset}", "model=resnet18", *RUN, *overrides])
    lines: list[str] = []
    assert train(cfg, out, resume=False, say=lines.append) == 0
    events = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    return events[0], [e for e in events if e["event"] == "epoch"], events[-1], "\n".join(lines)


def check_flops(start, epochs):
    """FLOPs per image are the counter's at the run's input; TFLOP/s follow images/s."""
    assert start["train_flops_per_image"] == training_flops("resnet18", len(start["bands"]), len(start["classes"]), 32)
    for e in epochs:
        assert e["tflops_per_worker"] == pytest.approx(start["train_flops_per_image"] * e["images_per_s"]
                                                       / start["world_size"] / 1e12)


def test_a_cpu_run_logs_flops_and_a_verdict_but_no_mfu(dataset, tmp_path):
    start, epochs, end, said = run(dataset, tmp_path / "run")
    check_flops(start, epochs)
    assert start["peak_flops_per_worker"] is None and "cpu" in start["peak_source"]
    assert all(e["mfu"] is None for e in epochs)
    # one worker: nothing to communicate, compute is the step less the data wait
    steady = epochs[1:]
    parts = end["step_split"]
    assert parts["step_s"] == pytest.approx(statistics.median(e["epoch_time_s"] / 2 for e in steady))
    assert parts["data_wait_s"] == pytest.approx(statistics.median(e["data_wait_s"] / 2 for e in steady))
    assert parts["communication_s"] == 0.0
    assert parts["compute_s"] == pytest.approx(parts["step_s"] - parts["data_wait_s"])
    assert end["bottleneck"] in ("data", "compute") and end["bottleneck_note"] == SENTENCES[end["bottleneck"]]
    lines = re.findall(COMPUTE_LINE, said, re.M)
    assert len(lines) == 1
    tflops, mfu, wait, compute, communication, key = lines[0]
    assert mfu == "n/a" and key == end["bottleneck"] and float(communication) == 0
    assert float(tflops) == pytest.approx(statistics.median(e["tflops_per_worker"] for e in steady), abs=1e-4)
    assert float(wait) == pytest.approx(parts["data_wait_s"], abs=1e-4)
    assert f"bottleneck: {end['bottleneck_note']}" in said
    # the lines harnesses already anchor are unchanged, and the compute line comes after them
    assert said.index("jeoparda-perf: run status=completed") < said.index("jeoparda-perf: compute")
    docs = (Path(__file__).resolve().parents[2] / "docs" / "benchmarking.md").read_text()
    assert COMPUTE_LINE in docs  # the pattern users copy is the tested one


@pytest.mark.parametrize("asked, precision", [("auto", "bf16"), ("fp32", "fp32")])
def test_a_run_on_an_h100_gets_its_mfu_against_the_dense_peak(standin_gpu, dataset, tmp_path, asked, precision):
    standin_gpu.boards[0].capability = (9, 0)  # auto precision: bf16
    start, epochs, end, said = run(dataset, tmp_path / "run", f"train.precision={asked}")
    assert start["device_name"] == "NVIDIA H100 80GB HBM3" and start["precision"] == precision
    check_flops(start, epochs)
    figure, source = peak("NVIDIA H100 80GB HBM3", precision)
    assert start["peak_flops_per_worker"] == figure and start["peak_source"] == source
    if precision == "fp32":  # cuDNN runs float32 convolutions through TF32 by default
        assert "tf32 (cuDNN default for fp32 convolutions)" in source
    for e in epochs:
        assert e["mfu"] == pytest.approx(e["tflops_per_worker"] * 1e12 / figure)
    (line,) = re.findall(COMPUTE_LINE, said, re.M)
    assert line[1] != "n/a" and float(line[1]) == pytest.approx(statistics.median(e["mfu"] for e in epochs[1:]),
                                                                abs=1e-4)


def test_with_tf32_off_an_fp32_run_is_measured_against_the_fp32_peak(standin_gpu, dataset, tmp_path):
    standin_gpu.tf32 = False  # as exact kernels leave it: float32 convolutions in float32
    start, epochs, _, _ = run(dataset, tmp_path / "run", "train.precision=fp32")
    figure, source = peak("NVIDIA H100 80GB HBM3", "fp32", tf32=False)
    assert (start["peak_flops_per_worker"], start["peak_source"]) == (figure, source)
    assert figure < peak("NVIDIA H100 80GB HBM3", "fp32")[0] and "tf32" not in source
    assert all(e["mfu"] == pytest.approx(e["tflops_per_worker"] * 1e12 / figure) for e in epochs)


def test_a_model_the_counter_cannot_run_gives_na_not_a_failed_run(dataset, tmp_path, monkeypatch):
    from jeoparda.training import recorder

    def cannot(*args):
        raise NotImplementedError("a layer without a meta kernel")

    monkeypatch.setattr(recorder, "training_flops", cannot)
    start, epochs, end, said = run(dataset, tmp_path / "run")
    assert end["status"] == "completed" and "train_flops_per_image" not in start
    assert "FLOPs not counted (NotImplementedError: a layer without a meta kernel)" in start["peak_source"]
    assert all("tflops_per_worker" not in e and e["mfu"] is None for e in epochs)
    (line,) = re.findall(COMPUTE_LINE, said, re.M)
    assert line[:2] == ("n/a", "n/a")
