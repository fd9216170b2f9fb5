"""Forward+backward throughput of every model (issue: model zoo).

Times ``--steps`` training steps (forward, BCE loss, backward, SGD update) after ``--warmup``
steps at batch ``--batch`` on random 12x120x120 input, synchronising the device before reading
the clock. On a GPU, ``--bf16`` autocasts to bfloat16 and ``--channels-last`` converts model and
input. Reports images/s per model (median step time) and, with ``--json``, one JSON line.

Usage: python benchmarks/models_bench.py [--models resnet18,bwms] [--device cuda] [--bf16] [--channels-last]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from jeoparda.accelerator import Accelerator
from jeoparda.devices import parse_device
from jeoparda.models import create_model, list_models


def step_times(name: str, accel: Accelerator, batch: int, warmup: int, steps: int,
               bf16: bool, channels_last: bool) -> list[float]:
    torch.manual_seed(0)
    device = accel.device
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(name).to(device).to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch, 12, 120, 120, device=device).contiguous(memory_format=fmt)
    y = (torch.rand(batch, 19, device=device) > 0.8).float()
    times = []
    for i in range(warmup + steps):
        accel.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        accel.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(e.name for e in list_models()))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    accel = parse_device(args.device)
    device = accel.device
    results = {}
    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"bf16 {args.bf16}, channels_last {args.channels_last}")
    for name in args.models.split(","):
        times = step_times(name, accel, args.batch, args.warmup, args.steps, args.bf16, args.channels_last)
        rate = args.batch / statistics.median(times)
        results[name] = round(rate, 2)
        print(f"{name:<11}{rate:10.1f} images/s  (median of {len(times)} steps, "
              f"{min(times):.3f}-{max(times):.3f} s/step)", flush=True)
    if args.json:
        print(json.dumps({"device": str(device), "batch": args.batch, "bf16": args.bf16,
                          "channels_last": args.channels_last, "images_per_s": results}))


if __name__ == "__main__":
    main()
