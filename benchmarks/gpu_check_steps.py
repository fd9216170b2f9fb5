"""benchmarks/gpu_check.py's steps: each runs its commands through a Check and records its figures
and claims on its Step; FUNCS and TITLES name them in the order they run."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpu_check_runner import OPTIONAL, REPO, REQUIRED, Check, Step, StepError, events, last_json, sets

CONFIGS = REPO / "benchmarks" / "configs"
TARGET_PER_GPU = 13_500  # design target: ResNet-50 bf16 images/s per H100-class GPU, synthetic data
RATIO_TARGET = 0.95      # shards / synthetic
DRY = "not measured (dry run)"


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
    # the node's storage in the same access pattern (no model): cold (pages dropped) against warm
    io = last_json(ch.jeoparda("bench-io", "bench", "io", "--data", str(ch.v1_data()), "--cold", "--passes", "1",
                               "--json", "--batch-size", str(s.loader_batch), "--workers", str(s.workers),
                               "--out", str(ch.runs("bench-io"))))
    direct = io["figures"].get("direct", {})
    st.figures["io"] = {kind: {k: found[k] for k in ("images_per_s", "gb_per_s", "first_batch_s")}
                        for kind, found in direct.items()}
    st.figures["io_memory_note"] = io["memory_note"]
    cold = io["cold_measured"]
    st.claim("bench io: a cold pass (page cache dropped and checked)", cold, True, cold or None,
             "" if cold else "the data's file system keeps its pages (tmpfs?): warm figures only")


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
                               "precision": start.get("precision"), "run_dir": res.get("run_dir"),
                               **{k: res.get(k) for k in ("tflops_per_worker", "mfu", "bottleneck")},
                               **{k: start.get(k) for k in ("system", "train_flops_per_image", "peak_flops_per_worker",
                                                            "peak_source")}}
        ran, want = f"{start.get('device')} {start.get('precision')}", f"{ch.expect('cuda')} {s.precision}"
        st.claim(f"ResNet-50 on {what}: device and precision", ran, want, ran == want)
        # the peaks table knows this GPU and the achieved FLOP/s are a plausible share of its peak
        mfu = res.get("mfu")
        st.claim(f"ResNet-50 on {what}: MFU against the {s.precision} dense peak", mfu, "0 < MFU <= 1",
                 None if ch.dry else mfu is not None and 0 < mfu <= 1,
                 DRY if ch.dry else str(start.get("peak_source") or ""))
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
    half = out.with_name("map-bf16.tif")
    for stale in (out, half):
        stale.unlink(missing_ok=True)  # no stale map from an earlier check in OUT
    t0, note = time.monotonic(), ""
    base = ["predict", "--checkpoint", str(checkpoints[-1]), "--data", str(data), "--tile", tile,
            "--device", ch.expect("cuda"), "--json", "--max-memory", "256M"]  # several windows, batched
    try:
        res = last_json(ch.jeoparda("predict", *base, "--out", str(out)))
    except StepError as e:  # the PNG quick look needs matplotlib; the GeoTIFF is written before it
        if not (e.log and "No module named 'matplotlib'" in e.log.read_text() and out.is_file()):
            raise
        res, note = {"files": [str(out)]}, "no PNG quick look: matplotlib is not installed"
    took = time.monotonic() - t0
    st.figures.update({k: res.get(k) for k in ("tile", "patches", "width", "height", "agreement", "labelled_pixels",
                                                "files", "windows", "batches", "computed_pixels", "overviews",
                                                "margin")}, predict_s=round(took, 2), device=ch.expect("cuda"),
                      fcn_images_per_s=next((e["images_per_s"] for e in events(run) if e["event"] == "epoch"), None))
    head = out.read_bytes()[:200] if out.is_file() else b""  # header and GDAL's layout text
    size = out.stat().st_size if out.is_file() else 0
    pixels = f"{res['width']}x{res['height']} px, " if res.get("width") else ""
    st.claim("class map written (Cloud-Optimized GeoTIFF)", f"{pixels}{size:,} bytes", "a COG of the tile",
             head[:4] == b"II*\0" and b"LAYOUT=IFDS_BEFORE_DATA" in head, note)
    bf16 = last_json(ch.jeoparda("predict-bf16", *base, "--precision", "bf16", "--out", str(half)))
    same = same_classes(out, half)
    st.figures.update(bf16_agreement=bf16.get("agreement"), bf16_same_pixels=same)
    st.claim("bf16 map: share of pixels labelled as in fp32", same, ">= 0.95", same is not None and same >= 0.95)


def same_classes(a: Path, b: Path) -> float | None:
    """The share of labelled pixels two class maps agree on (None where one is missing)."""
    import tifffile

    if not (a.is_file() and b.is_file()):
        return None
    first, second = tifffile.imread(a), tifffile.imread(b)
    labelled = first != 255
    return round(float((first[labelled] == second[labelled]).mean()), 4) if labelled.any() else None


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
TITLES = {"env": "environment", "data": "synth + convert (v1.0)",
          "loader": "bench loader to the device, bench io cold/warm",
          "train": "ResNet-50 bench train, synthetic vs shards", "ddp": "2 DDP processes (torchrun)",
          "predict": "FCN on a v2.0 tile, predict on the device", "sr": "sr train, convert --resample learned",
          "gpu_tests": "pytest -m gpu tests/gpu"}
