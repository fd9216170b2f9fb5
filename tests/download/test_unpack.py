"""Streaming extraction: every format, split parts, and failures that leave nothing under a final name."""
from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from jeoparda.download.unpack import unpack
from jeoparda.errors import JeopardaError
from tests.download.archives import members, tar_bytes, tar_zst, zip_bytes

FORMATS = {"tar.zst": tar_zst, "tar.gz": lambda f: tar_bytes(f, "gz"), "zip": zip_bytes}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", FORMATS)
def test_each_format_unpacks_into_place_and_leaves_no_scratch(tmp_path, kind):
    files = members("Top")
    archive = tmp_path / f"a.{kind}"
    archive.write_bytes(FORMATS[kind](files))
    out = tmp_path / "out"
    out.mkdir()
    read = []
    assert unpack(kind, [archive], out, tmp_path / "scratch", archive.name, read.append) == ["Top"]
    assert _tree(out) == files
    assert sum(read) >= archive.stat().st_size - 512 and not (tmp_path / "scratch").exists()


@pytest.mark.parametrize("kind", FORMATS)
def test_split_parts_unpack_as_one_archive(tmp_path, kind):
    files = members("Split", count=6)
    data = FORMATS[kind](files)
    parts = []
    for k, start in enumerate(range(0, len(data), len(data) // 3 + 1)):
        parts.append(tmp_path / f"a.{kind}.{k:03d}")
        parts[-1].write_bytes(data[start:start + len(data) // 3 + 1])
    assert len(parts) == 3
    out = tmp_path / "out"
    out.mkdir()
    unpack(kind, parts, out, tmp_path / "scratch", "a", None)
    assert _tree(out) == files


def test_tar_zst_reads_every_frame(tmp_path):
    files = members("Frames", count=8)
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(tar_zst(files, frames=5))
    out = tmp_path / "out"
    out.mkdir()
    unpack("tar.zst", [archive], out, tmp_path / "scratch", "a", None)
    assert len(_tree(out)) == 8


def test_an_absolute_member_lands_inside_the_folder(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_bytes({**members("Top", count=1), f"{tmp_path}/escape.txt": b"x"}, "gz"))
    out = tmp_path / "out"
    out.mkdir()
    unpack("tar.gz", [archive], out, tmp_path / "scratch", "a.tar.gz", None)
    assert not (tmp_path / "escape.txt").exists()
    assert (out / tmp_path.relative_to("/") / "escape.txt").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["../escape.txt", "Top/../../escape.txt"])
def test_a_member_leaving_the_folder_is_refused_and_nothing_is_kept(tmp_path, name):
    files = {**members("Top", count=2), name: b"x"}
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_bytes(files, "gz"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(JeopardaError, match="a.tar.gz: refused"):
        unpack("tar.gz", [archive], out, tmp_path / "scratch", "a.tar.gz", None)
    assert os.listdir(out) == [] and not (tmp_path / "escape.txt").exists() and not (tmp_path / "scratch").exists()


def test_a_link_leaving_the_folder_is_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("Top/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    archive = tmp_path / "a.tar"
    archive.write_bytes(buf.getvalue())
    import zstandard
    (tmp_path / "a.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(JeopardaError, match="refused"):
        unpack("tar.zst", [tmp_path / "a.tar.zst"], out, tmp_path / "scratch", "a.tar.zst", None)
    assert os.listdir(out) == []


@pytest.mark.parametrize("kind", FORMATS)
def test_a_cut_archive_is_one_line_and_nothing_is_kept(tmp_path, kind):
    data = FORMATS[kind](members("Top", count=6))
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(data[:len(data) // 2])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(JeopardaError, match="a.tar.gz: damaged archive"):
        unpack(kind, [archive], out, tmp_path / "scratch", "a.tar.gz", None)
    assert os.listdir(out) == [] and not (tmp_path / "scratch").exists()


def test_an_entry_already_in_place_is_never_overwritten(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes(members("Top")))
    out = tmp_path / "out"
    (out / "Top").mkdir(parents=True)
    (out / "Top" / "mine.txt").write_text("mine")
    with pytest.raises(JeopardaError, match="Top: already exists"):
        unpack("zip", [archive], out, tmp_path / "scratch", "a.zip", None)
    assert os.listdir(out / "Top") == ["mine.txt"]


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (root only), unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_disk_filling_mid_extraction_is_one_line_and_leaves_nothing(tmp_path, small_disk):
    archive = tmp_path / "a.tar.zst"
    archive.write_bytes(tar_zst(members("Top", count=8, size=400_000)))  # 3.2 MB unpacked on a 2 MiB disk
    out = small_disk / "out"
    out.mkdir()
    with pytest.raises(JeopardaError, match="the disk filled while unpacking a.tar.zst; nothing of it was kept"):
        unpack("tar.zst", [archive], out, small_disk / "scratch", "a.tar.zst", None)
    assert os.listdir(out) == [] and os.listdir(small_disk) == ["out"]


def test_memory_stays_flat_over_many_members(tmp_path):
    """A tar stream's member list is dropped as it goes (BigEarthNet v2.0's S2 holds millions of files)."""
    import tracemalloc

    from jeoparda.download.unpack import _extract_tar

    def peak_for(count: int) -> int:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for i in range(count):  # one name again and again: many members, one small file on disk
                info = tarfile.TarInfo("Top/f")
                info.size = 1
                tar.addfile(info, io.BytesIO(bytes([i % 256])))
        out = tmp_path / f"out{count}"
        out.mkdir()
        buf.seek(0)
        tracemalloc.start()
        assert _extract_tar(buf, "r|", out) == count
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    small, large = peak_for(500), peak_for(3000)
    assert large < small + 300_000  # keeping every member would add about 250 B each: 600 kB more here
