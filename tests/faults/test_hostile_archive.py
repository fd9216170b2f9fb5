"""A hostile or broken archive (issue 22, docs/reliability.md): band files that are links to
/dev/zero, FIFOs or far too large, a labels file that is a device, a split list that is a FIFO.
Conversion ends well within 60 s, in bounded memory, each such file a rejected patch with its reason
(or, with --strict and for the lists, one line naming it); nothing is read from it, nothing waits."""
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.faults.procs import kill_all

TIMEOUT_S = 60
#: Peak memory of the converting process: a /dev/zero read grows past any bound in seconds; a
#: 48-patch conversion needs a few hundred MB (numpy, h5py, tifffile).
RSS_LIMIT_KB = 1024 * 1024
# Run the CLI, then print this process's peak resident memory on stderr's last line: VmHWM, which
# starts afresh with the program (ru_maxrss does not: Linux keeps the forking parent's across exec,
# and the test process may have grown past the limit itself).
RUN = ("import runpy, sys\n"
       "sys.argv = ['jeoparda', *sys.argv[1:]]\n"
       "try:\n    runpy.run_module('jeoparda', run_name='__main__')\n"
       "finally:\n    peak = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
       "    print('maxrss_kb', peak[0], file=sys.stderr)\n")


def convert(*args: str) -> tuple[int, str, int]:
    """(exit status, stderr without the memory line, peak RSS in KB) of ``jeoparda convert ARGS``."""
    marker = uuid.uuid4().hex
    env = {**os.environ, "JEOPARDA_FAULT_MARK": marker}
    try:
        proc = subprocess.run([sys.executable, "-c", RUN, "convert", *args], capture_output=True, text=True,
                              timeout=TIMEOUT_S, env=env)
    finally:
        kill_all(marker)
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("maxrss_kb "), proc.stderr
    return proc.returncode, "\n".join(lines[:-1]), int(lines[-1].split()[1])


def patch_files(archive: Path, suffix: str) -> list[Path]:
    return sorted(archive.rglob(f"*{suffix}"))


def plant(archive: Path) -> dict[str, tuple[Path, str]]:
    """Damage four patches: patch name -> (its hostile file, the reason conversion must give)."""
    zero, fifo, huge = patch_files(archive, "_B02.tif")[:3]
    labels = patch_files(archive, "_labels_metadata.json")[3]
    for path in (zero, fifo, huge, labels):
        path.unlink()
    zero.symlink_to("/dev/zero")
    os.mkfifo(fifo)
    with open(huge, "wb") as fh:  # sparse: 65 MiB on paper, nothing on disk
        fh.truncate(65 << 20)
    labels.symlink_to("/dev/zero")
    return {zero.parent.name: (zero, "not a regular file (a character device); refused"),
            fifo.parent.name: (fifo, "not a regular file (a FIFO); refused"),
            huge.parent.name: (huge, f"{65 << 20} bytes, more than the {64 << 20} a file of this kind may hold; "
                                     "refused"),
            labels.parent.name: (labels, "not a regular file (a character device); refused")}


@pytest.mark.slow
def test_devices_fifos_and_huge_files_are_rejected_patches(archive, tmp_path):
    planted = plant(archive)
    status, err, rss = convert("--source", str(archive), "--out", str(tmp_path / "out"), "--shard-size", "16")
    assert status == 0 and "Traceback" not in err, err
    assert rss < RSS_LIMIT_KB, f"peak memory {rss} KB"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    rejected = {r["patch"]: (Path(r["file"]), r["reason"]) for r in manifest["rejected"]}
    assert rejected == planted
    assert sum(s["patches"] for s in manifest["splits"].values()) == 48 - 4


def test_strict_stops_at_the_first_with_one_line(archive, tmp_path):
    planted = plant(archive)
    status, err, rss = convert("--source", str(archive), "--out", str(tmp_path / "out"), "--strict")
    errors = [line for line in err.splitlines() if line.startswith("jeoparda: error:")]
    assert status == 1 and len(errors) == 1 and "Traceback" not in err, err
    assert any(errors[0] == f"jeoparda: error: {file}: {reason} (patch {name})"
               for name, (file, reason) in planted.items()), errors[0]
    assert rss < RSS_LIMIT_KB


def test_a_split_list_that_is_a_fifo_is_one_line(archive, tmp_path):
    """(/dev/zero as a list: tests/sources/test_bounded_reads.py.)"""
    split = archive / "splits" / "val.csv"
    split.unlink()
    os.mkfifo(split)
    status, err, rss = convert("--source", str(archive), "--out", str(tmp_path / "out"))
    assert status == 1 and err.splitlines()[-1] == f"jeoparda: error: {split}: not a regular file (a FIFO); refused"
    assert rss < RSS_LIMIT_KB


@pytest.mark.slow
def test_a_reference_map_that_is_a_device_is_a_rejected_patch(reben_tree, tmp_path):
    ref = patch_files(reben_tree, "_reference_map.tif")[0]
    ref.unlink()
    ref.symlink_to("/dev/zero")
    status, err, rss = convert("--source", str(reben_tree), "--out", str(tmp_path / "out"), "--shard-size", "16")
    assert status == 0, err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [(Path(r["file"]), r["reason"]) for r in manifest["rejected"]] == \
        [(ref, "not a regular file (a character device); refused")]
    assert rss < RSS_LIMIT_KB
