"""BigEarthNet v2.0 encoded by rico-hdl into one LMDB environment (what ConfigILM reads).

The environment is a folder holding ``data.mdb``, kept beside the two parquet tables. Keys are the
S2 ``patch_id`` and the S1 ``s1_name``; each value is a safetensors blob mapping band names to
arrays at native resolution (S2 uint16: B02-B04, B08 120x120, the 20 m bands 60x60, B01 and B09
20x20; S1 ``VV`` and ``VH`` float32 120x120). Reference maps are not in the LMDB: they come from
a ``Reference_Maps/`` tree (``--reference-maps DIR``, or one found beside the tables).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jeoparda.errors import JeopardaError
from jeoparda.sentinel2 import BANDS, S1_BANDS
from jeoparda.sources.base import Patch, PatchError
from jeoparda.sources.bigearthnet_v2 import ReBENSource, check_s1
from jeoparda.sources.geotiff import check_band

INSTALL_HINT = "pip install lmdb safetensors"


def find_lmdb(source: Path) -> Path | None:
    """The LMDB environment folder: SOURCE itself or a direct subfolder holding data.mdb."""
    source = Path(source)
    if (source / "data.mdb").is_file():
        return source
    if source.is_dir():
        for child in sorted(source.iterdir()):
            if child.is_dir() and (child / "data.mdb").is_file():
                return child
    return None


def _imports() -> tuple[Any, Any]:
    try:
        import lmdb
        from safetensors.numpy import load
    except ImportError as exc:
        raise JeopardaError(f"reading a rico-hdl LMDB needs lmdb and safetensors ({exc}); {INSTALL_HINT}") from None
    return lmdb, load


def decode_blob(name: str, file: Path, blob: bytes) -> dict[str, np.ndarray]:
    """Band name -> array from a safetensors blob; anything else is damage of that patch."""
    _, load = _imports()
    try:
        arrays = load(bytes(blob))
    except Exception as exc:  # safetensors raises its own error type and others
        raise PatchError(name, file, f"LMDB value of {name} is not a safetensors blob ({exc})") from None
    return dict(arrays)


class RicoLMDB(ReBENSource):
    kind = "BigEarthNet v2.0 (rico-hdl LMDB)"

    def __init__(self, source: Path, lmdb_dir: Path | None = None, **kw: Any) -> None:
        super().__init__(source, **kw)
        found = lmdb_dir or find_lmdb(source)
        if found is None:
            raise JeopardaError(f"{source}: no LMDB environment (a folder holding data.mdb) in or beside it")
        self.lmdb_dir = Path(found)
        self._env: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_env": None}  # an LMDB handle never crosses processes

    def _open(self) -> Any:
        if self._env is None:
            lmdb, _ = _imports()
            try:
                self._env = lmdb.open(str(self.lmdb_dir), readonly=True, lock=False, readahead=False,
                                      subdir=True, max_readers=1024)
            except lmdb.Error as exc:
                raise JeopardaError(f"{self.lmdb_dir}: cannot open the LMDB environment ({exc})") from None
        return self._env

    @property
    def store(self) -> Path:
        return self.lmdb_dir

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def present(self) -> set[str]:
        with self._open().begin() as txn:
            keys = {bytes(k).decode("utf-8", "replace") for k in txn.cursor().iternext(keys=True, values=False)}
        if self.with_s1:
            meta, _ = self.metadata()
            assert meta.s1_names is not None
            if meta.s1_names and not any(n in keys for n in meta.s1_names):
                raise JeopardaError(f"{self.lmdb_dir}: --with-s1 given but the LMDB holds none of the "
                                    f"Sentinel-1 patches named in the metadata (e.g. {meta.s1_names[0]})")
        return keys

    def _get(self, key: str, patch: str) -> dict[str, np.ndarray]:
        with self._open().begin(buffers=False) as txn:
            blob = txn.get(key.encode())
        if blob is None:
            raise PatchError(patch, self.lmdb_dir, f"key {key} not in the LMDB")
        return decode_blob(patch, self.lmdb_dir, blob)

    def read(self, name: str) -> Patch:
        arrays = self._get(name, name)
        bands = []
        for band in BANDS:
            if band.name not in arrays:
                raise PatchError(name, self.lmdb_dir, f"LMDB value of {name} lacks band {band.name} "
                                                      f"(has {', '.join(sorted(arrays))})")
            bands.append(check_band(name, self.lmdb_dir, band, arrays[band.name]))
        s1 = None
        if self.with_s1:
            s1_name = self.s1_name_of(name)
            s1_arrays = self._get(s1_name, name)
            missing = [b for b in S1_BANDS if b not in s1_arrays]
            if missing:
                raise PatchError(name, self.lmdb_dir, f"LMDB value of {s1_name} lacks {', '.join(missing)}")
            s1 = check_s1(name, self.lmdb_dir, [s1_arrays[b] for b in S1_BANDS])
        return Patch(name, tuple(bands), labels=self.labels_of(name), mask=self.read_mask(name), s1=s1)
