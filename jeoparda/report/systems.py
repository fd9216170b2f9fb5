"""Which machine a run measured: its system name and hardware, and the label the report shows.

A run's system is run_start ``system``; logs written before it (and runs that did not say) are
:data:`UNKNOWN_SYSTEM`. Its hardware is the GPU model where the device was a GPU (``device_name``,
else ``system_info.gpu_model``), otherwise the CPU model (``system_info.cpu_model``, else
``device_name``). Runs are never mixed across systems; when one system name covers runs of
different hardware (two clusters both called ``gpu``, or old logs of several machines, all of
them "unknown system"), the name is ambiguous: a warning says so and the runs are kept apart as
``NAME [HARDWARE]``.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from jeoparda.training.records import RunStart

UNKNOWN_SYSTEM = "unknown system"
UNKNOWN_HARDWARE = "unknown hardware"


def _text(value: Any) -> str:
    """A field of the open ``system_info`` dict as text ("" unless it is non-blank text)."""
    return value.strip() if isinstance(value, str) else ""


def system_name(start: RunStart) -> str:
    """run_start ``system``, or :data:`UNKNOWN_SYSTEM` where the log does not name one."""
    return _text(start.system) or UNKNOWN_SYSTEM


def hardware(start: RunStart) -> str:
    """The GPU model of a GPU run, else the CPU model; "" where the log says neither."""
    info = start.system_info or {}
    if start.device == "cuda":
        return _text(start.device_name) or _text(info.get("gpu_model"))
    return _text(info.get("cpu_model")) or _text(start.device_name)


def _quoted(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def system_labels(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The label of every (system, hardware) pair: the system's name, or ``NAME [HARDWARE]`` where
    that name covers several hardware; one warning line per such name."""
    seen: dict[str, list[str]] = {}
    for name, kind in pairs:
        kinds = seen.setdefault(name, [])
        if kind not in kinds:
            kinds.append(kind)
    labels: dict[tuple[str, str], str] = {}
    for name, kinds in seen.items():
        if len(kinds) == 1:
            labels[(name, kinds[0])] = name
            continue
        kinds.sort()
        shown = [k or UNKNOWN_HARDWARE for k in kinds]
        for kind, text in zip(kinds, shown):
            labels[(name, kind)] = f"{name} [{text}]"
        warnings.warn(f"{name}: runs of different hardware ({', '.join(shown)}) share this system name; "
                      f"kept apart as {_quoted([labels[(name, k)] for k in kinds])}", stacklevel=2)
    return labels
