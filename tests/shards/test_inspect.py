"""``jeoparda inspect``: the summary and the detection of damaged shards."""
import json

import h5py

from jeoparda.cli import main


def test_summary_of_a_good_data_set(dataset, capsys):
    assert main(["inspect", str(dataset)]) == 0
    out = capsys.readouterr().out
    manifest = json.loads((dataset / "manifest.json").read_text())
    for split, info in manifest["splits"].items():
        assert f"{split:<8}{info['patches']:>10}{len(info['shards']):>8}" in out
    assert "Urban fabric" in out and "B8A" in out
    assert f"all {sum(len(s['shards']) for s in manifest['splits'].values())} shards verified" in out


def test_flipped_byte_is_caught_naming_the_shard(copy, capsys):
    shard = copy / "train" / "shard-00001.h5"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert main(["inspect", str(copy)]) == 1
    assert f"{shard}: checksum mismatch" in capsys.readouterr().err


def test_wrong_format_is_caught_even_with_matching_checksum(copy, capsys):
    shard = copy / "train" / "shard-00000.h5"
    with h5py.File(shard, "a") as f:
        f.attrs["version"] = 3
    manifest = json.loads((copy / "manifest.json").read_text())
    from jeoparda.shards.format import file_sha256
    manifest["splits"]["train"]["shards"][0]["sha256"] = file_sha256(shard)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert main(["inspect", str(copy)]) == 1
    assert f"{shard}: not a jeoparda-shards shard of version 1 or 2 (format='jeoparda-shards', version=3)" \
        in capsys.readouterr().err


def test_missing_shard_and_foreign_manifest(copy, capsys):
    (copy / "test" / "shard-00000.h5").unlink()
    assert main(["inspect", str(copy)]) == 1
    assert "shard file is missing" in capsys.readouterr().err
    (copy / "manifest.json").write_text(json.dumps({"format": "webdataset", "version": 1}))
    assert main(["inspect", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "manifest.json: format 'webdataset'" in err and "Traceback" not in err
