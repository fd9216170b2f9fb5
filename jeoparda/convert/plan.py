"""What a conversion will do: which patches go to which split and shard, and its fingerprint.

A plan is a pure function of the inputs (archive, split lists, exclusion lists, options), so every
rank of an MPI job computes the same plan without talking to the others.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from jeoparda.sources.bigearthnet_v1 import list_patches, locate_root
from jeoparda.convert.resample import METHODS
from jeoparda.shards.format import COMPRESSION, FORMAT, VERSION
from jeoparda.sources.splits import HASH_SPLIT_PERCENT, SPLITS, hash_split, read_name_list, read_split_dir
from jeoparda.errors import JeopardaError

NOISY_LISTS = ("patches_with_seasonal_snow.csv", "patches_with_cloud_and_shadow.csv")


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
    root: Path
    splits: dict[str, list[str]]
    excluded: list[str]
    split_source: str
    chunks: list[Chunk] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def total_patches(self) -> int:
        return sum(len(c.names) for c in self.chunks)


def _validate(opts: ConvertOptions) -> None:
    if opts.shard_size < 1:
        raise JeopardaError(f"--shard-size must be at least 1 (got {opts.shard_size})")
    if opts.workers < 1:
        raise JeopardaError(f"--workers must be at least 1 (got {opts.workers})")
    if opts.resample not in METHODS:
        raise JeopardaError(f"--resample {opts.resample!r}: choose one of {', '.join(METHODS)}")
    if opts.compression not in COMPRESSION:
        raise JeopardaError(f"--compression {opts.compression!r}: choose one of {', '.join(COMPRESSION)}")


def _choose_splits(opts: ConvertOptions, root: Path) -> tuple[dict[str, list[str]], str]:
    candidates = [opts.splits_dir] if opts.splits_dir else [Path(opts.source) / "splits", root / "splits"]
    for split_dir in candidates:
        if split_dir is not None and (opts.splits_dir or split_dir.is_dir()):
            return read_split_dir(split_dir), str(Path(split_dir).resolve())
    warnings.warn(f"no split lists given and no splits/ folder in {opts.source}: splitting by name "
                  f"hash {HASH_SPLIT_PERCENT['train']}/{HASH_SPLIT_PERCENT['val']}/"
                  f"{HASH_SPLIT_PERCENT['test']} (train/val/test)", stacklevel=2)
    return hash_split(list_patches(root)), "name-hash 70/15/15"


def make_plan(opts: ConvertOptions) -> Plan:
    """Resolve splits and exclusions and cut every split into shard-sized chunks."""
    _validate(opts)
    root = locate_root(opts.source)
    splits, split_source = _choose_splits(opts, root)
    noisy: set[str] = set()
    for path in opts.excludes:
        noisy.update(read_name_list(path))
    excluded = sorted(n for names in splits.values() for n in names if n in noisy)
    kept = {s: [n for n in splits[s] if n not in noisy] for s in SPLITS}
    chunks = [Chunk(s, i // opts.shard_size, tuple(kept[s][i:i + opts.shard_size]))
              for s in SPLITS for i in range(0, len(kept[s]), opts.shard_size)]
    identity = {"format": FORMAT, "version": VERSION, "shard_size": opts.shard_size,
                "resample": opts.resample, "compression": opts.compression,
                "splits": kept, "excluded": excluded}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return Plan(root, kept, excluded, split_source, chunks, digest)


def noisy_list_hint(opts: ConvertOptions) -> list[Path]:
    """Noisy-patch lists lying next to the archive, for a hint when no --exclude was given."""
    if opts.excludes:
        return []
    return [Path(opts.source) / n for n in NOISY_LISTS if (Path(opts.source) / n).is_file()]
