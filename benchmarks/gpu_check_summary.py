"""benchmarks/gpu_check.py's record: the machine, the summary written to OUT/gpu_check.json after
every step, and the table printed at the end."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any

from gpu_check_runner import REPO, Check


def machine_record(ch: Check) -> dict[str, Any]:
    import platform

    info: dict[str, Any] = {"host": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count()}
    probe = ch._memo.get("the environment probe")
    if isinstance(probe, dict):
        info.update({k: probe[k] for k in ("python", "torch", "cuda", "cudnn", "nccl", "gpus", "packages")})
    else:
        info["probe_error"] = str(probe)
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True) \
        if shutil.which("git") and (REPO / ".git").exists() else None
    info["git_sha"] = git.stdout.strip() if git and git.returncode == 0 else None
    return info


def summarise(ch: Check) -> dict[str, Any]:
    claims = [{"step": s.name, **c} for s in ch.steps for c in s.claims]
    passed = all(s.status != "failed" for s in ch.steps) and all(c["passed"] is not False for c in claims
                                                                  if c["counts"])
    if "machine" not in ch._memo:
        ch._memo["machine"] = machine_record(ch)
    return {"tool": "benchmarks/gpu_check.py", "dry_run": ch.dry, "passed": passed,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ch.started)),
            "seconds": round(time.time() - ch.started, 1), "argv": sys.argv, "out": str(ch.out),
            "work": str(ch.work), "machine": ch._memo["machine"], "sizes": asdict(ch.sizes),
            "steps": [asdict(s) for s in ch.steps], "claims": claims}


def write(ch: Check) -> dict[str, Any]:
    summary = summarise(ch)
    (ch.out / "gpu_check.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def verdict(claim: dict[str, Any]) -> str:
    word = {True: "pass", False: "FAIL", None: "n/a"}[claim["passed"]]
    return word if claim["counts"] else {"pass": "met", "FAIL": "missed", "n/a": "n/a"}[word] + " (target)"


def table(summary: dict[str, Any]) -> str:
    rows = [("step", "status", "s", "claim", "value", "target", "result")]
    for s in summary["steps"]:
        first = (s["name"], s["status"], f"{s['seconds']:.1f}")
        for i, c in enumerate(s["claims"] or [{"name": "-", "value": None, "target": None, "passed": None,
                                                "counts": True}]):
            rows.append((*(first if i == 0 else ("", "", "")), c["name"], fmt(c["value"]), fmt(c["target"]),
                         verdict(c) if s["claims"] else "-"))
    caps = (10, 7, 6, 50, 30, 22, 14)
    rows = [tuple(v if len(v) <= cap else v[:cap - 1] + "~" for v, cap in zip(r, caps)) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(caps))]
    lines = ["  ".join(v.rjust(w) if i == 2 else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    for s in summary["steps"]:
        if s["status"] == "failed":
            lines.append(f"{s['name']}: {s['reason']}" + (f" (log: {s['log']})" if s["log"] else ""))
    state = "PASSED" if summary["passed"] else "FAILED"
    lines.append(f"overall: {state} in {summary['seconds']:.0f} s{' (dry run)' if summary['dry_run'] else ''}; "
                 f"{summary['out']}/gpu_check.json")
    return "\n".join(lines)
