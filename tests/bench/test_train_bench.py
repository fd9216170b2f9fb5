"""jeoparda bench train: timed blocks, the interval, the time split, and a log the report reads."""
import json
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
    import re

    line = re.search(r"^jeoparda-perf: bench images_per_s=([0-9.]+) images_per_s_per_worker=([0-9.]+) "
                     r"step_time_s=([0-9.]+)", proc.stdout, re.M)
    assert line is not None and float(line.group(1)) == pytest.approx(result["images_per_s"], rel=1e-3)
    assert proc.stdout.count("jeoparda-perf: bench") == 1  # rank 0 only
