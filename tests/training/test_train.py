"""jeoparda train end to end: results log, resume after SIGTERM, ranks, failures."""
import json
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from jeoparda.config import load_config
from jeoparda.training import checkpoint
from jeoparda.training.preempt import EXIT_PREEMPTED

SMALL = ["train.batch_size=4", "data.workers=0", "data.block_size=2", "train.deterministic=true",
         "train.keep_checkpoints=5"]


def train_cmd(dataset, out, *overrides, model="resnet18"):
    sets = [f"data.path={dataset}", f"model={model}", *SMALL, *overrides]
    return [sys.executable, "-m", "jeoparda", "train", "--out", str(out)] + [a for s in sets for a in ("--set", s)]


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def test_single_process_run_and_results_log(dataset, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(train_cmd(dataset, out, "train.epochs=2", "train.max_steps=2", "dist.backend=single"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 2/2" in proc.stdout and f"results: {out / 'results.jsonl'}" in proc.stdout
    log = events(out)
    assert [e["event"] for e in log] == ["run_start", "epoch", "epoch", "run_end"]
    start, end = log[0], log[-1]
    for key in ("run_id", "model", "backend", "data_backend", "world_size", "nodes", "gpus_per_node", "device",
                "device_name", "batch_size_per_worker", "global_batch_size", "mode", "config", "versions", "git_sha",
                "hosts", "dataset", "task", "bands"):
        assert key in start, key
    assert (start["backend"], start["world_size"], start["mode"]) == ("single", 1, "weak")
    for e in log[1:3]:
        for key in ("epoch", "epoch_time_s", "train_images", "images_per_s", "data_wait_s", "loss", "f1_samples",
                    "f1_micro", "f1_macro", "accuracy", "hamming_loss", "ranking_loss"):
            assert key in e, key
        assert e["train_images"] == 8 and e["samples"] == 7  # 2 steps x 4; the whole val split
    assert end["status"] == "completed" and end["test"]["samples"] == 7 and end["epochs"] == 2
    assert load_config([out / "config.yaml"]).train.batch_size == 4
    again = subprocess.run(train_cmd(dataset, out, "dist.backend=single"), capture_output=True, text=True)
    assert again.returncode == 1 and "already holds a run" in again.stderr


def test_resume_after_sigterm_equals_uninterrupted(dataset, tmp_path):
    extra = ("train.epochs=3", "dist.backend=single", "data.augment.mixup_alpha=0.4", "train.test=false")
    ref = subprocess.run(train_cmd(dataset, tmp_path / "ref", *extra, model="bwms"), capture_output=True,
                         text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    cut = tmp_path / "cut"
    proc = subprocess.Popen(train_cmd(dataset, cut, *extra, model="bwms"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while checkpoint.newest(cut) is None and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_PREEMPTED, err
    assert events(cut)[-1]["status"] == "preempted"
    resumed = subprocess.run(train_cmd(dataset, cut, *extra, model="bwms") + ["--resume"], capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    a = checkpoint.load(checkpoint.newest(tmp_path / "ref"))["model"]
    b = checkpoint.load(checkpoint.newest(cut))["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert events(cut)[-1]["replica_sha256"] == events(tmp_path / "ref")[-1]["replica_sha256"]


def test_resume_if_checkpoint_starts_fresh_then_continues(dataset, tmp_path):
    """What the Slurm scripts pass after a requeue: continue when there is a checkpoint, else start."""
    out = tmp_path / "run"
    first = subprocess.run(train_cmd(dataset, out, "train.epochs=1", "train.max_steps=2", "dist.backend=single",
                                     "train.test=false") + ["--resume-if-checkpoint"],
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "resumed from" not in first.stdout and checkpoint.newest(out) is not None
    # the run's own config.yaml as --config: resuming never writes over it, it keeps its own copy
    first_config = (out / "config.yaml").read_bytes()
    again = subprocess.run(train_cmd(dataset, out, "train.epochs=2", "train.max_steps=2", "dist.backend=single",
                                     "train.test=false")
                           + ["--resume-if-checkpoint", "--config", str(out / "config.yaml")],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resumed from" in again.stdout and "epoch 2/2" in again.stdout and "epoch 1/2" not in again.stdout
    starts = [e for e in events(out) if e["event"] == "run_start"]
    assert [s.get("resumed_from") for s in starts] == [None, [1, 0]]
    assert (out / "config.yaml").read_bytes() == first_config
    assert load_config([out / "config-resume-1.yaml"]).train.epochs == 2
    # another optimiser: refused in one line naming it, nothing written
    other = subprocess.run(train_cmd(dataset, out, "train.epochs=3", "train.max_steps=2", "dist.backend=single",
                                     "train.optimizer=sgd") + ["--resume"], capture_output=True, text=True, timeout=300)
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert "cannot resume this run with other settings (train.optimizer adam in the checkpoint, sgd now)" \
        in other.stderr
    assert not (out / "config-resume-2.yaml").exists() and events(out)[-1]["event"] == "run_end"
    # an attempt that died before its first checkpoint (a node failure, say): start again
    for path in checkpoint.checkpoint_dir(out).iterdir():
        path.unlink()
    third = subprocess.run(train_cmd(dataset, out, "train.epochs=1", "train.max_steps=1", "dist.backend=single",
                                     "train.test=false") + ["--resume-if-checkpoint"],
                           capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert "no checkpoint to resume from; starting again" in third.stderr
    assert [e["event"] for e in events(out)][0] == "run_start" and events(out)[-1]["status"] == "completed"
    assert len(list(out.glob("results-attempt-*.jsonl"))) == 1 and len(list(out.glob("config-attempt-*.yaml"))) == 1


def test_a_non_finite_loss_fails_the_run_with_one_line(dataset, tmp_path):
    """A learning rate far too high drives the loss to NaN/inf: status failed, one line, exit 1."""
    out = tmp_path / "run"
    proc = subprocess.run(train_cmd(dataset, out, "train.epochs=2", "dist.backend=single", "train.lr=1e30",
                                    "train.preempt_check_every=2"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"jeoparda: error: epoch 1: the training loss is not finite \(NaN or infinite\) after step "
                        r"\d+ \(finite up to step \d+\); the run failed \(a smaller train.lr\?\)", line), line
    assert events(out)[-1]["status"] == "failed" and checkpoint.newest(out) is None


def test_bad_configuration_is_one_line(dataset, tmp_path):
    proc = subprocess.run(train_cmd(dataset, tmp_path / "r", "train.epoch=3"), capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("jeoparda: error: --set train.epoch=3: unknown key 'train.epoch' "
                                   "(did you mean train.epochs?)")
    proc = subprocess.run([sys.executable, "-m", "jeoparda", "train", "--resume"], capture_output=True, text=True)
    assert proc.returncode == 1 and "--resume needs --out" in proc.stderr


@pytest.mark.parametrize("every,expected", [(3, 3), (10, None), (1, 1)])
def test_preemption_is_seen_within_the_check_interval(dataset, tmp_path, every, expected):
    """The flag is all-reduced every train.preempt_check_every steps and at the epoch's end, not
    every step: a signal raised before step 0 stops the epoch after `every` steps (8 per epoch);
    seen first at the epoch's last step, the epoch completes and the run stops after it."""
    from types import SimpleNamespace

    from jeoparda.accelerator import Accelerator
    from jeoparda.cluster.backends import Backend
    from jeoparda.cluster.env import ClusterEnv
    from jeoparda.config import DistConfig
    from jeoparda.training.loop import Trainer

    cfg = load_config([], [f"data.path={dataset}", *SMALL, "dist.backend=single",
                           f"train.preempt_check_every={every}"])
    trainer = Trainer(cfg, ClusterEnv(), Backend(ClusterEnv(), DistConfig(backend="single")),
                      Accelerator(), tmp_path / "run", lambda text: None)
    assert trainer.train_loader.steps_per_epoch == 8
    stats = trainer.train_epoch(0, 0, SimpleNamespace(raised=True))
    if expected is None:
        assert not stats["preempted"] and stats["stop_after"] and stats["steps"] == 8
    else:
        assert stats == {"preempted": True, "next_step": expected}
    trainer.train_loader.close()


EPOCH_LINE = r"^jeoparda-perf: epoch epoch=(\d+) images_per_s=([0-9.]+) epoch_time_s=([0-9.]+) data_wait_s=([0-9.]+)"
RUN_LINE = r"^jeoparda-perf: run status=(\w+) images_per_s=([0-9.]+) epoch_time_s=([0-9.]+)$"


def test_stable_performance_lines_match_the_documented_patterns(dataset, tmp_path):
    import re

    out = tmp_path / "run"
    proc = subprocess.run(train_cmd(dataset, out, "train.epochs=3", "train.max_steps=2", "dist.backend=single"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    epochs = [m.groups() for m in re.finditer(EPOCH_LINE, proc.stdout, re.M)]
    runs = [m.groups() for m in re.finditer(RUN_LINE, proc.stdout, re.M)]
    logged = [e for e in events(out) if e["event"] == "epoch"]
    assert [int(e[0]) for e in epochs] == [1, 2, 3]
    assert [float(e[1]) for e in epochs] == pytest.approx([e["images_per_s"] for e in logged], rel=1e-3)
    assert len(runs) == 1 and runs[0][0] == "completed"
    median = statistics.median(e["images_per_s"] for e in logged[1:])  # after the warm-up epoch
    assert float(runs[0][1]) == pytest.approx(median, rel=1e-3)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "benchmarking.md").read_text()
    assert EPOCH_LINE in docs and RUN_LINE in docs  # the patterns users copy are the tested ones


def test_time_to_target_is_logged_when_reached_and_null_when_not(dataset, tmp_path):
    for target, reached in ((0.01, True), (0.999, False)):
        out = tmp_path / f"t{target}"
        proc = subprocess.run(train_cmd(dataset, out, "train.epochs=2", "train.max_steps=2", "dist.backend=single",
                                        f"train.target={target}"), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        log = events(out)
        end, epochs = log[-1], [e for e in log if e["event"] == "epoch"]
        assert end["target"] == {"metric": "f1_samples", "value": target}
        if reached:
            assert end["target_epoch"] == 1 and 0 < end["time_to_target_s"] <= end["total_time_s"]
            assert epochs[0]["time_to_target_s"] == end["time_to_target_s"] and "time_to_target_s" not in epochs[1]
            assert "target f1_samples >= 0.01 reached at epoch 1" in proc.stdout
        else:
            assert end["time_to_target_s"] is None and end["target_epoch"] is None


def test_train_compile_runs_the_compiled_model(dataset, tmp_path):
    """train.compile wraps the (DDP-wrapped) model in torch.compile with the named backend;
    aot_eager traces without generating code, so this checks the wiring quickly on CPU."""
    out = tmp_path / "run"
    proc = subprocess.run(train_cmd(dataset, out, "train.epochs=1", "train.max_steps=1", "dist.backend=single",
                                    "train.compile=aot_eager", "train.val_every=0", "train.test=false"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert events(out)[0]["config"]["train"]["compile"] == "aot_eager" and events(out)[-1]["status"] == "completed"
    bad = subprocess.run(train_cmd(dataset, tmp_path / "bad", "train.epochs=1", "train.max_steps=1",
                                   "dist.backend=single", "train.compile=no_such_backend"),
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("jeoparda: error: train.compile=no_such_backend: not a torch.compile backend")
