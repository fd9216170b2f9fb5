"""The records of ``results.jsonl`` and its one reader (docs/results-log.md gives the schema).

A line is one JSON object: ``event`` (which record), ``time`` (Unix seconds) and the record's
fields. A field whose value is None is left out of the line, except the fields marked ``null``,
written as null (harnesses index them). The keys a record does not declare are kept in its open
dict and written flat into the line: ``metrics`` (the task's metrics) of epoch and run_end,
``extra`` of the others; so a reader keeps what a newer writer added.

``run_start`` carries ``schema``, the version of the records. A log without it predates the
version: :data:`LEGACY_START` holds what such a log left unsaid, in this one place.
"""
from __future__ import annotations

import json
import math
import time
import types
import typing
import warnings
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union

from jeoparda.errors import JeopardaError

RESULTS_NAME = "results.jsonl"

#: Version of the records. It grows when a field changes its meaning or unit, is removed or becomes
#: required; a field added as optional keeps it.
SCHEMA_VERSION = 1

#: What a log written before the ``schema`` field (version 0) means where it says nothing: its runs
#: were multi-label until tasks came, weak or strong scaling unless said (``none``), on one node.
LEGACY_START: dict[str, Any] = {"schema": 0, "task": "multilabel", "dataset": "", "mode": "none", "nodes": 1,
                                "global_batch_size": 0}
#: The quality metric of each task in version-0 logs (later logs name it in run_start).
LEGACY_QUALITY = {"multilabel": ("f1_samples", "F1 (samples)"), "singlelabel": ("accuracy", "accuracy"),
                  "segmentation": ("miou", "mIoU")}
#: The command that wrote a log, by ``job``.
JOBS = {"train": "training run (jeoparda train)", "bench": "training benchmark (jeoparda bench train)",
        "sr": "super-resolution run (jeoparda sr train)", "io": "storage benchmark (jeoparda bench io)"}

NULL = {"null": True}  # field metadata: written as null when None

R = TypeVar("R", bound="Record")


class LogError(JeopardaError):
    """A results log that cannot be read (``path``, when known) and ``why``: a line that is not
    JSON, a record that lacks a required field, no run_start."""

    def __init__(self, why: str, path: Path | None = None) -> None:
        super().__init__(f"{path}: {why}" if path else why)
        self.why, self.path = why, path


@dataclass(kw_only=True)
class Record:
    """What every line has besides ``event``."""

    EVENT: ClassVar[str] = ""
    OPEN: ClassVar[str] = "extra"  # the field holding the keys the record does not declare
    time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {"event": self.EVENT}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != self.OPEN and (value is not None or f.metadata.get("null")):
                line[f.name] = value
        flat: dict[str, Any] = getattr(self, self.OPEN)
        clash = sorted({"event", *(f.name for f in fields(self))} & flat.keys())
        if clash:
            raise ValueError(f"{self.EVENT}: {self.OPEN} repeats declared fields {', '.join(clash)}")
        return {**line, **flat}

    @classmethod
    def from_json(cls: type[R], line: dict[str, Any]) -> R:
        """The record of a parsed line; :class:`LogError` when it lacks a required field."""
        names = {f.name for f in fields(cls)} - {cls.OPEN}
        missing = [f.name for f in fields(cls) if f.name not in line and f.name != cls.OPEN
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise LogError(f"{cls.EVENT} lacks {', '.join(missing)}")
        known: dict[str, Any] = {k: v for k, v in line.items() if k in names}
        known[cls.OPEN] = {k: v for k, v in line.items() if k not in names and k != "event"}
        return cls(**known)


@dataclass(kw_only=True)
class RunStart(Record):
    """The run's set-up: what ran, where, with what; one per attempt (a resumed run adds one)."""

    EVENT = "run_start"
    schema: int = SCHEMA_VERSION
    job: str = "train"
    run_id: str | None = None
    system: str | None = None
    system_info: dict[str, Any] | None = None
    model: str
    task: str
    quality_key: str | None = None
    quality_label: str | None = None
    dataset: str
    bands: list[str] | None = None
    classes: list[str] | None = None
    precision: str | None = None
    backend: str | None = None
    data_backend: str
    world_size: int
    nodes: int
    gpus_per_node: int | None = None
    device: str | None = None
    device_name: str | None = None
    batch_size_per_worker: int | None = None
    global_batch_size: int
    mode: str
    config: dict[str, Any] | None = None
    versions: dict[str, str | None] | None = None
    git_sha: str | None = field(default=None, metadata=NULL)
    hosts: list[str] | None = None
    steps_per_epoch: int | None = None
    stage_time_s: float | None = None
    resumed_from: list[int] | None = field(default=None, metadata=NULL)
    ranks: list[dict[str, Any]] | None = None
    steps: int | None = None
    train_patches: int | None = None
    windows: dict[str, int] | None = None
    train_flops_per_image: float | None = None
    peak_flops_per_worker: float | None = field(default=None, metadata=NULL)
    peak_source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class Epoch(Record):
    """One training epoch (one timed block in ``bench train``), with the validation that followed it."""

    EVENT = "epoch"
    OPEN = "metrics"
    epoch: int
    epoch_time_s: float
    train_images: int | None = None
    images_per_s: float
    data_wait_s: float | None = None
    loss: float | None = None
    energy_j: float | None = field(default=None, metadata=NULL)
    energy_per_image_j: float | None = field(default=None, metadata=NULL)
    energy_sources: list[str] | None = None
    energy_note: str | None = None
    lr: float | None = None
    time_to_target_s: float | None = None
    target_epoch: int | None = None
    tflops_per_worker: float | None = None
    mfu: float | None = field(default=None, metadata=NULL)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class RunEnd(Record):
    """How the attempt ended, with its final figures."""

    EVENT = "run_end"
    OPEN = "metrics"
    total_time_s: float | None = None
    epochs: int | None = None
    status: str
    energy_j: float | None = field(default=None, metadata=NULL)
    val: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    replica_sha256: list[str] | str | None = field(default=None, metadata=NULL)
    target: dict[str, Any] | None = field(default=None, metadata=NULL)
    time_to_target_s: float | None = field(default=None, metadata=NULL)
    target_epoch: int | None = field(default=None, metadata=NULL)
    bench: dict[str, Any] | None = None
    train_time_s: float | None = None
    steps: int | None = None
    eval: dict[str, Any] | None = None
    model: str | None = None
    model_sha256: str | None = None
    step_split: dict[str, float | None] | None = None
    bottleneck: str | None = None
    bottleneck_note: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class SRSteps(Record):
    """``jeoparda sr train``: the steps since the last such record."""

    EVENT = "sr_steps"
    step: int
    loss_20m: float
    loss_60m: float
    lr: float
    steps_time_s: float
    windows_per_s: float
    extra: dict[str, Any] = field(default_factory=dict)


#: Every record, by its ``event``.
RECORDS: dict[str, type[Record]] = {r.EVENT: r for r in (RunStart, Epoch, RunEnd, SRSteps)}


#: Declared figures that may be NaN or infinite: the loss of a run that diverged is a fact to keep.
NON_FINITE = frozenset({"loss"})


def _fits(value: Any, hint: Any) -> bool:
    """Whether a parsed JSON value is of a field's declared type (a float finite, an int no bool)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint in (int, str, bool):
        return isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return True


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(kind: type[Record]) -> dict[str, Any]:
    """The field types of ``kind``, worked out once (a log has a line per epoch)."""
    if kind not in _HINTS:
        _HINTS[kind] = typing.get_type_hints(kind)
    return _HINTS[kind]


def line_problem(kind: type[Record], line: dict[str, Any]) -> str | None:
    """Why a parsed line is not a usable record of ``kind`` (a required field absent, a field of
    the wrong type, a figure that is NaN or infinite); None when it is."""
    hints = _hints(kind)
    for f in fields(kind):
        if f.name == kind.OPEN:
            continue
        if f.name not in line:
            if f.default is MISSING and f.default_factory is MISSING:
                return f"{kind.EVENT} lacks {f.name}"
            continue
        value = line[f.name]
        if f.name in NON_FINITE and isinstance(value, float):
            continue
        if not _fits(value, hints[f.name]):
            shown = repr(value) if len(repr(value)) <= 30 else repr(value)[:27] + "..."
            return f"{kind.EVENT} field {f.name} is {shown}, not {_name(hints[f.name])}"
    return None


def _name(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    hint = args[0] if typing.get_origin(hint) in (Union, types.UnionType) and len(args) == 1 else hint
    return {float: "a finite number", int: "an integer", str: "text", bool: "true or false"}.get(
        hint, getattr(typing.get_origin(hint), "__name__", str(hint)))


def legacy_start(line: dict[str, Any]) -> dict[str, Any]:
    """A version-0 run_start with what it left unsaid filled in from :data:`LEGACY_START`."""
    filled = {**LEGACY_START, **line}
    key, label = LEGACY_QUALITY.get(filled["task"], (None, None))
    return {"job": "sr" if filled["task"] == "superres" else "train", "quality_key": key,
            "quality_label": label, **filled}


@dataclass
class RunLog:
    """One results log, read: the first run_start, every epoch and sr_steps, the last run_end."""

    path: Path
    start: RunStart
    epochs: list[Epoch]
    end: RunEnd | None
    sr_steps: list[SRSteps]


def read_log(path: Path) -> RunLog:
    """The records of a run folder's log or of a results.jsonl file. :class:`LogError`, naming the
    file, when a line is not JSON or there is no usable run_start. A record line that lacks a
    required field or holds a value of the wrong type (``images_per_s: "fast"``, a NaN) is passed
    over with a warning naming the file and the line. Lines of events it does not know are passed
    over; a newer schema is read with a warning."""
    path = Path(path)
    log = path / RESULTS_NAME if path.is_dir() else path
    try:
        lines = [(number, json.loads(text)) for number, text in
                 enumerate(log.read_text(encoding="utf-8").splitlines(), 1) if text.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LogError(f"unreadable results log ({exc})", log) from None
    if not all(isinstance(line, dict) for _, line in lines):
        raise LogError("unreadable results log (a line is not a JSON object)", log)
    starts = [line for _, line in lines if line.get("event") == "run_start"]
    if not starts:
        raise LogError("no run_start event", log)
    legacy = "schema" not in starts[0]
    records: list[Record] = []
    passed_over: list[str] = []
    for number, line in lines:
        kind = RECORDS.get(line.get("event", "")) if isinstance(line.get("event", ""), str) else None
        if kind is None:
            continue
        line = legacy_start(line) if legacy and kind is RunStart else line
        why = line_problem(kind, line)
        if why is None:
            records.append(kind.from_json(line))
            continue
        passed_over.append(f"line {number}: {why}")
        warnings.warn(f"{log}:{number}: skipped, {why}", stacklevel=2)
    first = next((r for r in records if isinstance(r, RunStart)), None)
    if first is None:
        raise LogError(f"no usable run_start event ({'; '.join(passed_over)})", log)
    if first.schema > SCHEMA_VERSION:
        warnings.warn(f"{log}: schema {first.schema} is newer than this jeoparda's {SCHEMA_VERSION}; "
                      "read as far as it is known", stacklevel=2)
    ends = [r for r in records if isinstance(r, RunEnd)]
    return RunLog(log, first, [r for r in records if isinstance(r, Epoch)], ends[-1] if ends else None,
                  [r for r in records if isinstance(r, SRSteps)])
