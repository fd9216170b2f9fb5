"""`jeoparda download` end to end against a loopback mirror serving archives made here."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jeoparda.cli import main
from tests.download.archives import md5, members, tar_zst, zip_bytes
from tests.download.server import Files, Server

FAST = ["--backoff", "0.01", "--retries", "2"]


def _zip_folder(root: Path) -> bytes:
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    return zip_bytes(files)


def _sums(path: Path, files: dict[str, bytes]) -> Path:
    path.write_text("".join(f"{md5(data)}  {name}\n" for name, data in files.items()))
    return path


def _gets(files: Files) -> list[str]:
    return [name for method, name, _ in files.log if method == "GET"]


@pytest.fixture(scope="module")
def eurosat_zip(tmp_path_factory) -> tuple[Path, bytes]:
    """A 60-image synthetic EuroSAT folder and the zip of it, as Zenodo's EuroSAT_MS.zip is laid out."""
    from jeoparda.sources.synth_eurosat import synthesize_eurosat

    root = tmp_path_factory.mktemp("eurosat")
    synthesize_eurosat(root, 60, seed=3)
    return root, _zip_folder(root)


def test_eurosat_from_a_mirror_then_the_printed_convert_command(tmp_path, eurosat_zip, capsys):
    root, data = eurosat_zip
    files = Files({"EuroSAT_MS.zip": data})
    sums = _sums(tmp_path / "sums.md5", {"EuroSAT_MS.zip": data})
    out = tmp_path / "D"
    with Server(files) as url:
        assert main(["download", "eurosat", "--out", str(out), "--mirror", url, "--checksums", str(sums)]) == 0
    printed = capsys.readouterr().out
    for path in (root / "EuroSAT_MS").rglob("*.tif"):
        assert (out / path.relative_to(root)).read_bytes() == path.read_bytes()
    assert sorted(os.listdir(out)) == [".jeoparda-download", "EuroSAT_MS"]
    assert os.listdir(out / ".jeoparda-download") == ["lock", "state.json"]  # the archive removed after unpacking
    command = next(line for line in printed.splitlines() if line.startswith("next: "))[6:]
    argv = shlex.split(command)
    assert argv[:2] == ["jeoparda", "convert"] and argv[argv.index("--source") + 1] == str(out)
    assert main(argv[1:] + ["--shard-size", "16"]) == 0
    manifest = json.loads((tmp_path / "D-shards" / "manifest.json").read_text())
    assert sum(s["patches"] for s in manifest["splits"].values()) == 60


def test_a_rerun_fetches_nothing_once_done(tmp_path, eurosat_zip, capsys):
    _, data = eurosat_zip
    files = Files({"EuroSAT_MS.zip": data})
    args = ["download", "eurosat", "--out", str(tmp_path / "D"), "--checksums",
            str(_sums(tmp_path / "s", {"EuroSAT_MS.zip": data}))]
    with Server(files) as url:
        assert main(args + ["--mirror", url]) == 0
        files.log.clear()
        assert main(args + ["--mirror", url]) == 0
    assert files.log == [] and "all 1 files" in capsys.readouterr().out


def test_a_damaged_file_is_refused_unpacked_never_and_fetched_again_by_a_rerun(tmp_path, eurosat_zip, capsys):
    _, data = eurosat_zip
    damaged = data[:1000] + bytes(100) + data[1100:]
    files = Files({"EuroSAT_MS.zip": damaged})
    args = ["download", "eurosat", "--out", str(tmp_path / "D"), "--checksums",
            str(_sums(tmp_path / "s", {"EuroSAT_MS.zip": data}))]
    with Server(files) as url:
        assert main(args + ["--mirror", url]) == 1
        errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(errors) == 1 and "EuroSAT_MS.zip: damaged, MD5" in errors[0]
        assert "nothing of it unpacked" in errors[0]
        assert os.listdir(tmp_path / "D") == [".jeoparda-download"]
        assert sorted(os.listdir(tmp_path / "D" / ".jeoparda-download")) == ["lock"]
        files.data["EuroSAT_MS.zip"], files.log[:] = data, []
        assert main(args + ["--mirror", url]) == 0
    assert _gets(files) == ["EuroSAT_MS.zip"] and (tmp_path / "D" / "EuroSAT_MS").is_dir()


def _v2_files() -> dict[str, bytes]:
    return {"BigEarthNet-S2.tar.zst": tar_zst(members("BigEarthNet-S2", 6)),
            "Reference_Maps.tar.zst": tar_zst(members("Reference_Maps", 3, seed=2)),
            "metadata.parquet": b"PAR1 table one PAR1",
            "metadata_for_patches_with_snow_cloud_or_shadow.parquet": b"PAR1 table two PAR1"}


def test_a_file_missing_on_the_mirror_fails_alone_and_a_rerun_fetches_only_it(tmp_path, capsys):
    published = _v2_files()
    served = dict(published)
    del served["Reference_Maps.tar.zst"]
    files = Files(served)
    args = ["download", "bigearthnet-v2", "--out", str(tmp_path / "D"), "--workers", "3", *FAST,
            "--checksums", str(_sums(tmp_path / "s", published))]
    with Server(files) as url:
        assert main(args + ["--mirror", url]) == 1
        err = capsys.readouterr().err
        assert "Reference_Maps.tar.zst: HTTP 404" in err
        assert sorted(os.listdir(tmp_path / "D")) == [".jeoparda-download", "BigEarthNet-S2", "metadata.parquet",
                                                      "metadata_for_patches_with_snow_cloud_or_shadow.parquet"]
        files.data["Reference_Maps.tar.zst"], files.log[:] = published["Reference_Maps.tar.zst"], []
        assert main(args + ["--mirror", url]) == 0
    assert _gets(files) == ["Reference_Maps.tar.zst"]
    assert (tmp_path / "D" / "Reference_Maps" / "sub" / "f0.bin").is_file()
    assert "--format bigearthnet-v2" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".{k:03d}", "a{letter}"])  # numbered, and split(1)'s aa, ab, ac
def test_split_parts_named_in_the_checksums_are_fetched_and_joined(tmp_path, eurosat_zip, suffix):
    _, data = eurosat_zip
    third = len(data) // 3 + 1
    parts = {"EuroSAT_MS.zip" + suffix.format(k=k, letter="abc"[k]): data[k * third:(k + 1) * third]
             for k in range(3)}
    files = Files(parts)
    sums = _sums(tmp_path / "s", {"EuroSAT_MS.zip": data, **parts})
    with Server(files) as url:
        assert main(["download", "eurosat", "--out", str(tmp_path / "D"), "--mirror", url,
                     "--checksums", str(sums)]) == 0
    assert sorted(set(_gets(files))) == sorted(parts)
    assert len(list((tmp_path / "D" / "EuroSAT_MS").rglob("*.tif"))) == 60


def _one_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("jeoparda: error")]
    assert len(err) == 1, err
    return err[0]


def test_bad_input_is_one_line_each(tmp_path, eurosat_zip, capsys):
    _, data = eurosat_zip
    assert main(["download", "sentinel-9", "--out", str(tmp_path / "x")]) == 1
    assert "unknown data set 'sentinel-9'; jeoparda downloads bigearthnet-v2" in _one_error(capsys)
    assert main(["download", "eurosat", "--out", str(tmp_path / "x"), "--parts", "s1"]) == 1
    assert "eurosat has no part 's1'" in _one_error(capsys)
    other = tmp_path / "other"
    (other / "BigEarthNet-v1.0").mkdir(parents=True)
    assert main(["download", "eurosat", "--out", str(other)]) == 1
    assert "holds BigEarthNet-v1.0 of bigearthnet-v1, which is not part of eurosat" in _one_error(capsys)
    bad_sums = tmp_path / "bad.md5"
    bad_sums.write_text("not a checksum line\n")
    assert main(["download", "eurosat", "--out", str(tmp_path / "y"), "--checksums", str(bad_sums)]) == 1
    assert "bad.md5: line 1 is not 'MD5  NAME'" in _one_error(capsys)
    files = Files({"EuroSAT_MS.zip": data}, status={"EuroSAT_MS.zip": 500})
    with Server(files) as url:
        assert main(["download", "eurosat", "--out", str(tmp_path / "z"), "--mirror", url, *FAST]) == 1
    assert "EuroSAT_MS.zip: HTTP 500" in _one_error(capsys)


def test_a_folder_holding_another_download_is_refused(tmp_path, eurosat_zip, capsys):
    _, data = eurosat_zip
    files = Files({"EuroSAT_MS.zip": data})
    with Server(files) as url:
        assert main(["download", "eurosat", "--out", str(tmp_path / "D"), "--mirror", url, "--checksums",
                     str(_sums(tmp_path / "s", {"EuroSAT_MS.zip": data}))]) == 0
    capsys.readouterr()
    assert main(["download", "bigearthnet-v2", "--out", str(tmp_path / "D"), "--dry-run"]) == 1
    assert "holds a download of eurosat, not bigearthnet-v2" in _one_error(capsys)


def test_too_little_free_space_is_refused_before_any_transfer(tmp_path, eurosat_zip, capsys, monkeypatch):
    import shutil

    from jeoparda.download import plan
    _, data = eurosat_zip
    monkeypatch.setattr(plan.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    files = Files({"EuroSAT_MS.zip": data})
    with Server(files) as url:
        assert main(["download", "eurosat", "--out", str(tmp_path / "D"), "--mirror", url, "--checksums",
                     str(_sums(tmp_path / "s", {"EuroSAT_MS.zip": data}))]) == 1
    assert "needs about" in _one_error(capsys) and _gets(files) == []


def test_list_and_dry_run_fetch_nothing(tmp_path, capsys):
    from jeoparda.download.catalog import DATASETS

    for name, data in DATASETS.items():
        assert main(["download", name, "--list"]) == 0
        listed = capsys.readouterr().out
        for f in data.files:
            assert f.name in listed and f.md5 in listed and f.url in listed
    assert main(["download", "bigearthnet-v2", "--out", str(tmp_path / "D"), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "BigEarthNet-S2.tar.zst  63.3 GB" in plan and "BigEarthNet-S1" not in plan and not (tmp_path / "D").exists()
    from jeoparda.download.meter import human_bytes
    chosen = DATASETS["bigearthnet-v2"].select(None)
    fetch, unpacked = sum(f.size or 0 for f in chosen), sum(f.unpacked_bytes for f in chosen)
    assert f"needs about {human_bytes(fetch + unpacked)} ({human_bytes(fetch)} to fetch, about " \
           f"{human_bytes(unpacked)} unpacked" in plan


def _start_and_wait_for_bytes(cmd: list[str], partial: Path, least: int) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (partial.is_file() and partial.stat().st_size > least):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"no transfer under way: {proc.communicate()[1]}")
        time.sleep(0.05)
    return proc


def test_ctrl_c_ends_the_transfer_threads_and_keeps_the_partial_file(tmp_path, eurosat_zip):
    _, data = eurosat_zip
    files = Files({"EuroSAT_MS.zip": data}, rate=len(data) // 8)
    out = tmp_path / "D"
    partial = out / ".jeoparda-download" / "EuroSAT_MS.zip.partial"
    with Server(files) as url:
        proc = _start_and_wait_for_bytes(
            [sys.executable, "-m", "jeoparda", "download", "eurosat", "--out", str(out), "--mirror", url,
             "--checksums", str(_sums(tmp_path / "s", {"EuroSAT_MS.zip": data}))], partial, 0)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
    assert proc.returncode == 130 and "interrupted" in err
    assert 0 < partial.stat().st_size < len(data) and not (out / "EuroSAT_MS").exists()


def test_kill_9_mid_transfer_then_a_rerun_continues_from_the_partial_file(tmp_path, eurosat_zip):
    _, data = eurosat_zip
    files = Files({"EuroSAT_MS.zip": data}, rate=len(data) // 4)  # four seconds for the whole file
    out = tmp_path / "D"
    sums = _sums(tmp_path / "s", {"EuroSAT_MS.zip": data})
    partial = out / ".jeoparda-download" / "EuroSAT_MS.zip.partial"
    with Server(files) as url:
        cmd = [sys.executable, "-m", "jeoparda", "download", "eurosat", "--out", str(out), "--mirror", url,
               "--checksums", str(sums)]
        proc = _start_and_wait_for_bytes(cmd, partial, len(data) // 4)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        had = partial.stat().st_size
        files.rate = 0
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    gets = [rng for method, _, rng in files.log if method == "GET"]
    assert gets[0] is None and gets[-1] == f"bytes={had}-"
    assert len(list((out / "EuroSAT_MS").rglob("*.tif"))) == 60


def test_a_table_copied_in_by_hand_is_verified_and_kept(tmp_path, capsys):
    published = _v2_files()
    out = tmp_path / "D"
    out.mkdir()
    (out / "metadata.parquet").write_bytes(published["metadata.parquet"])
    files = Files(published)
    with Server(files) as url:
        assert main(["download", "bigearthnet-v2", "--out", str(out), "--parts", "metadata", "--mirror", url,
                     "--checksums", str(_sums(tmp_path / "s", published))]) == 0
    assert _gets(files) == ["metadata_for_patches_with_snow_cloud_or_shadow.parquet"]


def test_an_unrecorded_folder_in_the_way_fails_that_file_before_its_transfer(tmp_path, capsys):
    published = _v2_files()
    out = tmp_path / "D"
    (out / "Reference_Maps").mkdir(parents=True)
    files = Files(published)
    with Server(files) as url:
        assert main(["download", "bigearthnet-v2", "--out", str(out), "--parts", "maps", "--mirror", url,
                     "--checksums", str(_sums(tmp_path / "s", published))]) == 1
    assert "Reference_Maps: exists, but no jeoparda download recorded it" in _one_error(capsys)
    assert _gets(files) == []


def test_a_disk_filling_mid_extraction_keeps_the_verified_archive_for_the_rerun(tmp_path, capsys, monkeypatch):
    import shutil

    from jeoparda.download import plan
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        data = zip_bytes({f"EuroSAT_MS/Forest/Forest_{i}.tif": os.urandom(400_000) for i in range(5)})  # 2 MB
        monkeypatch.setattr(plan.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 0, 10**12))
        files = Files({"EuroSAT_MS.zip": data})
        args = ["download", "eurosat", "--out", str(disk / "D"), "--checksums",
                str(_sums(tmp_path / "s", {"EuroSAT_MS.zip": data}))]
        with Server(files) as url:
            assert main(args + ["--mirror", url]) == 1
            assert "the disk filled while unpacking EuroSAT_MS.zip; nothing of it was kept" in _one_error(capsys)
            assert os.listdir(disk / "D") == [".jeoparda-download"]
            assert "EuroSAT_MS.zip" in os.listdir(disk / "D" / ".jeoparda-download")
            subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
            files.log.clear()
            assert main(args + ["--mirror", url]) == 0
        assert _gets(files) == [] and len(os.listdir(disk / "D" / "EuroSAT_MS" / "Forest")) == 5
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_links_planted_in_the_download_folder_are_refused(tmp_path, capsys):
    published = _v2_files()
    out = tmp_path / "D"
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (out / ".jeoparda-download").mkdir(parents=True)
    os.symlink(victim, out / ".jeoparda-download" / "BigEarthNet-S2.tar.zst.partial")
    os.symlink(victim, out / "metadata.parquet")
    files = Files(published)
    with Server(files) as url:
        assert main(["download", "bigearthnet-v2", "--out", str(out), "--parts", "s2,metadata", "--mirror", url,
                     "--checksums", str(_sums(tmp_path / "s", published))]) == 1
    err = sorted(line for line in capsys.readouterr().err.splitlines() if line.startswith("jeoparda: error"))
    assert len(err) == 2
    assert "BigEarthNet-S2.tar.zst.partial: is a symbolic link" in err[0]
    assert "D/metadata.parquet: exists and is not metadata.parquet as published" in err[1]
    assert victim.read_bytes() == b"keep me" and (out / "metadata.parquet").is_symlink()


def test_a_users_own_table_at_a_downloads_place_is_refused_never_overwritten(tmp_path, capsys):
    published = _v2_files()
    out = tmp_path / "D"
    out.mkdir()
    (out / "metadata.parquet").write_bytes(b"my edited table")
    files = Files(published)
    with Server(files) as url:
        assert main(["download", "bigearthnet-v2", "--out", str(out), "--parts", "metadata", "--mirror", url,
                     "--checksums", str(_sums(tmp_path / "s", published))]) == 1
    assert "metadata.parquet: exists and is not metadata.parquet as published" in _one_error(capsys)
    assert (out / "metadata.parquet").read_bytes() == b"my edited table"


def test_a_run_dying_while_moving_entries_in_is_adopted_by_the_rerun(tmp_path, capsys, monkeypatch):
    from jeoparda.download.state import FolderState
    published = _v2_files()
    files = Files(published)
    args = ["download", "bigearthnet-v2", "--out", str(tmp_path / "D"), "--parts", "maps", "--checksums",
            str(_sums(tmp_path / "s", published))]
    real_mark = FolderState.mark

    def mark_fails_once_done(self, name, md5, entries, pending=False):
        if not pending:
            raise OSError(28, "No space left on device", str(self.path))
        real_mark(self, name, md5, entries, pending)

    with Server(files) as url:
        monkeypatch.setattr(FolderState, "mark", mark_fails_once_done)
        assert main(args + ["--mirror", url]) == 1
        assert "state.json: No space left on device" in _one_error(capsys)
        assert (tmp_path / "D" / ".jeoparda-download" / "Reference_Maps.tar.zst").is_file()  # kept: not recorded
        monkeypatch.setattr(FolderState, "mark", real_mark)
        files.log.clear()
        assert main(args + ["--mirror", url]) == 0
    assert files.log == [] and (tmp_path / "D" / "Reference_Maps" / "sub" / "f2.bin").is_file()


def test_the_convert_command_names_the_folder_absolutely(tmp_path, eurosat_zip, capsys, monkeypatch):
    _, data = eurosat_zip
    monkeypatch.chdir(tmp_path)
    with Server(Files({"EuroSAT_MS.zip": data})) as url:
        assert main(["download", "eurosat", "--out", ".", "--mirror", url, "--checksums",
                     str(_sums(tmp_path.parent / f"{tmp_path.name}.md5", {"EuroSAT_MS.zip": data}))]) == 0
    command = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("next: "))
    argv = shlex.split(command[6:])
    assert argv[argv.index("--source") + 1] == str(tmp_path)
    assert argv[argv.index("--out") + 1] == str(tmp_path.parent / f"{tmp_path.name}-shards")


def test_ctrl_c_during_a_back_off_ends_the_run_at_once(tmp_path):
    files = Files({"EuroSAT_MS.zip": b"x"}, status={"EuroSAT_MS.zip": 503})
    with Server(files) as url:
        proc = subprocess.Popen([sys.executable, "-m", "jeoparda", "download", "eurosat", "--out", str(tmp_path / "D"),
                                 "--mirror", url, "--backoff", "30"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not files.log and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
    assert proc.returncode == 130 and time.monotonic() - started < 10, err
    assert len(files.log) == 1


def test_a_damaged_part_of_a_split_file_is_named_and_deleted_alone(tmp_path, eurosat_zip, capsys):
    _, data = eurosat_zip
    third = len(data) // 3 + 1
    parts = {f"EuroSAT_MS.zip.{k:03d}": data[k * third:(k + 1) * third] for k in range(3)}
    sums = _sums(tmp_path / "s", {"EuroSAT_MS.zip": data, **parts})
    files = Files({**parts, "EuroSAT_MS.zip.001": bytes(len(parts["EuroSAT_MS.zip.001"]))})
    work = tmp_path / "D" / ".jeoparda-download"
    with Server(files) as url:
        assert main(["download", "eurosat", "--out", str(tmp_path / "D"), "--mirror", url,
                     "--checksums", str(sums)]) == 1
    assert "EuroSAT_MS.zip.001: damaged, MD5" in _one_error(capsys)
    assert sorted(p.name for p in work.glob("EuroSAT_MS.zip.*")) == ["EuroSAT_MS.zip.000", "EuroSAT_MS.zip.002"]
    assert not (tmp_path / "D" / "EuroSAT_MS").exists()
