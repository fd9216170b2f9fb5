"""One prepared check of jeoparda's GPU path, for the first GPU machine anyone gets (at most 8 minutes).

Steps, each a set of `python -m jeoparda ...` subprocesses with a timeout and a log file per command
under OUT/logs/, so one step's crash is recorded and the others still run:

  env        torch / CUDA / cuDNN / NCCL versions, the GPUs, required and optional packages
  data       synthesise a BigEarthNet-S2 v1.0 archive and convert it (a few thousand patches)
  loader     `jeoparda bench loader --json`: the torch loader delivering batches on the GPU
  train      `jeoparda bench train`: ResNet-50 bf16 on synthetic data and on the shards; their ratio
             (claim: shards >= 95 % of synthetic) and the design target, 13,500 images/s per GPU;
             claim: the peaks table knows the GPU and 0 < MFU <= 1 (achieved TFLOP/s, docs/benchmarking.md)
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
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check_runner import STEPS, Check, Step, StepError  # noqa: E402
from gpu_check_steps import FUNCS, TITLES  # noqa: E402
from gpu_check_summary import table, write  # noqa: E402


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
