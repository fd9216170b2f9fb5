"""What a conversion will do: which patches go to which split and shard, and its fingerprint.

A plan is a pure function of the inputs (archive, lists, options), so every rank of an MPI job
computes the same plan without talking to the others. Patches the lists name but the archive
lacks are not planned: above ``MISSING_LIMIT`` of the listed patches that is an error (a wrong
folder, a half-copied archive), unless ``present_only`` says converting a subset is meant.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jeoparda.convert.assemble import Interpolator, Upsampler
from jeoparda.errors import JeopardaError
from jeoparda.resample import LEARNED, METHODS
from jeoparda.shards.format import COMPRESSION, FORMAT, VERSION
from jeoparda.sources.base import Source
from jeoparda.sources.detect import SourceOptions, open_source
from jeoparda.sources.splits import SPLITS

NOISY_LISTS = ("patches_with_seasonal_snow.csv", "patches_with_cloud_and_shadow.csv")
#: More absent patches than this fraction of the listed ones stop the conversion (without --present-only).
MISSING_LIMIT = 0.01
#: Absent patches named in the manifest (the count is always complete).
MISSING_NAMED = 20


@dataclass(frozen=True)
class ConvertOptions:
    source: Path
    out: Path
    splits_dir: Path | None = None
    excludes: tuple[Path, ...] = ()
    shard_size: int = 1000
    resample: str = "bicubic"
    compression: str = "none"
    workers: int = 1
    strict: bool = False
    overwrite: bool = False
    format: str = "auto"
    with_s1: bool = False
    reference_maps: Path | None = None
    include_noisy: bool = False
    present_only: bool = False
    bands: tuple[str, ...] = ()  # a subset of the source's bands to store (canonical order kept)
    sr_model: Path | None = None  # --resample learned: the model file (jeoparda sr train)
    sr_device: str = "auto"  # auto: cuda where a GPU is visible

    def source_options(self) -> SourceOptions:
        return SourceOptions(Path(self.source), self.format, self.splits_dir, tuple(self.excludes),
                             self.with_s1, self.reference_maps, self.include_noisy)


@dataclass(frozen=True)
class Chunk:
    """The patches (in order) that make up one shard."""

    split: str
    index: int
    names: tuple[str, ...]

    @property
    def file(self) -> str:
        return f"{self.split}/shard-{self.index:05d}.h5"

    @property
    def key(self) -> str:
        return f"{self.split}-{self.index:05d}"


@dataclass(frozen=True)
class Plan:
    source: Source
    splits: dict[str, list[str]]
    excluded: list[str]
    split_source: str
    missing: dict[str, Any]
    noisy: dict[str, Any] = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)
    fingerprint: str = ""
    keep: list[int] | None = None  # indices of the stored bands among the source's (None: all)
    upsampler: Upsampler = field(default_factory=lambda: Interpolator("bicubic"))
    sr_model: dict[str, Any] | None = None  # --resample learned: what the manifest records of the model

    @property
    def root(self) -> Path:
        return self.source.root

    @property
    def total_patches(self) -> int:
        return sum(len(c.names) for c in self.chunks)


def _validate(opts: ConvertOptions) -> None:
    if opts.shard_size < 1:
        raise JeopardaError(f"--shard-size must be at least 1 (got {opts.shard_size})")
    if opts.workers < 1:
        raise JeopardaError(f"--workers must be at least 1 (got {opts.workers})")
    if opts.resample not in (*METHODS, LEARNED):
        raise JeopardaError(f"--resample {opts.resample!r}: choose one of {', '.join(METHODS)}, {LEARNED}")
    if opts.resample == LEARNED and opts.sr_model is None:
        raise JeopardaError("--resample learned needs --sr-model MODEL (a model file from jeoparda sr train)")
    if opts.resample != LEARNED and opts.sr_model is not None:
        raise JeopardaError(f"--sr-model applies to --resample learned (this run interpolates: {opts.resample})")
    if opts.compression not in COMPRESSION:
        raise JeopardaError(f"--compression {opts.compression!r}: choose one of {', '.join(COMPRESSION)}")


def drop_absent(splits: dict[str, list[str]], present: set[str], present_only: bool,
                where: Path) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The listed patches that exist, and the ``missing`` record; too many absent is an error."""
    listed = sum(len(v) for v in splits.values())
    absent = [n for s in SPLITS for n in splits.get(s, []) if n not in present]
    if absent and not present_only and len(absent) > MISSING_LIMIT * listed:
        raise JeopardaError(
            f"{where}: the lists name {listed} patches but only {listed - len(absent)} are present "
            f"({len(absent)} absent, first {absent[0]}); to convert only the present ones, add --present-only")
    gone = set(absent)
    kept = {s: [n for n in splits.get(s, []) if n not in gone] for s in SPLITS}
    return kept, {"count": len(absent), "first": absent[:MISSING_NAMED]}


def band_subset(wanted: tuple[str, ...], available: tuple[str, ...]) -> list[int] | None:
    """Indices of ``--bands`` among the source's bands, in the source's (canonical) order."""
    if not wanted:
        return None
    unknown = [b for b in wanted if b not in available]
    if unknown:
        raise JeopardaError(f"--bands: {unknown[0]} is not a band of this source ({', '.join(available)})")
    return [i for i, b in enumerate(available) if b in wanted]


def make_upsampler(opts: ConvertOptions, source: Source) -> tuple[Upsampler, dict[str, Any] | None]:
    """The upsampler ``--resample`` asks for and, for a learned one, the model's manifest record."""
    if opts.resample != LEARNED:
        return Interpolator(opts.resample), None
    from jeoparda.superres.apply import LearnedUpsampler, resolve_device
    from jeoparda.superres.data import missing_bands
    from jeoparda.superres.model_file import load_model

    assert opts.sr_model is not None
    if not source.resamples:
        raise JeopardaError(f"{source.root}: --resample learned needs bands at native resolution; "
                            f"{source.kind} stores them on one grid already")
    missing_bands(source.bands, source.root)
    device, accel = resolve_device(opts.sr_device)
    model = load_model(opts.sr_model)
    # cpu and cuda kernels may round some values differently, and GPU generations among themselves:
    # the device and the GPU model are part of what the data set is
    record = {"path": str(opts.sr_model), "sha256": model.sha256, "device": accel.kind,
              "device_name": accel.name if accel.gpu else "cpu",
              "features": model.features, "blocks": model.blocks, "mtf": model.mtf, "training": model.training,
              "eval": model.eval}
    return LearnedUpsampler(Path(opts.sr_model), model.sha256, device), record


def make_plan(opts: ConvertOptions) -> Plan:
    """Open the source, resolve splits, exclusions and absent patches, and cut shard-sized chunks."""
    _validate(opts)
    source = open_source(opts.source_options())
    keep = band_subset(tuple(opts.bands), source.bands)
    upsampler, sr_model = make_upsampler(opts, source)
    listing = source.listing()
    present = source.present()
    source.close()  # workers open their own handles
    kept, missing = drop_absent(listing.splits, present, opts.present_only, source.store)
    if not any(kept.values()):
        raise JeopardaError(f"{source.root}: no listed patch is present; nothing to convert")
    chunks = [Chunk(s, i // opts.shard_size, tuple(kept[s][i:i + opts.shard_size]))
              for s in SPLITS for i in range(0, len(kept[s]), opts.shard_size)]
    identity = {"format": FORMAT, "version": VERSION, "dataset": source.dataset, "fields": repr(source.fields),
                "shard_size": opts.shard_size, "resample": opts.resample, "compression": opts.compression,
                "splits": kept, "excluded": listing.excluded, "bands": keep}
    if sr_model is not None:
        identity["sr_model"] = [sr_model["sha256"], sr_model["device"]] + (
            [sr_model["device_name"]] if sr_model["device"] != "cpu" else [])
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return Plan(source, kept, listing.excluded, listing.split_source, missing, listing.noisy, chunks, digest, keep,
                upsampler, sr_model)


def noisy_list_hint(opts: ConvertOptions) -> list[Path]:
    """Noisy-patch lists lying next to a v1 archive, for a hint when no --exclude was given."""
    if opts.excludes:
        return []
    return [Path(opts.source) / n for n in NOISY_LISTS if (Path(opts.source) / n).is_file()]
