"""Issue 22, item 1: kill -9 of a rank (under mpirun and torchrun), of a reader process, of a
conversion worker, or of a lone ``jeoparda train`` / ``jeoparda convert`` parent ends the job within
:data:`BOUND_S` seconds, with a non-zero status, one ``jeoparda: error:`` line from each process that
can still speak, and no process left (docs/reliability.md)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.convert.test_run_mpi import mpi_env, mpirun
from tests.faults import procs
from tests.training.test_train import train_cmd

BOUND_S = 30  # the job ends this long after the kill at the latest
GONE_S = 10  # and nothing it started outlives it by more than this
START_S = 300  # the job may take this long to reach the moment of the kill on a loaded machine
ERROR = "jeoparda: error:"

pytestmark = pytest.mark.slow


@pytest.fixture
def mark():
    """A unique marker for the environment of everything a test starts; what carries it is killed
    after the test, whatever happened."""
    marker = uuid.uuid4().hex
    try:
        yield marker
    finally:
        procs.kill_all(marker)


def start(cmd: list[str], marker: str) -> subprocess.Popen:
    env = {**mpi_env(), "JEOPARDA_FAULT_MARK": marker, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def parent_of(pid: int) -> int:
    fields = procs._read(str(pid), "stat").rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 else 0


def readers(marker: str) -> dict[int, str]:
    """Reader processes (children of a forkserver) and the rank they read for ('0' alone)."""
    found = procs.processes_with(marker)
    servers = {pid for pid, cmd in found.items() if "forkserver" in cmd}
    return {pid: rank_of(pid) for pid in found if pid in servers and parent_of(pid) in servers}


def rank_of(pid: int) -> str:
    env = procs.env_of(pid)
    return env.get("OMPI_COMM_WORLD_RANK", env.get("RANK", "0"))


def trainers(marker: str) -> dict[str, int]:
    """Rank -> PID of each ``jeoparda train`` process (not its launcher nor its helpers)."""
    found = procs.processes_with(marker)
    return {rank_of(pid): pid for pid, cmd in found.items()
            if " -m jeoparda train " in cmd and cmd.split()[0].endswith(("python", "python3"))
            and "multiprocessing" not in cmd and "torchrun" not in cmd}


def wait_for(what, job: subprocess.Popen, timeout: float = START_S):
    """Poll ``what()`` until it is truthy; fails if the job ends first or it takes too long."""
    ok = procs.wait_until(lambda: bool(what()) or job.poll() is not None, timeout, every=0.2)
    assert ok and job.poll() is None, f"the job ended (or stalled) before the kill: {job.poll()}"
    return what()


def kill_and_wait(job: subprocess.Popen, victim: int, marker: str, stopped: tuple[int, ...] = ()) -> str:
    """SIGKILL ``victim`` (and let the ``stopped`` processes go on); the job's output once its
    launcher has ended and closed its output (no survivor holds it), which must happen within
    BOUND_S; then nothing carrying ``marker`` may be left."""
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    for pid in stopped:
        os.kill(pid, signal.SIGCONT)
    try:
        output, _ = job.communicate(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the job still runs {BOUND_S} s after kill -9 of {victim}: "
                    f"{sorted(procs.processes_with(marker).values())}")
    took = time.monotonic() - killed
    assert took <= BOUND_S
    assert procs.wait_gone(marker, GONE_S) == {}
    print(f"job ended {took:.1f} s after kill -9 of {victim}")
    return output


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(ERROR)]


def run_dir_started(out: Path):
    return lambda: (out / "results.jsonl").is_file()


@pytest.mark.mpi
def test_a_killed_rank_ends_the_mpirun_job(dataset, tmp_path, mark):
    out = tmp_path / "run"
    job = start([mpirun(), "-np", "2", "--oversubscribe"] + train_cmd(dataset, out, "train.epochs=200",
                                                                      "dist.backend=ddp", "data.workers=1"), mark)
    wait_for(lambda: run_dir_started(out)() and len(readers(mark)) == 2, job)
    output = kill_and_wait(job, trainers(mark)["1"], mark)
    assert job.returncode != 0 and "Traceback" not in output
    # the survivor's line, unless mpirun ended it first (it ends the job when one rank dies)
    lines = errors(output)
    assert len(lines) <= 1 and all("rank 0: a collective operation failed" in line for line in lines)


def test_a_killed_rank_ends_the_torchrun_job(dataset, tmp_path, mark):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not found")
    out = tmp_path / "run"
    train = train_cmd(dataset, out, "train.epochs=200", "dist.backend=ddp", "data.workers=1")
    job = start([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "jeoparda", "train"] + train[4:], mark)
    wait_for(lambda: run_dir_started(out)() and len(readers(mark)) == 2, job)
    output = kill_and_wait(job, trainers(mark)["1"], mark)
    assert job.returncode != 0
    # the survivor's line; torchrun adds its own report of the failed child
    assert len(errors(output)) == 1 and "rank 0: a collective operation failed" in errors(output)[0]


def test_a_killed_reader_stops_the_trainer_with_one_line(dataset, tmp_path, mark):
    # Under a launcher the other ranks then end as after any rank's failure (the tests above).
    out = tmp_path / "run"
    job = start(train_cmd(dataset, out, "train.epochs=200", "dist.backend=single", "data.workers=2"), mark)
    victim = min(wait_for(lambda: run_dir_started(out)() and len(readers(mark)) == 2 and readers(mark), job))
    output = kill_and_wait(job, victim, mark)
    assert job.returncode == 1
    assert errors(output) == [f"{ERROR} {dataset}: reader process {victim} (killed by signal 9) of the torch data "
                              "loader died (out of memory?); the run stops"]
    assert "Traceback" not in output


def test_a_killed_lone_trainer_leaves_no_reader_behind(dataset, tmp_path, mark):
    out = tmp_path / "run"
    job = start(train_cmd(dataset, out, "train.epochs=200", "dist.backend=single", "data.workers=2"), mark)
    wait_for(lambda: run_dir_started(out)() and len(readers(mark)) == 2, job)
    output = kill_and_wait(job, job.pid, mark)  # its forkserver, resource tracker and readers end too
    assert job.returncode == -signal.SIGKILL and "Traceback" not in output


def start_conversion(archive: Path, out: Path, marker: str) -> subprocess.Popen:
    return start([sys.executable, "-m", "jeoparda", "convert", "--source", str(archive), "--out", str(out),
                  "--workers", "2", "--shard-size", "2"], marker)


def pool_workers(marker: str) -> list[int]:
    return sorted(pid for pid, cmd in procs.processes_with(marker).items() if "spawn_main" in cmd)


def stopped_pool(job: subprocess.Popen, marker: str) -> list[int]:
    """The conversion's two pool workers, stopped (SIGSTOP) while they start: the small conversion
    cannot finish before the kill."""
    stopped: set[int] = set()

    def stop_new() -> bool:
        for pid in set(pool_workers(marker)) - stopped:
            os.kill(pid, signal.SIGSTOP)
            stopped.add(pid)
        return len(stopped) == 2

    wait_for(stop_new, job)
    return sorted(stopped)


def test_a_killed_conversion_worker_ends_the_conversion(archive_master, tmp_path, mark):
    job = start_conversion(archive_master, tmp_path / "out", mark)
    workers = stopped_pool(job, mark)
    output = kill_and_wait(job, workers[0], mark, stopped=tuple(workers[1:]))
    assert job.returncode == 1
    assert errors(output) == [f"{ERROR} a conversion worker process died (out of memory or killed); "
                              "run the same command again to resume"]
    assert "Traceback" not in output


def test_a_killed_converting_parent_leaves_no_worker_behind(archive_master, tmp_path, mark):
    job = start_conversion(archive_master, tmp_path / "out", mark)
    workers = stopped_pool(job, mark)
    output = kill_and_wait(job, job.pid, mark, stopped=tuple(workers))  # they go on, orphaned: they must end
    assert job.returncode == -signal.SIGKILL and "Traceback" not in output


@pytest.mark.mpi
def test_a_killed_conversion_worker_of_one_rank_ends_the_mpirun_job(archive_master, tmp_path, mark):
    """The rank whose worker died tells every rank (they would otherwise wait in the next collective
    while it waits in MPI's finalisation): the job ends with one line."""
    out = tmp_path / "out"
    job = start([mpirun(), "-np", "2", "--oversubscribe", sys.executable, "-m", "jeoparda", "convert",
                 "--source", str(archive_master), "--out", str(out), "--workers", "2", "--shard-size", "2"],
                mark)
    stopped: set[int] = set()

    def stop_new() -> bool:  # both ranks' pools, stopped while they start
        for pid in set(pool_workers(mark)) - stopped:
            os.kill(pid, signal.SIGSTOP)
            stopped.add(pid)
        return len(stopped) == 4

    wait_for(stop_new, job)
    victim = next(p for p in sorted(stopped) if procs.env_of(p).get("OMPI_COMM_WORLD_RANK") == "1")
    output = kill_and_wait(job, victim, mark, stopped=tuple(p for p in stopped if p != victim))
    assert job.returncode != 0 and "Traceback" not in output
    assert errors(output) == [f"{ERROR} a conversion worker process died (out of memory or killed); "
                              "run the same command again to resume"]
