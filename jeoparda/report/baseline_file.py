"""Baseline files for ``jeoparda report --baseline`` and the ReFrame checks: an earlier report's
``summary.json`` or a hand-written references file (docs/benchmarking.md, "Baselines and regressions").

Both become entries: a key (system, model, workers and any of the filters below) and per figure a
value with ReFrame-style relative bounds: ``lower`` in [-1, 0] and ``upper`` >= 0, None meaning
unbounded on that side; the band is [value x (1 + lower), value x (1 + upper)]. A summary's every
figure gets the symmetric band +-tolerance. A file that breaks the rules is refused with one line
naming the file, the entry (``references[2]``, ``rows[0]``) and the key.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jeoparda.errors import JeopardaError
from jeoparda.report.summary import SUMMARY_FORMAT, SUMMARY_VERSION
from jeoparda.safe_files import open_regular

REFERENCES_FORMAT = "jeoparda-references"
VERSION = SUMMARY_VERSION  # of both kinds: a summary is read in the version report/summary.py writes
LIMIT_BYTES = 16 * 2**20  # a baseline is a small file: anything larger is refused unread
EXIT_REGRESSED = 3  # `jeoparda report --fail-on-regression` when a figure regressed
DEFAULT_TOLERANCE = 0.05  # +-5 % around a summary's figures and a reference given without bounds

#: Figure -> (which way is better, unit): the figures a baseline may name.
FIGURES: dict[str, tuple[str, str]] = {
    "images_per_s": ("higher", "images/s"),
    "images_per_s_per_worker": ("higher", "images/s"),
    "efficiency": ("higher", ""),
    "tflops_per_worker": ("higher", "TFLOP/s"),
    "mfu": ("higher", ""),
    "quality": ("higher", ""),
    "epoch_time_s": ("lower", "s"),
    "time_to_target_s": ("lower", "s"),
    "energy_per_image_j": ("lower", "J/image"),
}
REQUIRED = ("system", "model", "workers")
FILTERS = ("task", "dataset", "mode", "data_backend", "hardware", "nodes", "global_batch_size")
_COUNTS = ("workers", "nodes", "global_batch_size")
#: The fields of a summary row (the contract of OUT/summary.json).
SUMMARY_FIELDS = (*REQUIRED, *FILTERS, "runs", "quality_key", "bottleneck", *FIGURES)
_BOUND_KEYS = ("value", "lower", "upper", "tolerance")


class _Loader(yaml.SafeLoader):
    """Safe YAML that reads 1e9 and 2.5E-3 as numbers, as YAML 1.2 and JSON do (PyYAML's 1.1 rules
    want a dot and a sign in the exponent and read them as text)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
                              list("-+0123456789."))


@dataclass(frozen=True)
class Bound:
    """A figure's expected value and relative bounds (None: unbounded on that side)."""

    value: float
    lower: float | None
    upper: float | None

    @property
    def low(self) -> float | None:
        return None if self.lower is None else self.value * (1 + self.lower)

    @property
    def high(self) -> float | None:
        return None if self.upper is None else self.value * (1 + self.upper)


@dataclass(frozen=True)
class Entry:
    """One expectation: what it applies to (``key``) and its figures; ``where`` names it in its file."""

    where: str
    key: dict[str, Any]
    figures: dict[str, Bound]

    def matches(self, attrs: dict[str, Any]) -> bool:
        """Whether this entry applies to a row with ``attrs``; system ``*`` applies to every system,
        and an attribute the caller does not know (None) rules nothing out."""
        for name, want in self.key.items():
            have = attrs.get(name)
            if not (name == "system" and want == "*") and have is not None and have != want:
                return False
        return True

    @property
    def specificity(self) -> tuple[bool, int]:
        return self.key["system"] != "*", len(self.key)


@dataclass(frozen=True)
class Baseline:
    source: str
    kind: str  # SUMMARY_FORMAT or REFERENCES_FORMAT
    entries: list[Entry]


def best_entry(entries: list[Entry], attrs: dict[str, Any]) -> Entry | None:
    """The entry for a row: among those that match, a named system before ``*``, then the one
    giving the most filters, then the first in the file."""
    return max((e for e in entries if e.matches(attrs)), key=lambda e: e.specificity, default=None)


def symmetric(value: float, tolerance: float) -> Bound:
    """+-tolerance around ``value`` (the lower side stops at -100 %)."""
    return Bound(value, -min(tolerance, 1.0), tolerance)


def _number(value: Any, file: Path, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise JeopardaError(f"{file}: {where}: {value!r} is not a number")
    return float(value)


def _known(doc: dict[str, Any], allowed: tuple[str, ...], file: Path, where: str) -> None:
    unknown = [k for k in doc if k not in allowed]
    if unknown:
        raise JeopardaError(f"{file}: {where}: unknown field {unknown[0]!r} (known: {', '.join(allowed)})")


def parse(file: Path) -> Any:
    """The YAML or JSON document in ``file``, read within :data:`LIMIT_BYTES`."""
    with open_regular(file, LIMIT_BYTES) as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JeopardaError(f"{file}: not UTF-8 text, so neither YAML nor JSON") from None
    if file.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise JeopardaError(f"{file}: not JSON (line {exc.lineno}: {exc.msg})") from None
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: no Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise JeopardaError(f"{file}: not YAML or JSON ({where}{getattr(exc, 'problem', None) or exc})") from None


def _key(item: dict[str, Any], file: Path, where: str, wildcard: bool) -> dict[str, Any]:
    key: dict[str, Any] = {}
    for name in (*REQUIRED, *FILTERS):
        if name not in item or (item[name] is None and name not in REQUIRED):
            if name in REQUIRED:
                raise JeopardaError(f"{file}: {where}: missing {name!r} (every entry names system, model, workers)")
            continue
        value = item[name]
        if name in _COUNTS:
            # a report over logs older than the records' version says global batch 0 (not recorded)
            least = 0 if name == "global_batch_size" and not wildcard else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise JeopardaError(f"{file}: {where}.{name}: {value!r} is not a whole number of at least {least}")
        elif not isinstance(value, str) or (name in REQUIRED and not value):
            raise JeopardaError(f"{file}: {where}.{name}: {value!r} is not a name")
        elif name == "system" and value == "*" and not wildcard:
            raise JeopardaError(f"{file}: {where}.system: '*' is for references files, not a report summary")
        elif name == "mode" and value not in ("weak", "strong") and (wildcard or value != "none"):
            raise JeopardaError(f"{file}: {where}.mode: {value!r} is neither weak nor strong"
                                + ("" if wildcard else " (nor none: an old log's)"))
        key[name] = value
    return key


def _bound(spec: Any, file: Path, where: str, tolerance: float) -> Bound:
    """A figure of a references file: a number, or {value, tolerance} or {value, lower, upper}."""
    if not isinstance(spec, dict):
        return symmetric(_nonnegative(spec, file, where), tolerance)
    _known(spec, _BOUND_KEYS, file, where)
    if "value" not in spec:
        raise JeopardaError(f"{file}: {where}: missing 'value'")
    value = _nonnegative(spec["value"], file, f"{where}.value")
    if "tolerance" in spec:
        if "lower" in spec or "upper" in spec:
            raise JeopardaError(f"{file}: {where}: give either tolerance or lower/upper, not both")
        return symmetric(value, _nonnegative(spec["tolerance"], file, f"{where}.tolerance"))
    if "lower" not in spec and "upper" not in spec:
        return symmetric(value, tolerance)
    lower, upper = spec.get("lower"), spec.get("upper")
    if lower is not None and not -1 <= _number(lower, file, f"{where}.lower") <= 0:
        raise JeopardaError(f"{file}: {where}.lower: {lower!r} is not a relative change between -1 and 0 "
                            "(e.g. -0.10: 10 % below the value)")
    if upper is not None and _number(upper, file, f"{where}.upper") < 0:
        raise JeopardaError(f"{file}: {where}.upper: {upper!r} is negative (e.g. 0.10: 10 % above the value)")
    return Bound(value, None if lower is None else float(lower), None if upper is None else float(upper))


def _nonnegative(value: Any, file: Path, where: str) -> float:
    number = _number(value, file, where)
    if number < 0:
        raise JeopardaError(f"{file}: {where}: {value!r} is negative")
    return number


def _entries_list(doc: dict[str, Any], name: str, file: Path) -> list[Any]:
    items = doc.get(name)
    if not isinstance(items, list):
        raise JeopardaError(f"{file}: {name!r} must be a list of entries")
    return items


def _reference_entries(doc: dict[str, Any], file: Path, tolerance: float) -> list[Entry]:
    _known(doc, ("format", "version", "references"), file, "top level")
    entries: list[Entry] = []
    for i, item in enumerate(_entries_list(doc, "references", file)):
        where = f"references[{i}]"
        if not isinstance(item, dict):
            raise JeopardaError(f"{file}: {where}: not a mapping of fields")
        _known(item, (*REQUIRED, *FILTERS, "figures"), file, where)
        key = _key(item, file, where, wildcard=True)
        figures = item.get("figures")
        if not isinstance(figures, dict) or not figures:
            raise JeopardaError(f"{file}: {where}.figures: missing or empty (a mapping of figure to value)")
        for name in figures:
            if name not in FIGURES:
                raise JeopardaError(f"{file}: {where}.figures: unknown figure {name!r} (known: {', '.join(FIGURES)})")
        twin = next((e for e in entries if e.key == key), None)
        if twin is not None:
            raise JeopardaError(f"{file}: {where}: applies to the same rows as {twin.where}; merge their figures")
        entries.append(Entry(where, key, {name: _bound(spec, file, f"{where}.figures.{name}", tolerance)
                                          for name, spec in figures.items()}))
    return entries


def _summary_entries(doc: dict[str, Any], file: Path, tolerance: float) -> list[Entry]:
    _known(doc, ("format", "version", "rows"), file, "top level")
    entries = []
    for i, row in enumerate(_entries_list(doc, "rows", file)):
        where = f"rows[{i}]"
        if not isinstance(row, dict):
            raise JeopardaError(f"{file}: {where}: not a mapping of fields")
        _known(row, SUMMARY_FIELDS, file, where)
        figures = {name: symmetric(_nonnegative(row[name], file, f"{where}.{name}"), tolerance)
                   for name in FIGURES if row.get(name) is not None}
        entries.append(Entry(where, _key(row, file, where, wildcard=False), figures))
    return entries


def load_baseline(path: Path, tolerance: float = DEFAULT_TOLERANCE) -> Baseline:
    """An earlier report (its folder or ``summary.json``) or a references file, checked; ``tolerance``
    bounds a summary's figures and the references given without bounds."""
    if tolerance < 0 or not math.isfinite(tolerance):
        raise JeopardaError(f"tolerance {tolerance!r}: must be a fraction of at least 0 (0.05: 5 %)")
    file = Path(path)
    if file.is_dir():
        file = file / "summary.json"
        if not file.exists():
            raise JeopardaError(f"{path}: a folder without summary.json; a baseline is an earlier report's folder, "
                                "its summary.json, or a references file")
    doc = parse(file)
    kind = doc.get("format") if isinstance(doc, dict) else None
    if kind not in (SUMMARY_FORMAT, REFERENCES_FORMAT):
        raise JeopardaError(f"{file}: neither a report summary (format: {SUMMARY_FORMAT}) nor a references file "
                            f"(format: {REFERENCES_FORMAT})")
    if doc.get("version") != VERSION:
        raise JeopardaError(f"{file}: version {doc.get('version')!r} of {kind}; this jeoparda reads version {VERSION}")
    read = _summary_entries if kind == SUMMARY_FORMAT else _reference_entries
    return Baseline(str(file), kind, read(doc, file, tolerance))


#: Figure -> the ReFrame check's performance variable (benchmarks/reframe/jeoparda_checks.py).
REFRAME_VARIABLES = {"images_per_s_per_worker": "images_per_s_per_worker", "epoch_time_s": "epoch_time",
                     "efficiency": "efficiency", "time_to_target_s": "time_to_target"}


def reframe_reference(path: Path, system: str, model: str, ranks: int,
                      data_backend: str | None = None) -> dict[str, dict[str, tuple]]:
    """ReFrame's ``reference`` for one check, from the entry a report row of the same system, model,
    ranks (and data backend) would use: {"*": {variable: (value, lower, upper, unit)}}. Only the
    worse side is bounded, so ReFrame fails where ``--fail-on-regression`` would and passes an
    improvement; time to target keeps a lower bound of -1 (0 s), as the check reports a target
    not reached as -1."""
    entry = best_entry(load_baseline(path).entries,
                       {"system": system, "model": model, "workers": ranks, "data_backend": data_backend})
    if entry is None:
        return {}
    refs: dict[str, tuple] = {}
    for figure, variable in REFRAME_VARIABLES.items():
        bound = entry.figures.get(figure)
        if bound is None:
            continue
        better, unit = FIGURES[figure]
        lower, upper = (bound.lower, None) if better == "higher" else (None, bound.upper)
        refs[variable] = (bound.value, -1.0 if figure == "time_to_target_s" else lower, upper, unit)
    return {"*": refs} if refs else {}
