"""safe_files: links inside owned folders refused, temp files swept, paths kept inside, inputs bounded."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jeoparda.errors import JeopardaError
from jeoparda.safe_files import (
    UnsafePathError,
    check_regular,
    inside,
    make_dirs,
    open_regular,
    private_dir,
    replacing,
    sweep_temps,
    temp_name,
    write_bytes_atomic,
    writing,
)


def test_make_dirs_refuses_a_planted_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "train").symlink_to(victim)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        make_dirs(out, "train")
    assert make_dirs(out, "val/deeper").is_dir()


def test_the_root_itself_may_be_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    assert make_dirs(tmp_path / "alias", "a").resolve() == (real / "a")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(JeopardaError, match="does not exist"):
        make_dirs(tmp_path / "dangling")


def test_writing_refuses_a_link_and_leaves_its_target(tmp_path: Path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    (tmp_path / "log.txt").symlink_to(target)
    for append in (False, True):
        with pytest.raises(UnsafePathError), writing(tmp_path / "log.txt", append=append) as f:
            f.write("x")
    assert target.read_text() == "precious"


def test_atomic_write_replaces_a_link_instead_of_following_it(tmp_path: Path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    (tmp_path / "m.json").symlink_to(target)
    write_bytes_atomic(tmp_path / "m.json", b"{}")
    assert target.read_text() == "precious"
    assert not (tmp_path / "m.json").is_symlink() and (tmp_path / "m.json").read_bytes() == b"{}"


def test_a_failed_write_leaves_no_temp_file_and_names_the_file(tmp_path: Path) -> None:
    dest = tmp_path / "c.pt"
    with pytest.raises(OSError) as info, replacing(dest) as tmp:
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")
    assert info.value.filename == str(dest)
    assert list(tmp_path.iterdir()) == []


def test_sweep_removes_dead_processes_temps_only(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".manifest.json.tmp-{dead}"
    stale.write_text("half")
    live = tmp_path / f".manifest.json.tmp-{os.getppid()}"
    live.write_text("in progress")
    ours = temp_name(tmp_path / "x")
    ours.write_text("ours")
    assert set(sweep_temps(tmp_path)) == {stale, ours}
    assert live.exists()


def test_inside_keeps_paths_in_their_folder(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    assert inside(tmp_path, "train/a.h5") == tmp_path / "train" / "a.h5"
    for bad in ("../../x/evil.h5", "/etc/passwd", "", "train/../../x"):
        with pytest.raises(UnsafePathError):
            inside(tmp_path, bad, "manifest.json: shard")
    (tmp_path / "out").symlink_to("/")
    (tmp_path / "train" / "escape.h5").symlink_to("/etc/passwd")
    (tmp_path / "train" / "alias.h5").symlink_to(tmp_path / "train" / "a.h5")
    folders: dict = {}  # the cached way (one resolve per folder) refuses the same
    for cache in (None, folders, folders):
        for bad in ("out/etc/passwd", "train/escape.h5"):
            with pytest.raises(UnsafePathError, match="outside"):
                inside(tmp_path, bad, "shard", cache)
        assert inside(tmp_path, "train/alias.h5", "shard", cache) == tmp_path / "train" / "alias.h5"
    with pytest.raises(UnsafePathError):
        inside(tmp_path, 3, "shard")  # type: ignore[arg-type]


def test_open_regular_refuses_devices_fifos_and_oversized_files(tmp_path: Path) -> None:
    (tmp_path / "zero.tif").symlink_to("/dev/zero")
    with pytest.raises(UnsafePathError, match="character device"):
        open_regular(tmp_path / "zero.tif", 1 << 20)
    os.mkfifo(tmp_path / "fifo.tif")
    with pytest.raises(UnsafePathError, match="FIFO"):  # without blocking: no writer exists
        check_regular(tmp_path / "fifo.tif", 1 << 20)
    (tmp_path / "big.tif").write_bytes(b"x" * 100)
    with pytest.raises(UnsafePathError, match="100 bytes"):
        check_regular(tmp_path / "big.tif", 99)
    with open_regular(tmp_path / "big.tif", 100) as f:
        assert f.read() == b"x" * 100
    with pytest.raises(JeopardaError, match="cannot open"):
        open_regular(tmp_path / "missing.tif", 10)


def test_private_dir_is_created_0700_and_checked(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "stage")
    assert (made.stat().st_mode & 0o777) == 0o700
    os.chmod(made, 0o777)
    with pytest.raises(UnsafePathError, match="writable by other users"):
        private_dir(made)
    (tmp_path / "planted").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        private_dir(tmp_path / "planted")
