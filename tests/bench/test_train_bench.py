"""jeoparda bench train: timed blocks, the interval, the time split, and a log the report reads."""
import json
import re
import statistics
import subprocess
import sys

import pytest

from jeoparda.bench.train_bench import bench_train
from jeoparda.config import load_config
from jeoparda.report.report import make_report
from tests.convert.test_run_mpi import mpi_env, mpirun

SETS = ["data.backend=synthetic", "model=resnet18", "train.batch_size=4", "train.threads=1"]


def test_single_process_blocks_and_summary(tmp_path):
    cfg = load_config([], SETS + ["dist.backend=single"])
    result = bench_train(cfg, tmp_path / "run", warmup=1, steps=2, blocks=3, say=lambda s: None)
    events = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    blocks = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in blocks] == [1, 2, 3] and all(e["train_images"] == 8 for e in blocks)
    rates = [e["images_per_s"] for e in blocks]
    assert result["images_per_s"] == pytest.approx(statistics.mean(rates))
    low, high = result["images_per_s_95"]
    assert low <= result["images_per_s"] <= high
    assert high - result["images_per_s"] == pytest.approx(1.96 * statistics.pstdev(rates))
    assert result["compute_s"] > 0 and result["communication_s"] >= 0 and result["data_wait_s"] >= 0
    assert events[-1]["event"] == "run_end" and events[-1]["bench"]["blocks"] == 3
    rows, _ = make_report([str(tmp_path / "run")], tmp_path / "rep")
    assert len(rows) == 1 and rows[0].images_per_s == pytest.approx(statistics.median(rates[1:]))


@pytest.mark.mpi
def test_two_ranks_split_compute_and_communication(tmp_path):
    sets = [a for s in SETS for a in ("--set", s)]
    proc = subprocess.run([mpirun(), "-np", "2", "--oversubscribe", sys.executable, "-m", "jeoparda", "bench", "train",
                           *sets, "--warmup-steps", "1", "--steps", "2", "--blocks", "2",
                           "--out", str(tmp_path / "run"),
                           "--json"], capture_output=True, text=True, env=mpi_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["world_size"] == 2 and result["images_per_s_per_worker"] == pytest.approx(result["images_per_s"] / 2)
    assert result["compute_s"] > 0 and result["communication_s"] is not None

    line = re.search(r"^jeoparda-perf: bench images_per_s=([0-9.]+) images_per_s_per_worker=([0-9.]+) "
                     r"step_time_s=([0-9.]+)", proc.stdout, re.M)
    assert line is not None and float(line.group(1)) == pytest.approx(result["images_per_s"], rel=1e-3)
    assert proc.stdout.count("jeoparda-perf: bench") == 1  # rank 0 only
    # DDP's no-sync block gives compute: the verdict is one of the split ones, printed once
    assert result["bottleneck"] in ("data", "communication", "compute")
    assert proc.stdout.count("jeoparda-perf: compute") == 1


def test_bench_train_logs_and_prints_flops_and_the_bottleneck(tmp_path, capsys):
    from jeoparda.cli import main
    from jeoparda.models.complexity import training_flops
    from jeoparda.training.bottleneck import SENTENCES
    from tests.training.test_compute_figures import COMPUTE_LINE

    sets = [a for s in [*SETS, "dist.backend=single"] for a in ("--set", s)]
    assert main(["bench", "train", *sets, "--warmup-steps", "1", "--steps", "2", "--blocks", "2",
                 "--out", str(tmp_path / "run"), "--json"]) == 0
    said = capsys.readouterr().out
    result = json.loads(said.strip().splitlines()[-1])
    events = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    start, end = events[0], events[-1]
    assert start["train_flops_per_image"] == training_flops("resnet18", 12, 19, 120)  # synthetic: 12 x 120 x 120
    assert start["peak_flops_per_worker"] is None  # a CPU
    for block in (e for e in events if e["event"] == "epoch"):
        flops = start["train_flops_per_image"] * block["images_per_s"]
        assert block["tflops_per_worker"] == pytest.approx(flops / 1e12)
        assert block["mfu"] is None
    # the split and its verdict are the summary's
    assert end["step_split"] == {k: result[k] for k in ("step_s", "data_wait_s", "compute_s", "communication_s")}
    assert end["step_split"]["compute_s"] > 0 and end["bottleneck"] == result["bottleneck"]
    # one worker communicates nothing: compute is the step less the data wait, never block-to-block noise
    assert end["step_split"]["communication_s"] == 0
    assert end["step_split"]["compute_s"] == pytest.approx(result["step_s"] - result["data_wait_s"])
    assert end["bottleneck"] in ("data", "compute")
    assert end["bottleneck_note"] == SENTENCES[end["bottleneck"]] and f"bottleneck: {end['bottleneck_note']}" in said
    (line,) = re.findall(COMPUTE_LINE, said, re.M)
    assert line[1] == "n/a" and line[5] == end["bottleneck"]
    assert float(line[0]) == pytest.approx(result["tflops_per_worker"], abs=1e-4)
