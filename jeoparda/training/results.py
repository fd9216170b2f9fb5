"""``results.jsonl``: one typed record per line (jeoparda/training/records.py, docs/results-log.md).

Only rank 0 writes; lines are flushed as written so a run that dies still leaves a readable log. A
link at ``results.jsonl`` is refused, never followed (docs/reliability.md).
"""
from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import torch

from jeoparda.safe_files import refuse_link, writing
from jeoparda.training.records import RESULTS_NAME, Record

__all__ = ["RESULTS_NAME", "ResultsLog", "git_sha", "versions"]


class ResultsLog:
    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.path = Path(run_dir) / RESULTS_NAME
        self.enabled = enabled
        if enabled:
            refuse_link(self.path)  # at once, before the run starts; each write refuses one too

    def write(self, record: Record) -> None:
        if not self.enabled:
            return
        with writing(self.path, append=True) as fh:
            fh.write(json.dumps(record.to_json()) + "\n")


def versions() -> dict[str, str | None]:
    """Versions of what the run used; None for what is not installed."""
    out: dict[str, str | None] = {"python": platform.python_version(), "torch": torch.__version__,
                                  "cuda": torch.version.cuda, "mpi": None, "dali": None, "horovod": None}
    try:
        from mpi4py import MPI

        out["mpi"] = MPI.Get_library_version().replace("\x00", "").splitlines()[0].strip()
    except Exception:  # not installed or no MPI library: not an error here
        pass
    for key, module in (("dali", "nvidia.dali"), ("horovod", "horovod")):
        try:
            out[key] = __import__(module, fromlist=["__version__"]).__version__
        except Exception:
            pass
    return out


def git_sha() -> str | None:
    """The commit of the jeoparda checkout, if it is one."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None
