"""The slurm/ job scripts submitted to a real one-node Slurm cluster (see conftest.py)."""
import csv
import os
import time
from pathlib import Path

import pytest

from jeoparda.training import checkpoint
from tests.convert.test_run import same_tree
from tests.slurm.conftest import REPO
from tests.training.test_train import events

SMALL = ["--set", "train.batch_size=4", "--set", "data.workers=1"]


def job_output(tmp_path: Path, job_id: str) -> str:
    return (tmp_path / f"job-{job_id}.out").read_text()


def test_train_eurosat_single_label_on_two_tasks(slurm, eurosat_dataset, tmp_path):
    run = tmp_path / "run"
    job = slurm.sbatch("--gres=none", "--ntasks-per-node=2", f"--output={tmp_path}/job-%j.out",
                       "slurm/train_eurosat_resnet50d.sh", "--set", f"data.path={eurosat_dataset}",
                       "--set", "train.epochs=1", "--set", "train.max_steps=2", "--set", "train.batch_size=4",
                       "--set", "data.resize=0", "--set", "data.workers=0", "--out", str(run))
    info = slurm.wait(job)
    assert info["JobState"] == "COMPLETED", job_output(tmp_path, job)
    log = events(run)
    assert (log[0]["world_size"], log[0]["model"], log[0]["task"]) == (2, "resnet50d", "singlelabel")
    assert log[-1]["status"] == "completed" and "confusion_matrix" in log[-1]["test"]


def test_train_resnet50_on_two_tasks(slurm, dataset, tmp_path):
    run = tmp_path / "run"
    job = slurm.sbatch("--gres=none", "--ntasks-per-node=2", f"--output={tmp_path}/job-%j.out",
                       "slurm/train_resnet50.sh", "--set", f"data.path={dataset}", "--set", "train.epochs=1",
                       "--set", "train.batch_size=8", "--out", str(run))
    info = slurm.wait(job)
    assert info["JobState"] == "COMPLETED", job_output(tmp_path, job)
    log = events(run)
    assert log[0]["world_size"] == 2 and log[0]["model"] == "resnet50" and log[0]["backend"] == "ddp"
    assert log[-1]["event"] == "run_end" and log[-1]["status"] == "completed"
    assert log[0]["config"]["data"]["stage_dir"]  # the script points staging at node-local storage


def test_sigterm_checkpoints_requeues_and_resumes(slurm, dataset, tmp_path):
    run = tmp_path / "run"
    job = slurm.sbatch("--gres=none", "--ntasks-per-node=2", f"--output={tmp_path}/job-%j.out",
                       "slurm/train_resnet18.sh", "--set", f"data.path={dataset}", "--set", "train.epochs=6",
                       "--set", "train.checkpoint_every=1000", *SMALL, "--out", str(run))
    deadline = time.time() + 240
    while not (run / "results.jsonl").exists() or not any(e["event"] == "epoch" for e in events(run)):
        state = slurm.job(job)["JobState"]
        assert time.time() < deadline and state in ("PENDING", "RUNNING"), job_output(tmp_path, job)
        time.sleep(0.5)
    slurm.run("scancel", "--signal=TERM", job)  # what a preemption sends, well before the time limit
    info = slurm.wait(job, until=("PENDING",))  # the script requeued it
    assert info["Restarts"] == "1"
    preempted = [e for e in events(run) if e["event"] == "run_end"]
    assert preempted and preempted[0]["status"] == "preempted"
    assert checkpoint.newest(run) is not None
    # Skip Slurm's 2-minute requeue hold, but only once the old allocation is gone and a couple of
    # seconds have passed: slurmd refuses a relaunch within the second its credential was revoked.
    deadline = time.time() + 60
    while slurm.run("sinfo", "-h", "-o", "%T").stdout.strip() != "idle" and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(3)
    slurm.run("scontrol", "update", f"jobid={job}", "StartTime=now")
    info = slurm.wait(job)
    out = job_output(tmp_path, job)
    assert info["JobState"] == "COMPLETED", out
    assert "requeueing job" in out and "resumed from" in out
    starts = [e for e in events(run) if e["event"] == "run_start"]
    assert len(starts) == 2 and starts[1]["resumed_from"] is not None
    assert events(run)[-1]["status"] == "completed" and events(run)[-1]["epochs"] == 6


def test_scaling_sweep_ends_with_a_report(slurm, dataset, tmp_path):
    sweep = tmp_path / "sweep"
    proc = slurm.run("slurm/scaling_sweep.sh", "--tasks", "1 2", "--script", "slurm/train_resnet18.sh",
                     "--sbatch", "--gres=none", "--out", str(sweep), "--",
                     "--set", f"data.path={dataset}", "--set", "train.epochs=2", *SMALL)
    report_job = proc.stdout.strip().splitlines()[-1].split("job ")[1].split()[0]
    assert slurm.job(report_job)["Dependency"].startswith("afterany:")  # runs once both runs ended, however
    info = slurm.wait(report_job, timeout=600)
    assert info["JobState"] == "COMPLETED", proc.stdout + "".join(p.read_text() for p in sweep.glob("*.out"))
    with open(sweep / "report" / "scaling.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(int(r["world_size"]) for r in rows) == [1, 2]
    assert all(r["model"] == "resnet18" for r in rows)
    assert (sweep / "report" / "report.html").stat().st_size > 0


def test_report_job_waits_for_failed_runs_and_lists_them(slurm, tmp_path):
    sweep = tmp_path / "sweep"
    proc = slurm.run("slurm/scaling_sweep.sh", "--tasks", "1", "--script", "slurm/train_resnet18.sh",
                     "--sbatch", "--gres=none", "--out", str(sweep), "--", "--set", "data.path=/nonexistent")
    report_job = proc.stdout.strip().splitlines()[-1].split("job ")[1].split()[0]
    assert slurm.wait(report_job, timeout=300)["JobState"] == "COMPLETED"  # afterany: ran although the run failed
    train_log = next(sweep.glob("tasks1-*.out")).read_text()
    assert "/nonexistent" in train_log


def test_container_variable_runs_ranks_under_apptainer(slurm, dataset, tmp_path):
    """JEOPARDA_CONTAINER: the ranks start as `apptainer exec --nv IMAGE jeoparda ...` (a stand-in
    apptainer records its arguments and runs the command, as the real one would inside the image)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "apptainer-args"
    fake = bin_dir / "apptainer"
    fake.write_text(f'#!/bin/bash\necho "$@" >> {record}\n'
                    '[ "$1" = exec ] || exit 3\nshift\nwhile [ "${1#-}" != "$1" ]; do shift; done\nshift\nexec "$@"\n')
    fake.chmod(0o755)
    image = tmp_path / "jeoparda.sif"
    image.write_bytes(b"not a real image")
    env = {**slurm.env, "PATH": f"{bin_dir}{os.pathsep}{slurm.env['PATH']}", "JEOPARDA_CONTAINER": str(image)}
    job = slurm.sbatch("--gres=none", "--ntasks-per-node=2", f"--output={tmp_path}/job-%j.out",
                       "slurm/train_resnet18.sh", "--set", f"data.path={dataset}", "--set", "train.epochs=1",
                       *SMALL, "--out", str(tmp_path / "run"), env=env)
    assert slurm.wait(job)["JobState"] == "COMPLETED", job_output(tmp_path, job)
    calls = record.read_text().splitlines()
    # the batch script asks the image which dist.backend the arguments resolve to (its srun MPI plugin)
    lookups = [c for c in calls if c.startswith(f"exec {image} jeoparda config get dist.backend --config ")]
    ranks = [c for c in calls if c not in lookups]
    assert len(lookups) == 1 and len(ranks) == 2  # the lookup, then one per task
    assert all(c.startswith(f"exec --nv {image} jeoparda train --config benchmarks/configs/resnet18.yaml")
               for c in ranks)
    assert events(tmp_path / "run")[0]["world_size"] == 2


def test_convert_script_with_two_mpi_tasks(slurm, archive_master, dataset, tmp_path):
    out = tmp_path / "shards"
    job = slurm.sbatch("--nodes=1", "--ntasks-per-node=2", f"--output={tmp_path}/job-%j.out",
                       "slurm/convert_bigearthnet.sh", "--source", str(archive_master), "--out", str(out),
                       "--shard-size", "8")
    assert slurm.wait(job)["JobState"] == "COMPLETED", job_output(tmp_path, job)
    assert "x 2 rank(s)" in job_output(tmp_path, job)  # srun --mpi=pmix gave MPI two ranks
    assert same_tree(dataset, out)  # byte-identical to the in-process conversion


def test_sr_train_script_on_two_tasks(slurm, archive_master, tmp_path):
    job = slurm.sbatch("--gres=none", "--ntasks-per-node=2", f"--output={tmp_path}/job-%j.out",
                       "slurm/sr_train.sh", "--data", str(archive_master), "--out", str(tmp_path / "sr.pt"),
                       "--run-dir", str(tmp_path / "run"), "--steps", "5", "--patches", "6", "--eval-patches", "2",
                       "--features", "8", "--blocks", "1")
    assert slurm.wait(job)["JobState"] == "COMPLETED", job_output(tmp_path, job)
    log = events(tmp_path / "run")
    assert (log[0]["world_size"], log[0]["task"], log[-1]["status"]) == (2, "superres", "completed")
    assert (tmp_path / "sr.pt").is_file()


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "slurm").glob("*.sh")
                                          if p.name not in ("common.sh", "scaling_sweep.sh")))
def test_every_header_is_accepted_by_sbatch(slurm, script, tmp_path):
    """sbatch --test-only validates every #SBATCH line (with the overrides a CPU cluster needs)."""
    proc = slurm.run("sbatch", "--test-only", "--gres=none", "--nodes=1", "--ntasks-per-node=2",
                     f"--output={tmp_path}/x-%j.out", f"slurm/{script}", check=False)
    assert proc.returncode == 0 and "to start at" in proc.stderr, proc.stderr
