"""Which archive kind a folder holds, and the matching reader (``--format`` overrides detection)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jeoparda.errors import JeopardaError
from jeoparda.sources.base import Source
from jeoparda.sources.bigearthnet_v1 import ARCHIVE_DIRNAME, LABELS_SUFFIX, BigEarthNetV1
from jeoparda.sources.bigearthnet_v2 import MAPS_DIR, S2_DIR, BigEarthNetV2
from jeoparda.sources.eurosat import EuroSAT
from jeoparda.sources.eurosat import find_root as find_eurosat
from jeoparda.sources.reben_metadata import METADATA
from jeoparda.sources.rico_lmdb import RicoLMDB, find_lmdb

FORMATS = ("bigearthnet-v1", "bigearthnet-v2", "rico-lmdb", "eurosat")


@dataclass(frozen=True)
class SourceOptions:
    """What the user said about the source (the convert options that concern reading)."""

    source: Path
    format: str = "auto"
    splits_dir: Path | None = None
    excludes: tuple[Path, ...] = ()
    with_s1: bool = False
    reference_maps: Path | None = None
    include_noisy: bool = False


def _looks_v1(source: Path) -> bool:
    root = source / ARCHIVE_DIRNAME if (source / ARCHIVE_DIRNAME).is_dir() else source
    if not root.is_dir():
        return False
    folders = (c for c in sorted(root.iterdir()) if c.is_dir() and c.name != "splits")
    return any((c / f"{c.name}{LABELS_SUFFIX}").is_file() for c, _ in zip(folders, range(10), strict=False))


def detect_format(source: Path) -> str:
    """bigearthnet-v1 | bigearthnet-v2 | rico-lmdb, from what lies in ``source``."""
    source = Path(source)
    if not source.is_dir():
        raise JeopardaError(f"{source}: archive folder not found")
    if (source / METADATA).is_file():
        if find_lmdb(source) is not None:
            return "rico-lmdb"  # faster to read than the GeoTIFF tree when both are there
        if (source / S2_DIR).is_dir():
            return "bigearthnet-v2"
        raise JeopardaError(f"{source}: has {METADATA} but neither a {S2_DIR}/ folder nor an LMDB "
                            "(a folder holding data.mdb)")
    if _looks_v1(source):
        return "bigearthnet-v1"
    if find_eurosat(source) is not None:
        return "eurosat"
    raise JeopardaError(f"{source}: not a known archive layout (BigEarthNet-v1.0 folder, {METADATA} with "
                        f"{S2_DIR}/ or an LMDB, or EuroSAT class folders); see docs/convert.md")


def _check_format(opts: SourceOptions, kind: str) -> None:
    source = Path(opts.source)
    if kind == "bigearthnet-v1" and not _looks_v1(source):
        raise JeopardaError(f"{source}: --format bigearthnet-v1 but no patch folders with labels JSON found")
    if kind in ("bigearthnet-v2", "rico-lmdb") and not (source / METADATA).is_file():
        raise JeopardaError(f"{source}: --format {kind} but there is no {METADATA}")
    if kind == "bigearthnet-v2" and not (source / S2_DIR).is_dir():
        raise JeopardaError(f"{source}: --format bigearthnet-v2 but there is no {S2_DIR}/ folder")
    if kind == "rico-lmdb" and find_lmdb(source) is None:
        raise JeopardaError(f"{source}: --format rico-lmdb but no LMDB (a folder holding data.mdb) found")
    if kind == "eurosat" and find_eurosat(source) is None:
        raise JeopardaError(f"{source}: --format eurosat but no EuroSAT class folders found")


def open_source(opts: SourceOptions) -> Source:
    """The reader for ``opts.source``, of the detected or the given format."""
    if opts.format == "auto":
        kind = detect_format(opts.source)
    elif opts.format in FORMATS:
        if not Path(opts.source).is_dir():
            raise JeopardaError(f"{opts.source}: archive folder not found")
        kind = opts.format
        _check_format(opts, kind)
    else:
        raise JeopardaError(f"--format {opts.format!r}: choose one of auto, {', '.join(FORMATS)}")
    if kind in ("bigearthnet-v1", "eurosat"):
        for flag, given in (("--with-s1", opts.with_s1), ("--reference-maps", opts.reference_maps),
                            ("--include-noisy", opts.include_noisy)):
            if given:
                raise JeopardaError(f"{opts.source}: {flag} applies to BigEarthNet v2.0; this is "
                                    + ("a v1.0 archive" if kind == "bigearthnet-v1" else "EuroSAT"))
    if kind == "bigearthnet-v1":
        return BigEarthNetV1(opts.source, opts.splits_dir, opts.excludes)
    if kind == "eurosat":
        if opts.excludes:
            raise JeopardaError("--exclude applies to BigEarthNet v1.0 archives")
        return EuroSAT(opts.source, opts.splits_dir)
    if opts.excludes:
        raise JeopardaError("--exclude applies to v1.0 archives; v2.0 leaves out the patches of "
                            "metadata_for_patches_with_snow_cloud_or_shadow.parquet (keep them with --include-noisy)")
    maps = opts.reference_maps
    if maps is None and (Path(opts.source) / MAPS_DIR).is_dir():
        maps = Path(opts.source) / MAPS_DIR
    if maps is not None and not Path(maps).is_dir():
        raise JeopardaError(f"{maps}: reference-map folder not found")
    kw: dict[str, Any] = {"with_s1": opts.with_s1, "maps": maps, "include_noisy": opts.include_noisy,
          "splits_dir": opts.splits_dir}
    if kind == "rico-lmdb":
        return RicoLMDB(opts.source, **kw)
    return BigEarthNetV2(opts.source, **kw)
