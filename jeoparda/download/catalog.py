"""The files each data set is published as, with their checksums and where those were read.

Every checksum is the publisher's MD5 as its record lists it; ``SOURCE`` names the record, and
where a figure was read from another project that pins the same file (torchgeo's dataset classes),
that is said too. A mirror (``--mirror URL``) serves the same file names under ``URL``.
"""
from __future__ import annotations

from dataclasses import dataclass

from jeoparda.errors import JeopardaError

#: Zenodo serves a record's file at ``https://zenodo.org/records/<id>/files/<name>``.
ZENODO = "https://zenodo.org/records/{record}/files/"
#: The BigEarthNet v1.0 19-class split lists, pinned to one commit of TU Berlin's repository.
BEN_MM_SPLITS = ("https://git.tu-berlin.de/rsim/BigEarthNet-MM_19-classes_models/-/raw/"
                 "9a5be07346ab0884b2d9517475c27ef9db9b5104/splits/")
#: Bytes one unpacked Sentinel-2 patch of BigEarthNet holds: 4 bands of 120², 6 of 60², 2 of 20², uint16.
S2_PATCH_BYTES = (4 * 120 ** 2 + 6 * 60 ** 2 + 2 * 20 ** 2) * 2
#: Per GeoTIFF file: header, tags and the file system's block rounding (an estimate).
TIFF_OVERHEAD = 4096


@dataclass(frozen=True)
class RemoteFile:
    """One published file: where it comes from, how to check it, what it becomes on disk."""

    name: str                 # the file name on the server (and on any mirror)
    part: str                 # --parts selects by this
    md5: str                  # the published MD5
    size: int | None          # published bytes (None: the record gives none; the server's length is used)
    base_url: str             # the publisher's folder; the URL is base_url + name
    source: str               # where the checksum (and size) were read
    unpack: str = ""          # "tar.zst", "tar.gz", "zip"; "" keeps the file as it is
    dest: str = ""            # where a kept file goes inside --out (default: its name)
    creates: str = ""         # the top-level folder its archive unpacks to
    unpacked_bytes: int = 0   # an estimate of what unpacking writes (0: the archive's own size is used)

    @property
    def url(self) -> str:
        return self.base_url + self.name

    @property
    def target(self) -> str:
        """What appears in --out when this file is done: the folder it unpacks to, or the file."""
        return self.creates if self.unpack else (self.dest or self.name)


@dataclass(frozen=True)
class DataSet:
    """One data set: its files, the parts fetched by default and how `jeoparda convert` reads them."""

    name: str
    title: str
    files: tuple[RemoteFile, ...]
    default_parts: tuple[str, ...]
    convert_format: str
    note: str = ""

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.part for f in self.files))

    def select(self, parts: tuple[str, ...] | None) -> tuple[RemoteFile, ...]:
        """The files of ``parts`` (default parts where None); an unknown part is one line."""
        wanted = parts or self.default_parts
        unknown = [p for p in wanted if p not in self.parts]
        if unknown:
            raise JeopardaError(f"--parts: {self.name} has no part {unknown[0]!r} (its parts: {', '.join(self.parts)})")
        return tuple(f for f in self.files if f.part in wanted)


_V2 = ZENODO.format(record=10891137)
_V2_SOURCE = ("Zenodo record 10891137 (BigEarthNet v2.0, DOI 10.5281/zenodo.10891137); torchgeo's BigEarthNetV2 "
              "pins the same MD5s (metadata.parquet today, the three archives in its 2025 tests)")
_V2_PATCHES = 549_488  # S2 patches in metadata.parquet and its snow/cloud/shadow table together
_V1 = ZENODO.format(record=12687186)
_V1_SOURCE = "Zenodo record 12687186 (BigEarthNet v1.0); torchgeo's BigEarthNet pins the same MD5"
_V1_PATCHES = 590_326
_SPLITS_SOURCE = "TU Berlin BigEarthNet-MM_19-classes_models at 9a5be07 (MD5s as torchgeo's BigEarthNet pins them)"
_EUROSAT_SOURCE = "Zenodo record 7711810 (EuroSAT, DOI 10.5281/zenodo.7711810)"


def _s2_bytes(patches: int) -> int:
    return patches * (S2_PATCH_BYTES + 12 * TIFF_OVERHEAD)


DATASETS: dict[str, DataSet] = {d.name: d for d in (
    DataSet("bigearthnet-v2", "BigEarthNet v2.0 (reBEN)", (
        RemoteFile("BigEarthNet-S2.tar.zst", "s2", "2245ed2d1a93f6ce637d839bc856396e", 63_251_710_377, _V2,
                   _V2_SOURCE, "tar.zst", creates="BigEarthNet-S2", unpacked_bytes=_s2_bytes(_V2_PATCHES)),
        RemoteFile("BigEarthNet-S1.tar.zst", "s1", "a55eaa2cdf6a917e296bd6601ec1e348", 54_439_153_171, _V2,
                   _V2_SOURCE, "tar.zst", creates="BigEarthNet-S1",
                   unpacked_bytes=_V2_PATCHES * 2 * (120 ** 2 * 4 + TIFF_OVERHEAD)),
        RemoteFile("Reference_Maps.tar.zst", "maps", "95d85a222fa983faddcac51a19f28917", 282_391_301, _V2,
                   _V2_SOURCE, "tar.zst", creates="Reference_Maps",
                   unpacked_bytes=_V2_PATCHES * (120 ** 2 * 2 + TIFF_OVERHEAD)),
        RemoteFile("metadata.parquet", "metadata", "55687065e77b6d0b0f1ff604a6e7b49c", 3_616_349, _V2, _V2_SOURCE),
        RemoteFile("metadata_for_patches_with_snow_cloud_or_shadow.parquet", "metadata",
                   "fe31856f4986d446c9468b59d6387c91", 710_162, _V2, _V2_SOURCE),
    ), ("s2", "maps", "metadata"), "bigearthnet-v2"),
    DataSet("bigearthnet-v1", "BigEarthNet-S2 v1.0 (2019) with the official 19-class split lists", (
        RemoteFile("BigEarthNet-S2-v1.0.tar.gz", "s2", "5a64e9ce38deb036a435a7b59494924c", 70_032_164_579, _V1,
                   _V1_SOURCE, "tar.gz", creates="BigEarthNet-v1.0", unpacked_bytes=_s2_bytes(_V1_PATCHES)),
        RemoteFile("BigEarthNet-S1-v1.0.tar.gz", "s1", "94ced73440dea8c7b9645ee738c5a172", None, _V1,
                   _V1_SOURCE, "tar.gz", creates="BigEarthNet-S1-v1.0",
                   unpacked_bytes=_V1_PATCHES * 2 * (120 ** 2 * 4 + TIFF_OVERHEAD)),
        RemoteFile("train.csv", "metadata", "623e501b38ab7b12fe44f0083c00986d", None, BEN_MM_SPLITS,
                   _SPLITS_SOURCE, dest="splits/train.csv"),
        RemoteFile("val.csv", "metadata", "22efe8ed9cbd71fa10742ff7df2b7978", None, BEN_MM_SPLITS,
                   _SPLITS_SOURCE, dest="splits/val.csv"),
        RemoteFile("test.csv", "metadata", "697fb90677e30571b9ac7699b7e5b432", None, BEN_MM_SPLITS,
                   _SPLITS_SOURCE, dest="splits/test.csv"),
    ), ("s2", "metadata"), "bigearthnet-v1",
        note="jeoparda convert reads v1.0's Sentinel-2 only; BigEarthNet-S1-v1.0 is fetched for other tools"),
    DataSet("eurosat", "EuroSAT multispectral (13 bands, 27,000 images)", (
        RemoteFile("EuroSAT_MS.zip", "s2", "091174add3c8e680a49244acf185b9f0", 2_065_402_329,
                   ZENODO.format(record=7711810), _EUROSAT_SOURCE, "zip", creates="EuroSAT_MS",
                   unpacked_bytes=27_000 * (13 * 64 * 64 * 2 + TIFF_OVERHEAD)),
    ), ("s2",), "eurosat"),
)}


def dataset(name: str) -> DataSet:
    """The data set called ``name``; an unknown name is one line listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise JeopardaError(f"unknown data set {name!r}; jeoparda downloads {', '.join(DATASETS)}") from None


def owner_of(entry: str) -> str | None:
    """The data set whose download puts ``entry`` (a top-level name) into its folder, if any."""
    for data in DATASETS.values():
        if any(f.target.split("/", 1)[0] == entry for f in data.files):
            return data.name
    return None
