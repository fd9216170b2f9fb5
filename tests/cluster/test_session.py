"""The shared shell of distributed commands: rank 0 decides, every rank learns the error; the run
folder; the replica digest. Ranks are threads of this process talking over an in-memory comm."""
from __future__ import annotations

import hashlib
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

from jeoparda.cluster.backends import Backend
from jeoparda.cluster.env import ClusterEnv
from jeoparda.cluster.session import (
    MpiComm,
    Solo,
    agree,
    default_run_dir,
    mpi_world,
    prepare_run_dir,
    replica_digests,
    root_decides,
    run_folder,
    state_digest,
)
from jeoparda.config import DistConfig
from jeoparda.errors import JeopardaError


class ThreadComm:
    """One rank of a group of threads; every collective is a rendezvous of all of them."""

    def __init__(self, rank: int, slots: list[Any], meet: threading.Barrier, log: list[str]) -> None:
        self.rank, self.slots, self.meet, self.log = rank, slots, meet, log

    def _exchange(self, obj: Any) -> list[Any]:
        self.slots[self.rank] = obj
        self.meet.wait()
        out = list(self.slots)
        self.meet.wait()
        return out

    def broadcast_object(self, obj: Any) -> Any:
        self.log.append(f"broadcast {self.rank}")
        return self._exchange(obj)[0]

    def gather_objects(self, obj: Any) -> list[Any]:
        self.log.append(f"gather {self.rank}")
        return self._exchange(obj)

    def barrier(self) -> None:
        self.meet.wait()


def on_ranks(n: int, work: Callable[[ThreadComm], Any]) -> tuple[list[Any], list[str]]:
    """``work`` on n thread ranks: each rank's result or exception, and the collectives called."""
    slots: list[Any] = [None] * n
    meet, log = threading.Barrier(n, timeout=10), []
    results: list[Any] = [None] * n

    def run(rank: int) -> None:
        try:
            results[rank] = work(ThreadComm(rank, slots, meet, log))
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            results[rank] = exc

    threads = [threading.Thread(target=run, args=(r,)) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, log


def test_rank_0_decides_and_every_rank_gets_its_answer():
    called: list[int] = []

    def decide_on(comm: ThreadComm) -> Any:
        return root_decides(comm, lambda: called.append(comm.rank) or f"decided by {comm.rank}")

    results, log = on_ranks(3, decide_on)
    assert results == ["decided by 0"] * 3 and called == [0]
    assert sorted(log) == ["broadcast 0", "broadcast 1", "broadcast 2"]  # one collective, no more


def test_rank_0s_error_is_raised_everywhere_with_the_message_on_rank_0_only():
    def refuse() -> None:
        raise JeopardaError("runs/x: already holds a run")

    results, _ = on_ranks(3, lambda comm: root_decides(comm, refuse))
    assert all(type(r) is JeopardaError for r in results)
    assert [str(r) for r in results] == ["runs/x: already holds a run", "", ""]


def test_decisions_over_a_single_backend_and_alone():
    backend = Backend(ClusterEnv(), DistConfig(backend="single"))
    assert root_decides(backend, lambda: (True, "resume")) == (True, "resume")
    with pytest.raises(JeopardaError, match="^no$"):
        root_decides(Solo(), lambda: (_ for _ in ()).throw(JeopardaError("no")))
    assert root_decides(Solo(), lambda: 7) == 7


def test_agree_raises_the_first_ranks_problem_on_every_rank():
    results, _ = on_ranks(3, lambda comm: agree(comm, f"rank {comm.rank} broke" if comm.rank else None))
    assert [str(r) for r in results] == ["rank 1 broke", "", ""]
    assert all(isinstance(r, JeopardaError) for r in results)
    results, _ = on_ranks(2, lambda comm: agree(comm, None))
    assert results == [None, None]


class FakeMpi:
    """The corner of mpi4py's communicator that MpiComm uses."""

    def __init__(self, rank: int) -> None:
        self.rank, self.calls = rank, []

    def Get_rank(self) -> int:  # noqa: N802 - mpi4py's spelling
        return self.rank

    def bcast(self, obj: Any, root: int) -> Any:
        self.calls.append(("bcast", root))
        return ("rank 0's", obj)

    def allgather(self, obj: Any) -> list[Any]:
        self.calls.append(("allgather", obj))
        return [obj, obj]

    def Barrier(self) -> None:  # noqa: N802
        self.calls.append(("Barrier", None))


def test_mpi_adapter_speaks_the_backend_collectives():
    fake = FakeMpi(1)
    comm = MpiComm(fake)
    assert comm.rank == 1
    assert comm.broadcast_object("x") == ("rank 0's", "x")
    assert comm.gather_objects(3) == [3, 3]
    comm.barrier()
    assert fake.calls == [("bcast", 0), ("allgather", 3), ("Barrier", None)]
    assert isinstance(mpi_world(ClusterEnv()), Solo)


def test_run_folder_is_rank_0s_choice(tmp_path):
    env = ClusterEnv(job_id="4242")
    assert default_run_dir("sr", env).as_posix() == "runs/sr-4242"
    results, _ = on_ranks(2, lambda comm: run_folder(comm, tmp_path / f"r{comm.rank}", "m", env))
    assert results == [tmp_path / "r0"] * 2
    assert run_folder(Solo(), None, "resnet18", env).as_posix() == "runs/resnet18-4242"


def test_prepare_run_dir_refuses_a_used_folder_unless_resuming_or_restarting(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(JeopardaError, match="--resume but no such run folder"):
        prepare_run_dir(run, "results.jsonl", "use another", resume=True)
    prepare_run_dir(run, "results.jsonl", "use another")
    assert run.is_dir()
    (run / "results.jsonl").write_text("{}\n")
    with pytest.raises(JeopardaError, match=r"run: already holds a run \(results.jsonl\); use another$"):
        prepare_run_dir(run, "results.jsonl", "use another")
    prepare_run_dir(run, "results.jsonl", "use another", resume=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare_run_dir(run, "results.jsonl", "use another", restart=True)
    kept = list(run.glob("results-attempt-*.jsonl"))
    assert len(kept) == 1 and kept[0].read_text() == "{}\n" and not (run / "results.jsonl").exists()
    assert f"the earlier attempt's files are kept as {kept[0].name}" in str(caught[0].message)


def test_a_run_folder_belongs_to_one_run_and_a_restart_keeps_every_earlier_file(tmp_path):
    """Any of the run's files (not only its log) marks a folder as a run's; a restart keeps each
    aside under a free name, links included (renamed, never followed)."""
    owned = ("mllog.txt", "config.yaml", "checkpoints")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: bwms\n")  # the user's --config, say
    (run / "checkpoints").mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    with pytest.raises(JeopardaError, match=r"holds a run \(config.yaml, checkpoints\); use another"):
        prepare_run_dir(run, "results.jsonl", "use another", owned=owned)
    (run / "mllog.txt").symlink_to(victim)
    with pytest.raises(JeopardaError, match=r"mllog.txt: is a symbolic link"):
        prepare_run_dir(run, "results.jsonl", "use another", owned=owned)
    prepare_run_dir(run, "results.jsonl", "use another", resume=True, owned=owned)  # resuming: fine
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare_run_dir(run, "results.jsonl", "use another", restart=True, owned=owned)
        (run / "config.yaml").write_text("again\n")
        prepare_run_dir(run, "results.jsonl", "use another", restart=True, owned=owned)  # same second
    names = sorted(p.name for p in run.iterdir())
    assert [n for n in names if n.startswith("config")] == sorted(
        [n for n in names if n.startswith("config-attempt-")]) and len(names) == 4
    assert {(run / n).read_text() for n in names if n.startswith("config")} == {"model: bwms\n", "again\n"}
    assert victim.read_text() == "keep me" and "are kept as mllog-attempt-" in str(caught[0].message)


def test_state_digest_covers_parameters_and_buffers_of_any_dtype():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    twin = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    twin.load_state_dict(model.state_dict())
    digest = state_digest(model)
    assert digest == state_digest(twin) and len(digest) == 64
    expected = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        expected.update(name.encode())
        expected.update(tensor.numpy().tobytes())
    assert digest == expected.hexdigest()  # raw bytes, in state-dict order
    with torch.no_grad():
        twin[1].running_mean += 1  # a buffer, not a parameter
    assert state_digest(twin) != digest
    assert state_digest(model.to(torch.bfloat16)) != digest  # bfloat16 has no numpy dtype: read as bytes


def test_replica_digests_gather_every_ranks_digest():
    torch.manual_seed(0)
    models = [torch.nn.Linear(2, 2) for _ in range(2)]
    results, _ = on_ranks(2, lambda comm: replica_digests(comm, models[comm.rank]))
    assert results[0] == results[1] == [state_digest(m) for m in models]
    assert len(set(results[0])) == 2
