"""EuroSAT: real images written by others, the synthetic layout, splits, bad input."""
import shutil

import h5py
import numpy as np
import pytest
import tifffile

from jeoparda.errors import JeopardaError
from jeoparda.sentinel2 import BAND_NAMES13
from jeoparda.sources.base import PatchError
from jeoparda.sources.detect import SourceOptions, detect_format, open_source
from jeoparda.sources.eurosat import CLASSES, FILE_BANDS, NESTED, EuroSAT, stratified_split
from jeoparda.sources.synth_eurosat import synthesize_eurosat
from tests.conftest import FIXTURES, convert

REAL = FIXTURES / "eurosat"


@pytest.fixture(scope="session")
def eurosat_master(tmp_path_factory):
    out = tmp_path_factory.mktemp("eurosat")
    synthesize_eurosat(out, 60, seed=2)
    return out


def test_real_images_in_canonical_band_order():
    source = EuroSAT(REAL)
    assert detect_format(REAL) == "eurosat" and source.present() == {"AnnualCrop_1", "Pasture_300", "SeaLake_3000"}
    patch = source.read("SeaLake_3000")
    raw = tifffile.imread(REAL / "EuroSAT_MS" / "SeaLake" / "SeaLake_3000.tif")
    assert raw.shape == (64, 64, 13) and patch.image.shape == (13, 64, 64) and patch.label == CLASSES.index("SeaLake")
    for c, band in enumerate(BAND_NAMES13):
        assert np.array_equal(patch.image[c], raw[..., FILE_BANDS.index(band)]), band
    # B8A (stored last) is NIR: dark over the lake, bright over the crop field
    assert patch.image[BAND_NAMES13.index("B8A")].mean() < 300 < source.read("AnnualCrop_1").image[8].mean()


def test_real_images_convert_to_13_and_12_bands(tmp_path):
    m = convert(REAL, tmp_path / "all", present_only=True)
    assert (m["dataset"], m["tasks"], m["size"], m["resample"]) == ("eurosat", ["singlelabel"], [64, 64], "none")
    assert m["bands"] == list(BAND_NAMES13) and m["classes"] == list(CLASSES)
    twelve = tuple(b for b in BAND_NAMES13 if b != "B10")
    m12 = convert(REAL, tmp_path / "twelve", present_only=True, bands=twelve)
    assert m12["bands"] == list(twelve)
    for split in ("train", "val", "test"):
        for a, b in zip(m["splits"][split]["shards"], m12["splits"][split]["shards"], strict=True):
            with h5py.File(tmp_path / "all" / a["file"]) as fa, h5py.File(tmp_path / "twelve" / b["file"]) as fb:
                assert np.array_equal(np.delete(fa["images"][...], 10, axis=1), fb["images"][...])
                assert np.array_equal(fa["label"][...], fb["label"][...]) and fa["label"].dtype == np.uint8


def test_stratified_split_is_70_20_10_per_class(eurosat_master):
    names = sorted(EuroSAT(eurosat_master).present())
    splits = stratified_split(names)
    assert sorted(sum(splits.values(), [])) == names
    for cls in CLASSES:
        counts = [sum(n.rsplit("_", 1)[0] == cls for n in splits[s]) for s in ("train", "val", "test")]
        total = sum(counts)
        assert counts[0] == round(0.7 * total) and counts[1] == round(0.2 * total)
    assert stratified_split(list(reversed(names))) == splits  # a function of the names only


def test_split_lists_name_jpgs_and_absent_files_follow_the_partial_rule(eurosat_master, tmp_path):
    names = sorted(EuroSAT(eurosat_master).present())
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "eurosat-train.txt").write_text("".join(f"{n}.jpg\n" for n in names[:40]))
    (lists / "eurosat-val.txt").write_text("".join(f"{n}.jpg\n" for n in names[40:50]))
    (lists / "eurosat-test.txt").write_text("".join(f"{n}.jpg\n" for n in names[50:]) + "Forest_9999.jpg\n")
    with pytest.raises(JeopardaError, match="only 60 are present .*first Forest_9999.*--present-only"):
        convert(eurosat_master, tmp_path / "a", splits_dir=lists)
    m = convert(eurosat_master, tmp_path / "b", splits_dir=lists, present_only=True)
    assert [m["splits"][s]["patches"] for s in ("train", "val", "test")] == [40, 10, 10]
    assert m["missing"] == {"count": 1, "first": ["Forest_9999"]}


def test_nested_zip_layout_is_found(eurosat_master, tmp_path):
    nested = tmp_path / "zip" / NESTED
    shutil.copytree(eurosat_master / "EuroSAT_MS", nested)
    assert detect_format(tmp_path / "zip") == "eurosat"
    assert EuroSAT(tmp_path / "zip").root == nested


def test_unknown_class_folder_is_one_error(eurosat_master, tmp_path):
    root = tmp_path / "es"
    shutil.copytree(eurosat_master, root)
    (root / "EuroSAT_MS" / "Glacier").mkdir()
    tifffile.imwrite(root / "EuroSAT_MS" / "Glacier" / "Glacier_1.tif", np.zeros((64, 64, 13), np.uint16))
    with pytest.raises(JeopardaError, match="Glacier: class folder 'Glacier' is not one of the ten EuroSAT classes"):
        open_source(SourceOptions(root))


@pytest.mark.parametrize("shape,dtype,reason", [((64, 64, 12), np.uint16, "shape 64x64x12, expected 64x64x13"),
                                                ((32, 32, 13), np.uint16, "shape 32x32x13"),
                                                ((64, 64, 13), np.float32, "is float32, expected uint16")])
def test_damaged_images_are_rejected(eurosat_master, tmp_path, shape, dtype, reason):
    root = tmp_path / "es"
    shutil.copytree(eurosat_master, root)
    path = root / "EuroSAT_MS" / "Forest" / "Forest_1.tif"
    tifffile.imwrite(path, np.zeros(shape, dtype), photometric="minisblack", planarconfig="contig")
    with pytest.raises(PatchError, match=reason) as info:
        EuroSAT(root).read("Forest_1")
    assert info.value.file == path
    m = convert(root, tmp_path / "out")
    assert [r["patch"] for r in m["rejected"]] == ["Forest_1"] and reason in m["rejected"][0]["reason"]


def test_v2_options_are_refused_for_eurosat(eurosat_master):
    with pytest.raises(JeopardaError, match="--with-s1 applies to BigEarthNet v2.0; this is EuroSAT"):
        open_source(SourceOptions(eurosat_master, with_s1=True))
    with pytest.raises(JeopardaError, match="--bands: B13 is not a band of this source"):
        convert(eurosat_master, eurosat_master.parent / "x", bands=("B02", "B13"))


def test_cli_unknown_class_folder_is_one_line_and_writes_nothing(eurosat_master, tmp_path, capsys):
    from jeoparda.cli import main

    root = tmp_path / "es"
    shutil.copytree(eurosat_master, root)
    (root / "EuroSAT_MS" / "Moon").mkdir()
    tifffile.imwrite(root / "EuroSAT_MS" / "Moon" / "Moon_1.tif", np.zeros((64, 64, 13), np.uint16))
    assert main(["convert", "--source", str(root), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "class folder 'Moon' is not one of the ten EuroSAT classes" in err[0]
    assert not (tmp_path / "out").exists()
