"""Costs that grow with the archive (issue: storage at scale): time per patch and peak memory of
synth, convert, inspect, loader start-up and bench io at one archive size, so users can plan the
full BigEarthNet (590,326 patches) from two sizes.

Each step is one `python -m jeoparda ...` process (or `mpirun -np 2` of them), timed by the wall
clock; peak memory is the largest resident set of any process of the step (wait4's ru_maxrss of
the step: its own and its waited-for children's largest). Steps run in order on the same files;
start-up is bench io's (manifest, checksums spread over the ranks, readers), with 1 and 2 ranks.

Usage: python benchmarks/scale_costs.py --patches 2000 [--work DIR] [--workers 2] [--layout v1] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in GB of the step's largest process, stdout) of one command."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # the step's own rusage, not a running maximum
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read()[-3000:]}")
        return seconds, usage.ru_maxrss * 1024 / 1e9, out.read()


def jeoparda(*args: str) -> list[str]:
    return [sys.executable, "-m", "jeoparda", *args]


def mpirun(n: int, cmd: list[str]) -> list[str]:
    exe = shutil.which("mpirun", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    if exe is None or n == 1:
        return cmd
    return [exe, "-np", str(n), "--oversubscribe", *cmd]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patches", type=int, required=True)
    ap.add_argument("--work", type=Path, help="folder for the archive and data set (default: a temporary one)")
    ap.add_argument("--workers", type=int, default=2, help="synth and convert worker processes (default 2)")
    ap.add_argument("--layout", default="v1", help="synth --layout (default v1)")
    ap.add_argument("--keep", action="store_true", help="keep the archive and data set")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="jeoparda-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMPI_ALLOW_RUN_AS_ROOT": "1",
           "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    arch, ds = work / "arch", work / "ds"
    n, rows = args.patches, []
    steps: list[tuple[str, list[str]]] = [
        ("synth", jeoparda("synth", "--out", str(arch), "--patches", str(n), "--layout", args.layout,
                           "--workers", str(args.workers))),
        ("convert", jeoparda("convert", "--source", str(arch), "--out", str(ds), "--workers", str(args.workers))),
        ("inspect", jeoparda("inspect", str(ds))),
    ]
    for ranks in (1, 2):
        steps.append((f"bench io ({ranks} rank{'s' if ranks > 1 else ''})", mpirun(ranks, jeoparda(
            "bench", "io", "--data", str(ds), "--cold", "--passes", "1", "--json",
            "--out", str(work / f"io-{ranks}")))))
    try:
        for name, cmd in steps:
            seconds, rss, out = run(cmd, env)
            row: dict[str, Any] = {"step": name, "patches": n, "seconds": seconds, "ms_per_patch": 1e3 * seconds / n,
                                   "peak_rss_gb": rss}
            if name.startswith("bench io"):
                res = json.loads(out.strip().splitlines()[-1])
                direct = res["figures"]["direct"]
                row.update(startup_s=res["startup_s"], **{f"{k.replace(' ', '_')}_images_per_s": v["images_per_s"]
                                                           for k, v in direct.items()})
            rows.append(row)
            print(json.dumps(row) if args.json else
                  f"{name:18s} {seconds:8.1f} s  {row['ms_per_patch']:7.2f} ms/patch  peak RSS {rss:.2f} GB"
                  + (f"  start-up {row['startup_s']:.1f} s, cold {row.get('cold_images_per_s', 0):,.0f} / warm "
                     f"{row.get('warm_images_per_s', 0):,.0f} images/s" if "startup_s" in row else ""), flush=True)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
