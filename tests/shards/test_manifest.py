"""``manifest.json``: every field a reader uses is checked for type and range, shard paths stay
inside the data set, and the atomic writer leaves no temporary file when a write fails."""
import errno
import json
import os
import shutil

import pytest

from jeoparda.errors import JeopardaError
from jeoparda.shards.manifest import read_manifest, write_json_atomic


def _edit(root, change):
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    return path


def _shard(m):
    return m["splits"]["train"]["shards"][0]


def _set(key, value):
    return lambda m: m.__setitem__(key, value)


def _set_shard(key, value):
    return lambda m: _shard(m).__setitem__(key, value)


BAD = [
    ("splits []", _set("splits", []), "field splits must be an object of splits"),
    ("splits {}", _set("splits", {}), "field splits must be an object of splits"),
    ("band_stats null", _set("band_stats", None), "field band_stats must be an object"),
    ("band_stats short", lambda m: m["band_stats"].__setitem__("mean", [1.0]), "field band_stats.mean must be"),
    ("band_stats NaN", lambda m: m["band_stats"]["std"].__setitem__(2, float("nan")),
     "field band_stats.std[2] must be a finite number"),
    ("size text", _set("size", "big"), "field size must be [H, W]"),
    ("size one", _set("size", [120]), "field size must be [H, W]"),
    ("bands text", _set("bands", "B01"), "field bands must be a list"),
    ("classes empty", _set("classes", []), "field classes must be a list of at least one text"),
    ("tasks null", _set("tasks", None), "field tasks must be a list"),
    ("missing list", _set("missing", []), "field missing must be an object"),
    ("rejected dict", _set("rejected", {}), "field rejected must be a list"),
    ("resolution text", _set("resolution_m", "10 m"), "field resolution_m must be a finite number"),
    ("shards dict", lambda m: m["splits"]["train"].__setitem__("shards", {}),
     "field splits.train.shards must be a list"),
    ("split patches text", lambda m: m["splits"]["val"].__setitem__("patches", "8"),
     "field splits.val.patches must be an integer"),
    ("shard a list", lambda m: m["splits"]["train"]["shards"].__setitem__(0, ["x.h5"]),
     "field splits.train.shards[0] must be an object"),
    ("no file", lambda m: _shard(m).pop("file"), "field splits.train.shards[0].file must be text"),
    ("file a number", _set_shard("file", 3), "field splits.train.shards[0].file must be text"),
    ("no patches", lambda m: _shard(m).pop("patches"), "field splits.train.shards[0].patches must be an integer"),
    ("patches text", _set_shard("patches", "8"), "field splits.train.shards[0].patches must be an integer"),
    ("patches zero", _set_shard("patches", 0), "field splits.train.shards[0].patches must be an integer >= 1"),
    ("patches bool", _set_shard("patches", True), "field splits.train.shards[0].patches must be an integer"),
    ("no sha256", lambda m: _shard(m).pop("sha256"), "field splits.train.shards[0].sha256 must be 64 hex"),
    ("sha256 number", _set_shard("sha256", 5), "field splits.train.shards[0].sha256 must be 64 hex"),
    ("version true", _set("version", True), "version True is not jeoparda-shards"),
    ("escape", _set_shard("file", "../../x/evil.h5"), "field splits.train.shards[0].file '../../x/evil.h5': leaves"),
    ("absolute", _set_shard("file", "/etc/passwd"), "field splits.train.shards[0].file '/etc/passwd': leaves"),
    ("empty", _set_shard("file", ""), "field splits.train.shards[0].file '': not a relative path"),
]


@pytest.mark.parametrize("change, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_field_of_the_wrong_type_or_range_is_one_line_naming_the_file_and_field(copy, change, message):
    path = _edit(copy, change)
    with pytest.raises(JeopardaError) as info:
        read_manifest(copy)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_a_shard_path_through_a_link_out_of_the_data_set_is_refused(copy, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(copy / "train" / "shard-00000.h5", outside / "evil.h5")
    (copy / "train" / "away").symlink_to(outside)
    path = _edit(copy, _set_shard("file", "train/away/evil.h5"))
    with pytest.raises(JeopardaError, match="leads outside .* through a link") as info:
        read_manifest(copy)
    assert str(info.value).startswith(f"{path}: ")


def test_a_link_inside_the_data_set_is_fine_and_the_good_manifest_reads(copy):
    (copy / "train" / "alias.h5").symlink_to("shard-00000.h5")
    _edit(copy, _set_shard("file", "train/alias.h5"))
    assert read_manifest(copy)["splits"]["train"]["shards"][0]["file"] == "train/alias.h5"


def test_an_empty_train_split_keeps_null_statistics(copy):
    _edit(copy, lambda m: m["band_stats"].update(mean=None, std=None))
    assert read_manifest(copy)["band_stats"]["mean"] is None


def test_a_manifest_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "manifest.json")
    with pytest.raises(JeopardaError, match="not a regular file"):
        read_manifest(tmp_path)


def test_a_failed_write_leaves_no_temporary_file_and_names_the_file(tmp_path, monkeypatch):
    target = tmp_path / "manifest.json"
    real_fsync = os.fsync

    def full(fd):  # the write-back of a full disk (NFS, Lustre report ENOSPC here), no file name
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        write_json_atomic(target, {"a": 1})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []
    write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1} and list(tmp_path.iterdir()) == [target]
