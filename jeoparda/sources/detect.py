"""Which archive kind a folder holds, and the matching reader (``--format`` overrides detection).

The kinds are those of jeoparda.sources.kinds.ARCHIVE_KINDS; the functions its entries name
(what a folder lacks to be of a kind, the reader, the synthetic writer) are here.
"""
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
from jeoparda.sources.kinds import ARCHIVE_KINDS, SynthRequest
from jeoparda.sources.reben_metadata import METADATA
from jeoparda.sources.rico_lmdb import RicoLMDB, find_lmdb


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


def _no_metadata(source: Path) -> str | None:
    return None if (source / METADATA).is_file() else f"there is no {METADATA}"


def v1_problem(source: Path) -> str | None:
    return None if _looks_v1(source) else "no patch folders with labels JSON found"


def v2_problem(source: Path) -> str | None:
    return _no_metadata(source) or (None if (source / S2_DIR).is_dir() else f"there is no {S2_DIR}/ folder")


def rico_problem(source: Path) -> str | None:
    return _no_metadata(source) or (None if find_lmdb(source) is not None
                                    else "no LMDB (a folder holding data.mdb) found")


def eurosat_problem(source: Path) -> str | None:
    return None if find_eurosat(source) is not None else "no EuroSAT class folders found"


def _refuse_v2_options(opts: SourceOptions, what: str) -> None:
    for flag, given in (("--with-s1", opts.with_s1), ("--reference-maps", opts.reference_maps),
                        ("--include-noisy", opts.include_noisy)):
        if given:
            raise JeopardaError(f"{opts.source}: {flag} applies to BigEarthNet v2.0; this is {what}")


def _v2_options(opts: SourceOptions) -> dict[str, Any]:
    if opts.excludes:
        raise JeopardaError("--exclude applies to v1.0 archives; v2.0 leaves out the patches of "
                            "metadata_for_patches_with_snow_cloud_or_shadow.parquet (keep them with --include-noisy)")
    maps = opts.reference_maps
    if maps is None and (Path(opts.source) / MAPS_DIR).is_dir():
        maps = Path(opts.source) / MAPS_DIR
    if maps is not None and not Path(maps).is_dir():
        raise JeopardaError(f"{maps}: reference-map folder not found")
    return {"with_s1": opts.with_s1, "maps": maps, "include_noisy": opts.include_noisy, "splits_dir": opts.splits_dir}


def open_v1(opts: SourceOptions) -> Source:
    _refuse_v2_options(opts, "a v1.0 archive")
    return BigEarthNetV1(opts.source, opts.splits_dir, opts.excludes)


def open_eurosat(opts: SourceOptions) -> Source:
    _refuse_v2_options(opts, "EuroSAT")
    if opts.excludes:
        raise JeopardaError("--exclude applies to BigEarthNet v1.0 archives")
    return EuroSAT(opts.source, opts.splits_dir)


def _splits_line(out: Path, request: SynthRequest, splits: dict[str, list[str]]) -> str:
    return (f"wrote {request.patches} patches to {out} "
            f"(train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])})")


def synth_v1(out: Path, request: SynthRequest) -> str:
    from jeoparda.sources.synth import synthesize

    return _splits_line(out, request, synthesize(out, request.patches, request.seed, progress=request.progress,
                                                 truth=request.sr_truth, workers=request.workers))


def synth_v2(out: Path, request: SynthRequest, lmdb: bool = False) -> str:
    from jeoparda.sources.synth_v2 import synthesize_v2

    return _splits_line(out, request, synthesize_v2(out, request.patches, request.seed, lmdb=lmdb,
                                                    progress=request.progress, block=request.block,
                                                    workers=request.workers))


def open_v2(opts: SourceOptions) -> Source:
    return BigEarthNetV2(opts.source, **_v2_options(opts))


def open_rico(opts: SourceOptions) -> Source:
    return RicoLMDB(opts.source, **_v2_options(opts))


def synth_lmdb(out: Path, request: SynthRequest) -> str:
    return synth_v2(out, request, lmdb=True)


def synth_eurosat(out: Path, request: SynthRequest) -> str:
    from jeoparda.sources.synth_eurosat import synthesize_eurosat

    written = synthesize_eurosat(out, request.patches, request.seed, progress=request.progress,
                                 workers=request.workers)["all"]
    return f"wrote {len(written)} images to {out}/EuroSAT_MS (splits: convert's class-stratified 70/20/10)"


def detect_format(source: Path) -> str:
    """The name of the archive kind that lies in ``source`` (see ARCHIVE_KINDS)."""
    source = Path(source)
    if not source.is_dir():
        raise JeopardaError(f"{source}: archive folder not found")
    ordered = sorted(ARCHIVE_KINDS.values(), key=lambda k: -k.priority)
    claimed = [k for k in ordered if k.marker and (source / k.marker).is_file()]
    for kind in claimed or ordered:
        if kind.load("problem")(source) is None:
            return kind.name
    if claimed:
        raise JeopardaError(f"{source}: has {METADATA} but neither a {S2_DIR}/ folder nor an LMDB "
                            "(a folder holding data.mdb)")
    raise JeopardaError(f"{source}: not a known archive layout (BigEarthNet-v1.0 folder, {METADATA} with "
                        f"{S2_DIR}/ or an LMDB, or EuroSAT class folders); see docs/convert.md")


def open_source(opts: SourceOptions) -> Source:
    """The reader for ``opts.source``, of the detected or the given format."""
    if opts.format == "auto":
        kind = ARCHIVE_KINDS[detect_format(opts.source)]
    elif opts.format in ARCHIVE_KINDS:
        if not Path(opts.source).is_dir():
            raise JeopardaError(f"{opts.source}: archive folder not found")
        kind = ARCHIVE_KINDS[opts.format]
        problem = kind.load("problem")(Path(opts.source))
        if problem is not None:
            raise JeopardaError(f"{opts.source}: --format {kind.name} but {problem}")
    else:
        raise JeopardaError(f"--format {opts.format!r}: choose one of auto, {', '.join(ARCHIVE_KINDS)}")
    source: Source = kind.load("reader")(opts)
    return source
