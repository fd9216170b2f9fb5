"""The archive kinds, one registry: how to recognise each, its reader, its synthetic writer, its help.

``detect_format`` and ``open_source`` (jeoparda.sources.detect), ``jeoparda convert --format`` and
``jeoparda synth --layout`` (their choices and help) all read ``ARCHIVE_KINDS``. An entry names its
functions as ``"module:function"`` targets, imported when used, so the CLI can list the kinds
without importing the readers (numpy, tifffile, pyarrow). Adding a kind: its reader (a
``Source``), a ``problem`` and a ``reader`` function, a synthetic writer, one ``register_kind``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jeoparda.backend_tables import load_target


@dataclass(frozen=True)
class SynthRequest:
    """What `jeoparda synth` asks a kind's writer for (block, sr_truth: where the kind takes them;
    workers: processes to render with, 1 for this one; the output must not depend on it)."""

    patches: int
    seed: int = 0
    progress: Callable[[int], object] | None = None
    block: bool = False
    sr_truth: bool = False
    workers: int = 1


@dataclass(frozen=True)
class ArchiveKind:
    """One archive kind: how to recognise it, how to open it, what `jeoparda synth` writes for it."""

    name: str                   # convert --format, the manifest's source kind
    layout: str                 # synth --layout
    summary: str                # convert --help: what the folder holds
    synth_summary: str          # synth --help: what the synthetic writer lays out (lines split by \n)
    problem: str                # "module:function" (folder) -> why it is not of this kind; None: it is
    reader: str                 # "module:function" (SourceOptions) -> Source, once problem said None
    writer: str                 # "module:function" (out, SynthRequest) -> the line synth prints
    synth_options: frozenset[str] = frozenset()  # SynthRequest flags the writer honours: block, sr_truth
    priority: int = 0           # detection tries higher first where several kinds fit
    marker: str = ""            # a file that claims a folder for the kinds naming it: detection then tries
                                # only those (a folder with metadata.parquet is BigEarthNet v2.0 or nothing)

    def load(self, which: str) -> Any:
        """The function named by the field ``which`` (problem, reader, writer), imported now."""
        return load_target(getattr(self, which))


#: The archive kinds, in the order help lists them.
ARCHIVE_KINDS: dict[str, ArchiveKind] = {}


def register_kind(kind: ArchiveKind) -> ArchiveKind:
    """Add (or replace) a kind: detection, --format, synth --layout and their help see it at once."""
    ARCHIVE_KINDS[kind.name] = kind
    return kind


def kind_of_layout(layout: str) -> ArchiveKind:
    """The kind `jeoparda synth --layout LAYOUT` writes."""
    return next(k for k in ARCHIVE_KINDS.values() if k.layout == layout)


_D = "jeoparda.sources.detect:"
register_kind(ArchiveKind(
    "bigearthnet-v1", "v1", "BigEarthNet-v1.0/<patch>/... with split CSVs (43 labels kept too)",
    "BigEarthNet-S2 v1.0: one uint16 GeoTIFF per band at native resolution (120/60/20 px),\n"
    "labels JSON, split CSVs in OUT/splits/ (70/15/15) and the two noisy-patch lists.",
    _D + "v1_problem", _D + "open_v1", _D + "synth_v1", frozenset({"sr_truth"})))
register_kind(ArchiveKind(
    "bigearthnet-v2", "v2", "metadata.parquet + BigEarthNet-S2/ (+ BigEarthNet-S1/, Reference_Maps/)",
    "BigEarthNet v2.0 GeoTIFF trees: BigEarthNet-S2/, BigEarthNet-S1/ (VV, VH in dB),\n"
    "Reference_Maps/ (CORINE codes; a patch's labels are the classes its map covers),\n"
    "metadata.parquet and the snow/cloud/shadow table.",
    _D + "v2_problem", _D + "open_v2", _D + "synth_v2", frozenset({"block"}), marker="metadata.parquet"))
register_kind(ArchiveKind(
    "rico-lmdb", "lmdb", "metadata.parquet + an LMDB folder holding data.mdb (+ Reference_Maps/)",
    "BigEarthNet v2.0 as rico-hdl encodes it: one LMDB of safetensors blobs (S2 and S1)\n"
    "in OUT/BigEarthNet-lmdb/, the two parquet tables and Reference_Maps/.",
    _D + "rico_problem", _D + "open_rico", _D + "synth_lmdb", frozenset({"block"}),
    priority=1, marker="metadata.parquet"))  # faster to read than the GeoTIFF tree when both are there
register_kind(ArchiveKind(
    "eurosat", "eurosat", "EuroSAT_MS/<Class>/*.tif (13 bands, 64x64, one class each; task singlelabel)",
    "EuroSAT_MS/<Class>/<Class>_<n>.tif: 64x64, 13 bands (B8A last, as distributed),\n"
    "ten classes in the real data set's proportions; one label per image.",
    _D + "eurosat_problem", _D + "open_eurosat", _D + "synth_eurosat"))
