"""Learned super-resolution: quality against interpolation, and the cost of converting with it.

1. Quality: a synthetic v1.0 archive (its 20 m and 60 m bands are averages of a 10 m rendering, so
   a finer truth exists; `synth --sr-truth` keeps it), `jeoparda sr train` on its train split with
   the default settings (or --mtf), then `jeoparda sr eval --json` on its test split at reduced
   scale (Wald's protocol) and, with `--truth`, at full resolution against the 10 m rendering.
   Goal: RMSE of the 20 m bands >= 30 % below bicubic at reduced scale; the 60 m figure is stated.
2. Speed: `jeoparda convert` of the same archive, one worker, --resample learned against
   --resample bicubic, alternated, --repeat runs each, median patches/s (as convert prints it).
   With --device cuda (on a GPU machine) the learned conversion runs its networks there.

Usage: python benchmarks/sr_bench.py [--patches N] [--steps S] [--mtf G] [--repeat R] [--device cpu|cuda] [--json]
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

JEOPARDA = [sys.executable, "-m", "jeoparda"]


def _run(args: list[str]) -> str:
    proc = subprocess.run(JEOPARDA + args, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"jeoparda {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def _convert_rate(archive: Path, out: Path, extra: list[str]) -> float:
    text = _run(["convert", "--source", str(archive), "--out", str(out), "--overwrite", *extra])
    return float(re.search(r"([\d.]+) patches/s", text).group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patches", type=int, default=300)
    ap.add_argument("--steps", type=int, default=None, help="sr train --steps (default: its default)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--mtf", type=float, default=None, help="sr train --mtf (default: its default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _run(["synth", "--out", str(root / "archive"), "--patches", str(args.patches), "--seed", "11", "--sr-truth"])
        train = ["sr", "train", "--data", str(root / "archive"), "--out", str(root / "sr.pt"),
                 "--run-dir", str(root / "run")] + (["--steps", str(args.steps)] if args.steps else []) \
            + (["--mtf", str(args.mtf)] if args.mtf else [])
        _run(train)
        run_end = [json.loads(x) for x in (root / "run" / "results.jsonl").read_text().splitlines()][-1]
        figures = json.loads(_run(["sr", "eval", "--model", str(root / "sr.pt"), "--data", str(root / "archive"),
                                   "--truth", str(root / "archive" / "sr-truth"), "--json"]).strip().splitlines()[-1])
        rates: dict[str, list[float]] = {"bicubic": [], "learned": []}
        for _ in range(args.repeat):
            rates["bicubic"].append(_convert_rate(root / "archive", root / "bicubic", []))
            rates["learned"].append(_convert_rate(root / "archive", root / "learned",
                                                  ["--resample", "learned", "--sr-model", str(root / "sr.pt"),
                                                   "--device", args.device]))
    med = {k: statistics.median(v) for k, v in rates.items()}
    result = {"patches": args.patches, "train_time_s": run_end["train_time_s"], "steps": run_end["steps"],
              "test_patches": figures["patches"], **{k: figures[k] for k in figures if re.fullmatch(
                  r"(full_)?((bicubic_|bilinear_)?(rmse|sre|sam)_(20m|60m)|rmse_(20m|60m)_reduction)", k)},
              "convert_bicubic_patches_per_s": med["bicubic"], "convert_learned_patches_per_s": med["learned"],
              "learned_cost_x": med["bicubic"] / med["learned"], "device": args.device, "rates": rates}
    print(f"test split ({figures['patches']} patches), after {run_end['steps']} steps "
          f"({run_end['train_time_s']:.0f} s), mtf {args.mtf or 'default'}:")
    for scale, p in (("reduced scale", ""), ("full resolution vs the 10 m truth", "full_")):
        print(f" {scale}:")
        for g in ("20m", "60m"):
            print(f"  {g}: RMSE model {figures[f'{p}rmse_{g}']:.1f}, bicubic {figures[f'{p}bicubic_rmse_{g}']:.1f}, "
                  f"bilinear {figures[f'{p}bilinear_rmse_{g}']:.1f} -> {100 * figures[f'{p}rmse_{g}_reduction']:.1f} % "
                  f"below bicubic; SRE {figures[f'{p}sre_{g}']:.2f} vs {figures[f'{p}bicubic_sre_{g}']:.2f} dB; "
                  f"SAM {figures[f'{p}sam_{g}']:.3f} vs {figures[f'{p}bicubic_sam_{g}']:.3f} deg")
    goal = "met" if figures["rmse_20m_reduction"] >= 0.30 else "missed"
    print(f"goal 20 m RMSE >= 30 % below bicubic: {goal}")
    print(f"convert, 1 worker ({args.device}): bicubic {med['bicubic']:.1f}, learned {med['learned']:.1f} patches/s "
          f"-> learned costs {result['learned_cost_x']:.1f}x (medians of {args.repeat}, alternated)")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
