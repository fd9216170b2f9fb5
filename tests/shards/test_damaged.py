"""A damaged HDF5 structure (a broken B-tree, local heap, symbol table or global heap; a truncated
file) is one ShardError naming the shard, from the format check, the reader and ``inspect``;
never a RuntimeError, KeyError or UnicodeDecodeError from h5py."""
import re
import shutil

import pytest

from jeoparda.cli import main
from jeoparda.shards.format import ShardError, check_shard_format, file_sha256
from jeoparda.shards.reader import ShardReader

#: HDF5 signatures of the structures a shard's metadata is made of, and what breaking each does.
SIGNATURES = [(b"TREE", 0), (b"TREE", 1), (b"HEAP", 0), (b"SNOD", 0), (b"GCOL", 0)]


def _broken(src, dest, signature, which):
    """``src`` copied to ``dest`` with the ``which``-th occurrence of ``signature`` overwritten."""
    data = bytearray(src.read_bytes())
    hits = [m.start() for m in re.finditer(signature, data)]
    assert len(hits) > which, f"{src} has no {which + 1}. {signature!r}"
    data[hits[which]:hits[which] + 4] = b"XXXX"
    dest.write_bytes(bytes(data))
    return dest


@pytest.mark.parametrize("signature, which", SIGNATURES, ids=[f"{s.decode()}{w}" for s, w in SIGNATURES])
def test_a_broken_structure_is_one_shard_error_naming_the_file(dataset, tmp_path, signature, which):
    bad = _broken(dataset / "train" / "shard-00000.h5", tmp_path / "bad.h5", signature, which)
    errors = []
    for attempt in (lambda: check_shard_format(bad, 8), lambda: ShardReader(bad).read_images(0, 8)):
        try:
            attempt()
        except ShardError as exc:
            errors.append(str(exc))
    assert errors, "the damage went unnoticed by both the format check and the reader"
    for text in errors:
        assert text.startswith(f"{bad}: ") and "HDF5" in text and "\n" not in text


def test_the_chunk_b_tree_breaks_the_reader_with_the_error_the_issue_names(dataset, tmp_path):
    bad = _broken(dataset / "train" / "shard-00000.h5", tmp_path / "bad.h5", b"TREE", 1)
    with pytest.raises(ShardError, match=re.escape(f"{bad}: damaged HDF5 structure") + ".*wrong B-tree signature"):
        ShardReader(bad)


def test_a_truncated_shard_is_one_line_from_the_format_check(dataset, tmp_path):
    src = dataset / "train" / "shard-00000.h5"
    cut = tmp_path / "cut.h5"
    cut.write_bytes(src.read_bytes()[:4096])
    with pytest.raises(ShardError, match=re.escape(f"{cut}: unreadable HDF5 file")):
        check_shard_format(cut, 8)


def test_inspect_reports_a_broken_structure_with_a_matching_checksum(dataset, tmp_path, capsys):
    """A shard damaged before its checksum was taken (the manifest agrees with the bytes): the
    format check, not the checksum, finds it; one line, no traceback."""
    import json

    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    shard = copy / "train" / "shard-00001.h5"
    _broken(dataset / "train" / "shard-00001.h5", shard, b"SNOD", 0)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["splits"]["train"]["shards"][1]["sha256"] = file_sha256(shard)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert main(["inspect", str(copy)]) == 1
    err = capsys.readouterr().err
    assert f"{shard}: damaged HDF5 structure" in err and "Traceback" not in err
