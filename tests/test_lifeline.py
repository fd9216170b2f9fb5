"""jeoparda.lifeline: a process tied to its owner dies when the owner is SIGKILLed, never before."""
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from jeoparda import lifeline
from tests.faults import procs

ROOT = str(Path(__file__).resolve().parents[1])

# A child tied to argv[1] (a PID, or "parent") that says it is ready, lives argv[2] s and exits 0.
CHILD = """
import os, sys, time
{prelude}
from jeoparda.lifeline import die_with
die_with(os.getppid() if sys.argv[1] == "parent" else int(sys.argv[1]))
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
"""

# An owner that starts CHILD as its own child (the parent-death signal case), then sleeps.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], "parent", "60"], stdout=subprocess.PIPE, text=True)
print(child.pid, child.stdout.readline().strip(), flush=True)
time.sleep(60)
"""


@pytest.fixture
def marked():
    """Environment with a unique marker; every process carrying it is killed afterwards."""
    mark = uuid.uuid4().hex
    env = {**os.environ, "PYTHONPATH": ROOT, "JEOPARDA_FAULT_MARK": mark}
    try:
        yield mark, env
    finally:
        procs.kill_all(mark)


def child_code(prelude: str = "") -> str:
    return CHILD.format(prelude=prelude)


def start_child(env, owner: int, seconds: float, prelude: str = "") -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", child_code(prelude), str(owner), str(seconds)],
                             stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def start_owner(env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)


def test_a_child_dies_with_its_sigkilled_parent(marked):
    mark, env = marked
    parent = subprocess.Popen([sys.executable, "-c", PARENT, child_code()], stdout=subprocess.PIPE, text=True, env=env)
    assert parent.stdout is not None
    pid, ready = parent.stdout.readline().split()
    assert ready == "ready" and int(pid) in procs.processes_with(mark)
    parent.kill()
    parent.wait()
    assert procs.wait_gone(mark, 5) == {}


@pytest.mark.parametrize("prelude", ["", "del os.pidfd_open  # the fallback: polling"], ids=["pidfd", "polling"])
def test_a_process_dies_with_an_owner_that_is_not_its_parent(marked, prelude):
    mark, env = marked
    owner = start_owner(env)
    child = start_child(env, owner.pid, 60, prelude)
    try:
        owner.kill()
        owner.wait()
        assert child.wait(timeout=5) == -signal.SIGKILL
    finally:
        child.kill()


def test_nothing_fires_while_the_owner_lives(marked):
    mark, env = marked
    owner = start_owner(env)
    try:  # longer than the fallback's interval: the watcher looked at least twice
        child = start_child(env, owner.pid, 3 * lifeline.POLL_S, "del os.pidfd_open")
        assert child.wait(timeout=30) == 0
        child = start_child(env, owner.pid, 3 * lifeline.POLL_S)
        assert child.wait(timeout=30) == 0
        assert owner.poll() is None
    finally:
        owner.kill()
        owner.wait()


def test_an_owner_already_gone_ends_the_process_at_once(marked):
    mark, env = marked
    owner = start_owner(env)
    owner.kill()
    owner.wait()
    child = subprocess.Popen([sys.executable, "-c", child_code(), str(owner.pid), "60"], stdout=subprocess.PIPE,
                             text=True, env=env)
    assert child.wait(timeout=10) == -signal.SIGKILL


def test_alive():
    assert lifeline.alive(os.getpid())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not lifeline.alive(gone.pid)


def test_tying_a_process_to_itself_does_nothing():
    lifeline.die_with(os.getpid())  # returns; the test process lives on


def test_signal_when_gone_delivers_the_chosen_signal(marked):
    """A torchrun rank whose agent was killed gets SIGTERM (a preemption it can checkpoint on), not SIGKILL."""
    mark, env = marked
    owner = start_owner(env)
    code = ("import signal, sys, time\n"
            "from jeoparda.lifeline import signal_when_gone\n"
            "signal.signal(signal.SIGTERM, lambda *a: (print('preempted', flush=True), sys.exit(75)))\n"
            f"signal_when_gone({owner.pid}, signal.SIGTERM)\n"
            "print('ready', flush=True)\n"
            "time.sleep(30)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        owner.kill()
        owner.wait()
        assert child.wait(timeout=10) == 75 and child.stdout.read().strip() == "preempted"
    finally:
        child.kill()
