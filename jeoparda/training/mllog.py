"""``mllog.txt``: the run in MLPerf's logging format, beside ``results.jsonl``.

One ``:::MLLOG {json}`` line per event with ``namespace``, ``time_ms``, ``event_type``
(INTERVAL_START, INTERVAL_END, POINT_IN_TIME), ``key``, ``value`` and ``metadata``, as the
``mlperf-logging`` package writes and its compliance checker reads. The keys follow the MLPerf HPC
rules: submission_*, cache_clear, init/run/epoch/eval/staging start and stop, eval_accuracy,
train_samples, eval_samples, number_of_nodes, accelerators_per_node, seed, global_batch_size and
opt_*. ``benchmarks/mlperf/jeoparda.yaml`` is the ruleset to check a jeoparda log against. Only
rank 0 writes; lines are flushed as written; a link at ``mllog.txt`` is refused, never followed.
"""
from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any

from jeoparda.safe_files import refuse_link, writing

MLLOG_NAME = "mllog.txt"
TOKEN = ":::MLLOG "


class MLLog:
    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.path = Path(run_dir) / MLLOG_NAME
        self.enabled = enabled
        if enabled:  # a Trainer built in a driver (not the CLI) may be given a folder not yet made
            self.path.parent.mkdir(parents=True, exist_ok=True)
            refuse_link(self.path)  # at once, before the run starts; each write refuses one too

    def _write(self, event_type: str, key: str, value: Any, metadata: dict[str, Any] | None,
               time_ms: float | None) -> None:
        if not self.enabled:
            return
        caller = inspect.stack()[2]
        meta = {"file": Path(caller.filename).name, "lineno": caller.lineno, **(metadata or {})}
        line = {"namespace": "", "time_ms": int(time_ms if time_ms is not None else time.time() * 1000),
                "event_type": event_type, "key": key, "value": value, "metadata": meta}
        with writing(self.path, append=True) as fh:
            fh.write(TOKEN + json.dumps(line) + "\n")

    def event(self, key: str, value: Any = None, metadata: dict[str, Any] | None = None,
              time_ms: float | None = None) -> None:
        self._write("POINT_IN_TIME", key, value, metadata, time_ms)

    def start(self, key: str, value: Any = None, metadata: dict[str, Any] | None = None,
              time_ms: float | None = None) -> None:
        self._write("INTERVAL_START", key, value, metadata, time_ms)

    def end(self, key: str, value: Any = None, metadata: dict[str, Any] | None = None,
            time_ms: float | None = None) -> None:
        self._write("INTERVAL_END", key, value, metadata, time_ms)
