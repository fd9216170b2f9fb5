"""One prepared check of jeoparda's GPU path, for the first GPU machine anyone gets (at most 8 minutes).

Steps, each a set of `python -m jeoparda ...` subprocesses with a timeout and a log file per command
under OUT/logs/, so one step's crash is recorded and the others still run:

  env        torch / CUDA / cuDNN / NCCL versions, the GPUs, required and optional packages
  data       synthesise a BigEarthNet-S2 v1.0 archive and convert it (a few thousand patches)
  loader     `jeoparda bench loader --json`: the torch loader delivering batches on the GPU
  train      `jeoparda bench train`: ResNet-50 bf16 on synthetic data and on the shards; their ratio
             (claim: shards >= 95 % of synthetic) and the design target, 13,500 images/s per GPU
  ddp        2 processes under torchrun (2 GPUs over NCCL, or one GPU shared, dist.share_gpus, gloo);
             claim: completes, replicas agree
  predict    a BigEarthNet v2.0 tile: convert, train an FCN a few steps, `jeoparda predict` on the GPU
  sr         `jeoparda sr train` a few steps, then `convert --resample learned --device cuda`; the
             manifest must say sr_model.device cuda and the GPU's name
  gpu_tests  `pytest -m gpu tests/gpu` (the GPU test suite), passed / failed / skipped

--dry-run runs the same steps on the CPU with tiny sizes (CI runs it so the script cannot rot);
throughput claims are then "not measured (dry run)". OUT/gpu_check.json holds the machine, every
step's figures and every claim; the exit status is 0 when every claim passed or did not apply.
Archives and shards go to a temporary folder (or --work DIR, kept).

Usage: PYTHONPATH=. python benchmarks/gpu_check.py [--out DIR] [--dry-run] [--steps env,data,...]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "benchmarks" / "configs"
STEPS = ("env", "data", "loader", "train", "ddp", "predict", "sr", "gpu_tests")
TARGET_PER_GPU = 13_500  # design target: ResNet-50 bf16 images/s per H100-class GPU, synthetic data
RATIO_TARGET = 0.95      # shards / synthetic
DRY = "not measured (dry run)"
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


# ---- the steps ---------------------------------------------------------------------------------------
def step_env(ch: Check, st: Step) -> None:
    m = ch.machine()  # the first step: the probe's log is this step's
    gpus = m["gpus"]
    st.figures.update({k: m[k] for k in ("python", "torch", "cuda", "cudnn", "nccl", "bf16", "gpus")})
    st.figures["packages"] = m["packages"]
    if shutil.which("nvidia-smi"):
        smi = ch.run("nvidia-smi", ["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                    "--format=csv,noheader"], timeout=30, check=False)
        st.figures["nvidia_smi"] = smi.strip().splitlines()
    names = ", ".join(f"{g['name']} ({g['memory_gib']} GiB)" for g in gpus) or "none"
    if ch.dry:
        st.claim("CUDA GPU visible", names, ">= 1", None, "not required (dry run on the CPU)")
    else:
        st.claim("CUDA GPU visible", names, ">= 1", bool(gpus))
        st.claim("bf16 supported on the GPU", m["bf16"], True, m["bf16"] is True)
    missing = [n for n in REQUIRED if not m["packages"][n].startswith("available")]
    st.claim("required packages importable", ", ".join(missing) or "all", "all", not missing,
             f"missing: {', '.join(missing)}" if missing else "")
    print(f"    torch {m['torch']}, CUDA {m['cuda']}, GPUs: {names}", flush=True)
    for name in OPTIONAL:
        print(f"    {name}: {m['packages'][name]}", flush=True)


def step_data(ch: Check, st: Step) -> None:
    data = ch.v1_data()
    try:
        manifest = json.loads((data / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise StepError(f"no readable manifest in {data}: {e}") from e
    splits = {k: v["patches"] for k, v in manifest["splits"].items()}
    st.figures.update(data=str(data), given_with_data=bool(ch.args.data), dataset=manifest.get("dataset"),
                      version=manifest.get("version"), splits=splits,
                      shards=sum(len(v["shards"]) for v in manifest["splits"].values()),
                      shard_gb=round(sum(f.stat().st_size for f in data.rglob("*.h5")) / 1e9, 3))
    st.claim("converted data set has training patches", splits.get("train", 0), "> 0", splits.get("train", 0) > 0)


def step_loader(ch: Check, st: Step) -> None:
    ch.need_gpu()
    s = ch.sizes
    res = last_json(ch.jeoparda("bench-loader", "bench", "loader", "--data", str(ch.v1_data()), "--json",
                                "--batch-size", str(s.loader_batch), "--steps", str(s.loader_steps),
                                "--workers", str(s.workers)))
    st.figures.update({k: res.get(k) for k in ("images_per_s", "mb_per_s", "device", "backend", "batch_size",
                                                "workers", "steps", "build_s", "ring_registered")})
    ch._memo["loader images/s"] = res["images_per_s"]
    device = str(res.get("device"))
    st.claim("batches delivered on the device", device, ch.expect("cuda"), device.startswith(ch.expect("cuda")))
    # on a GPU the readers' ring is page-locked in place (no host copy per batch); a silent
    # fallback to pinned copies would still deliver batches, so it is a claim of its own
    registered = bool(res.get("ring_registered"))
    st.claim("reader ring page-locked in place (cudaHostRegister)", registered, True,
             registered if ch.expect("cuda") == "cuda" else None, "" if ch.expect("cuda") == "cuda" else "CPU run")


def bench_train(ch: Check, label: str, backend: str) -> tuple[dict[str, Any], dict[str, Any]]:
    s, run = ch.sizes, ch.runs(label)
    pairs = [f"data.backend={backend}", f"train.precision={s.precision}", f"train.batch_size={s.batch}",
             "dist.backend=single", f"data.workers={s.workers if backend == 'torch' else 0}",
             "train.checkpoint_every=0"]
    pairs += [f"data.path={ch.v1_data()}"] if backend == "torch" else []
    pairs += [f"data.resize={s.resize}"] if s.resize else []
    text = ch.jeoparda(label, "bench", "train", "--config", str(CONFIGS / "resnet50.yaml"), *sets(*pairs),
                       "--warmup-steps", str(s.warmup), "--steps", str(s.steps), "--blocks", str(s.blocks),
                       "--json", "--out", str(run))
    return last_json(text), events(run)[0]


def step_train(ch: Check, st: Step) -> None:
    ch.need_gpu()
    s, results, errors = ch.sizes, {}, []
    for label, backend, what in (("train-synthetic", "synthetic", "synthetic data"),
                                 ("train-shards", "torch", "the shards")):
        try:
            res, start = results[backend] = bench_train(ch, label, backend)
        except StepError as e:  # the other run still runs
            errors.append(e)
            continue
        st.figures[backend] = {**{k: res.get(k) for k in ("images_per_s", "images_per_s_95", "images_per_s_per_worker",
                                                          "step_s", "data_wait_s", "compute_s", "communication_s",
                                                          "batch_size_per_worker")},
                               "device": start.get("device"), "device_name": start.get("device_name"),
                               "precision": start.get("precision"), "run_dir": res.get("run_dir")}
        ran, want = f"{start.get('device')} {start.get('precision')}", f"{ch.expect('cuda')} {s.precision}"
        st.claim(f"ResNet-50 on {what}: device and precision", ran, want, ran == want)
    if errors:
        raise errors[0]
    syn, shards = results["synthetic"][0], results["torch"][0]
    ratio = shards["images_per_s"] / syn["images_per_s"]
    st.figures["shards_over_synthetic"] = round(ratio, 4)
    st.claim("shards >= 95 % of synthetic (images/s)", round(ratio, 4), f">= {RATIO_TARGET}",
             None if ch.dry else ratio >= RATIO_TARGET, DRY if ch.dry else "")
    per_gpu = syn["images_per_s_per_worker"]
    gpu = ch.gpus()[0]["name"] if not ch.dry else "none"
    st.claim("ResNet-50 bf16 images/s per GPU (design target)", round(per_gpu, 1), f">= {TARGET_PER_GPU:,}",
             None if ch.dry else per_gpu >= TARGET_PER_GPU,
             DRY if ch.dry else f"target for an H100-class GPU (this one: {gpu}); not counted in the exit status",
             counts=False)
    loader = ch._memo.get("loader images/s")
    note = DRY if ch.dry else ("" if loader else "the loader step did not run")
    st.claim("loader outpaces training (images/s, loader / GPU)",
             None if loader is None else round(loader / per_gpu, 3), ">= 1",
             None if ch.dry or loader is None else loader >= per_gpu, note)


def step_ddp(ch: Check, st: Step) -> None:
    ch.need_gpu()
    s, run = ch.sizes, ch.runs("ddp")
    gpus = 0 if ch.dry else len(ch.gpus())
    share = gpus < 2  # one GPU: both ranks on it (dist.share_gpus, gloo); the dry run sets it to keep it checked
    pairs = [f"data.path={ch.v1_data()}", "dist.backend=ddp", "train.epochs=1", f"train.max_steps={s.ddp_steps}",
             f"train.batch_size={s.ddp_batch}", f"train.precision={s.precision}", f"data.workers={s.ddp_workers}",
             "train.test=false", "train.checkpoint_every=0"]
    pairs += ["dist.share_gpus=true"] if share else []
    pairs += [f"data.resize={s.resize}", "train.threads=1"] if ch.dry else []
    ch.run("torchrun", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        "-m", "jeoparda", "train", "--config", str(CONFIGS / "resnet50.yaml"), *sets(*pairs),
                        "--out", str(run)])
    log = events(run)
    start, end = log[0], log[-1]
    epochs = [e for e in log if e["event"] == "epoch"]
    digests = end.get("replica_sha256") or []
    uuids = [r.get("gpu") for r in start.get("ranks", [])]
    st.figures.update(world_size=start.get("world_size"), device=start.get("device"),
                      device_name=start.get("device_name"), gpus_per_node=start.get("gpus_per_node"),
                      precision=start.get("precision"), shared_gpu=share and not ch.dry,
                      collectives="gloo" if share or ch.dry else "nccl", rank_gpus=uuids,
                      images_per_s=epochs[-1]["images_per_s"] if epochs else None, replica_sha256=digests,
                      run_dir=str(run))
    done = f"{end.get('status')}, world {start.get('world_size')}"
    st.claim("2 DDP processes complete", done, "completed, world 2", done == "completed, world 2")
    st.claim("replicas agree (run_end replica_sha256)", f"{len(set(digests))} distinct of {len(digests)}",
             "1 distinct of 2", len(digests) == 2 and len(set(digests)) == 1)
    ch.on_device(st, "both ranks", start)
    if gpus >= 2:
        st.claim("one GPU per rank", f"{len(set(uuids))} GPUs", "2 GPUs", len(set(uuids)) == 2 and None not in uuids)


def step_predict(ch: Check, st: Step) -> None:
    ch.need_gpu()
    s, run = ch.sizes, ch.runs("fcn")
    _, data, tile = ch.v2_tile()
    ch.jeoparda("train-fcn", "train", "--config", str(CONFIGS / "fcn_bigearthnet.yaml"), *sets(
        f"data.path={data}", "model=fcn_maggiori", "train.epochs=1", f"train.max_steps={s.fcn_steps}",
        f"train.batch_size={s.fcn_batch}", f"data.workers={min(2, s.workers)}", "dist.backend=single",
        "train.test=false", "train.val_every=0"), "--out", str(run))
    start = events(run)[0]
    ch.on_device(st, "FCN training", start)
    checkpoints = sorted((run / "checkpoints").glob("*.pt"))
    if not checkpoints:
        raise StepError(f"the FCN run wrote no checkpoint in {run / 'checkpoints'}")
    out = ch.out / "predict" / "map.tif"
    out.unlink(missing_ok=True)  # no stale map from an earlier check in OUT
    t0, note = time.monotonic(), ""
    try:
        res = last_json(ch.jeoparda("predict", "predict", "--checkpoint", str(checkpoints[-1]), "--data", str(data),
                                    "--tile", tile, "--out", str(out), "--device", ch.expect("cuda"), "--json"))
    except StepError as e:  # the PNG quick look needs matplotlib; the GeoTIFF is written before it
        if not (e.log and "No module named 'matplotlib'" in e.log.read_text() and out.is_file()):
            raise
        res, note = {"files": [str(out)]}, "no PNG quick look: matplotlib is not installed"
    took = time.monotonic() - t0
    st.figures.update({k: res.get(k) for k in ("tile", "patches", "width", "height", "agreement", "labelled_pixels",
                                                "files")}, predict_s=round(took, 2), device=ch.expect("cuda"),
                      fcn_images_per_s=next((e["images_per_s"] for e in events(run) if e["event"] == "epoch"), None))
    head = out.read_bytes()[:4] if out.is_file() else b""
    size = out.stat().st_size if out.is_file() else 0
    pixels = f"{res['width']}x{res['height']} px, " if res.get("width") else ""
    st.claim("class map written (GeoTIFF)", f"{pixels}{size:,} bytes", "a TIFF of the tile",
             head in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), note)


def step_sr(ch: Check, st: Step) -> None:
    ch.need_gpu()
    s, run = ch.sizes, ch.runs("sr")
    archive, _, _ = ch.v2_tile()
    ch.jeoparda("sr-train", "sr", "train", "--data", str(archive), "--out", str(run / "sr.pt"), "--run-dir",
                str(run / "run"), "--steps", str(s.sr_steps), "--patches", str(s.sr_patches), "--eval-patches", "4",
                "--backend", "single")
    start = events(run / "run")[0]
    ch.on_device(st, "sr train", start)
    data = ch.fresh("sr-data")
    text = ch.jeoparda("convert-learned", "convert", "--source", str(archive), "--out", str(data), "--overwrite",
                       "--workers", str(min(2, s.convert_workers)), "--shard-size", "64", "--resample", "learned",
                       "--sr-model", str(run / "sr.pt"), "--device", ch.expect("cuda"))
    record = json.loads((data / "manifest.json").read_text()).get("sr_model") or {}
    rate = re.findall(r"([\d.]+) patches/s", text)
    evaluation = record.get("eval", {})
    st.figures.update(device=record.get("device"), device_name=record.get("device_name"), steps=s.sr_steps,
                      train_time_s=record.get("training", {}).get("train_time_s"),
                      rmse_20m=evaluation.get("rmse_20m"), bicubic_rmse_20m=evaluation.get("bicubic_rmse_20m"),
                      convert_patches_per_s=float(rate[-1]) if rate else None, model=str(run / "sr.pt"))
    st.claim("manifest sr_model.device", record.get("device"), ch.expect("cuda"),
             record.get("device") == ch.expect("cuda"))
    name = "cpu" if ch.dry else ch.gpus()[0]["name"]
    st.claim("manifest sr_model.device_name is the device's", record.get("device_name"), name,
             record.get("device_name") == name)


def junit_counts(xml: Path) -> dict[str, Any]:
    root = ET.parse(xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {k: sum(int(x.get(k, 0)) for x in suites) for k in ("tests", "failures", "errors", "skipped")}
    reasons = sorted({(c.find("skipped").get("message") or "")[:160] for c in root.iter("testcase")  # type: ignore
                      if c.find("skipped") is not None})
    return {"passed": total["tests"] - total["failures"] - total["errors"] - total["skipped"],
            "failed": total["failures"], "errors": total["errors"], "skipped": total["skipped"],
            "tests": total["tests"], "skip_reasons": reasons}


def step_gpu_tests(ch: Check, st: Step) -> str | None:
    target = "0 failed" if ch.dry else "0 failed, >= 1 passed"
    if importlib.util.find_spec("pytest") is None:
        st.claim("tests/gpu suite", "not run", target, None, "pytest is not installed: pip install pytest, "
                 "then rerun with --steps gpu_tests")
        return "skipped"
    ch.need_gpu()
    xml = ch.out / "gpu_tests.xml"
    xml.unlink(missing_ok=True)
    ch.run("pytest", [sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-rs", "-p", "no:cacheprovider",
                      f"--junitxml={xml}"], timeout=max(ch.sizes.timeout_s, 300.0), check=False)
    if not xml.is_file():
        raise StepError("pytest wrote no report (see its log)", Path(st.logs[-1]))
    counts = st.figures["counts"] = junit_counts(xml)
    bad = counts["failed"] + counts["errors"]
    ok = counts["tests"] > 0 and bad == 0 and (ch.dry or counts["passed"] > 0)
    note = "without CUDA every test skips (dry run)" if ch.dry else ""
    st.claim("tests/gpu suite", f"{counts['passed']} passed, {bad} failed, {counts['skipped']} skipped", target,
             ok, note)
    return None


FUNCS: dict[str, Callable[[Check, Step], str | None]] = {
    "env": step_env, "data": step_data, "loader": step_loader, "train": step_train, "ddp": step_ddp,
    "predict": step_predict, "sr": step_sr, "gpu_tests": step_gpu_tests}
TITLES = {"env": "environment", "data": "synth + convert (v1.0)", "loader": "bench loader to the device",
          "train": "ResNet-50 bench train, synthetic vs shards", "ddp": "2 DDP processes (torchrun)",
          "predict": "FCN on a v2.0 tile, predict on the device", "sr": "sr train, convert --resample learned",
          "gpu_tests": "pytest -m gpu tests/gpu"}


# ---- running, the summary, the table ------------------------------------------------------------------
def run_step(ch: Check, name: str, index: int) -> None:
    st = ch.step = Step(name)
    ch.steps.append(st)
    print(f"[{index}/{len(ch.args.steps)}] {name}: {TITLES[name]}", flush=True)
    start = time.monotonic()
    try:
        status = FUNCS[name](ch, st)
        failing = [c for c in st.claims if c["passed"] is False and c["counts"]]
        st.status = status or ("failed" if failing else "passed")
        st.reason = "; ".join(f"{c['name']}: {c['value']} (target {c['target']})" for c in failing)
    except StepError as e:
        st.status, st.reason, st.log = "failed", str(e), str(e.log) if e.log else None
    except Exception as e:  # an unexpected output (or a bug here): recorded, the other steps still run
        st.status, st.reason = "failed", f"{type(e).__name__}: {e}"
    if st.status == "failed" and not st.log and st.logs:
        st.log = st.logs[-1]
    st.seconds = round(time.monotonic() - start, 1)
    print(f"    {st.status} in {st.seconds:.1f} s" + (f": {st.reason}" if st.reason else ""), flush=True)
    write(ch)


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


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="gpu-check", help="folder for gpu_check.json, logs/, runs/ (default gpu-check)")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (CI); no GPU needed")
    ap.add_argument("--steps", default=",".join(STEPS),
                    help=f"comma list of steps to run, in this order: {','.join(STEPS)} (default all)")
    ap.add_argument("--data", default="", help="an existing converted v1.0 data set for loader, train and ddp "
                    "(skips synth + convert; the data step records its manifest)")
    ap.add_argument("--work", default="", help="folder for archives and shards (kept); default a temporary one, "
                    "removed at the end")
    ap.add_argument("--budget-s", type=float, default=0.0,
                    help="time for the whole check; commands past it are not run (default 480, dry run 900)")
    args = ap.parse_args(argv)
    chosen = [x.strip() for x in args.steps.split(",") if x.strip()]
    unknown = sorted(set(chosen) - set(STEPS))
    if unknown or not chosen:
        ap.error(f"--steps: unknown {', '.join(unknown) or '(none given)'}; choose from {','.join(STEPS)}")
    args.steps = [s for s in STEPS if s in chosen]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    ch = Check(args)
    ch.out.mkdir(parents=True, exist_ok=True)
    print(f"gpu_check{' --dry-run' if ch.dry else ''}: steps {','.join(args.steps)}; out {ch.out}; work {ch.work}",
          flush=True)
    try:
        if "env" not in args.steps:  # the machine goes into the summary all the same
            ch.step = Step("machine")
            try:
                ch.machine()
            except StepError as e:
                print(f"environment probe failed: {e}", flush=True)
        for i, name in enumerate(args.steps, 1):
            run_step(ch, name, i)
    finally:
        if not args.work:
            shutil.rmtree(ch.work, ignore_errors=True)
        summary = write(ch)
    print("\n" + table(summary), flush=True)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
