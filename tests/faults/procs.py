"""Finding and watching the processes a fault test started (by a marker in their command line or
environment), so a test can kill exactly one and prove none is left behind."""
from __future__ import annotations

import os
import time


def _read(pid: str, name: str) -> str:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def processes_with(marker: str) -> dict[int, str]:
    """Every live process (not a zombie) whose command line or environment holds ``marker``, with
    its command line (NULs as spaces)."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        cmdline, environ = _read(pid, "cmdline"), _read(pid, "environ")
        state = _read(pid, "stat").rsplit(")", 1)[-1].split()[:1]
        if state == ["Z"] or not cmdline:
            continue
        if marker in cmdline or marker in environ:
            found[int(pid)] = cmdline.replace("\0", " ")
    return found


def children(pid: int) -> list[int]:
    """The direct children of ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _read(entry, "stat").rsplit(")", 1)[-1].split()
            if len(fields) > 1 and fields[1] == str(pid):
                out.append(int(entry))
    return out


def env_of(pid: int) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in _read(str(pid), "environ").split("\0") if "=" in item)
    return dict(pairs)


def wait_until(predicate, timeout: float, every: float = 0.1) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())


def wait_gone(marker: str, timeout: float) -> dict[int, str]:
    """Wait up to ``timeout`` s for every process carrying ``marker`` to end; what is left."""
    wait_until(lambda: not processes_with(marker), timeout)
    return processes_with(marker)


def kill_all(marker: str) -> None:
    """Clean-up after a failed test: SIGKILL what carries ``marker`` (only processes the test started)."""
    import signal

    for pid in processes_with(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
