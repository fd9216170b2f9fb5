"""A helper process dies with the process that owns it (docs/reliability.md).

Reader processes and conversion workers are useless once their owner is gone, and a survivor holds
the job's output pipes and memory: ``mpirun`` and Slurm then wait for it until the wall-clock limit.
:func:`die_with` ties the calling process to its owner. Where the owner is the direct parent, the
kernel does it (``PR_SET_PDEATHSIG``: SIGKILL when the parent ends). Otherwise (a reader started by a
forkserver on the owner's behalf) a daemon thread waits on a pidfd of the owner, blocked in ``poll``
at no cost, and kills this process the moment the owner ends; without pidfds it checks every
:data:`POLL_S` seconds instead. Nothing fires while the owner lives.
"""
from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # linux/prctl.h
POLL_S = 0.5  # how often the fallback watcher looks, where there are no pidfds


def die_with(owner: int) -> None:
    """End this process (SIGKILL, at once) when process ``owner`` ends; at once if it already has.

    With the owner as direct parent, the parent-death signal is bound to the thread that started
    this process: start such processes from a thread that lives as long as its owner (the main
    thread). Calling this in the owner itself does nothing."""
    if owner == os.getpid():
        return
    if owner == os.getppid() and _parent_death_signal():
        if os.getppid() != owner:  # the parent ended before the signal was armed
            _die()
        return
    _watch(owner)


def _die(sig: int = signal.SIGKILL) -> None:
    os.kill(os.getpid(), sig)


def signal_when_gone(owner: int, sig: int) -> None:
    """Send ``sig`` to this process when process ``owner`` ends (a watcher thread, never the
    kernel's per-thread parent-death signal). A rank whose launcher died (torchrun's agent killed by
    a signal it does not handle) gets SIGTERM: it checkpoints and exits as if preempted, instead of
    training on with nobody to report to."""
    if owner == os.getpid() or owner <= 1:
        return
    _watch(owner, sig)


def _parent_death_signal() -> bool:
    """Ask the kernel for SIGKILL when the parent ends; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(owner: int, sig: int = signal.SIGKILL) -> None:
    """A daemon thread that sends ``sig`` to this process (by default: ends it) when ``owner`` ends."""
    try:
        fd: int | None = os.pidfd_open(owner)
    except ProcessLookupError:
        _die(sig)
        return
    except (AttributeError, OSError):  # no pidfds (old kernel, other system): look now and then
        fd = None
    threading.Thread(target=_wait_then_die, args=(owner, fd, sig), name="jeoparda-lifeline", daemon=True).start()


def _wait_then_die(owner: int, fd: int | None, sig: int = signal.SIGKILL) -> None:
    if fd is not None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll():  # readable once the owner has ended
            pass
    else:
        while alive(owner):
            time.sleep(POLL_S)
    _die(sig)


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie counts as ended where /proc tells)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[:1] != [b"Z"]
    except OSError:
        return True
