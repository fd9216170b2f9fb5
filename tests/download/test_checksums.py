"""--checksums files: the format, unknown names, split parts and their order."""
from __future__ import annotations

import pytest

from jeoparda.download.catalog import DATASETS
from jeoparda.download.checksums import plan_items, read_overrides
from jeoparda.errors import JeopardaError

EUROSAT = DATASETS["eurosat"]


def _write(tmp_path, lines):
    path = tmp_path / "sums.md5"
    path.write_text("".join(lines))
    return path


def test_parts_are_ordered_by_their_numbers(tmp_path):
    names = [f"EuroSAT_MS.zip.part{k}" for k in (10, 2, 1, 11, 3)]
    path = _write(tmp_path, [f"{'a' * 32}  {n}\n" for n in names])
    (item,) = plan_items(EUROSAT.files, "http://m/", read_overrides(path), path)
    assert [p.name for p in item.pieces] == [f"EuroSAT_MS.zip.part{k}" for k in (1, 2, 3, 10, 11)]
    assert item.whole_md5 == EUROSAT.files[0].md5 and all(p.url == "http://m/" + p.name for p in item.pieces)


def test_an_override_replaces_the_published_figures(tmp_path):
    path = _write(tmp_path, ["# a centre's copy\n", f"{'B' * 32} *EuroSAT_MS.zip\n"])
    (item,) = plan_items(EUROSAT.files, None, read_overrides(path), path)
    assert item.whole_md5 == "b" * 32 and item.pieces[0].size is None and item.file.source == str(path)
    assert item.pieces[0].url == EUROSAT.files[0].url


def test_a_name_of_no_file_of_the_data_set_is_one_line(tmp_path):
    path = _write(tmp_path, [f"{'a' * 32}  BigEarthNet-S2.tar.zst\n"])
    with pytest.raises(JeopardaError, match="BigEarthNet-S2.tar.zst is not a file of this data set"):
        plan_items(EUROSAT.files, None, read_overrides(path), path)


def test_without_overrides_the_published_checksums_apply():
    items = plan_items(DATASETS["bigearthnet-v2"].select(None), None, {})
    assert [i.whole_md5 for i in items] == [f.md5 for f in DATASETS["bigearthnet-v2"].select(None)]
    assert all(len(f.md5) == 32 and f.source for d in DATASETS.values() for f in d.files)
