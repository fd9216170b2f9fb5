"""The staging folder under a shared /tmp: the user's own (mode 0700, checked by every rank), never a
planted link or another user's folder; no staged file leaves it, whatever a shard entry says."""
import hashlib
import os
import stat

import pytest

from jeoparda.cluster.env import ClusterEnv
from jeoparda.errors import JeopardaError
from jeoparda.loaders.staging import stage_dir_for, stage_shards

RANK0, RANK1 = (ClusterEnv(rank=r, world_size=2, local_rank=r, local_size=2) for r in range(2))


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "shards"
    (root / "train").mkdir(parents=True)
    body = os.urandom(500)
    (root / "train" / "shard-00000.h5").write_bytes(body)
    shards = [{"file": "train/shard-00000.h5", "patches": 1, "sha256": hashlib.sha256(body).hexdigest()}]
    return root, {"fingerprint": "a" * 64, "splits": {}}, shards


def test_the_stage_folder_is_per_user_and_private(data, tmp_path):
    root, manifest, shards = data
    dest = stage_shards(root, manifest, shards, str(tmp_path / "stage"), RANK0)
    assert dest.name == f"jeoparda-{os.geteuid()}-{'a' * 16}"
    assert stat.S_IMODE(os.lstat(dest).st_mode) == 0o700
    assert (dest / "train" / "shard-00000.h5").read_bytes() == (root / "train" / "shard-00000.h5").read_bytes()


@pytest.mark.parametrize("env", [RANK0, RANK1], ids=["local rank 0", "waiting rank"])
def test_a_planted_link_at_the_stage_folder_is_refused(data, tmp_path, env):
    root, manifest, shards = data
    victim = tmp_path / "victim"
    victim.mkdir()
    stage = tmp_path / "stage"
    stage.mkdir()
    stage_dir_for(manifest, str(stage)).symlink_to(victim)
    with pytest.raises(JeopardaError, match="is a symbolic link") as err:
        stage_shards(root, manifest, shards, str(stage), env, wait_limit_s=5)
    assert "\n" not in str(err.value)
    assert list(victim.iterdir()) == []  # no shard, no marker, no failure note


def test_a_folder_others_may_write_is_refused(data, tmp_path):
    root, manifest, shards = data
    dest = stage_dir_for(manifest, str(tmp_path / "stage"))
    dest.mkdir(parents=True)
    dest.chmod(0o777)
    with pytest.raises(JeopardaError, match="writable by other users"):
        stage_shards(root, manifest, shards, str(tmp_path / "stage"), RANK0)
    assert list(dest.iterdir()) == []


def test_another_users_folder_is_refused(data, tmp_path, monkeypatch):
    root, manifest, shards = data
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # the folder, made by us, is then someone else's
    dest = stage_dir_for(manifest, str(tmp_path / "stage"))
    dest.mkdir(parents=True, mode=0o700)
    with pytest.raises(JeopardaError, match="belongs to user id"):
        stage_shards(root, manifest, shards, str(tmp_path / "stage"), RANK0)


def _files(folder):
    return sorted(str(p) for p in folder.rglob("*") if not p.is_dir() and not p.name.startswith(".staged-"))


@pytest.mark.parametrize("file", ["../outside.h5", "escape/outside.h5"])
def test_a_shard_entry_leaving_the_data_set_is_never_staged_outside(data, tmp_path, file):
    """Handed a shard entry that leads out of the data set (the manifest reader refuses these too),
    staging reads nothing outside it and writes nothing outside the stage folder."""
    root, manifest, shards = data
    body = b"outside the data set"
    (tmp_path / "outside.h5").write_bytes(body)  # where both entries lead from the data set
    (root / "escape").symlink_to(tmp_path)
    stage = tmp_path / "stage" / "node"
    bad = [dict(shards[0], file=file, sha256=hashlib.sha256(body).hexdigest())]
    before = _files(tmp_path)
    with pytest.raises(JeopardaError, match="shard file") as err:
        stage_shards(root, manifest, bad, str(stage), RANK0)
    assert "\n" not in str(err.value) and file in str(err.value)
    assert _files(tmp_path) == before  # nothing staged (only the failure marker for the other ranks)
