"""`jeoparda synth` streams: the same files whatever --workers, a batched LMDB, memory flat in --patches."""
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from jeoparda.cli import main
from jeoparda.errors import JeopardaError
from jeoparda.sources import synth_v2
from jeoparda.sources.synth_pool import WINDOW_PER_WORKER, ordered_map


def files_of(root: Path, skip: str = "") -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not (skip and skip in p.parts)}


def lmdb_items(folder: Path) -> tuple[dict[bytes, bytes], int]:
    """Key -> value of an LMDB, and the id of its last committed write transaction."""
    import lmdb

    env = lmdb.open(str(folder), readonly=True, lock=False, subdir=True)
    with env.begin() as txn:
        items = {bytes(k): bytes(v) for k, v in txn.cursor()}
    last = env.info()["last_txnid"]
    env.close()
    return items, last


@pytest.mark.parametrize("layout,extra", [("v1", ["--sr-truth"]), ("v2", []), ("lmdb", []), ("eurosat", [])])
def test_two_workers_write_what_one_writes(tmp_path, capsys, layout, extra):
    """40 patches are three chunks: two spawned workers share them, and every byte is as in-process."""
    for workers in ("1", "2"):
        assert main(["synth", "--out", str(tmp_path / workers), "--patches", "40", "--layout", layout,
                     "--seed", "5", "--workers", workers, *extra]) == 0
    one, two = files_of(tmp_path / "1", skip="BigEarthNet-lmdb"), files_of(tmp_path / "2", skip="BigEarthNet-lmdb")
    assert one.keys() == two.keys() and len(one) >= 40
    assert [name for name in one if one[name] != two[name]] == []
    if layout == "lmdb":
        (items, _), (again, _) = (lmdb_items(tmp_path / w / "BigEarthNet-lmdb") for w in ("1", "2"))
        assert len(items) == 80 and items == again  # S2 and S1 of every patch


def test_a_seed_gives_the_same_archive_and_another_seed_another(tmp_path, capsys):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert main(["synth", "--out", str(tmp_path / name), "--patches", "12", "--layout", "v2",
                     "--seed", seed, "--workers", "1"]) == 0
    a, b, c = (files_of(tmp_path / name) for name in "abc")
    assert a == b and a != c


def test_the_lmdb_is_written_in_batches_of_transactions(tmp_path, monkeypatch):
    """A batch smaller than the archive: several commits (one transaction would hold every patch in
    memory), the same key -> value contents as a single batch."""
    synth_v2.synthesize_v2(tmp_path / "one", 20, seed=2, lmdb=True)
    monkeypatch.setattr(synth_v2, "LMDB_BATCH_BYTES", 1_000_000)  # about three patches
    synth_v2.synthesize_v2(tmp_path / "many", 20, seed=2, lmdb=True, workers=2)
    (whole, commits_whole), (batched, commits_batched) = (lmdb_items(tmp_path / n / synth_v2.LMDB_DIRNAME)
                                                          for n in ("one", "many"))
    assert commits_whole == 1 and commits_batched >= 5
    assert whole == batched and len(whole) == 40


class Watched(Sequence):
    """A task list that notes how far the parent has read into it."""

    def __init__(self, n: int) -> None:
        self.n, self.furthest = n, -1

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        self.furthest = max(self.furthest, i)
        return i


def square_slowly(x: int) -> int:
    time.sleep(0.01 * (x % 3))
    return x * x


def exit_at_once(x: int) -> int:
    os._exit(3)


def test_the_pool_keeps_order_and_a_bounded_window():
    tasks = Watched(40)
    results = ordered_map(square_slowly, tasks, workers=2)
    assert next(results) == 0
    assert tasks.furthest < WINDOW_PER_WORKER * 2  # no more in flight than the window
    assert list(results) == [x * x for x in range(1, 40)]


def test_a_dead_worker_is_one_line():
    with pytest.raises(JeopardaError, match="a synth worker process died") as info:
        list(ordered_map(exit_at_once, list(range(4)), workers=2))
    assert "\n" not in str(info.value)


PEAK = ("import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_rss_mb(out: Path, patches: int) -> float:
    """Peak RSS of `jeoparda synth --layout lmdb` in a fresh process (its own, not the test's)."""
    cmd = [sys.executable, "-m", "jeoparda", "synth", "--layout", "lmdb", "--patches", str(patches),
           "--out", str(out), "--workers", "1"]
    proc = subprocess.run([sys.executable, "-c", PEAK, *cmd], capture_output=True, text=True, check=True)
    return int(proc.stdout.split()[-1]) / 1024


def test_memory_does_not_grow_with_the_patch_count(tmp_path):
    """300 and 1200 patches (about 80 MB and 330 MB of LMDB values, both more than one batch of
    transactions) peak within a small margin: the patches stream to disk and the LMDB commits in
    batches. (Holding them all and writing one transaction grew by some 600 MB from the one to the other.)"""
    small, large = peak_rss_mb(tmp_path / "small", 300), peak_rss_mb(tmp_path / "large", 1200)
    assert large - small < 60, f"peak RSS {small:.0f} MB at 300 patches, {large:.0f} MB at 1200"


def test_bigearthnet_sized_archives_get_more_tiles_not_a_full_grid():
    """590,326 patches (the real archive's count) need more than the four tiles' 40,000 cells:
    every 20,000 patches add four tiles, later acquisitions of the same four."""
    from jeoparda.sources.synth import TILES, pick_cells, place, tile, tile_count

    assert tile_count(1) == tile_count(20_000) == 4 and tile_count(20_001) == 8
    assert tile_count(590_326) == 120
    assert [tile(t) for t in range(4)] == list(TILES)
    later = tile(5)
    assert later[1:] == TILES[1][1:] and later[0] > TILES[1][0] and later[0].startswith("S2B_MSIL2A_2017")
    cells = pick_cells(np.random.default_rng(0), 50_000)
    assert len(np.unique(cells)) == 50_000 and cells.max() < 12 * 10_000
    names = {f"{t[0]}_{row}_{col}" for t, row, col in map(place, cells)}
    assert len(names) == 50_000  # no two patches share a name
