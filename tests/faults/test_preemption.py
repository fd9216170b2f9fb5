"""Preemption in every phase (set-up, staging, training, the final test), by SIGUSR1 and SIGTERM, to
one rank or to mpirun: each attempt ends with status 75 and something to resume from (or a line
saying nothing is lost), and the resumed run completes; a 2-rank run preempted mid-epoch and
resumed ends with the same weights as an uninterrupted one (docs/reliability.md)."""
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from jeoparda.training import checkpoint
from jeoparda.training.preempt import EXIT_PREEMPTED
from tests.convert.test_run_mpi import mpi_env, mpirun
from tests.faults.procs import env_of, kill_all, processes_with, wait_gone, wait_until
from tests.training.test_train import events, train_cmd

pytestmark = pytest.mark.slow
FAST = ("train.test=false", "train.preempt_check_every=1", "dist.backend=single")


def launch(cmd: list[str], env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``cmd`` with a unique marker in its environment (so only what it started is found)."""
    mark = f"JEOPARDA_FAULT_MARK={uuid.uuid4().hex}"
    proc = subprocess.Popen(cmd, env={**(env or os.environ), "JEOPARDA_FAULT_MARK": mark.split("=")[1]},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, mark.split("=")[1]


def finish(proc: subprocess.Popen, mark: str, timeout: float = 300) -> str:
    """The command's output once it ended; whatever it left is killed and fails the test."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        left = wait_gone(mark, 10)
        kill_all(mark)
        if proc.poll() is None:
            proc.kill()
    assert not left, f"processes left behind: {left}"
    return out


def when(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    assert wait_until(lambda: predicate() or proc.poll() is not None, timeout, every=0.02)
    assert proc.poll() is None, proc.communicate()[0][-3000:]


def logged(run: Path, event: str, count: int = 1):
    return lambda: (run / "results.jsonl").exists() and \
        sum(f'"event": "{event}"' in line for line in (run / "results.jsonl").read_text().splitlines()) >= count


def test_signals_in_set_up_and_staging_lose_nothing_and_say_so(dataset, tmp_path):
    """SIGUSR1 while the loaders and the model are built (mllog.txt exists, no run_start yet), SIGTERM
    while shards are staged: status 75, one line; the next --resume-if-checkpoint starts and completes."""
    run = tmp_path / "run"
    proc, mark = launch(train_cmd(dataset, run, *FAST, "train.epochs=1", "train.max_steps=2"))
    when(lambda: (run / "mllog.txt").exists(), proc)
    proc.send_signal(signal.SIGUSR1)
    out = finish(proc, mark)
    assert proc.returncode == EXIT_PREEMPTED, out[-3000:]
    assert ("jeoparda: preempted by SIGUSR1 during set-up: nothing to lose; run again with "
            "--resume-if-checkpoint") in out and "Traceback" not in out
    assert checkpoint.newest(run) is None and not (run / "results.jsonl").exists()

    stage = tmp_path / "stage"
    proc, mark = launch(train_cmd(dataset, run, *FAST, "train.epochs=1", "train.max_steps=2", "data.stage=true",
                                  f"data.stage_dir={stage}") + ["--resume-if-checkpoint"])
    when(lambda: stage.exists() and any(stage.iterdir()), proc)
    proc.send_signal(signal.SIGTERM)
    out = finish(proc, mark)
    assert proc.returncode == EXIT_PREEMPTED, out[-3000:]
    # staging a tiny data set may end before the signal lands: set-up then, as long as nothing is lost
    assert re.search(r"preempted by SIGTERM during (staging|set-up): nothing to lose", out), out[-3000:]

    proc, mark = launch(train_cmd(dataset, run, *FAST, "train.epochs=1", "train.max_steps=2")
                        + ["--resume-if-checkpoint"])
    out = finish(proc, mark)
    assert proc.returncode == 0, out[-3000:]
    assert [e["event"] for e in events(run)] == ["run_start", "epoch", "run_end"]
    assert events(run)[-1]["status"] == "completed"
    assert len(list(run.glob("mllog-attempt-*.txt"))) == 2  # each earlier attempt's files kept aside


def test_a_signal_during_the_final_test_resumes_to_the_test_only(dataset, tmp_path):
    run = tmp_path / "run"
    sets = ("train.epochs=1", "train.max_steps=1", "train.batch_size=2", "train.preempt_check_every=1",
            "dist.backend=single", "train.val_every=0")
    proc, mark = launch(train_cmd(dataset, run, *sets))
    when(logged(run, "epoch"), proc)  # the test follows the last epoch's record and checkpoint
    proc.send_signal(signal.SIGUSR1)
    out = finish(proc, mark)
    assert proc.returncode == EXIT_PREEMPTED, out[-3000:]
    assert "a resumed run only tests" in out and events(run)[-1]["status"] == "preempted"
    assert checkpoint.newest(run).name == "checkpoint-e0001-s000000.pt"
    proc, mark = launch(train_cmd(dataset, run, *sets) + ["--resume"])
    out = finish(proc, mark)
    assert proc.returncode == 0, out[-3000:]
    log = events(run)
    assert [e["event"] for e in log] == ["run_start", "epoch", "run_end", "run_start", "run_end"]  # no epoch again
    assert log[-1]["status"] == "completed" and log[-1]["test"]["samples"] == 7


def rank_pid(mark: str, rank: int) -> int:
    found = [p for p, cmd in processes_with(mark).items()
             if "jeoparda" in cmd and env_of(p).get("OMPI_COMM_WORLD_RANK") == str(rank)]
    assert len(found) == 1, processes_with(mark)
    return found[0]


MPI_SETS = ("train.epochs=2", "train.test=false", "dist.backend=ddp", "train.preempt_check_every=1",
            "train.val_every=0")


@pytest.mark.mpi
def test_two_ranks_preempted_mid_epoch_resume_to_the_same_weights(dataset, tmp_path):
    """SIGUSR1 to rank 1 only, mid-epoch: both ranks checkpoint (each rank's own batch-norm
    statistics kept), exit 75; resumed, the replicas equal an uninterrupted run's bit for bit."""
    def mpi(run: Path, *extra: str) -> list[str]:
        return [mpirun(), "-np", "2", "--oversubscribe"] + train_cmd(dataset, run, *MPI_SETS) + list(extra)

    ref, cut = tmp_path / "ref", tmp_path / "cut"
    proc, mark = launch(mpi(ref), mpi_env())
    assert finish(proc, mark) and proc.returncode == 0
    proc, mark = launch(mpi(cut), mpi_env())
    when(logged(cut, "run_start"), proc)
    os.kill(rank_pid(mark, 1), signal.SIGUSR1)
    out = finish(proc, mark)
    assert proc.returncode == EXIT_PREEMPTED, out[-3000:]
    assert "preempted by SIGUSR1 during training: checkpoint written" in out
    assert events(cut)[-1]["status"] == "preempted"
    proc, mark = launch(mpi(cut, "--resume"), mpi_env())
    out = finish(proc, mark)
    assert proc.returncode == 0, out[-3000:]
    starts = [e for e in events(cut) if e["event"] == "run_start"]
    assert starts[1]["resumed_from"][1] > 0, "the signal should land mid-epoch"
    assert events(cut)[-1]["replica_sha256"] == events(ref)[-1]["replica_sha256"]
    assert (cut / "config-resume-1.yaml").exists()
    # another world size is refused in one line, nothing written
    proc, mark = launch(train_cmd(dataset, cut, "train.epochs=2", "dist.backend=single", "train.test=false",
                                  "train.val_every=0") + ["--resume"])
    out = finish(proc, mark)
    assert proc.returncode == 1 and "world size 2 in the checkpoint, 1 now" in out and "Traceback" not in out
    assert not (cut / "config-resume-2.yaml").exists()


@pytest.mark.mpi
def test_signals_to_mpirun_itself(dataset, tmp_path):
    """OpenMPI 5's mpirun forwards SIGUSR1 to every rank: 75 with a checkpoint. SIGTERM it forwards
    too, but kills the ranks a quarter of a second later (no configurable delay): the job ends at
    once with status 1, nothing left behind, and the run resumes from its newest checkpoint."""
    run = tmp_path / "run"
    cmd = [mpirun(), "-np", "2", "--oversubscribe"] + train_cmd(dataset, run, *MPI_SETS)
    proc, mark = launch(cmd + ["--resume-if-checkpoint"], mpi_env())
    when(lambda: checkpoint.newest(run) is not None, proc)  # epoch 1's checkpoint
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    out = finish(proc, mark, timeout=30)
    assert proc.returncode != 0 and time.monotonic() - start < 10
    proc, mark = launch(cmd + ["--resume-if-checkpoint"], mpi_env())
    when(logged(run, "run_start", 2), proc)
    proc.send_signal(signal.SIGUSR1)
    out = finish(proc, mark)
    assert proc.returncode == EXIT_PREEMPTED, out[-3000:]
    assert events(run)[-1]["status"] == "preempted" and "resumed from" in out


def test_signals_to_torchrun_itself(dataset, tmp_path):
    """torchrun's agent forwards SIGTERM to its ranks (they checkpoint and exit 75; the agent then
    reports a failure of its own). SIGUSR1 kills the agent outright without touching its ranks: they
    see their parent gone, take it as a preemption, checkpoint and end; nothing is left behind."""
    import shutil
    import sys

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not found")
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        run = tmp_path / f"run-{sig.name}"
        cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "jeoparda", "train"] + \
            train_cmd(dataset, run, "train.epochs=50", "dist.backend=ddp", "train.test=false",
                      "train.preempt_check_every=1", "data.workers=1")[4:]
        proc, mark = launch(cmd, {**os.environ, "OMP_NUM_THREADS": "1"})
        when(logged(run, "epoch"), proc)
        proc.send_signal(sig)
        out = finish(proc, mark, timeout=60)
        assert proc.returncode != 0, out[-3000:]
        assert events(run)[-1]["status"] == "preempted" and checkpoint.newest(run) is not None, out[-3000:]


@pytest.mark.mpi
def test_a_signal_to_one_rank_during_set_up_stops_every_rank(dataset, tmp_path):
    """SIGUSR1 to rank 1 alone while the ranks set up: the ranks agree on it (rank 0 did not get it),
    all exit 75, and rank 0 alone says so."""
    run = tmp_path / "run"
    cmd = [mpirun(), "-np", "2", "--oversubscribe"] + train_cmd(dataset, run, *MPI_SETS)
    proc, mark = launch(cmd, mpi_env())
    when(lambda: (run / "mllog.txt").exists(), proc)
    os.kill(rank_pid(mark, 1), signal.SIGUSR1)
    out = finish(proc, mark)
    assert proc.returncode == EXIT_PREEMPTED, out[-3000:]
    said = [line for line in out.splitlines() if "preempted by SIGUSR1 during" in line]
    assert len(said) == 1 and "Traceback" not in out, out[-3000:]
    if "during set-up" in said[0]:  # the signal may land after the first step on a fast machine
        assert "nothing to lose" in said[0] and checkpoint.newest(run) is None
