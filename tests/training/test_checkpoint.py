"""Checkpoint files: a full disk is one line and leaves no partial file, a killed write's temp file
is swept, links in the run folder are refused, another run's checkpoint is named as such."""
import contextlib
import errno
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import torch

from jeoparda.errors import JeopardaError
from jeoparda.safe_files import UnsafePathError
from jeoparda.training import checkpoint

BIG = {"w": torch.zeros(1_000_000)}  # 4 MB: more than the small file system holds


@contextlib.contextmanager
def small_disk(where: Path, monkeypatch):
    """A 2 MB tmpfs at ``where`` (root), else a stand-in: torch.save writes 1 MB, then ENOSPC."""
    where.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
                                                   capture_output=True).returncode == 0
    if not mounted:
        def full(obj, f, *a, **k):
            f.write(b"\0" * 1_000_000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(torch, "save", full)
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(where)], check=True)


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_partial_file(tmp_path, monkeypatch):
    run = tmp_path / "disk" / "run"
    with small_disk(tmp_path / "disk", monkeypatch):
        with pytest.raises(JeopardaError) as caught:
            checkpoint.save(run, BIG, 1, 0, keep=2)
        message = str(caught.value)
        assert message.startswith(f"{run / 'checkpoints' / 'checkpoint-e0001-s000000.pt'}: cannot write")
        assert "No space left on device" in message and "\n" not in message
        assert list((run / "checkpoints").iterdir()) == []  # the partial temp file is gone
        assert checkpoint.newest(run) is None


def test_a_killed_writes_temp_file_is_swept_by_the_next_save(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = folder / f".checkpoint-e0001-s000004.pt.tmp-{dead.pid}"
    left.write_bytes(b"\0" * 1000)
    path = checkpoint.save(tmp_path / "run", {"w": torch.ones(2)}, 1, 5, keep=2)
    assert sorted(p.name for p in folder.iterdir()) == [path.name]
    assert torch.equal(checkpoint.load(path)["w"], torch.ones(2))


def test_links_planted_in_the_run_folder_are_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").symlink_to(victim)
    with pytest.raises(UnsafePathError, match="is a symbolic link"):
        checkpoint.save(run, {"w": torch.ones(2)}, 1, 0, keep=2)
    with pytest.raises(UnsafePathError, match="is a symbolic link"):
        checkpoint.newest(run)
    assert list(victim.iterdir()) == []
    # a link at a checkpoint's name: the resume refuses to read it; a save replaces the link itself
    (run / "checkpoints").unlink()
    (run / "checkpoints").mkdir()
    target = victim / f"elsewhere-{uuid.uuid4().hex}.pt"
    torch.save({"w": torch.zeros(2)}, target)
    (run / "checkpoints" / "checkpoint-e0009-s000000.pt").symlink_to(target)
    with pytest.raises(UnsafePathError, match="checkpoint-e0009-s000000.pt: is a symbolic link"):
        checkpoint.newest(run)
    checkpoint.save(run, {"w": torch.ones(2)}, 9, 0, keep=2)
    assert not (run / "checkpoints" / "checkpoint-e0009-s000000.pt").is_symlink()
    assert torch.equal(torch.load(target)["w"], torch.zeros(2))  # the target is untouched


def test_another_runs_checkpoint_is_named_by_what_differs():
    saved = {"world_size": 2, "model": "resnet18", "optimizer": "adam", "global_batch": 64, "dataset": "eurosat"}
    assert checkpoint.mismatch(saved, dict(saved)) is None
    now = {**saved, "world_size": 1, "global_batch": 32, "dataset": "bigearthnet-v2"}
    assert checkpoint.mismatch(saved, now) == ("world size 2 in the checkpoint, 1 now; global batch 64 in the "
                                               "checkpoint, 32 now; data set eurosat in the checkpoint, "
                                               "bigearthnet-v2 now")
    # a checkpoint written before checkpoints recorded what they were: from its configuration
    old = {"world_size": 2, "config": {"model": "bwms", "train": {"optimizer": "sgd", "batch_size": 16}}}
    assert checkpoint.identity(old) == {"world_size": 2, "model": "bwms", "optimizer": "sgd", "global_batch": 32}


def test_a_malformed_checkpoint_is_one_line_on_resume(tmp_path):
    """--resume loads model, optimiser, schedule and scaler: a checkpoint lacking one, holding one
    of another shape, or not a dictionary at all is one line naming the file, not a traceback."""
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    parts = {"model": model, "optimizer": optimizer}
    path = tmp_path / "checkpoint-e0001-s000000.pt"
    good = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 1, "step": 0, "rng": []}
    assert checkpoint.apply_state(path, good, parts) == (1, 0)
    assert checkpoint.identity([1, 2]) == {}  # not a dictionary: nothing to compare, then refused below
    broken = [
        ({k: v for k, v in good.items() if k != "optimizer"}, "lacks optimizer"),
        ({**good, "model": torch.nn.Linear(4, 2).state_dict()}, "size mismatch"),
        ({**good, "epoch": "one"}, "one"),
        ([good], "not a dictionary"),
    ]
    for state, why in broken:
        with pytest.raises(JeopardaError, match=rf"{path.name}: not a checkpoint this run can resume .*{why}"):
            checkpoint.apply_state(path, state, parts)


def test_a_preemption_checkpoint_leaves_the_live_model_alone():
    """The saved copy has averaged buffers; the model goes on training with its own."""
    from jeoparda.cluster.backends import Backend

    class Halving(Backend):  # two ranks whose other one holds zeros: the average is half
        world_size = 2

        def all_reduce(self, tensor, op="sum"):
            return tensor

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    model[1].running_mean.fill_(4.0)
    model[1].register_buffer("scratch", torch.ones(2), persistent=False)  # not saved, not averaged
    saved = checkpoint.averaged_state(model, Halving.__new__(Halving))
    assert torch.equal(saved["1.running_mean"], torch.full((2,), 2.0))
    assert torch.equal(model[1].running_mean, torch.full((2,), 4.0)) and "1.scratch" not in saved
    assert saved["0.weight"].data_ptr() == model[0].weight.data_ptr()  # parameters are not copied
