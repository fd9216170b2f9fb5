"""Reader processes: the trainer learns at once that one has ended, with its PID and fate."""
import multiprocessing as mp
import os
import signal
import time

import pytest

from jeoparda.loaders.readers import ReaderWatch


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _leave(code: int) -> None:
    os._exit(code)


@pytest.fixture
def processes():
    started = []
    yield started
    for p in started:
        if p.is_alive():
            p.kill()
        p.join()


def start(processes, target, *args):
    # forked, to be quick: the forkserver's readers are killed in tests/faults/test_process_death.py
    p = mp.get_context("fork").Process(target=target, args=args, daemon=True)
    p.start()
    processes.append(p)
    return p


def test_a_reader_killed_or_failing_is_seen_with_its_pid_and_fate(processes):
    live, doomed, failing = start(processes, _sleep, 60), start(processes, _sleep, 60), start(processes, _leave, 3)
    failing.join()
    watch = ReaderWatch([live, doomed])
    assert not watch.ended() and watch.dead() == ""
    os.kill(doomed.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not watch.ended() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watch.ended() and watch.dead() == f"{doomed.pid} (killed by signal 9)"
    assert ReaderWatch([live, failing]).dead() == f"{failing.pid} (exit status 3)"


class _OrphanedReader:
    """A forkserver child whose forkserver has died: its sentinel (a socket to the forkserver) is at
    end of file, so multiprocessing calls it dead (exit status 255), yet the process itself runs."""

    def __init__(self, process, sentinel: int) -> None:
        self.pid, self.sentinel, self.exitcode = process.pid, sentinel, 255

    def is_alive(self) -> bool:
        return False


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfds: the sentinel is all there is")
def test_a_vanished_forkserver_is_not_a_dead_reader(processes):
    running = start(processes, _sleep, 60)
    read, write = os.pipe()
    os.close(write)  # end of file, as a dead forkserver's socket
    try:
        watch = ReaderWatch([_OrphanedReader(running, read)])
        assert not watch.ended() and watch.dead() == ""
        os.kill(running.pid, signal.SIGKILL)  # the reader itself ends: that is seen
        deadline = time.monotonic() + 10
        while not watch.ended() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watch.dead() == f"{running.pid} (exit status 255)"
        watch.close()
    finally:
        os.close(read)


def test_no_readers_nothing_ended():
    assert not ReaderWatch([]).ended()


def running_loader(dataset, workers, device=None):
    """A torch loader over ``dataset`` with ``workers`` reader processes (on ``device``: "cuda" is
    the stand-in GPU), its first batch taken: (loader, its remaining batches)."""
    from jeoparda.cluster.env import ClusterEnv
    from jeoparda.devices import parse_device
    from jeoparda.loaders.build import build_loader
    from tests.loaders.test_loader import cfg

    loader = build_loader(cfg(dataset, workers=workers), ClusterEnv(), "train",
                          *([parse_device(device)] if device else []))
    loader.set_epoch(0)
    batches = iter(loader)
    next(batches)
    return loader, batches


def dead_reader_line(dataset, which):
    """The one line a run stops with when reader ``which`` died."""
    return f"{dataset}: reader process {which} of the torch data loader died (out of memory?); the run stops"


@pytest.mark.slow
def test_a_reader_killed_mid_epoch_stops_the_device_loader_with_one_line(standin_gpu, dataset):
    from jeoparda.errors import JeopardaError

    loader, batches = running_loader(dataset, 2, "cuda")
    victim = min(p.pid for p in loader._stream._iterator._workers)
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(JeopardaError) as failure:
        for _ in batches:
            pass
    assert str(failure.value) == dead_reader_line(dataset, f"{victim} (killed by signal 9)")
    assert standin_gpu.registered == {}  # the ring was released on the way out


def test_another_runtime_error_of_the_stream_is_not_taken_for_a_dead_reader(dataset):
    """Only torch's "DataLoader worker ... exited" becomes the dead-reader line; any other failure of
    the stream goes on as it is."""
    loader, batches = running_loader(dataset, 1)

    def broken() -> None:
        raise RuntimeError("something else broke")

    loader._stream._iterator._next_data = broken
    try:
        with pytest.raises(RuntimeError, match="something else broke"):
            next(batches)
    finally:
        loader.close()


@pytest.mark.parametrize("message, which", [
    ("DataLoader worker (pid(s) 12, 13) exited unexpectedly", "12, 13 (exited unexpectedly)"),
    ("DataLoader worker (pid 12) is killed by signal: Killed. ", "12 (is killed by signal: Killed)"),
    ("DataLoader worker (pid 12) exited unexpectedly with exit code 1. Details are lost due to multiprocessing. "
     "Rerunning with num_workers=0 may give better error trace.", "12 (exited unexpectedly with exit code 1)"),
    ("DataLoader worker exited", "(unknown)"),
])
def test_torchs_own_dead_reader_messages_name_the_readers(message, which):
    from jeoparda.loaders.torch_loader import torch_dead_readers

    assert torch_dead_readers(message) == which


def test_torchs_dead_reader_error_becomes_the_one_line(standin_gpu, dataset):
    """When torch's own check sees a dead reader before the pidfd watch does (its 5 s timer), the
    run stops with the same one line, naming the readers torch named."""
    from jeoparda.errors import JeopardaError

    loader, batches = running_loader(dataset, 1, "cuda")

    def torch_saw_it() -> None:
        raise RuntimeError("DataLoader worker (pid(s) 4242) exited unexpectedly")

    loader._stream._iterator._next_data = torch_saw_it
    with pytest.raises(JeopardaError) as failure:
        next(batches)
    assert str(failure.value) == dead_reader_line(dataset, "4242 (exited unexpectedly)")
    assert standin_gpu.registered == {}  # the ring was released on the way out


def test_a_reader_the_watch_sees_dead_stops_the_loader_at_the_next_batch(standin_gpu, dataset, monkeypatch):
    """The pidfd watch's path, whatever torch's own check would say later: the next batch is not
    used, the run stops with the one line naming the reader and how it ended."""
    from jeoparda.errors import JeopardaError
    from jeoparda.loaders import torch_loader

    class DeadAfterFirst:
        """A watch whose first reader dies after the first batch."""

        def __init__(self, workers):
            self.looks = 0

        def ended(self) -> bool:
            self.looks += 1
            return self.looks > 1

        def dead(self) -> str:
            return "4242 (killed by signal 9)" if self.looks > 1 else ""

    monkeypatch.setattr(torch_loader, "ReaderWatch", DeadAfterFirst)
    loader, batches = running_loader(dataset, 1, "cuda")
    with pytest.raises(JeopardaError) as failure:
        next(batches)
    assert str(failure.value) == dead_reader_line(dataset, "4242 (killed by signal 9)")
    assert standin_gpu.registered == {}
