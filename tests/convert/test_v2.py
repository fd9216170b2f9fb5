"""Converting BigEarthNet v2.0 (both layouts) into shard format v2, partial archives, no empty shard."""
import json
import shutil

import h5py
import numpy as np
import pytest
import tifffile

from jeoparda.cli import main
from jeoparda.errors import JeopardaError
from jeoparda.labels import CORINE_TO_19, NO_CLASS
from jeoparda.sentinel2 import BAND_NAMES
from jeoparda.sources.bigearthnet_v1 import locate_root
from jeoparda.sources.bigearthnet_v2 import map_path, s1_product_of
from jeoparda.sources.reben_metadata import read_metadata
from tests.conftest import convert
from tests.convert.test_run import same_tree


def shard_rows(dataset, split):
    """Every patch of a split: name -> (images, labels, masks, s1), read straight with h5py."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    rows = {}
    for entry in manifest["splits"][split]["shards"]:
        with h5py.File(dataset / entry["file"]) as f:
            for i, name in enumerate(n.decode() for n in f["names"][...]):
                rows[name] = (f["images"][i], f["labels"][i], f["masks"][i] if "masks" in f else None,
                              f["s1"][i] if "s1" in f else None)
    return rows


def test_manifest_describes_the_v2_data_set(reben_dataset, reben_tree_master):
    m = json.loads((reben_dataset / "manifest.json").read_text())
    assert (m["format"], m["version"], m["dataset"]) == ("jeoparda-shards", 2, "bigearthnet-v2")
    assert m["tasks"] == ["multilabel", "segmentation"] and m["s1_bands"] == ["VV", "VH"]
    assert m["bands"] == list(BAND_NAMES) and m["size"] == [120, 120]
    assert m["band_stats"]["bands"] == [*BAND_NAMES, "VV", "VH"] and len(m["band_stats"]["mean"]) == 14
    noisy = read_metadata(reben_tree_master / "metadata_for_patches_with_snow_cloud_or_shadow.parquet").names
    assert m["excluded"] == sorted(noisy) and m["noisy"] == {"count": len(noisy), "included": False}
    assert m["missing"] == {"count": 0, "first": []} and m["rejected"] == []
    assert "labels43" not in m


def test_targets_and_s1_round_trip(reben_dataset, reben_tree_master):
    meta = read_metadata(reben_tree_master / "metadata.parquet", need_s1=True)
    index = meta.index()
    rows = shard_rows(reben_dataset, "train")
    s1_train = []
    for name, (_, labels, mask, s1) in rows.items():
        assert np.array_equal(labels, meta.labels[index[name]])
        codes = tifffile.imread(map_path(reben_tree_master / "Reference_Maps", name))
        expected = np.vectorize(CORINE_TO_19.get)(codes)
        assert np.array_equal(mask, expected)
        assert np.flatnonzero(labels).tolist() == sorted(set(np.unique(mask).tolist()) - {NO_CLASS})
        s1_name = meta.s1_names[index[name]]
        folder = reben_tree_master / "BigEarthNet-S1" / s1_product_of(s1_name) / s1_name
        for c, band in enumerate(("VV", "VH")):
            assert np.array_equal(s1[c], tifffile.imread(folder / f"{s1_name}_{band}.tif"))  # bit-exact float32
        s1_train.append(s1)
    m = json.loads((reben_dataset / "manifest.json").read_text())
    s1_all = np.stack(s1_train).astype(np.float64)
    assert np.allclose(m["band_stats"]["mean"][12:], s1_all.mean(axis=(0, 2, 3)), rtol=1e-9)
    assert np.allclose(m["band_stats"]["std"][12:], s1_all.std(axis=(0, 2, 3)), rtol=1e-6)


def test_lmdb_and_geotiff_layouts_give_the_same_shards(reben_tree_master, reben_lmdb_master, tmp_path):
    a = convert(reben_tree_master, tmp_path / "tree", shard_size=6, with_s1=True)
    b = convert(reben_lmdb_master, tmp_path / "lmdb", shard_size=6, with_s1=True, workers=2)
    assert [s["sha256"] for s in a["splits"]["train"]["shards"]] == \
        [s["sha256"] for s in b["splits"]["train"]["shards"]]
    assert b["source"]["kind"].endswith("(rico-hdl LMDB)")


def test_one_and_two_workers_are_byte_identical_from_the_lmdb(reben_lmdb_master, tmp_path):
    convert(reben_lmdb_master, tmp_path / "one", shard_size=5)
    convert(reben_lmdb_master, tmp_path / "two", shard_size=5, workers=2)
    assert same_tree(tmp_path / "one", tmp_path / "two")


def test_include_noisy_converts_them_too(reben_tree_master, tmp_path):
    m = convert(reben_tree_master, tmp_path / "out", include_noisy=True)
    assert sum(s["patches"] for s in m["splits"].values()) == 24
    assert m["excluded"] == [] and m["noisy"]["included"] is True


def test_v2_without_maps_is_multilabel_only(reben_tree, tmp_path):
    shutil.rmtree(reben_tree / "Reference_Maps")
    m = convert(reben_tree, tmp_path / "out")
    assert m["tasks"] == ["multilabel"] and "s1_bands" not in m
    with h5py.File(tmp_path / "out" / m["splits"]["train"]["shards"][0]["file"]) as f:
        assert sorted(f) == ["images", "labels", "names"]


def test_reference_maps_option_for_the_lmdb(reben_lmdb, tmp_path):
    maps = tmp_path / "maps"
    shutil.move(reben_lmdb / "Reference_Maps", maps)
    assert convert(reben_lmdb, tmp_path / "a")["tasks"] == ["multilabel"]
    assert convert(reben_lmdb, tmp_path / "b", reference_maps=maps)["tasks"] == ["multilabel", "segmentation"]


# --- partial archives, absent and damaged patches ------------------------------------------------

def test_partial_v1_archive_stops_or_converts_what_is_there(archive, tmp_path):
    """The issue's case: many more patches listed than present."""
    root = locate_root(archive)
    present = sorted(p.name for p in root.iterdir())
    for name in present[6:]:
        shutil.rmtree(root / name)
    with pytest.raises(JeopardaError) as info:
        convert(archive, tmp_path / "out")
    assert "the lists name 48 patches but only 6 are present (42 absent, first " in str(info.value)
    assert "--present-only" in str(info.value)
    assert not (tmp_path / "out").exists()
    m = convert(archive, tmp_path / "out", present_only=True)
    assert sum(s["patches"] for s in m["splits"].values()) == 6 and m["rejected"] == []
    assert m["missing"]["count"] == 42 and len(m["missing"]["first"]) == 20
    files = sorted((tmp_path / "out").glob("*/*.h5"))
    assert len(files) == sum(len(s["shards"]) for s in m["splits"].values())
    assert all(s["patches"] > 0 for split in m["splits"].values() for s in split["shards"])


def test_under_one_percent_absent_converts_and_counts(reben_tree, tmp_path):
    meta = read_metadata(reben_tree / "metadata.parquet")
    gone = meta.names[0]
    shutil.rmtree(reben_tree / "BigEarthNet-S2" / gone.rsplit("_", 2)[0] / gone)
    with pytest.raises(JeopardaError, match="only 22 are present"):  # 1 of 23 is over 1 %
        convert(reben_tree, tmp_path / "a")
    m = convert(reben_tree, tmp_path / "b", present_only=True)
    assert m["missing"] == {"count": 1, "first": [gone]} and m["rejected"] == []


def test_lmdb_row_absent_from_the_lmdb_names_the_lmdb(reben_lmdb, tmp_path):
    import lmdb

    env = lmdb.open(str(reben_lmdb / "BigEarthNet-lmdb"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for key in [k for k, _ in txn.cursor() if k.startswith(b"S2")][:3]:
            txn.delete(key)
    env.close()
    with pytest.raises(JeopardaError, match=r"BigEarthNet-lmdb: the lists name \d+ patches but only"):
        convert(reben_lmdb, tmp_path / "out")


def test_no_shard_is_ever_empty(reben_tree, tmp_path):
    """A chunk whose patches are all damaged leaves no shard; the manifest never lists one."""
    meta = read_metadata(reben_tree / "metadata.parquet")
    val = [n for n, s in zip(meta.names, meta.splits, strict=True) if s == "val"]
    for name in val:
        map_path(reben_tree / "Reference_Maps", name).write_bytes(b"broken")
    m = convert(reben_tree, tmp_path / "out", shard_size=100)
    assert m["splits"]["val"] == {**m["splits"]["val"], "patches": 0, "shards": []}
    assert not list((tmp_path / "out" / "val").glob("*.h5"))
    assert sorted(r["patch"] for r in m["rejected"]) == sorted(val)
    assert main(["inspect", str(tmp_path / "out")]) == 0


def test_cli_bad_input_is_one_line_and_writes_nothing(reben_tree, tmp_path, capsys):
    (reben_tree / "metadata.parquet").write_bytes(b"junk")
    out = tmp_path / "out"
    assert main(["convert", "--source", str(reben_tree), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"jeoparda: error: {reben_tree / 'metadata.parquet'}: ")
    assert not out.exists()


def test_cli_converts_v2_with_s1(reben_tree_master, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["convert", "--source", str(reben_tree_master), "--out", str(out), "--with-s1",
                 "--shard-size", "8"]) == 0
    text = capsys.readouterr().out
    assert "BigEarthNet v2.0 (GeoTIFF tree); tasks: multilabel, segmentation; with Sentinel-1" in text
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "reference-map pixels per class" in text and "VV" in text and "left out" in text
