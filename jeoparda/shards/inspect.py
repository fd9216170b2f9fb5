"""``jeoparda inspect``: summary of a converted data set and verification of every shard."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jeoparda.shards.format import ShardError, verify_shard
from jeoparda.labels import CLASSES19


def verify_dataset(dataset: Path, manifest: dict[str, Any],
                   tick: Callable[[int], None] = lambda n: None) -> tuple[list[str], dict[str, np.ndarray]]:
    """Check every shard's checksum and format; returns (problems, 19-class counts per split)."""
    problems: list[str] = []
    counts: dict[str, np.ndarray] = {}
    for split, info in manifest["splits"].items():
        counts[split] = np.zeros(len(CLASSES19), dtype=np.int64)
        for entry in info["shards"]:
            path = Path(dataset) / entry["file"]
            try:
                verify_shard(path, entry["sha256"], entry["patches"])
                with h5py.File(path, "r") as f:
                    counts[split] += f["labels19"][...].sum(axis=0, dtype=np.int64)
            except ShardError as exc:
                problems.append(str(exc))
            tick(1)
    return problems, counts


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0].split(":")[0]


def summary_lines(dataset: Path, manifest: dict[str, Any], counts: dict[str, np.ndarray]) -> list[str]:
    """Human-readable summary: splits, class frequencies, band statistics, rejections."""
    splits = manifest["splits"]
    lines = [f"data set   {dataset}  ({manifest['format']} v{manifest['version']}, "
             f"{manifest['size']}x{manifest['size']} px at {manifest['resolution_m']} m, "
             f"resample {manifest['resample']}, compression {manifest.get('compression', 'none')})",
             "", f"{'split':<8}{'patches':>10}{'shards':>8}"]
    for split, info in splits.items():
        lines.append(f"{split:<8}{info['patches']:>10}{len(info['shards']):>8}")
    names = list(splits)
    lines += ["", "class frequencies (patches carrying the class)",
              f"{'':<3}{'class':<48}" + "".join(f"{s:>8}" for s in names)]
    for c, cls in enumerate(manifest["classes"]):
        short = cls if len(cls) <= 46 else cls[:45] + "…"
        lines.append(f"{c:<3}{short:<48}" + "".join(f"{int(counts[s][c]):>8}" for s in names))
    stats = manifest["band_stats"]
    lines += ["", f"band statistics over the {stats.get('split', 'train')} split (raw uint16 units)"]
    if stats.get("mean") is None:
        lines.append("  none: the train split is empty")
    else:
        lines += ["  band " + "".join(f"{b:>8}" for b in manifest["bands"]),
                  "  mean " + "".join(f"{m:>8.1f}" for m in stats["mean"]),
                  "  std  " + "".join(f"{s:>8.1f}" for s in stats["std"])]
    rejected = manifest["rejected"]
    kinds = Counter(_reason_kind(r["reason"]) for r in rejected)
    lines += ["", f"rejected {len(rejected)} patches"
              + (": " + ", ".join(f"{n} {k}" for k, n in kinds.most_common()) if kinds else ""),
              f"excluded {len(manifest['excluded'])} patches (noisy-patch lists)"]
    return lines
