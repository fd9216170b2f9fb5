"""Which machine a run measured: its name and a description (``run_start.system`` and ``system_info``).

The name comes from ``system.name``, else ``JEOPARDA_SYSTEM``, else ``SLURM_CLUSTER_NAME``, else the
host name without its node number (``jwb0123.juwels`` -> ``jwb``). The description is what this node
shows of itself: GPU and CPU, the InfiniBand devices and NCCL's network settings, the file system
of the data, the container. Rank 0 decides; the recorder gives every rank rank 0's answer.

Every probe reads a bounded amount from a path given as a parameter (the real ``/proc``, ``/sys``
and ``/`` by default, a fake tree in the tests) and never raises: what cannot be read is null.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from jeoparda.accelerator import GpuInfo, cpu_model
from jeoparda.cluster.env import SYSTEM_VARS, ClusterEnv
from jeoparda.config import name_problem
from jeoparda.errors import JeopardaError

T = TypeVar("T")
SMALL = 4096  # bytes read of a one-line /sys file, of /run/.containerenv, of /etc/rc
MOUNTS_MAX = 4 << 20  # bytes read of /proc/self/mounts (thousands of mounts in some containers)
IB_DEVICES_MAX, IB_PORTS_MAX = 32, 8
_NODE_NUMBER = re.compile(r"[._-]*\d+$")  # "07", "-03", "0123": the node number and its separator


def system_name(cfg_name: str, env: ClusterEnv) -> tuple[str, str]:
    """(name, where it came from): ``system.name``, ``JEOPARDA_SYSTEM``, ``SLURM_CLUSTER_NAME`` or
    ``hostname``. A variable's name unsafe in a file name is a JeopardaError naming it."""
    if cfg_name:
        return cfg_name, "system.name"  # config.py checked it
    for field in ("system_var", "cluster_name"):
        value, var = getattr(env, field), SYSTEM_VARS[field]
        if value:
            problem = name_problem(value)
            if problem is not None:
                raise JeopardaError(f"environment variable {var}: {problem}")
            return value, var
    return host_system(env.hostname), "hostname"


def host_system(hostname: str) -> str:
    """The host name's short form without its node number, lower-cased: ``node07`` -> ``node``,
    ``gpu-a100-03`` -> ``gpu-a100``, ``nid001234`` -> ``nid``. Characters unsafe in a file name
    become ``-``; a name of digits only is kept as it is."""
    short = hostname.split(".")[0].lower()
    name = _NODE_NUMBER.sub("", short) or short
    name = re.sub(r"[^a-z0-9._-]", "-", name).lstrip(".-")[:64]
    return name or "localhost"


def _guard(probe: Callable[[], T], default: T) -> T:
    """``probe()``, or ``default`` where it fails: a description never stops a run."""
    try:
        return probe()
    except Exception:  # an unreadable, missing or malformed entry of /proc, /sys or the root
        return default


def _read(path: Path, limit: int = SMALL) -> str | None:
    """At most ``limit`` bytes of a text file, stripped; None where it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace").strip()
    except OSError:
        return None


def cpu_cores() -> dict[str, int | None]:
    """The node's logical CPUs and those this process may run on (its affinity: Slurm's cgroup)."""
    usable = _guard(lambda: len(os.sched_getaffinity(0)), None)
    return {"node": os.cpu_count(), "usable": usable}


def infiniband(sys_root: Path = Path("/sys")) -> list[dict[str, Any]] | None:
    """The InfiniBand (and RoCE) devices with their ports' rate, state and link layer; None where
    there are none or /sys/class/infiniband cannot be listed."""
    base = sys_root / "class" / "infiniband"
    try:
        devices = sorted(p.name for p in base.iterdir())[:IB_DEVICES_MAX]
    except OSError:
        return None
    found = []
    for device in devices:
        try:
            numbers = sorted((p.name for p in (base / device / "ports").iterdir() if p.name.isdigit()),
                             key=int)[:IB_PORTS_MAX]
        except OSError:
            numbers = []
        ports = []
        for number in numbers:
            port = base / device / "ports" / number
            state = _read(port / "state")  # "4: ACTIVE"
            ports.append({"port": int(number), "rate": _read(port / "rate"),
                          "state": state.split(":", 1)[-1].strip() if state else None,
                          "link_layer": _read(port / "link_layer")})
        found.append({"device": device, "ports": ports})
    return found or None


def interconnect(env: ClusterEnv, sys_root: Path = Path("/sys")) -> dict[str, Any]:
    """The network between nodes as far as it shows: InfiniBand devices and NCCL's settings (null
    parts where nothing is found; which transport NCCL chose only its own log says)."""
    return {"infiniband": _guard(lambda: infiniband(sys_root), None), "nccl": dict(env.nccl) or None}


def _unescape(field: str) -> str:
    """A /proc/self/mounts field: spaces, tabs, newlines and backslashes are written as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem(path: str, proc: Path = Path("/proc")) -> dict[str, Any] | None:
    """{path, type, mount} of the file system holding ``path`` (the longest mount point that is a
    prefix of it, links resolved); type and mount null where /proc/self/mounts cannot be read
    (not Linux). None for no path (synthetic data)."""
    if not path:
        return None
    where = _guard(lambda: os.path.realpath(path), path)
    out: dict[str, Any] = {"path": where, "type": None, "mount": None}
    text = _read(proc / "self" / "mounts", MOUNTS_MAX)
    best = -1
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = _unescape(parts[1])
        inside = where == mount or where.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= best:  # a later mount over the same point hides the earlier
            best = len(mount)
            out.update(type=parts[2], mount=mount)
    return out


def _keys(text: str) -> dict[str, str]:
    """``key="value"`` lines (/run/.containerenv) as a dict."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip().strip('"') for k, v in pairs}


def container(env: ClusterEnv, root: Path = Path("/")) -> dict[str, Any] | None:
    """{runtime, image, digest} of the container this process runs in, or None outside one. A digest
    only where the runtime states one (Podman's image id); an image file is never hashed."""
    given = dict(env.container)
    for runtime in ("apptainer", "singularity"):
        upper = runtime.upper()
        if given.get(f"{upper}_CONTAINER") or given.get(f"{upper}_NAME"):
            return {"runtime": runtime, "image": given.get(f"{upper}_CONTAINER") or given[f"{upper}_NAME"],
                    "digest": None}
    podman = _read(root / "run" / ".containerenv")
    if podman is not None:  # Podman writes it (empty unless it runs the container --privileged or new enough)
        keys = _keys(podman)
        return {"runtime": keys.get("engine", "").split("-")[0] or "podman", "image": keys.get("image") or None,
                "digest": keys.get("imageid") or None}
    if (root / ".dockerenv").exists():
        return {"runtime": "docker", "image": None, "digest": None}
    rc = _read(root / "etc" / "rc")  # enroot (and pyxis) writes the container's start script here
    if rc is not None and ("enroot-provenance:" in rc or "unset OLDPWD" in rc):
        uri = re.search(r"^# enroot-provenance:\s*(\S+)", rc, re.M)
        return {"runtime": "enroot", "image": uri.group(1) if uri else given.get("PYXIS_CONTAINER_IMAGE"),
                "digest": None}
    return None


def describe(env: ClusterEnv, gpu: GpuInfo | None, gpus_per_node: int, nodes: int, data_path: str,
             proc: Path = Path("/proc"), sys_root: Path = Path("/sys"), root: Path = Path("/")) -> dict[str, Any]:
    """``run_start.system_info`` (docs/results-log.md): what this node shows of the machine."""
    return {
        "gpu_model": gpu.name if gpu else None,
        "gpus_per_node": gpus_per_node if gpu else 0,
        "gpu_memory_gib": round(gpu.total_memory / 2**30, 1) if gpu else None,
        "cpu_model": _guard(cpu_model, None),
        "cpu_cores": _guard(cpu_cores, dict.fromkeys(("node", "usable"))),
        "nodes": nodes,
        "interconnect": _guard(lambda: interconnect(env, sys_root), {"infiniband": None, "nccl": None}),
        "filesystem": _guard(lambda: filesystem(data_path, proc), None),
        "container": _guard(lambda: container(env, root), None),
    }


def identify(cfg_name: str, env: ClusterEnv, gpu: GpuInfo | None, gpus_per_node: int, nodes: int,
             data_path: str) -> tuple[str, dict[str, Any]]:
    """(name, description) of the system, the description naming where the name came from
    (``name_source``). Called on rank 0, which decides for every rank."""
    name, source = system_name(cfg_name, env)
    return name, {**describe(env, gpu, gpus_per_node, nodes, data_path), "name_source": source}
