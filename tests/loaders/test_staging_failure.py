"""Node-local staging when local rank 0 fails: the node's other ranks stop at once with its reason
instead of polling for the done marker until the wait limit; an earlier run's failure does not stop
a fresh attempt. Two ranks of one node run as threads of this process, sharing one stage folder.

No wall-clock bound: a stalled CI machine can pause both threads for many seconds. "At once" is
shown by the waiting rank's error instead: it carries local rank 0's reason, which a rank that
had waited until its limit could not know (that error says "did not finish staging within")."""
import errno
import hashlib
import os
import threading
import time

import pytest

from jeoparda.cluster.env import ClusterEnv
from jeoparda.errors import JeopardaError
from jeoparda.loaders import staging
from jeoparda.loaders.staging import stage_dir_for, stage_shards

LIMIT_S = 120.0  # the waiting rank's limit: a waiter that misses the failure fails the test by its message
JOIN_S = LIMIT_S + 60  # a rank still alive after this is stuck beyond its own limit
RANKS = [ClusterEnv(rank=r, world_size=2, local_rank=r, local_size=2, hostname="node07") for r in range(2)]


@pytest.fixture
def data(tmp_path):
    """Two tiny 'shards' (staging only copies and hashes them) and their manifest."""
    root = tmp_path / "shards"
    (root / "train").mkdir(parents=True)
    shards = []
    for i in range(2):
        body = os.urandom(1000 + i)
        (root / "train" / f"shard-0000{i}.h5").write_bytes(body)
        shards.append({"file": f"train/shard-0000{i}.h5", "patches": 1, "sha256": hashlib.sha256(body).hexdigest()})
    return root, {"fingerprint": "f" * 64, "splits": {}}, shards


class Rank(threading.Thread):
    """One rank of the node staging ``data``: keeps the folder it got or the error it raised."""

    def __init__(self, env, data, stage):
        super().__init__(daemon=True)  # a rank still polling must not keep the test process alive
        self.env, self.data, self.stage = env, data, stage
        self.result = self.error = None

    def run(self):
        root, manifest, shards = self.data
        try:
            self.result = stage_shards(root, manifest, shards, str(self.stage), self.env, wait_limit_s=LIMIT_S)
        except Exception as exc:
            self.error = exc


def node(data, stage, waiter_first=True):
    """Run local ranks 1 and 0 of one node; return them once both ended."""
    waiter, stager = Rank(RANKS[1], data, stage), Rank(RANKS[0], data, stage)
    first, second = (waiter, stager) if waiter_first else (stager, waiter)
    first.start()
    time.sleep(0.5)  # the first one is well under way (polling, or failed) when the second starts
    second.start()
    for rank in (first, second):
        rank.join(JOIN_S)
    assert not waiter.is_alive(), "local rank 1 still waits beyond its limit"
    assert "did not finish staging within" not in str(waiter.error), "local rank 1 waited until its limit"
    return waiter, stager


def test_a_checksum_mismatch_stops_the_waiting_rank_at_once(data, tmp_path):
    data[2][1]["sha256"] = "0" * 64  # the manifest disagrees with shard 1
    waiter, stager = node(data, tmp_path / "local")
    assert isinstance(stager.error, JeopardaError) and "checksum mismatch after staging" in str(stager.error)
    assert isinstance(waiter.error, JeopardaError)
    message = str(waiter.error)
    assert "\n" not in message
    dest = stage_dir_for(data[1], str(tmp_path / "local"))
    assert message.startswith(f"{dest}: local rank 0 of node 0 (node07) failed to stage the shards: ")
    assert "shard-00001.h5: checksum mismatch after staging" in message


def test_a_full_disk_stops_the_waiting_rank_with_the_reason(data, tmp_path, monkeypatch):
    def full(src, dest):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dest))

    monkeypatch.setattr(staging.shutil, "copyfile", full)
    waiter, stager = node(data, tmp_path / "local")
    assert isinstance(stager.error, JeopardaError) and "No space left on device" in str(stager.error)
    assert isinstance(waiter.error, JeopardaError)
    assert "failed to stage the shards: " in str(waiter.error) and "No space left on device" in str(waiter.error)
    assert "shard-00000.h5.tmp-" in str(waiter.error)  # the file it could not write


def test_a_rank_that_starts_waiting_after_the_failure_sees_it(data, tmp_path):
    """Ranks start at different speeds: a failure written before this rank looked still counts."""
    data[2][0]["sha256"] = "0" * 64
    waiter, stager = node(data, tmp_path / "local", waiter_first=False)
    assert stager.error and isinstance(waiter.error, JeopardaError) and "checksum mismatch" in str(waiter.error)


def test_an_earlier_runs_failure_does_not_stop_a_fresh_attempt(data, tmp_path):
    stage = tmp_path / "local"
    bad = [dict(data[2][0], sha256="0" * 64), data[2][1]]
    waiter, stager = node((data[0], data[1], bad), stage)
    assert stager.error and waiter.error
    dest = stage_dir_for(data[1], str(stage))
    failed = list(dest.glob(".staged-*.failed"))
    assert len(failed) == 1
    # the earlier run ended an hour ago; the shards were fixed since: its marker must not count,
    # not even for a rank that looks before local rank 0 has removed it
    an_hour_ago = time.time() - 3600
    os.utime(failed[0], (an_hour_ago, an_hour_ago))
    waiter, stager = node(data, stage, waiter_first=True)
    assert (waiter.error, stager.error) == (None, None)
    assert waiter.result == stager.result == dest
    assert not failed[0].exists() and list(dest.glob(".staged-*")) == [failed[0].with_suffix("")]
    assert sorted(p.name for p in (dest / "train").iterdir()) == ["shard-00000.h5", "shard-00001.h5"]


def test_a_stage_folder_that_cannot_be_made_fails_on_local_rank_0(data, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")  # the stage folder's parent is a file: mkdir fails even as root
    root, manifest, shards = data
    with pytest.raises(JeopardaError, match="not-a-folder.*staging failed"):
        stage_shards(root, manifest, shards, str(blocker), RANKS[0])


def test_a_resubmitted_job_never_reads_the_earlier_jobs_failure(data, tmp_path):
    """Job 41 failed a moment ago (within the stale window); job 42 on the same node stages anew."""
    from dataclasses import replace

    stage = tmp_path / "local"
    bad = [dict(data[2][0], sha256="0" * 64), data[2][1]]
    first = [replace(r, job_id="41") for r in RANKS]
    waiter, stager = Rank(first[1], (data[0], data[1], bad), stage), Rank(first[0], (data[0], data[1], bad), stage)
    for rank in (stager, waiter):
        rank.start()
        rank.join(JOIN_S)
    assert stager.error and waiter.error
    dest = stage_dir_for(data[1], str(stage))
    assert [p.name.endswith(".job-41.failed") for p in dest.glob(".staged-*failed")] == [True]
    again = [replace(r, job_id="42") for r in RANKS]
    waiter, stager = Rank(again[1], data, stage), Rank(again[0], data, stage)
    waiter.start()
    time.sleep(0.5)  # the waiter looks before local rank 0 has cleared anything
    stager.start()
    for rank in (waiter, stager):
        rank.join(JOIN_S)
    assert (waiter.error, stager.error) == (None, None)
    assert not list(dest.glob(".staged-*failed"))
