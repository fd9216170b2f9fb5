"""jeoparda bench io: training's reads timed cold and warm, on one rank and two, and the report's I/O section."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import load_config
from jeoparda.loaders.build import build_loader
from jeoparda.report.report import make_report
from jeoparda.training.records import Epoch, RunEnd, RunStart, read_log
from jeoparda.training.results import ResultsLog
from tests.bench.test_page_cache import fs_type
from tests.conftest import convert
from tests.convert.test_run_mpi import mpi_env, mpirun


def bench_io(*args: str, env: dict | None = None, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "jeoparda", "bench", "io", *args], capture_output=True,
                          text=True, timeout=300, env=env or {**os.environ, "PYTHONPATH": os.getcwd()})


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def training_images(data: Path, batch: int, world: int) -> int:
    """Patches one epoch of jeoparda train reads over ``world`` ranks of batch ``batch``."""
    cfg = load_config([], [f"data.path={data}", f"train.batch_size={batch}"])
    loader = build_loader(cfg, ClusterEnv(world_size=world, local_size=world), "train")
    try:
        return loader.steps_per_epoch * batch * world
    finally:
        loader.close()


def training_digest(data: Path, batch: int, world: int, rank: int, epoch: int) -> str:
    """SHA-256 of the patch indices rank ``rank`` of jeoparda train's loader reads in ``epoch``."""
    cfg = load_config([], [f"data.path={data}", f"train.batch_size={batch}", "data.verify_checksums=false"])
    loader = build_loader(cfg, ClusterEnv(rank=rank, world_size=world, local_rank=rank, local_size=world), "train")
    try:
        loader.set_epoch(epoch)
        return hashlib.sha256(np.ascontiguousarray(loader.plan().indices, np.int64).tobytes()).hexdigest()
    finally:
        loader.close()


def test_cold_and_warm_passes_read_what_training_reads(dataset, tmp_path):
    if fs_type(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip("the data set lies in memory: no cold pass")
    proc = bench_io("--data", str(dataset), "--cold", "--passes", "2", "--batch-size", "4", "--workers", "2",
                    "--out", str(tmp_path / "run"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = last_json(proc.stdout)
    kinds = [(p["pass"], p["kind"]) for p in out["passes"]]
    assert kinds == [(1, "cold"), (1, "warm"), (2, "cold"), (2, "warm")]
    per_epoch = training_images(dataset, 4, 1)
    for p in out["passes"]:
        assert p["images"] == per_epoch and p["images_per_s"] > 0 and p["first_batch_s"] <= p["seconds"]
        assert p["cached_before"] == 0.0 if p["kind"] == "cold" else p["cached_before"] > 0.8
        assert p["gb_per_s"] == pytest.approx(p["bytes"] / 1e9 / p["seconds"])
    assert out["cold_measured"] and out["drop_checked"] and set(out["figures"]["direct"]) == {"cold", "warm"}
    assert "less than 5x" in out["memory_note"] and "cold passes" in out["memory_note"]
    log = read_log(tmp_path / "run")
    assert log.start.job == "io" and len(log.epochs) == 4 and log.end.status == "completed"
    assert [e.metrics["io_kind"] for e in log.epochs] == ["cold", "warm", "cold", "warm"]
    # the report shows it in its I/O section, and counts no training run
    rows, runs = make_report([str(tmp_path / "run")], tmp_path / "rep")
    text = (tmp_path / "rep" / "report.md").read_text()
    assert rows == [] and len(runs) == 1
    io = text.split("## I/O", 1)[1].split("## Plots", 1)[0]
    assert io.count("| direct | cold |") == 2 and io.count("| direct | warm |") == 2
    assert "not a training run" not in text


def test_tmpfs_keeps_pages_warns_once_and_reports_warm_only(dataset, tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or fs_type(shm) != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm")
    data = shm / f"jeoparda-io-{os.getpid()}"
    shutil.copytree(dataset, data)
    try:
        proc = bench_io("--data", str(data), "--cold", "--passes", "2", "--batch-size", "4", "--workers", "0",
                        "--out", str(tmp_path / "run"), "--json")
    finally:
        shutil.rmtree(data)
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "POSIX_FADV_DONTNEED" in line]
    assert len(warned) == 1 and "reporting warm passes only" in warned[0]
    out = last_json(proc.stdout)
    assert not out["cold_measured"] and {p["kind"] for p in out["passes"]} == {"warm"}
    assert "--cold could not drop the pages" in out["memory_note"]


def test_an_unreadable_shard_is_one_line_naming_it(copy, tmp_path):
    """Without the right to read a shard (root made subject to file modes by dropping its overrides)."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to take away the permission override")
    shard = sorted((copy / "train").glob("*.h5"))[1]
    os.chown(shard, 65534, 65534)
    shard.chmod(0o600)
    proc = bench_io("--data", str(copy), "--cold", "--out", str(tmp_path / "run"),
                    prefix=(setpriv, "--bounding-set", "-dac_override,-dac_read_search"))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(shard) in lines[0] and "Permission denied" in lines[0]


def test_staging_and_the_need_verdict(dataset, tmp_path):
    log = ResultsLog(tmp_path / "train", enabled=True)
    (tmp_path / "train").mkdir()
    log.write(RunStart(model="resnet50", task="multilabel", dataset="bigearthnet-v1", data_backend="torch",
                       world_size=4, nodes=1, global_batch_size=128, mode="weak"))
    for epoch, rate in enumerate((10.0, 1e9, 1e9), start=1):  # needs far more than any disk gives
        log.write(Epoch(epoch=epoch, epoch_time_s=1.0, images_per_s=rate))
    log.write(RunEnd(status="completed"))
    (tmp_path / "local").mkdir()
    proc = bench_io("--data", str(dataset), "--passes", "1", "--set", "train.global_batch_size=8", "--workers", "0",
                    "--stage", "--need-from", str(tmp_path / "train"), "--out", str(tmp_path / "run"), "--json",
                    env={**os.environ, "PYTHONPATH": os.getcwd(), "TMPDIR": str(tmp_path / "local")})
    assert proc.returncode == 0, proc.stderr
    out = last_json(proc.stdout)
    assert [p["source"] for p in out["passes"]] == ["direct", "staged"]
    assert out["staging"]["seconds"] > 0 and out["staging"]["bytes_per_node"] > 0
    assert out["staging"]["folder"].startswith(str(tmp_path / "local"))  # bare --stage: $TMPDIR
    assert out["batch_size"] == 8 and all(p["images"] == training_images(dataset, 8, 1) for p in out["passes"])
    assert out["need"]["keeps_up"] is False and "does NOT keep up" in proc.stdout
    assert out["need"]["need_images_per_s"] == 1e9
    # data.stage in the configuration does not turn the direct passes into staged ones
    proc = bench_io("--data", str(dataset), "--passes", "1", "--batch-size", "4", "--workers", "0",
                    "--set", "data.stage=true", "--set", f"data.stage_dir={tmp_path / 'cfg-stage'}",
                    "--need-images-per-s", "0.001", "--out", str(tmp_path / "run2"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = last_json(proc.stdout)
    assert out["need"]["keeps_up"] is True and out["staging"] is None
    assert [p["source"] for p in out["passes"]] == ["direct"] and not (tmp_path / "cfg-stage").exists()
    assert "storage keeps up" in proc.stdout and "not a checked cold figure" in proc.stdout


@pytest.mark.mpi
def test_two_ranks_cold_json_per_rank_and_aggregate(dataset, tmp_path):
    """The issue's must-show: mpirun -np 2 jeoparda bench io --data D --cold --json."""
    if fs_type(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip("the data set lies in memory: no cold pass")
    proc = subprocess.run([mpirun(), "-np", "2", "--oversubscribe", sys.executable, "-m", "jeoparda", "bench", "io",
                           "--data", str(dataset), "--cold", "--json", "--batch-size", "4", "--workers", "1",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, env=mpi_env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = last_json(proc.stdout)
    assert out["world_size"] == 2 and proc.stdout.count("bench io:") == 1  # rank 0 reports
    per_epoch = training_images(dataset, 4, 2)
    for p in out["passes"]:
        assert [r["rank"] for r in p["ranks"]] == [0, 1] and p["images"] == per_epoch
        assert sum(r["images"] for r in p["ranks"]) == p["images"]
        assert p["seconds"] == max(r["seconds"] for r in p["ranks"])
        assert p["images_per_s"] == pytest.approx(p["images"] / p["seconds"])
        # every rank read exactly the patches, in the order, that training's loader gives it
        assert [r["indices_sha256"] for r in p["ranks"]] == [
            training_digest(dataset, 4, 2, rank, p["pass"] - 1) for rank in (0, 1)]
    assert [p["kind"] for p in out["passes"]] == ["cold", "warm", "cold", "warm"]
    assert out["passes"][0]["ranks"][0]["indices_sha256"] != out["passes"][2]["ranks"][0]["indices_sha256"]


@pytest.mark.mpi
def test_fewer_shards_than_ranks_is_one_warning(archive_master, tmp_path):
    data = tmp_path / "one-shard"
    convert(archive_master, data, shard_size=64)
    proc = subprocess.run([mpirun(), "-np", "2", "--oversubscribe", sys.executable, "-m", "jeoparda", "bench", "io",
                           "--data", str(data), "--passes", "1", "--batch-size", "4", "--workers", "0",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, env=mpi_env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "shard(s) for 2 ranks" in line]
    assert len(warned) == 1 and "1 shard(s)" in warned[0]


def test_a_pass_over_two_nodes_is_the_slowest_rank_and_each_node_its_own():
    from jeoparda.bench.io_figures import pass_figures

    rows = [{"rank": r, "host": host, "seconds": s, "images": 100, "bytes": 10**8, "first_batch_s": f,
             "cached_before": 0.0} for r, host, s, f in ((0, "n1", 1.0, 0.1), (1, "n1", 2.0, 0.3),
                                                         (2, "n2", 4.0, 0.2), (3, "n2", 1.0, 0.1))]
    p = pass_figures(rows, 1, "cold", "direct")
    assert p["seconds"] == 4.0 and p["images_per_s"] == 100.0 and p["first_batch_s"] == 0.3
    assert p["gb_per_s"] == pytest.approx(0.1)
    assert [(n["host"], n["ranks"], n["images_per_s"]) for n in p["nodes"]] == [("n1", 2, 100.0), ("n2", 2, 50.0)]
    assert [r["images_per_s"] for r in p["ranks"]] == [100.0, 50.0, 25.0, 100.0]


def test_the_memory_rule_decides_what_a_pass_measures():
    from jeoparda.bench.io_figures import memory_note

    assert "at least 5x" in memory_note(5 * 10**9, 10**9, 1, cold=False)
    small = memory_note(4 * 10**9, 10**9, 2, cold=False)
    assert "less than 5x" in small and "2 node(s)" in small and "use --cold" in small
    assert "cold passes" in memory_note(4 * 10**9, 10**9, 1, cold=True)


def test_a_reader_that_dies_is_one_line_not_a_hang(dataset):
    """A reader process killed (the OOM killer) ends the pass with one line naming the rank."""
    import signal

    from jeoparda.bench.io_readers import RankReaders
    from jeoparda.errors import JeopardaError
    from jeoparda.loaders.base import Planner
    from jeoparda.loaders.split_reader import SplitReader
    from jeoparda.shards.format import layout_of_manifest
    from jeoparda.shards.manifest import read_manifest

    manifest = read_manifest(dataset)
    shards = manifest["splits"]["train"]["shards"]
    reader = SplitReader(dataset, shards, layout_of_manifest(manifest))
    planner = Planner([s["patches"] for s in shards], __import__("jeoparda.loaders.partition", fromlist=["x"])
                      .placement(len(shards), ClusterEnv(), False), 4, 0, 16, True)
    readers = RankReaders(reader, planner, 1, rank=3)
    try:
        assert readers.read_pass(0).images == training_images(dataset, 4, 1)
        for pid in list(readers._pool._processes):
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(JeopardaError, match=r"^rank 3: a bench io reader process died"):
            readers.read_pass(1)
    finally:
        readers.close()
