"""BigEarthNet v2.0 sources: GeoTIFF tree, rico-hdl LMDB, metadata, reference maps, real samples."""
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tifffile

from jeoparda.errors import JeopardaError
from jeoparda.labels import CLASSES19, CORINE_CODES43, CORINE_TO_19, LABEL43_TO_19, NO_CLASS
from jeoparda.sentinel2 import BANDS
from jeoparda.sources.base import PatchError
from jeoparda.sources.bigearthnet_v2 import BigEarthNetV2, codes_to_classes, map_path
from jeoparda.sources.detect import SourceOptions, detect_format, open_source
from jeoparda.sources.reben_metadata import read_metadata
from jeoparda.sources.rico_lmdb import RicoLMDB
from tests.conftest import FIXTURES

REAL = FIXTURES / "reben"
REAL_S2 = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"
REAL_S1 = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_70_48"
REAL_MAP = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57"


def write_metadata(path: Path, rows: list[dict]) -> None:
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    cols["labels"] = pa.array(cols["labels"], type=pa.list_(pa.string()))
    pq.write_table(pa.table(cols), path)


# --- the label tables -------------------------------------------------------------------------

def test_corine_table_agrees_with_the_43_label_mapping():
    for label, code in enumerate(CORINE_CODES43):
        expected = LABEL43_TO_19[label]
        assert CORINE_TO_19[code] == (NO_CLASS if expected is None else expected), code
    assert CORINE_TO_19[0] == CORINE_TO_19[999] == CORINE_TO_19[335] == NO_CLASS


def test_every_code_maps_and_unknown_codes_are_damage(tmp_path):
    codes = np.array(sorted(CORINE_TO_19), np.uint16)
    grid = np.resize(codes, (120, 120))
    classes = codes_to_classes("p", tmp_path / "m.tif", grid)
    assert all(classes[i, j] == CORINE_TO_19[int(grid[i, j])] for i in range(0, 120, 7) for j in range(120))
    grid[5, 5] = 214
    with pytest.raises(PatchError, match="unknown CORINE code 214") as info:
        codes_to_classes("p", tmp_path / "m.tif", grid)
    assert info.value.file == tmp_path / "m.tif"
    with pytest.raises(PatchError, match="size 60x60, expected 120x120"):
        codes_to_classes("p", tmp_path / "m.tif", np.zeros((60, 60), np.uint16))


# --- real samples written by others -------------------------------------------------------------

def test_real_reference_map_reads_as_classes():
    path = map_path(REAL / "Reference_Maps", REAL_MAP)
    codes = tifffile.imread(path)
    assert sorted(np.unique(codes).tolist()) == [211, 231, 311, 313]
    classes = codes_to_classes(REAL_MAP, path, codes)
    assert sorted(np.unique(classes).tolist()) == [2, 4, 8, 10]  # arable, pastures, broad-leaved, mixed
    assert np.array_equal(classes == 8, codes == 311)


def test_published_metadata_schema_reads(tmp_path):
    meta = read_metadata(REAL / "torchgeo-metadata.parquet", need_s1=True)
    assert meta.splits == ["train", "train", "val", "test"]
    assert meta.s1_names[0] == "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39"
    assert [CLASSES19[i] for i in np.flatnonzero(meta.labels[2])] == ["Arable land", "Pastures", "Inland waters"]


@pytest.fixture
def real_archive(tmp_path) -> Path:
    """The real S2/S1 samples in both layouts beside a metadata table naming them."""
    root = tmp_path / "real"
    root.mkdir()
    for name in ("BigEarthNet-S2", "BigEarthNet-S1"):
        shutil.copytree(REAL / name, root / name)
    shutil.copytree(REAL / "rico-hdl-lmdb", root / "rico-hdl-lmdb")
    write_metadata(root / "metadata.parquet", [{"patch_id": REAL_S2, "labels": ["Arable land", "Pastures"],
                                                 "split": "train", "s1_name": REAL_S1}])
    return root


def test_rico_hdl_lmdb_reads_exactly_as_the_geotiffs(real_archive):
    tree = BigEarthNetV2(real_archive, with_s1=True).read(REAL_S2)
    lmdb = RicoLMDB(real_archive, with_s1=True).read(REAL_S2)
    assert [b.shape for b in tree.bands] == [(b.native_size, b.native_size) for b in BANDS]
    for a, b in zip(tree.bands, lmdb.bands, strict=True):
        assert a.dtype == b.dtype == np.uint16 and np.array_equal(a, b)
    assert tree.s1.dtype == np.float32 and tree.s1.shape == (2, 120, 120)
    assert np.array_equal(tree.s1, lmdb.s1)
    assert np.array_equal(tree.labels, lmdb.labels) and tree.labels[[2, 4]].tolist() == [1, 1]


def test_detection_prefers_the_lmdb_and_format_overrides(real_archive):
    assert detect_format(real_archive) == "rico-lmdb"
    source = open_source(SourceOptions(real_archive, format="bigearthnet-v2"))
    assert isinstance(source, BigEarthNetV2) and source.present() == {REAL_S2}
    assert REAL_S2 in open_source(SourceOptions(real_archive)).present()


# --- synthetic archives of both layouts ----------------------------------------------------------

def test_synthetic_labels_are_the_classes_of_the_map(reben_tree_master):
    source = BigEarthNetV2(reben_tree_master, maps=reben_tree_master / "Reference_Maps", with_s1=True)
    for name in source.listing().splits["train"][:8]:
        patch = source.read(name)
        on_map = sorted(set(np.unique(patch.mask).tolist()) - {NO_CLASS})
        assert np.flatnonzero(patch.labels).tolist() == on_map
        assert patch.s1.shape == (2, 120, 120) and patch.mask.dtype == np.uint8


def test_noisy_patches_are_listed_apart(reben_tree_master):
    kept = BigEarthNetV2(reben_tree_master).listing()
    noisy = read_metadata(reben_tree_master / "metadata_for_patches_with_snow_cloud_or_shadow.parquet").names
    assert noisy and kept.excluded == sorted(noisy)
    assert kept.noisy == {"count": len(noisy), "included": False}
    every = BigEarthNetV2(reben_tree_master, include_noisy=True).listing()
    assert every.excluded == [] and sum(map(len, every.splits.values())) == 24


# --- bad input: one clear error naming the file ----------------------------------------------------

def test_unreadable_parquet(reben_tree):
    (reben_tree / "metadata.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(JeopardaError, match=r"metadata\.parquet: unreadable parquet file"):
        BigEarthNetV2(reben_tree).listing()


def test_missing_columns(reben_tree):
    table = pq.read_table(reben_tree / "metadata.parquet")
    pq.write_table(table.drop(["split"]), reben_tree / "metadata.parquet")
    with pytest.raises(JeopardaError, match=r"metadata\.parquet: metadata table lacks column\(s\) split"):
        BigEarthNetV2(reben_tree).listing()
    pq.write_table(table.drop(["s1_name"]), reben_tree / "metadata.parquet")
    BigEarthNetV2(reben_tree).listing()  # S1 names are needed only with --with-s1
    with pytest.raises(JeopardaError, match="lacks column.*s1_name"):
        BigEarthNetV2(reben_tree, with_s1=True).listing()


def test_unknown_class_name(reben_tree):
    table = pq.read_table(reben_tree / "metadata.parquet")
    labels = table.column("labels").to_pylist()
    labels[3] = ["Moon dust"]
    table = table.set_column(table.schema.get_field_index("labels"), "labels",
                             pa.array(labels, type=pa.list_(pa.string())))
    pq.write_table(table, reben_tree / "metadata.parquet")
    with pytest.raises(JeopardaError, match="unknown class 'Moon dust'"):
        BigEarthNetV2(reben_tree).listing()


def _lmdb_put(root: Path, key: str, value: bytes) -> None:
    import lmdb

    env = lmdb.open(str(root / "BigEarthNet-lmdb"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        txn.put(key.encode(), value)
    env.close()


def s2_names(root: Path) -> list[str]:
    source = RicoLMDB(root)
    names = sorted(n for n in source.present() if n.startswith("S2"))
    source.close()
    return names


def test_lmdb_blob_that_is_not_safetensors(reben_lmdb):
    name = s2_names(reben_lmdb)[0]
    _lmdb_put(reben_lmdb, name, b"\x00garbage")
    with pytest.raises(PatchError, match=f"LMDB value of {name} is not a safetensors blob") as info:
        RicoLMDB(reben_lmdb).read(name)
    assert info.value.file == reben_lmdb / "BigEarthNet-lmdb"


@pytest.mark.parametrize("how", ["lacks band", "wrong shape"])
def test_lmdb_blob_lacking_a_band_or_of_wrong_shape(reben_lmdb, how):
    from safetensors.numpy import save

    name = s2_names(reben_lmdb)[0]
    arrays = {b.name: np.zeros((b.native_size,) * 2, np.uint16) for b in BANDS}
    if how == "lacks band":
        del arrays["B8A"]
    else:
        arrays["B05"] = np.zeros((120, 120), np.uint16)
    _lmdb_put(reben_lmdb, name, save(arrays))
    message = "lacks band B8A" if how == "lacks band" else "band B05 has size 120x120, expected 60x60"
    with pytest.raises(PatchError, match=message):
        RicoLMDB(reben_lmdb).read(name)


def test_s1_requested_but_not_in_the_source(reben_tree, reben_lmdb):
    shutil.rmtree(reben_tree / "BigEarthNet-S1")
    with pytest.raises(JeopardaError, match="--with-s1 given but there is no BigEarthNet-S1/ folder"):
        BigEarthNetV2(reben_tree, with_s1=True)
    import lmdb

    env = lmdb.open(str(reben_lmdb / "BigEarthNet-lmdb"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for key in [k for k, _ in txn.cursor() if k.startswith(b"S1")]:
            txn.delete(key)
    env.close()
    with pytest.raises(JeopardaError, match="holds none of the Sentinel-1 patches"):
        RicoLMDB(reben_lmdb, with_s1=True).present()


def test_format_that_does_not_match(reben_tree, archive_master):
    with pytest.raises(JeopardaError, match="--format rico-lmdb but no LMDB"):
        open_source(SourceOptions(reben_tree, format="rico-lmdb"))
    with pytest.raises(JeopardaError, match="--format bigearthnet-v2 but there is no metadata.parquet"):
        open_source(SourceOptions(archive_master, format="bigearthnet-v2"))
    with pytest.raises(JeopardaError, match="--format bigearthnet-v1 but no patch folders"):
        open_source(SourceOptions(reben_tree, format="bigearthnet-v1"))
    with pytest.raises(JeopardaError, match="--with-s1 applies to BigEarthNet v2.0"):
        open_source(SourceOptions(archive_master, with_s1=True))


def test_reference_map_damage_is_rejected_per_patch(reben_tree):
    source = BigEarthNetV2(reben_tree, maps=reben_tree / "Reference_Maps")
    names = source.listing().splits["train"]
    tifffile.imwrite(map_path(source.maps, names[0]), np.full((120, 120), 777, np.uint16))
    tifffile.imwrite(map_path(source.maps, names[1]), np.full((60, 60), 211, np.uint16))
    map_path(source.maps, names[2]).unlink()
    for name, reason in zip(names, ("unknown CORINE code 777", "size 60x60", "missing reference map"), strict=False):
        with pytest.raises(PatchError, match=reason) as info:
            source.read(name)
        assert info.value.file == map_path(source.maps, name)
