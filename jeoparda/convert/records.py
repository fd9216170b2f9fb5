"""Per-shard records of a conversion and the manifest built from them.

A record holds what the manifest needs from one shard: its checksum, rejected patches, class
counts, and per-band sums for the statistics. Optical sums are exact integers; Sentinel-1 sums
(float dB) are float64, added in plan order, so the manifest does not depend on how the work was
spread over workers and ranks.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from jeoparda import __version__
from jeoparda.convert.plan import Chunk, ConvertOptions, Plan
from jeoparda.labels import LABELS43, NO_CLASS
from jeoparda.sentinel2 import S1_BANDS, TARGET_RESOLUTION_M
from jeoparda.shards.format import FORMAT, VERSION, Layout
from jeoparda.sources.splits import SPLITS


def layout_for(plan: Plan) -> Layout:
    f, source = plan.source.fields, plan.source
    bands = tuple(source.bands[i] for i in plan.keep) if plan.keep is not None else source.bands
    return Layout(bands, source.size, f.labels, f.labels43, f.masks, f.s1, f.label)


class ChunkStats:
    """Accumulates one shard's statistics patch by patch."""

    def __init__(self, layout: Layout, classes: int) -> None:
        self.layout = layout
        self.sums = [0] * len(layout.bands)
        self.sumsq = [0] * len(layout.bands)
        self.s1_sums = [0.0] * len(S1_BANDS)
        self.s1_sumsq = [0.0] * len(S1_BANDS)
        self.class_counts = np.zeros(classes, np.int64)
        self.pixel_counts = np.zeros(256, np.int64)
        self.patches = 0

    def add(self, arrays: dict[str, np.ndarray | None]) -> None:
        image = arrays["image"]
        assert image is not None
        flat = image.reshape(len(self.layout.bands), -1).astype(np.float64)
        # Per patch these float64 sums are exact integers (< 2**53); totals stay Python ints.
        for b, (s, q) in enumerate(zip(flat.sum(axis=1), np.einsum("ij,ij->i", flat, flat), strict=True)):
            self.sums[b] += int(s)
            self.sumsq[b] += int(q)
        s1 = arrays.get("s1")
        if self.layout.s1 and s1 is not None:
            s1f = s1.reshape(len(S1_BANDS), -1).astype(np.float64)
            for b in range(len(S1_BANDS)):
                self.s1_sums[b] += float(s1f[b].sum())
                self.s1_sumsq[b] += float(np.dot(s1f[b], s1f[b]))
        labels = arrays.get("labels")
        if labels is not None:
            self.class_counts += labels
        if arrays.get("label") is not None:
            self.class_counts[arrays["label"]] += 1
        mask = arrays.get("mask")
        if mask is not None:
            self.pixel_counts += np.bincount(mask.ravel(), minlength=256)
        self.patches += 1

    def record(self, chunk: Chunk, sha: str | None, rejected: list[dict[str, str]]) -> dict[str, Any]:
        h, w = self.layout.size
        rec: dict[str, Any] = {"split": chunk.split, "index": chunk.index,
                               "file": chunk.file if self.patches else None, "patches": self.patches,
                               "sha256": sha, "rejected": rejected, "pixels": self.patches * h * w,
                               "sum": self.sums, "sumsq": self.sumsq, "class_counts": self.class_counts.tolist()}
        if self.layout.s1:
            rec["s1_sum"], rec["s1_sumsq"] = self.s1_sums, self.s1_sumsq
        if self.layout.masks:
            rec["pixel_counts"] = self.pixel_counts.tolist()
        return rec


def _mean_std(s: list[float], q: list[float], n: int) -> tuple[list[float], list[float]]:
    return [sb / n for sb in s], [math.sqrt(max(qb * n - sb * sb, 0) / (n * n)) for sb, qb in zip(s, q, strict=True)]


def band_stats(records: list[dict[str, Any]], layout: Layout) -> dict[str, Any]:
    """Mean and std per band (S1 too) over the train records; optical from exact integer sums."""
    train = [r for r in records if r["split"] == "train"]
    n = sum(r["pixels"] for r in train)
    names = list(layout.bands) + (list(S1_BANDS) if layout.s1 else [])
    if n == 0:
        return {"bands": names, "mean": None, "std": None, "split": "train", "pixels": 0}
    nb = len(layout.bands)
    s = [sum(r["sum"][b] for r in train) for b in range(nb)]
    q = [sum(r["sumsq"][b] for r in train) for b in range(nb)]
    mean, std = _mean_std(s, q, n)
    if layout.s1:
        s1m, s1s = _mean_std([sum(r["s1_sum"][b] for r in train) for b in range(len(S1_BANDS))],
                             [sum(r["s1_sumsq"][b] for r in train) for b in range(len(S1_BANDS))], n)
        mean, std = mean + s1m, std + s1s
    return {"bands": names, "mean": mean, "std": std, "split": "train", "pixels": n}


def _split_entry(mine: list[dict[str, Any]], classes: int, masks: bool) -> dict[str, Any]:
    counts = np.sum([r["class_counts"] for r in mine], axis=0).astype(int).tolist() if mine else [0] * classes
    entry: dict[str, Any] = {
        "patches": sum(r["patches"] for r in mine), "class_counts": counts,
        "shards": [{"file": r["file"], "patches": r["patches"], "sha256": r["sha256"]}
                   for r in mine if r["patches"]]}
    if masks:
        pixels = np.sum([r["pixel_counts"] for r in mine], axis=0) if mine else np.zeros(256, np.int64)
        entry["pixel_counts"] = pixels[:classes].astype(int).tolist()
        entry["unlabelled_pixels"] = int(pixels[NO_CLASS])
    return entry


def build_manifest(plan: Plan, opts: ConvertOptions, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest (docs/data-format.md, version 2) from all chunk records, in plan order."""
    order = {c.key: i for i, c in enumerate(plan.chunks)}
    records = sorted(records, key=lambda r: order[f"{r['split']}-{r['index']:05d}"])
    layout = layout_for(plan)
    source = plan.source
    classes = len(source.classes)
    splits = {split: _split_entry([r for r in records if r["split"] == split], classes, layout.masks)
              for split in SPLITS}
    manifest: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "dataset": source.dataset, "tasks": source.tasks,
        "bands": list(layout.bands), "size": list(layout.size), "resolution_m": TARGET_RESOLUTION_M,
        "resample": opts.resample if source.resamples else "none", "compression": opts.compression,
        "shard_size": opts.shard_size,
        "classes": list(source.classes)}
    if layout.labels43:
        manifest["labels43"] = list(LABELS43)
    if layout.s1:
        manifest["s1_bands"] = list(S1_BANDS)
    if plan.sr_model is not None:
        manifest["sr_model"] = plan.sr_model
    manifest.update({
        "band_stats": band_stats(records, layout), "splits": splits,
        "rejected": [x for r in records for x in r["rejected"]], "missing": plan.missing,
        "excluded": plan.excluded, "noisy": plan.noisy, "split_source": plan.split_source,
        "source": {"kind": source.kind, "path": str(source.root)},
        "fingerprint": plan.fingerprint, "created_by": f"jeoparda {__version__}"})
    return manifest
