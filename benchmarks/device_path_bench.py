"""The main process's host work per batch in the GPU input path, measured on the stand-in accelerator.

The torch loader's device path (jeoparda/loaders/torch_loader.py) either uploads the reader ring in
place (host-registered: `registered`) or first copies each batch into a pinned buffer set
(`staged`: what every batch cost before the ring was registered, and still the path when
registration fails). Both run here on the stand-in CUDA runtime of tests/standin_cuda.py, whose
uploads cost the host nothing (a real upload is an asynchronous DMA), so the figure is the host
work a real GPU run would pay in the main process: `stage_ms` (copies into pinned memory) and
`host_ms` (the whole finisher call: staging plus, on the stand-in, the CPU standing in for the
device's normalisation, so an upper bound). Modes alternate, each repeated; medians reported.

Usage: PYTHONPATH=. python benchmarks/device_path_bench.py [--patches 512] [--batch 64] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from jeoparda import devices
from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import AugmentConfig, DataConfig, RunConfig, TrainConfig
from jeoparda.loaders import torch_loader
from jeoparda.loaders.build import build_loader
from tests.conftest import convert
from tests.standin_cuda import StandInCuda


class FreeUploads(StandInCuda):
    """Uploads are views: the host pays nothing for a copy a GPU's DMA engine would make."""

    def upload(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        return tensor.detach()


def measure(data: Path, mode: str, batch: int, steps: int) -> dict[str, float]:
    runtime = FreeUploads()
    if mode == "staged":
        runtime.register_host = lambda tensor: False  # type: ignore[method-assign]
    devices.RUNTIME = runtime
    stage, host = [], []
    real_stage, real_call = torch_loader._DeviceFinisher._page_locked, torch_loader._DeviceFinisher.__call__

    def timed_stage(self, tensors):
        t0 = time.perf_counter()
        out = real_stage(self, tensors)
        stage.append(time.perf_counter() - t0)
        return out

    def timed_call(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = real_call(self, *args, **kwargs)
        host.append(time.perf_counter() - t0)
        return out

    torch_loader._DeviceFinisher._page_locked = timed_stage  # type: ignore[method-assign]
    torch_loader._DeviceFinisher.__call__ = timed_call  # type: ignore[method-assign]
    try:
        cfg = RunConfig(data=DataConfig(path=str(data), workers=2, augment=AugmentConfig()),
                        train=TrainConfig(batch_size=batch))
        loader = build_loader(cfg, ClusterEnv(), "train", devices.parse_device("cuda"))
        loader.set_epoch(0)
        for i, _ in enumerate(loader):
            if i + 1 >= steps:
                break
        loader.close()
    finally:
        torch_loader._DeviceFinisher._page_locked = real_stage  # type: ignore[method-assign]
        torch_loader._DeviceFinisher.__call__ = real_call  # type: ignore[method-assign]
    skip = 2  # first batches: buffers being made
    return {"stage_ms": 1e3 * statistics.median(stage[skip:]), "host_ms": 1e3 * statistics.median(host[skip:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patches", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from jeoparda.sources.synth import synthesize

    with tempfile.TemporaryDirectory() as tmp:
        synthesize(Path(tmp) / "archive", args.patches, seed=0)
        convert(Path(tmp) / "archive", Path(tmp) / "data", shard_size=64)
        runs: dict[str, list[dict[str, float]]] = {"staged": [], "registered": []}
        for _ in range(args.repeat):
            for mode in runs:  # alternated: drift on a shared machine hits both alike
                runs[mode].append(measure(Path(tmp) / "data", mode, args.batch, args.steps))
    out = {mode: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for mode, rows in runs.items()}
    out["stage_ratio"] = out["registered"]["stage_ms"] / out["staged"]["stage_ms"]  # type: ignore[index]
    out["host_ratio"] = out["registered"]["host_ms"] / out["staged"]["host_ms"]  # type: ignore[index]
    for mode in ("staged", "registered"):
        print(f"{mode:>10}: staging {out[mode]['stage_ms']:.2f} ms/batch, finisher {out[mode]['host_ms']:.2f} ms/batch")
    print(f"registered / staged: staging {out['stage_ratio']:.3f}, finisher {out['host_ratio']:.3f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
