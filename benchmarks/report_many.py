"""A scaling report over many runs of several systems (issue: compare machines, item 7): how long
``make_report`` takes.

Writes ``--runs`` synthetic results logs (default 500) of ``--systems`` systems (default 3) into a
temporary folder: two models, two data backends, 1 to 16 workers, five epochs each, repeats where
the runs outnumber the configurations; each system its own GPU model, throughput, FLOP count, peak
and bottleneck verdict; one run in 50 failed, one in 25 without a system name (read as "unknown
system", over several GPU models: the report warns once and keeps them apart). Then times
``make_report`` over them (the median of ``--repeat`` reports, each into a fresh folder) and,
apart, reading the logs alone. Seeded: the same arguments write the same logs.

Usage: python benchmarks/report_many.py [--runs 500] [--systems 3] [--repeat 1] [--keep DIR] [--json]
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from jeoparda.report.report import make_report
from jeoparda.report.scaling import read_run
from jeoparda.training.records import Epoch, RunEnd, RunStart

GPUS = ["NVIDIA A100-SXM4-40GB", "NVIDIA H100 80GB HBM3", "NVIDIA V100-SXM2-32GB", "NVIDIA GH200 120GB",
        "NVIDIA L40S", "AMD Instinct MI250X"]
MODELS = {"resnet18": 3.6e9 * 3, "resnet50": 8.2e9 * 3}  # forward FLOPs of a 120x120 patch, x3 for training
BACKENDS = ["torch", "synthetic"]
WORKERS = [1, 2, 4, 8, 16]
VERDICTS = {"data": "the loader kept the step waiting; try more loader workers or staging the shards",
            "communication": "exposed all-reduce dominates; try larger buckets or a larger batch per worker",
            "compute": "the device is busy; try mixed precision or channels-last"}


def write_logs(root: Path, runs: int, systems: int, seed: int = 0) -> list[Path]:
    """``runs`` run folders under ``root``, each with a results.jsonl; returns the folders."""
    rng = random.Random(seed)
    names = [f"system{i}" for i in range(systems)]
    configs = list(itertools.product(names, MODELS, BACKENDS, WORKERS))
    folders = []
    for i in range(runs):
        system, model, backend, world = configs[i % len(configs)]
        s = names.index(system)
        per_worker = 400.0 * (1 + s) / (1 if model == "resnet18" else 2.5) / (1.4 if backend == "torch" else 1.0)
        efficiency = 0.97 ** (world.bit_length() - 1) * (1 - 0.02 * rng.random())
        start = RunStart(time=0, run_id=f"run{i}", system=None if i % 25 == 24 else system,
                         system_info={"gpu_model": GPUS[s % len(GPUS)], "gpus_per_node": 4},
                         model=model, task="multilabel", quality_key="f1_samples", quality_label="F1 (samples)",
                         dataset="bigearthnet", data_backend=backend, world_size=world, nodes=max(1, world // 4),
                         gpus_per_node=4, device="cuda", device_name=GPUS[s % len(GPUS)],
                         batch_size_per_worker=64, global_batch_size=64 * world, mode="weak", hosts=[f"n{s}"],
                         versions={"torch": "2.13"}, train_flops_per_image=MODELS[model],
                         peak_flops_per_worker=(312e12, 989e12, 125e12, 989e12, 362e12, 383e12)[s % len(GPUS)])
        lines = [start.to_json()]
        for e in range(5):
            rate = per_worker * world * efficiency * (0.3 if e == 0 else 1 + 0.01 * rng.random())
            lines.append(Epoch(time=e + 1, epoch=e + 1, epoch_time_s=2e5 / rate, images_per_s=rate,
                               data_wait_s=0.1, loss=0.3, metrics={"f1_samples": 0.6 + 0.01 * e}).to_json())
        verdict = list(VERDICTS)[(s + world) % 3]
        step = 64 * world / (per_worker * world * efficiency)
        lines.append(RunEnd(time=9, status="failed" if i % 50 == 49 else "completed", epochs=5,
                            step_split={"step_s": step, "data_wait_s": 0.1 * step, "compute_s": 0.8 * step,
                                        "communication_s": 0.1 * step},
                            bottleneck=verdict, bottleneck_note=VERDICTS[verdict],
                            metrics={"f1_samples": 0.65}).to_json())
        folder = root / f"run{i:05d}"
        folder.mkdir(parents=True)
        (folder / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        folders.append(folder)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--systems", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1, help="reports to time (median)")
    parser.add_argument("--keep", type=Path, help="write the logs and the last report here instead of a temp folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        write_logs(root / "runs", args.runs, args.systems)
        pattern = [str(root / "runs" / "*")]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "unknown system" runs of several GPUs: warned once per report
            start = time.perf_counter()
            for folder in sorted((root / "runs").iterdir()):
                read_run(folder)
            reading = time.perf_counter() - start
            times = []
            for k in range(args.repeat):
                start = time.perf_counter()
                rows, runs = make_report(pattern, root / f"report{k}")
                times.append(time.perf_counter() - start)
        report = statistics.median(times)
        print(f"{len(runs)} runs of {args.systems} systems -> {len(rows)} rows: make_report {report:.2f} s "
              f"(median of {len(times)}; reading the logs alone {reading:.2f} s)")
        if args.json:
            print(json.dumps({"runs": len(runs), "systems": args.systems, "rows": len(rows),
                              "report_s": round(report, 3), "read_s": round(reading, 3)}))


if __name__ == "__main__":
    main()
