"""Slurm delivers SIGUSR1 (``--signal``, ``scancel --signal``) and the time limit's SIGTERM to every
process of the job step: the trainer, its reader processes, and the forkserver and resource tracker
they start from. The run still checkpoints and exits 75 (docs/reliability.md, "Processes")."""
import os
import signal

import pytest

from jeoparda.training.preempt import EXIT_PREEMPTED
from tests.convert.test_run_mpi import mpi_env, mpirun
from tests.faults.procs import processes_with
from tests.faults.test_preemption import finish, launch, logged, when
from tests.training.test_train import events, train_cmd

pytestmark = pytest.mark.slow
SETS = ("train.epochs=200", "train.test=false", "train.preempt_check_every=1", "train.val_every=0",
        "data.workers=2")


def signal_the_whole_step(mark: str, signum: int) -> dict[int, str]:
    """``signum`` to every process carrying ``mark``, as Slurm signals a job step; whom it reached."""
    found = processes_with(mark)
    for pid in found:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    return found


def preempt_everything(cmd: list[str], run, ranks: int = 1, env: dict | None = None) -> str:
    proc, mark = launch(cmd, env)
    when(logged(run, "run_start"), proc)
    # each rank, its resource tracker, forkserver and 2 readers (and mpirun) are up
    when(lambda: len(processes_with(mark)) >= 5 * ranks + (ranks > 1), proc)
    reached = " ".join(signal_the_whole_step(mark, signal.SIGUSR1).values())
    assert "forkserver" in reached and "resource_tracker" in reached, reached
    out = finish(proc, mark)  # nothing may be left behind
    assert proc.returncode == EXIT_PREEMPTED, out[-3000:]
    assert "preempted by SIGUSR1 during training: checkpoint written" in out and "Traceback" not in out
    assert events(run)[-1]["status"] == "preempted"
    return out


def test_sigusr1_to_every_process_of_a_single_process_run(dataset, tmp_path):
    preempt_everything(train_cmd(dataset, tmp_path / "run", *SETS, "dist.backend=single"), tmp_path / "run")


@pytest.mark.mpi
def test_sigusr1_to_every_process_of_a_two_rank_run(dataset, tmp_path):
    cmd = [mpirun(), "-np", "2", "--oversubscribe"] + train_cmd(dataset, tmp_path / "run", *SETS, "dist.backend=ddp")
    preempt_everything(cmd, tmp_path / "run", 2, mpi_env())
