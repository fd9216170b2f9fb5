"""Conversion: content, rejections, determinism across workers, resume, and nothing lost."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from jeoparda.cluster.env import ClusterEnv
from jeoparda.convert.plan import ConvertOptions, make_plan
from jeoparda.convert.run import WORK_DIR, convert_local, prepare_out, run_conversion
from jeoparda.errors import JeopardaError
from jeoparda.labels import LABEL43_INDEX
from jeoparda.sentinel2 import BANDS, band_indices
from jeoparda.sources.bigearthnet_v1 import band_path, labels_path, list_patches, locate_root
from jeoparda.sources.splits import read_name_list
from tests.conftest import convert
from tests.sources.test_bigearthnet_v1 import damage


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def same_tree(a: Path, b: Path) -> bool:
    return tree_digest(a) == tree_digest(b)


def read_split(dataset: Path, manifest: dict, split: str):
    images, labels, names = [], [], []
    for entry in manifest["splits"][split]["shards"]:
        with h5py.File(dataset / entry["file"]) as f:
            images.append(f["images"][...])
            labels.append(f["labels43"][...])
            names += [n.decode() for n in f["names"][...]]
    return np.concatenate(images), np.concatenate(labels), names


def test_shards_hold_source_data_and_labels(archive_master, dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    root = locate_root(archive_master)
    for split in ("train", "val", "test"):
        images, labels43, names = read_split(dataset, manifest, split)
        assert names == read_name_list(archive_master / "splits" / f"{split}.csv")
        for k in (0, len(names) - 1):
            for i in band_indices(10):
                assert np.array_equal(images[k, i], tifffile.imread(band_path(root, names[k], BANDS[i].name)))
            meta = json.loads(labels_path(root, names[k]).read_text())
            assert np.flatnonzero(labels43[k]).tolist() == sorted(LABEL43_INDEX[n] for n in meta["labels"])


def test_manifest_statistics_and_checksums(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    images, _, _ = read_split(dataset, manifest, "train")
    flat = images.transpose(1, 0, 2, 3).reshape(12, -1).astype(np.float64)
    assert np.allclose(manifest["band_stats"]["mean"], flat.mean(axis=1), rtol=1e-12)
    assert np.allclose(manifest["band_stats"]["std"], flat.std(axis=1), rtol=1e-9)
    for split in manifest["splits"].values():
        assert sum(s["patches"] for s in split["shards"]) == split["patches"]
        for s in split["shards"]:
            assert hashlib.sha256((dataset / s["file"]).read_bytes()).hexdigest() == s["sha256"]
    with h5py.File(dataset / manifest["splits"]["train"]["shards"][0]["file"]) as f:
        assert f.attrs["format"] == "jeoparda-shards" and f.attrs["version"] == 2
        assert f["images"].chunks == (1, 12, 120, 120) and f["images"].dtype == np.uint16
        assert list(f.attrs["bands"]) == [b.name for b in BANDS]


def test_damaged_patches_are_rejected_not_fatal(archive, tmp_path):
    root = locate_root(archive)
    patches = list_patches(root)
    hows = ["missing band", "truncated TIFF", "wrong size", "unreadable JSON", "unknown label"]
    for patch, how in zip(patches, hows):
        damage(root, patch, how)
    manifest = convert(archive, tmp_path / "out")
    rejected = {r["patch"]: r for r in manifest["rejected"]}
    assert set(rejected) == set(patches[:5])
    assert all(Path(r["file"]).exists() or "missing" in r["reason"] for r in rejected.values())
    assert sum(s["patches"] for s in manifest["splits"].values()) == len(patches) - 5


def test_strict_stops_with_one_line_naming_the_file(archive, tmp_path):
    root = locate_root(archive)
    patch = read_name_list(archive / "splits" / "train.csv")[2]
    damage(root, patch, "wrong size")
    proc = subprocess.run([sys.executable, "-m", "jeoparda", "convert", "--source", str(archive),
                           "--out", str(tmp_path / "out"), "--strict"], capture_output=True, text=True)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if "warning:" not in ln]
    assert len(lines) == 1 and lines[0].startswith("jeoparda: error: ")
    assert "Traceback" not in proc.stderr
    assert str(band_path(root, patch, "B06")) in lines[0] and "59x60" in lines[0]
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("workers", [2])
def test_output_identical_for_any_worker_count(archive_master, dataset, tmp_path, workers):
    convert(archive_master, tmp_path / "out", workers=workers)
    assert same_tree(dataset, tmp_path / "out")


def test_compression_options_roundtrip(archive_master, dataset, tmp_path):
    base = json.loads((dataset / "manifest.json").read_text())
    ref, _, _ = read_split(dataset, base, "val")
    for codec in ("gzip", "lzf"):
        manifest = convert(archive_master, tmp_path / codec, compression=codec)
        images, _, _ = read_split(tmp_path / codec, manifest, "val")
        assert np.array_equal(images, ref) and manifest["compression"] == codec


def test_exclusion_lists(archive_master, tmp_path):
    noisy = [archive_master / "patches_with_seasonal_snow.csv",
             archive_master / "patches_with_cloud_and_shadow.csv"]
    manifest = convert(archive_master, tmp_path / "out", excludes=tuple(noisy))
    dropped = sorted(set(read_name_list(noisy[0])) | set(read_name_list(noisy[1])))
    assert manifest["excluded"] == dropped
    for split in ("train", "val", "test"):
        _, _, names = read_split(tmp_path / "out", manifest, split)
        assert not set(names) & set(dropped)


def test_hash_split_without_split_lists(archive, tmp_path):
    for csv in (archive / "splits").iterdir():
        csv.unlink()
    (archive / "splits").rmdir()
    with pytest.warns(UserWarning, match="70/15/15"):
        manifest = convert(archive, tmp_path / "a")
    with pytest.warns(UserWarning):
        again = convert(archive, tmp_path / "b")
    assert same_tree(tmp_path / "a", tmp_path / "b")
    assert sum(s["patches"] for s in manifest["splits"].values()) == 48
    assert again["split_source"].startswith("name-hash")


def test_listed_but_absent_patch_is_missing_not_rejected(archive, tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "train.csv").write_text("S2A_ghost_1_1\n" + (archive / "splits" / "train.csv").read_text())
    for s in ("val", "test"):
        (splits / f"{s}.csv").write_text((archive / "splits" / f"{s}.csv").read_text())
    with pytest.raises(JeopardaError, match="1 absent, first S2A_ghost_1_1.*--present-only"):
        convert(archive, tmp_path / "out", splits_dir=splits)  # 1 of 49 is over 1 %
    manifest = convert(archive, tmp_path / "out", splits_dir=splits, present_only=True)
    assert manifest["rejected"] == []
    assert manifest["missing"] == {"count": 1, "first": ["S2A_ghost_1_1"]}


def test_source_is_never_modified(archive, tmp_path):
    before = tree_digest(archive)
    convert(archive, tmp_path / "out", workers=2)
    assert tree_digest(archive) == before
    with pytest.raises(JeopardaError, match="inside the source archive"):
        convert(archive, archive / "BigEarthNet-v1.0" / "out")


def test_refuses_foreign_or_different_output(archive_master, dataset, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(JeopardaError, match="not empty"):
        convert(archive_master, foreign)
    assert (foreign / "thesis.tex").read_text() == "precious"
    out = tmp_path / "out"
    convert(archive_master, out)
    with pytest.raises(JeopardaError, match="different converted data set"):
        convert(archive_master, out, resample="nearest")
    manifest = convert(archive_master, out, resample="nearest", overwrite=True)
    assert manifest["resample"] == "nearest"
    _, state = run_conversion(ConvertOptions(source=archive_master, out=out, shard_size=8,
                                             resample="nearest"), ClusterEnv(), lambda t: (lambda n: None))
    assert state == "complete"


def test_resume_reuses_finished_shards_and_redoes_the_rest(archive_master, dataset, tmp_path):
    out = tmp_path / "out"
    opts = ConvertOptions(source=archive_master, out=out, shard_size=8)
    plan = make_plan(opts)
    assert prepare_out(opts, plan) == "fresh"
    convert_local(plan.chunks[:2], plan, opts, lambda n: None)  # "killed" after two shards ...
    (out / plan.chunks[2].file).write_bytes(b"half a shard")  # ... while a third was renamed
    (out / "val" / "shard-00000.h5.tmp-999").write_bytes(b"partial")  # ... and one was in flight
    kept = {c.file: os.stat(out / c.file).st_mtime_ns for c in plan.chunks[:2]}
    convert(archive_master, out)
    assert same_tree(dataset, out)
    assert {f: os.stat(out / f).st_mtime_ns for f in kept} == kept
    assert not (out / WORK_DIR).exists()


def test_resume_after_kill_9(tmp_path):
    from jeoparda.sources.synth import synthesize

    synthesize(tmp_path / "arch", 320, seed=5)
    cmd = [sys.executable, "-m", "jeoparda", "convert", "--source", str(tmp_path / "arch"),
           "--shard-size", "4"]
    records = tmp_path / "out" / WORK_DIR / "records"
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "out")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(records.glob("*.json"))) < 3:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "out" / "manifest.json").exists(), "conversion finished before the kill"
    finished = {p.stem for p in records.glob("*.json")}
    assert finished
    stamps = {k: os.stat(tmp_path / "out" / f"{k.split('-')[0]}/shard-{k.split('-')[1]}.h5").st_mtime_ns
              for k in finished}
    subprocess.run(cmd + ["--out", str(tmp_path / "out")], check=True, capture_output=True)
    subprocess.run(cmd + ["--out", str(tmp_path / "ref")], check=True, capture_output=True)
    assert same_tree(tmp_path / "out", tmp_path / "ref")
    for k, stamp in stamps.items():
        assert os.stat(tmp_path / "out" / f"{k.split('-')[0]}/shard-{k.split('-')[1]}.h5").st_mtime_ns == stamp


def test_a_dying_worker_is_an_error_not_a_hang(archive_master, tmp_path, monkeypatch):
    import jeoparda.convert.run as conv

    monkeypatch.setattr(conv, "_pool_task", _die)  # the spawned workers import this test module
    opts = ConvertOptions(source=archive_master, out=tmp_path / "out", shard_size=8, workers=2)
    plan = make_plan(opts)
    prepare_out(opts, plan)
    with pytest.raises(JeopardaError, match="worker process died.*resume"):
        convert_local(plan.chunks, plan, opts, lambda n: None)


def _die(args):
    os._exit(9)
