"""``jeoparda inspect``: summary of a converted data set and verification of every shard."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jeoparda.shards.format import Layout, ShardError, damaged, layout_of_manifest, verify_shard


def verify_dataset(dataset: Path, manifest: dict[str, Any],
                   tick: Callable[[int], None] = lambda n: None) -> tuple[list[str], dict[str, np.ndarray]]:
    """Check every shard's checksum and format; returns (problems, class counts per split, counted
    from the shards themselves)."""
    problems: list[str] = []
    counts: dict[str, np.ndarray] = {}
    layout = layout_of_manifest(manifest)
    for split, info in manifest["splits"].items():
        counts[split] = np.zeros(len(manifest["classes"]), dtype=np.int64)
        for entry in info["shards"]:
            path = Path(dataset) / entry["file"]
            try:
                verify_shard(path, entry["sha256"], entry["patches"], layout)
                found = _class_counts(path, layout)
                if found is not None:
                    counts[split] += found
            except ShardError as exc:
                problems.append(str(exc))
            tick(1)
    return problems, counts


def _class_counts(path: Path, layout: Layout) -> np.ndarray | None:
    """Patches carrying each class in one shard, None without class labels (a damaged file: a
    :class:`ShardError`)."""
    try:
        with h5py.File(path, "r") as f:
            if layout.labels:
                return f[layout.label_key][...].sum(axis=0, dtype=np.int64)
            if layout.label:
                return np.bincount(f["label"][...], minlength=layout.label)[:layout.label]
            return None
    except Exception as exc:
        raise damaged(path, exc) from None


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0].split(":")[0]


def summary_lines(dataset: Path, manifest: dict[str, Any], counts: dict[str, np.ndarray]) -> list[str]:
    """Human-readable summary: splits, class frequencies, band statistics, rejections."""
    splits = manifest["splits"]
    h, w = manifest["size"]
    lines = [f"data set   {dataset}  ({manifest['format']} v{manifest['version']}, {manifest['dataset']}, "
             f"{h}x{w} px at {manifest['resolution_m']} m, resample {manifest['resample']}, "
             f"compression {manifest.get('compression', 'none')})",
             f"tasks      {', '.join(manifest['tasks'])}; channels {', '.join(manifest['bands'])}"
             + (f" + Sentinel-1 {', '.join(manifest['s1_bands'])}" if manifest.get("s1_bands") else "")]
    sr = manifest.get("sr_model")
    if sr:
        ev = {k: float(v) for k, v in sr.get("eval", {}).items() if isinstance(v, (int, float))}
        nan = float("nan")
        lines.append(f"sr model   {sr['path']} (sha256 {sr['sha256'][:12]}); held-out RMSE 20 m "
                     f"{ev.get('rmse_20m', nan):.1f} vs bicubic {ev.get('bicubic_rmse_20m', nan):.1f}, "
                     f"60 m {ev.get('rmse_60m', nan):.1f} vs {ev.get('bicubic_rmse_60m', nan):.1f}")
    lines += ["", f"{'split':<8}{'patches':>10}{'shards':>8}"]
    for split, info in splits.items():
        lines.append(f"{split:<8}{info['patches']:>10}{len(info['shards']):>8}")
    names = list(splits)
    lines += ["", "class frequencies (patches carrying the class)",
              f"{'':<3}{'class':<48}" + "".join(f"{s:>8}" for s in names)]
    for c, cls in enumerate(manifest["classes"]):
        short = cls if len(cls) <= 46 else cls[:45] + "…"
        lines.append(f"{c:<3}{short:<48}" + "".join(f"{int(counts[s][c]):>8}" for s in names))
    if "segmentation" in manifest["tasks"]:
        lines += _pixel_lines(manifest)
    stats = manifest["band_stats"]
    lines += ["", f"band statistics over the {stats.get('split', 'train')} split (raw units; S1 in dB)"]
    if stats.get("mean") is None:
        lines.append("  none: the train split is empty")
    else:
        bands = stats.get("bands", manifest["bands"])
        lines += ["  band " + "".join(f"{b:>8}" for b in bands),
                  "  mean " + "".join(f"{m:>8.1f}" for m in stats["mean"]),
                  "  std  " + "".join(f"{s:>8.1f}" for s in stats["std"])]
    rejected = manifest["rejected"]
    kinds = Counter(_reason_kind(r["reason"]) for r in rejected)
    lines += ["", f"rejected {len(rejected)} patches"
              + (": " + ", ".join(f"{n} {k}" for k, n in kinds.most_common()) if kinds else ""),
              f"excluded {len(manifest['excluded'])} patches (noisy-patch lists)"]
    noisy = manifest.get("noisy") or {}
    if noisy.get("count") is not None:
        lines.append(f"noisy      {noisy['count']} patches with snow, cloud or shadow in the source: "
                     + ("converted (--include-noisy)" if noisy.get("included") else "left out"))
    missing = manifest["missing"]
    if missing["count"]:
        lines.append(f"missing    {missing['count']} listed patches absent from the source, e.g. "
                     + ", ".join(missing["first"][:3]))
    return lines


def _pixel_lines(manifest: dict[str, Any]) -> list[str]:
    splits = manifest["splits"]
    names = [s for s in splits if "pixel_counts" in splits[s]]
    lines = ["", "reference-map pixels per class", f"{'':<3}{'class':<48}" + "".join(f"{s:>12}" for s in names)]
    for c, cls in enumerate(manifest["classes"]):
        short = cls if len(cls) <= 46 else cls[:45] + "…"
        lines.append(f"{c:<3}{short:<48}" + "".join(f"{splits[s]['pixel_counts'][c]:>12}" for s in names))
    lines.append(f"{'':<3}{'no class (255)':<48}" + "".join(f"{splits[s]['unlabelled_pixels']:>12}" for s in names))
    return lines
