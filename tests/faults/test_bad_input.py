"""Bad input through the ``jeoparda`` command (issue 22, items 3, 8, 9): a manifest of wrong types
or pointing outside its data set, a damaged HDF5 structure, malformed checkpoints, malformed
results-log lines, non-finite or negative configuration values and a full disk during convert.
Each is exit status 1 with exactly one ``jeoparda: error:`` line naming the file (or the key), no
traceback, nothing half-written left behind; a malformed log line is a warning, not a NaN."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from jeoparda.cli import main
from jeoparda.models import create_model
from jeoparda.shards.format import file_sha256

ROOT = Path(__file__).resolve().parents[2]


def one_error(capsys, *names: str) -> str:
    """The single ``jeoparda: error:`` line of stderr, which names each of ``names``."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("jeoparda: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def edit_manifest(root: Path, change) -> Path:
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    return path


# --- manifest ------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, change", [
    ("splits", lambda m: m.__setitem__("splits", [])),
    ("band_stats", lambda m: m.__setitem__("band_stats", None)),
    ("size", lambda m: m.__setitem__("size", "big")),
    ("splits.train.shards[0].sha256", lambda m: m["splits"]["train"]["shards"][0].pop("sha256")),
    ("splits.val.shards[0].patches", lambda m: m["splits"]["val"]["shards"][0].__setitem__("patches", "8")),
])
def test_a_manifest_field_of_the_wrong_type(copy, capsys, field, change):
    path = edit_manifest(copy, change)
    assert main(["inspect", str(copy)]) == 1
    one_error(capsys, str(path), f"field {field} must be")


@pytest.mark.parametrize("file", ["../../x/evil.h5", "/tmp/evil.h5", "train/out/evil.h5"])
def test_a_manifest_pointing_outside_its_data_set_is_refused_before_reading(copy, tmp_path, capsys, file):
    outside = tmp_path / "x"
    outside.mkdir()
    shutil.copy(copy / "train" / "shard-00000.h5", outside / "evil.h5")
    (copy / "train" / "out").symlink_to(outside)
    path = edit_manifest(copy, lambda m: m["splits"]["train"]["shards"][0].__setitem__("file", file))
    before = os.stat(outside / "evil.h5").st_atime_ns
    for command in (["inspect", str(copy)],
                    ["bench", "loader", "--set", f"data.path={copy}", "--set", "data.workers=0",
                     "--steps", "1", "--warmup", "0"]):
        assert main(command) == 1
        one_error(capsys, str(path), file)
    assert os.stat(outside / "evil.h5").st_atime_ns == before


# --- damaged HDF5 --------------------------------------------------------------------------------

def test_a_damaged_hdf5_structure_in_training_input_is_one_line(copy, capsys):
    """The B-tree of a shard's chunks broken (the checksum updated to match, or not checked): the
    loader's format check names the shard."""
    shard = copy / "train" / "shard-00002.h5"
    data = bytearray(shard.read_bytes())
    at = [m.start() for m in re.finditer(b"TREE", data)][0]
    data[at:at + 4] = b"XXXX"
    shard.write_bytes(bytes(data))
    edit_manifest(copy, lambda m: m["splits"]["train"]["shards"][2].__setitem__("sha256", file_sha256(shard)))
    assert main(["bench", "loader", "--set", f"data.path={copy}", "--set", "data.workers=0",
                 "--steps", "1", "--warmup", "0"]) == 1
    one_error(capsys, str(shard), "damaged HDF5 structure")
    assert main(["inspect", str(copy)]) == 1
    one_error(capsys, str(shard), "damaged HDF5 structure")


# --- checkpoints ---------------------------------------------------------------------------------

class _Code:
    def __reduce__(self):
        return (os.system, (f"touch {Path(os.environ['JEOPARDA_PWNED'])}",))


def _checkpoints(folder: Path) -> dict[str, tuple[Path, str]]:
    """Malformed checkpoints of fcn_maggiori: file -> what the error says."""
    real = create_model("fcn_maggiori", 12, 19).state_dict()
    good = {"model": real, "config": {"model": "fcn_maggiori"}}
    out = {}

    def put(name, write, says):
        path = folder / f"{name}.pt"
        write(path)
        out[name] = (path, says)

    put("truncated", lambda p: (torch.save(good, p), p.write_bytes(p.read_bytes()[:3000])), "unreadable checkpoint")
    put("not-a-zip", lambda p: p.write_bytes(b"\x80\x04garbage"), "unreadable checkpoint")
    put("pickled-code", lambda p: torch.save({**good, "x": _Code()}, p), "pickled code")
    put("no-config", lambda p: torch.save({"model": real}, p), "not a jeoparda training checkpoint")
    put("weights-list", lambda p: torch.save({**good, "model": [1]}, p), "not a state dict")
    put("other-model", lambda p: torch.save({**good, "config": {"model": "resnet18"}}, p), "resnet18")
    put("other-shape", lambda p: torch.save({**good, "model": {**real, next(iter(real)): torch.zeros(3, 3)}}, p),
        "fcn_maggiori")
    return out


def test_malformed_checkpoints_for_bench_infer_and_predict(tmp_path, capsys, monkeypatch, copy):
    pwned = tmp_path / "pwned"
    monkeypatch.setenv("JEOPARDA_PWNED", str(pwned))
    for path, says in _checkpoints(tmp_path).values():
        assert main(["bench", "infer", "--checkpoint", str(path), "--patches", "1", "--repeat", "1",
                     "--device", "cpu"]) == 1
        one_error(capsys, str(path), says)
        assert main(["predict", "--checkpoint", str(path), "--data", str(copy), "--tile", "T",
                     "--out", str(tmp_path / "map.tif"), "--device", "cpu"]) == 1
        one_error(capsys, str(path), says)
    assert not pwned.exists() and not (tmp_path / "map.tif").exists()


# --- results log ---------------------------------------------------------------------------------

def test_malformed_results_log_lines_are_warnings_and_never_a_nan(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    start = {"event": "run_start", "time": 0, "schema": 1, "model": "resnet18", "task": "multilabel",
             "dataset": "d", "data_backend": "torch", "world_size": 1, "nodes": 1, "global_batch_size": 8,
             "mode": "weak"}
    epoch = {"event": "epoch", "time": 1, "epoch": 1, "images_per_s": 50.0, "epoch_time_s": 2.0}
    lines = [json.dumps(start), json.dumps(epoch), json.dumps({**epoch, "epoch": 2, "images_per_s": "fast"}),
             json.dumps({**epoch, "epoch": 3, "images_per_s": float("nan")}), json.dumps({**epoch, "epoch": 4}),
             json.dumps({"event": "epoch", "time": 1, "epoch": 5}),
             json.dumps({"event": "run_end", "time": 9, "status": "completed", "f1_samples": float("nan")})]
    (run / "results.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning) as caught:
        assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    err = capsys.readouterr().err
    log = run / "results.jsonl"
    warned = [str(w.message) for w in caught]
    for n in (3, 4, 6):  # line 7, run_end: its NaN metric is kept as said but never a median
        assert [m for m in warned if m.startswith(f"{log}:{n}: skipped, ")], warned
    assert "Traceback" not in err and "error" not in err
    for name in ("scaling.csv", "report.md"):
        assert not re.search(r"\b(nan|-?inf)\b", (tmp_path / "rep" / name).read_text().lower())
    (run / "results.jsonl").write_text(json.dumps({**start, "world_size": "one"}) + "\n")
    with pytest.warns(UserWarning, match=re.escape(f"{log}: skipped, no usable run_start event (line 1: ")):
        assert main(["report", str(run), "--out", str(tmp_path / "rep2")]) == 0
    assert "Traceback" not in capsys.readouterr().err


# --- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize("setting, key", [("train.lr=.inf", "train.lr"), ("train.lr=nan", "train.lr"),
                                          ("train.checkpoint_every=-1", "train.checkpoint_every"),
                                          ("train.val_every=-1", "train.val_every"),
                                          ("dist.timeout_s=inf", "dist.timeout_s")])
def test_bad_numbers_are_refused_before_anything_starts(tmp_path, capsys, setting, key):
    assert main(["train", "--out", str(tmp_path / "run"), "--set", "data.backend=synthetic", "--set", setting]) == 1
    one_error(capsys, key)
    assert not (tmp_path / "run").exists()
    assert main(["config", "get", "train.lr", "--set", setting]) == 1
    one_error(capsys, key)


# --- disk full -----------------------------------------------------------------------------------

@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str):
    folder.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        done = None
    if done is None or done.returncode:
        pytest.skip("cannot mount a tmpfs here (not root?); test_manifest_write_disk_full covers ENOSPC")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


@pytest.mark.slow
def test_disk_full_during_convert_is_one_line_naming_the_shard(archive_master, tmp_path):
    with small_tmpfs(tmp_path / "mnt", "1m") as mnt:
        out = mnt / "out"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "JEOPARDA_FAULT_MARK": uuid.uuid4().hex}
        done = subprocess.run([sys.executable, "-m", "jeoparda", "convert", "--source", str(archive_master),
                               "--out", str(out), "--shard-size", "8"], capture_output=True, text=True,
                              env=env, timeout=300)
        errors = [line for line in done.stderr.splitlines() if line.startswith("jeoparda: error:")]
        assert done.returncode == 1 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
        assert str(out) in errors[0] and "No space left on device" in errors[0]
        assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_shard_write_disk_full_stand_in_is_one_line_naming_the_shard(archive_master, tmp_path, capsys,
                                                                     monkeypatch):
    """Where no tmpfs can be mounted: a stand-in for a disk that fills while a shard is written (the
    write fails with ENOSPC and no file name); the line names the shard, no temp file is left."""
    from jeoparda.shards.writer import ShardWriter

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ShardWriter, "append", full)
    out = tmp_path / "out"
    assert main(["convert", "--source", str(archive_master), "--out", str(out), "--shard-size", "8",
                 "--workers", "1"]) == 1
    line = one_error(capsys, str(out), "No space left on device")
    assert ".h5.tmp-" in line and not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_manifest_write_disk_full_is_one_line_naming_the_file(archive_master, tmp_path, capsys, monkeypatch):
    """A stand-in for a disk that fills exactly at the manifest: its write-back fails with ENOSPC and no
    file name (as NFS and Lustre report it at fsync)."""
    real = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".manifest.json.tmp-" + str(os.getpid())):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "out"
    assert main(["convert", "--source", str(archive_master), "--out", str(out), "--shard-size", "8",
                 "--workers", "1"]) == 1
    line = one_error(capsys, str(out / "manifest.json"), "No space left on device")
    assert line == f"jeoparda: error: {out / 'manifest.json'}: No space left on device"
    assert not (out / "manifest.json").exists() and not list(out.glob(".manifest.json.tmp-*"))


def test_an_os_error_naming_no_file_names_the_command(capsys, monkeypatch):
    from jeoparda.cli import config as config_cli

    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(config_cli, "_run_get", full)
    assert main(["config", "get", "train.lr"]) == 1
    assert one_error(capsys) == "jeoparda: error: config: No space left on device"
