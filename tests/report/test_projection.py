"""The scaling projection: hand-computed cases, monotonicity, fitting, and its place in the report."""
import csv
import json
import math

import pytest

from jeoparda.cli import main
from jeoparda.errors import JeopardaError
from jeoparda.report.interconnect import PRESETS, System, allreduce_time, fit_measured, ring_time, tree_time
from jeoparda.report.projection import ModelOptions, Workload, project, read_projection, workload_from_run
from jeoparda.report.report import make_report
from tests.report.test_scaling import write_run

# one GPU per node, 10 us per hop, 10 GB/s everywhere: every hop is a network hop
FLAT = System("flat", 1, 10e-6, 10e9, 10e-6, 10e9)
POWERS = [2**i for i in range(11)]


def test_ring_and_tree_by_hand():
    assert ring_time(FLAT, 4, 1e8) == pytest.approx(2 * 3 * 10e-6 + 2 * 3 / 4 * 1e8 / 10e9, rel=1e-12)
    assert tree_time(FLAT, 4, 1e8) == pytest.approx(2 * 2 * 10e-6 + 2 * 1e8 / 10e9, rel=1e-12)
    assert allreduce_time(FLAT, 4, 1e8) == ring_time(FLAT, 4, 1e8)  # large message: ring wins
    assert allreduce_time(FLAT, 1024, 1e3) == tree_time(FLAT, 1024, 1e3)  # tiny message, many nodes: tree
    assert allreduce_time(FLAT, 1, 1e8) == 0.0


def test_hierarchy_by_hand():
    # 4 GPUs per node at 100 GB/s and 2 us per hop; 10 GB/s and 8 us per hop between nodes
    system = System("h", 4, 2e-6, 100e9, 8e-6, 10e9)
    assert ring_time(system, 4, 1e8) == pytest.approx(2 * 3 * 2e-6 + 2 * 3 / 4 * 1e8 / 100e9, rel=1e-12)
    # 8 GPUs on 2 nodes: every lock-step waits for the network hop, which is also the bottleneck link
    assert ring_time(system, 8, 1e8) == pytest.approx(2 * 7 * 8e-6 + 2 * 7 / 8 * 1e8 / 10e9, rel=1e-12)
    # 32 GPUs on 8 nodes: chain of 3 in a node, tree of depth 3 across
    assert tree_time(system, 32, 1e8) == pytest.approx(2 * (3 * 2e-6 + 3 * 8e-6) + 2 * 1e8 / 10e9, rel=1e-12)


def test_step_and_efficiency_by_hand():
    work = Workload("x", 32, compute_s=0.1, data_wait_s=0.0, gradient_bytes=100_000_000)
    opts = ModelOptions(bucket_bytes=25_000_000, train_images=10_000)
    rows = {r["world_size"]: r for r in project(work, FLAT, [1, 4], opts)}
    bucket = 2 * 3 * 10e-6 + 2 * 3 / 4 * 25e6 / 10e9  # 3.81 ms per bucket, 4 buckets
    assert rows[4]["allreduce_s"] == pytest.approx(4 * bucket, rel=1e-12)
    # 15.24 ms of communication hides behind 66.7 ms of backward except the last bucket
    assert rows[4]["exposed_comm_s"] == pytest.approx(bucket, rel=1e-12)
    assert rows[4]["step_time_s"] == pytest.approx(0.1 + bucket, rel=1e-12)
    assert rows[4]["efficiency"] == pytest.approx(0.1 / (0.1 + bucket), rel=1e-12)
    assert rows[4]["images_per_s"] == pytest.approx(4 * 32 / (0.1 + bucket), rel=1e-12)
    assert rows[4]["epoch_time_s"] == pytest.approx(10_000 // 128 * (0.1 + bucket), rel=1e-12)
    assert rows[1]["efficiency"] == 1.0 and rows[1]["exposed_comm_s"] == 0.0
    no_overlap = {r["world_size"]: r for r in project(work, FLAT, [1, 4], ModelOptions(
        bucket_bytes=25_000_000, overlap=0.0))}
    assert no_overlap[4]["step_time_s"] == pytest.approx(0.1 + 4 * bucket, rel=1e-12)


def test_strong_scaling_by_hand():
    work = Workload("x", 64, compute_s=0.2, data_wait_s=0.02, gradient_bytes=1_000_000)
    opts = ModelOptions(mode="strong", global_batch=256, bucket_bytes=10**9, train_images=1024)
    with pytest.warns(UserWarning, match="fewer than one image per GPU"):
        rows = {r["world_size"]: r for r in project(work, FLAT, [1, 2, 4, 512], opts)}
    assert set(rows) == {1, 2, 4}  # 512 GPUs would get half an image each: left out
    t1 = 0.22 * 256 / 64
    t4 = 0.22 + ring_time(FLAT, 4, 1e6)  # one bucket: nothing hides
    assert rows[1]["step_time_s"] == pytest.approx(t1, rel=1e-12)
    assert rows[4]["step_time_s"] == pytest.approx(t4, rel=1e-12)
    assert rows[4]["efficiency"] == pytest.approx(t1 / (4 * t4), rel=1e-12)
    assert rows[4]["epoch_time_s"] == pytest.approx(4 * t4, rel=1e-12)


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("algorithm", ["ring", "tree", "auto"])
def test_allreduce_time_grows_with_gpus_and_bytes(name, algorithm):
    system = PRESETS[name]
    for nbytes in (4096, 1e6, 1e8):
        times = [allreduce_time(system, p, nbytes, algorithm) for p in range(1, 1025)]
        assert all(a <= b for a, b in zip(times, times[1:]))
    for p in (2, 8, 64, 1024):
        times = [allreduce_time(system, p, 2.0**k, algorithm) for k in range(12, 28)]
        assert all(a < b for a, b in zip(times, times[1:]))


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("mode", ["weak", "strong"])
def test_efficiency_never_rises_with_gpus(name, mode):
    work = Workload("resnet50", 64, 0.15, 0.005, 94_300_000)
    rows = project(work, PRESETS[name], POWERS, ModelOptions(mode=mode, global_batch=65536))
    eff = [r["efficiency"] for r in rows]
    assert eff[0] == 1.0 and all(a >= b for a, b in zip(eff, eff[1:]))
    assert eff[-1] < 1.0
    if mode == "weak":
        assert all(a["images_per_s"] < b["images_per_s"] for a, b in zip(rows, rows[1:]))


def test_more_bandwidth_or_overlap_never_hurts():
    work = Workload("resnet50", 32, 0.05, 0.0, 94_300_000)
    slow, fast = PRESETS["v100-edr"], PRESETS["h100-ndr400"]
    for p in POWERS[1:]:
        opts = ModelOptions()
        assert project(work, fast, [1, p], opts)[1]["efficiency"] >= project(work, slow, [1, p], opts)[1]["efficiency"]
        effs = [project(work, slow, [1, p], ModelOptions(overlap=o))[1]["efficiency"] for o in (0, 0.5, 1)]
        assert effs[0] <= effs[1] <= effs[2]


def test_fit_recovers_latency_and_bandwidth():
    alpha, bw, n = 20e-6, 3e9, 4
    sizes = [{"bytes": 2**k, "time_us": 1e6 * (2 * (n - 1) * alpha + 2 * (n - 1) / n * 2**k / bw)}
             for k in range(12, 27)]
    system = fit_measured(sizes, n)
    assert system.intra_latency_s == pytest.approx(alpha, rel=1e-6)
    assert system.intra_bandwidth == pytest.approx(bw, rel=1e-6)
    assert system.gpus_per_node == n
    with pytest.raises(JeopardaError, match="at least 2 processes"):
        fit_measured(sizes, 1)


def _train_log(folder, world=1, batch=16):
    folder.mkdir()
    events = [{"event": "run_start", "time": 0, "model": "resnet18", "data_backend": "torch", "world_size": world,
               "batch_size_per_worker": batch, "mode": "weak", "global_batch_size": batch * world}]
    # 10 steps of 16 images per epoch: the first epoch (warm-up) is slow and must not count
    for i, (t, wait) in enumerate([(9.0, 3.0), (2.0, 0.1), (2.2, 0.3), (2.0, 0.1)]):
        events.append({"event": "epoch", "time": i, "epoch": i + 1, "epoch_time_s": t, "data_wait_s": wait,
                       "train_images": 10 * batch * world, "images_per_s": 10 * batch * world / t})
    events.append({"event": "run_end", "time": 9, "status": "completed"})
    (folder / "results.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return folder


def test_workload_from_a_training_log(tmp_path):
    work = workload_from_run(_train_log(tmp_path / "r1"))
    assert work.model == "resnet18" and work.batch_size == 16
    assert work.compute_s == pytest.approx((2.0 - 0.1) / 10, rel=1e-12)  # medians of the steady epochs
    assert work.data_wait_s == pytest.approx(0.1 / 10, rel=1e-12)
    assert work.gradient_bytes == 4 * 11_214_483
    with pytest.warns(UserWarning, match="communication counts as compute"):
        workload_from_run(_train_log(tmp_path / "r2", world=2))


def _projection_doc(path, model="resnet50", mode="weak", batch=64, step=None):
    step = step or {1: 0.5, 2: 0.55, 4: 0.6}
    rows = [{"world_size": n, "global_batch": batch * n, "step_time_s": t, "images_per_s": batch * n / t}
            for n, t in step.items()]
    doc = {"format": "jeoparda-projection", "version": 1, "model": model, "mode": mode, "rows": rows,
           "workload": {"source": "hand-made"},
           "system": {"name": "s", "gpus_per_node": 4, "intra_bandwidth_gbs": 1, "node_bandwidth_gbs": 1}}
    path.write_text(json.dumps(doc))
    return path


def test_report_puts_projection_next_to_measurement(tmp_path):
    # measured 128 images/s on 1 worker (batch 64 -> global 64), 220 on 2 (global 128)
    write_run(tmp_path / "runs" / "r1", 1, rates=[1, 128])
    write_run(tmp_path / "runs" / "r2", 2, rates=[1, 220])
    write_run(tmp_path / "runs" / "other", 2, rates=[1, 50], model="bwms")
    proj = _projection_doc(tmp_path / "p.json")
    make_report([str(tmp_path / "runs" / "*")], tmp_path / "rep", [proj])
    with open(tmp_path / "rep" / "scaling.csv") as fh:
        got = {(r["model"], int(r["world_size"])): r for r in csv.DictReader(fh)}
    projected = 128 / 0.55
    assert float(got["resnet50", 2]["projected_images_per_s"]) == pytest.approx(projected, rel=1e-12)
    assert float(got["resnet50", 2]["projection_error"]) == pytest.approx(220 / projected - 1, rel=1e-12)
    assert float(got["resnet50", 2]["projected_efficiency"]) == pytest.approx(0.5 / 0.55, rel=1e-12)
    assert got["bwms", 2]["projected_images_per_s"] == ""  # another model: no projection
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "Projection vs measurement" in text and f"{100 * (220 / projected - 1):+.1f} %" in text
    assert "Projection vs measurement" in (tmp_path / "rep" / "report.html").read_text()


def test_report_refuses_a_foreign_projection_file(tmp_path, capsys):
    write_run(tmp_path / "r1", 1, rates=[1, 128])
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}')
    assert main(["report", str(tmp_path / "r1"), "--out", str(tmp_path / "rep"), "--projection", str(bad)]) == 1
    assert f"{bad}: not a projection" in capsys.readouterr().err


def test_project_command_writes_what_report_reads(tmp_path, capsys):
    assert main(["project", "--from", str(_train_log(tmp_path / "r1")), "--system", "v100-edr",
                 "--max-gpus", "64", "--out", str(tmp_path / "proj"), "--json"]) == 0
    out = capsys.readouterr().out
    doc = read_projection(tmp_path / "proj" / "projection.json")
    assert [r["world_size"] for r in doc["rows"]] == [1, 2, 4, 8, 16, 32, 64]
    assert json.loads(out.strip().splitlines()[-1])["rows"] == doc["rows"]
    assert doc["rows"][-1]["nodes"] == 16 and doc["system"]["name"] == "v100-edr"
    with open(tmp_path / "proj" / "projection.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 7


def test_project_from_a_measured_allreduce(tmp_path, capsys):
    sizes = [{"bytes": 2**k, "time_us": 1e6 * (2e-4 + 2**k / 1e9)} for k in range(12, 20)]
    measured = tmp_path / "ar.txt"
    measured.write_text("all-reduce, ddp, 2 processes, cpu\n" + json.dumps({"world_size": 2, "sizes": sizes}) + "\n")
    assert main(["project", "--step-time", "0.3", "--batch-size", "8", "--model", "resnet18",
                 "--allreduce", str(measured), "--gpus", "1,2,4", "--node-bandwidth-gbs", "0.1",
                 "--out", str(tmp_path / "p")]) == 0
    doc = read_projection(tmp_path / "p" / "projection.json")
    assert doc["system"]["intra_bandwidth_gbs"] == pytest.approx(1.0, rel=1e-6)  # 2(n-1)/n x 1 GB/s
    assert doc["system"]["node_bandwidth_gbs"] == pytest.approx(0.1)
    assert doc["rows"][2]["nodes"] == 2 and not math.isclose(doc["rows"][2]["efficiency"], 1.0)


@pytest.mark.parametrize("argv, message", [
    (["--step-time", "0.1"], "--step-time and --batch-size"),
    (["--step-time", "0.1", "--batch-size", "8", "--mode", "strong"], "global batch"),
    (["--step-time", "0.1", "--batch-size", "8", "--system", "dgx9"], "unknown system 'dgx9'"),
    (["--step-time", "0.1", "--batch-size", "8", "--model", "vgg"], "unknown model 'vgg'"),
    (["--step-time", "0.1", "--batch-size", "8", "--overlap", "2"], "between 0 and 1"),
])
def test_project_refuses_bad_input(argv, message, capsys):
    assert main(["project", *argv]) == 1
    assert message in capsys.readouterr().err


def test_project_refuses_an_allreduce_file_that_is_not_one(tmp_path, capsys):
    bad = tmp_path / "ar.txt"
    bad.write_text("hello\n")
    assert main(["project", "--step-time", "0.1", "--batch-size", "8", "--allreduce", str(bad)]) == 1
    assert f"{bad}: not the output of `jeoparda bench allreduce --json`" in capsys.readouterr().err


def test_help_explains_the_model(capsys):
    with pytest.raises(SystemExit):
        main(["project", "--help"])
    text = capsys.readouterr().out
    for needle in ("ring: T = 2", "tree: T = 2", "overlap", "v100-edr", "a100-hdr200", "h100-ndr400", "weak", "strong"):
        assert needle in text
