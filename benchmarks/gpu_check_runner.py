"""benchmarks/gpu_check.py's machinery: the sizes of a GPU run and of the dry run, a step's record
(status, figures, claims), and Check, which runs each command with a timeout and a log file and builds
the inputs several steps share (the environment probe, the v1.0 data set, the v2.0 tile) once."""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STEPS = ("env", "data", "loader", "train", "ddp", "predict", "sr", "gpu_tests")
REQUIRED = ("numpy", "h5py", "yaml", "tifffile", "pyarrow", "safetensors")
OPTIONAL = ("nvidia.dali", "horovod.torch", "lmdb", "pynvml", "mpi4py", "matplotlib", "tqdm", "pytest")

PROBE = r"""
import importlib, importlib.metadata as md, importlib.util as iu, json, platform, sys
import torch
out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
       "cudnn": torch.backends.cudnn.version(), "cuda_available": torch.cuda.is_available(), "gpus": [],
       "nccl": None, "bf16": None, "packages": {}}
if out["cuda_available"]:
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out["gpus"].append({"index": i, "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                            "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count})
    out["bf16"] = torch.cuda.is_bf16_supported()
    try:
        v = torch.cuda.nccl.version()
        out["nccl"] = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
    except Exception as e:
        out["nccl"] = f"unavailable ({e})"
for name in sys.argv[1:]:
    top = name.split(".")[0]
    try:
        found = iu.find_spec(top) is not None
        if found and name in ("nvidia.dali", "horovod.torch"):
            importlib.import_module(name)
    except Exception as e:
        out["packages"][name] = f"skipped ({type(e).__name__}: {str(e)[:120]})"
        continue
    if not found:
        out["packages"][name] = "skipped (not installed)"
        continue
    dist = {"yaml": "PyYAML", "nvidia.dali": None, "horovod.torch": "horovod", "pynvml": "nvidia-ml-py"}.get(name, top)
    try:
        version = md.version(dist) if dist else getattr(importlib.import_module(name), "__version__", "?")
    except Exception:
        version = "?"
    out["packages"][name] = f"available {version}"
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Sizes:
    """How much each step does: the GPU run's sizes, or the dry run's on the CPU."""

    precision: str = "bf16"
    patches: int = 2400            # v1.0 archive (train ~1,600 after the noisy lists)
    shard_size: int = 200
    convert_workers: int = 8
    workers: int = 8               # loader reader processes (bench loader, bench train on shards)
    loader_batch: int = 256
    loader_steps: int = 40
    batch: int = 256               # bench train, per GPU
    resize: int = 0                # > 0: data.resize (the dry run's ResNet-50 on 32x32)
    warmup: int = 10
    steps: int = 15
    blocks: int = 3
    ddp_batch: int = 64
    ddp_steps: int = 20
    ddp_workers: int = 2
    v2_patches: int = 64           # v2.0 tile for predict and sr
    fcn_batch: int = 16
    fcn_steps: int = 10
    sr_steps: int = 100
    sr_patches: int = 32
    timeout_s: float = 240.0       # per command
    budget_s: float = 480.0        # the whole check


def gpu_sizes(cores: int) -> Sizes:
    return Sizes(convert_workers=max(1, cores), workers=max(2, min(8, cores - 2)))


DRY_SIZES = Sizes(patches=48, shard_size=16, convert_workers=2, workers=1, loader_batch=8,
                  loader_steps=5, batch=2, resize=32, warmup=1, steps=1, blocks=2, ddp_batch=2, ddp_steps=2,
                  ddp_workers=0, v2_patches=16, fcn_batch=4, fcn_steps=2, sr_steps=5, sr_patches=8,
                  timeout_s=300.0, budget_s=900.0)


class StepError(Exception):
    """A step cannot go on; ``log`` is the failing command's log file, if a command failed."""

    def __init__(self, reason: str, log: Path | None = None) -> None:
        super().__init__(reason)
        self.log = log


@dataclass
class Step:
    name: str
    status: str = "running"
    seconds: float = 0.0
    reason: str = ""
    log: str | None = None
    logs: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    claims: list[dict[str, Any]] = field(default_factory=list)

    def claim(self, name: str, value: Any, target: Any, passed: bool | None, note: str = "",
              counts: bool = True) -> None:
        """Record a claim: passed None = not applicable or not measured (say why in note); a claim
        that does not count (a design target) never decides the exit status."""
        self.claims.append({"name": name, "value": value, "target": target, "passed": passed, "note": note,
                            "counts": counts})


def events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines() if x.strip()]


def last_json(text: str) -> dict[str, Any]:
    lines = [x for x in text.strip().splitlines() if x.startswith("{")]
    if not lines:
        raise StepError("no JSON line in the command's output")
    return json.loads(lines[-1])


def gist(output: str) -> str:
    """The line of a failed command's output that says why: its last error line (a child's, not
    torchrun's summary), else its last line with words in it."""
    lines = [x.strip() for x in output.splitlines() if re.search(r"\w", x)]
    errors = [x for x in lines if re.search(r"Error\b|Exception\b|error:", x) and "ChildFailedError" not in x]
    return ((errors or lines or ["no output"])[-1])[:300]


def sets(*pairs: str) -> list[str]:
    return [x for p in pairs for x in ("--set", p)]


class Check:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.dry = args, args.dry_run
        self.out = Path(args.out).resolve()
        self.sizes = DRY_SIZES if self.dry else gpu_sizes(os.cpu_count() or 1)
        if args.budget_s:
            self.sizes = replace(self.sizes, budget_s=args.budget_s)
        self.work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="gpu-check-"))
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        self.deadline = time.monotonic() + self.sizes.budget_s
        self.steps: list[Step] = []
        self.step = Step("none")
        self._memo: dict[str, Any] = {}
        self.started = time.time()

    # ---- commands ------------------------------------------------------------------------------
    def run(self, label: str, argv: list[str], timeout: float | None = None, check: bool = True) -> str:
        """Run one command from the repository root, its output in OUT/logs/<step>-<label>.log."""
        log = self.out / "logs" / f"{self.step.name}-{label}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.step.logs.append(str(log))
        left = self.deadline - time.monotonic()
        if left < 5:
            log.write_text(f"$ {shlex.join(argv)}\n# not run: the time budget is spent\n")
            raise StepError(f"{label}: not run, the time budget ({self.sizes.budget_s:.0f} s) is spent", log)
        limit = min(timeout or self.sizes.timeout_s, left)
        print(f"    {label} ...", flush=True)
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace", start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=limit)
            rc: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun's workers and loader processes too
            stdout, stderr = proc.communicate()
            rc = None
        took = time.monotonic() - start
        log.write_text(f"$ {shlex.join(argv)}\n# exit {rc} after {took:.1f} s\n--- stdout\n{stdout}\n"
                       f"--- stderr\n{stderr}\n")
        if check and rc != 0:
            what = f"timed out after {limit:.0f} s" if rc is None else f"exited {rc}"
            raise StepError(f"{label} {what}: {gist(stderr or stdout)}", log)
        return stdout

    def jeoparda(self, label: str, *args: str, timeout: float | None = None) -> str:
        return self.run(label, [sys.executable, "-m", "jeoparda", *args], timeout)

    # ---- shared inputs (built once, by whichever step needs them first) ---------------------------
    def once(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._memo:
            try:
                self._memo[key] = build()
            except StepError as e:
                self._memo[key] = e
                raise
        if isinstance(self._memo[key], StepError):
            raise StepError(f"needs {key}, which failed earlier: {self._memo[key]}", self._memo[key].log)
        return self._memo[key]

    def machine(self) -> dict[str, Any]:
        def probe() -> dict[str, Any]:
            text = self.run("probe", [sys.executable, "-c", PROBE, *REQUIRED, *OPTIONAL], timeout=120)
            return json.loads(text.strip().splitlines()[-1])
        return self.once("the environment probe", probe)

    def gpus(self) -> list[dict[str, Any]]:
        return list(self.machine()["gpus"])

    def need_gpu(self) -> None:
        if not self.dry and not self.gpus():
            raise StepError("no CUDA GPU visible (on a machine without one, use --dry-run)")

    def v1_data(self) -> Path:
        def build() -> Path:
            if self.args.data:
                return Path(self.args.data).resolve()
            s, archive, data = self.sizes, self.fresh("v1-archive"), self.fresh("v1-data")
            t0 = time.monotonic()
            self.jeoparda("synth", "synth", "--out", str(archive), "--patches", str(s.patches), "--seed", "0")
            t1 = time.monotonic()
            text = self.jeoparda("convert", "convert", "--source", str(archive), "--out", str(data), "--workers",
                                 str(s.convert_workers), "--shard-size", str(s.shard_size), "--overwrite",
                                 "--exclude", str(archive / "patches_with_seasonal_snow.csv"),
                                 "--exclude", str(archive / "patches_with_cloud_and_shadow.csv"))
            rate = re.findall(r"([\d.]+) patches/s", text)
            self.step.figures.update(patches=s.patches, synth_s=round(t1 - t0, 2),
                                     convert_s=round(time.monotonic() - t1, 2), convert_workers=s.convert_workers,
                                     convert_patches_per_s=float(rate[-1]) if rate else None)
            return data
        return self.once("the v1.0 data set (step data)", build)

    def v2_tile(self) -> tuple[Path, Path, str]:
        def build() -> tuple[Path, Path, str]:
            archive, data = self.fresh("v2-archive"), self.fresh("v2-data")
            self.jeoparda("synth-v2", "synth", "--layout", "v2", "--block", "--out", str(archive), "--patches",
                          str(self.sizes.v2_patches), "--seed", "21")
            self.jeoparda("convert-v2", "convert", "--source", str(archive), "--out", str(data), "--overwrite",
                          "--workers", str(min(self.sizes.convert_workers, 4)), "--shard-size", "64")
            tiles = sorted(p.name for p in (archive / "BigEarthNet-S2").iterdir() if p.is_dir())
            if not tiles:
                raise StepError(f"no tile folder in {archive / 'BigEarthNet-S2'}")
            return archive, data, tiles[0]
        return self.once("the v2.0 tile (synth --layout v2 --block, convert)", build)

    def fresh(self, name: str) -> Path:
        path = self.work / name
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def runs(self, name: str) -> Path:
        """A run folder under OUT/runs, emptied (jeoparda refuses a folder that holds a run)."""
        path = self.out / "runs" / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    def expect(self, kind: str) -> str:
        """What a results log's run_start "device" says on this check's device."""
        return "cpu" if self.dry else kind

    def on_device(self, st: Step, what: str, run_start: dict[str, Any]) -> None:
        got = run_start.get("device")
        st.claim(f"{what} ran on the device", got, self.expect("cuda"), got == self.expect("cuda"))
