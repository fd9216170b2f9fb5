"""jeoparda train under a real mpirun -np 2 (and torchrun): replicas in sync, metrics over all ranks; a
rank's death: tests/faults/test_process_death.py."""
import os
import subprocess
import sys

import pytest

from jeoparda.cluster.backends import Backend
from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import DataConfig, DistConfig, RunConfig, TrainConfig
from jeoparda.loaders.build import build_loader
from jeoparda.models import create_model
from jeoparda.tasks.multilabel import MultiLabel
from jeoparda.training import checkpoint
from jeoparda.training.evaluate import evaluate
from tests.convert.test_run_mpi import mpi_env, mpirun
from tests.training.test_train import events, train_cmd

pytestmark = pytest.mark.mpi


def test_two_ranks_stay_in_sync_and_metrics_cover_all_ranks(dataset, tmp_path):
    out = tmp_path / "run"
    cmd = [mpirun(), "-np", "2", "--oversubscribe"] + train_cmd(dataset, out, "train.epochs=1", "dist.backend=ddp")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("epoch 1/1") == 1  # rank 0 speaks
    log = events(out)
    assert log[0]["world_size"] == 2 and log[1]["train_images"] == 32  # 4 steps x 4 x 2 ranks
    end = log[-1]
    assert len(end["replica_sha256"]) == 2 and len(set(end["replica_sha256"])) == 1
    # the test metrics of the 2-rank run equal one process scoring the same weights
    state = checkpoint.load(checkpoint.newest(out))
    model = create_model("resnet18")
    model.load_state_dict(state["model"])
    cfg = RunConfig(data=DataConfig(path=str(dataset), workers=0), train=TrainConfig(batch_size=4))
    backend = Backend(ClusterEnv(), DistConfig())
    single = evaluate(model, build_loader(cfg, ClusterEnv(), "test"), backend,
                      MultiLabel(0.5), {"device_type": "cpu", "enabled": False})
    assert single["samples"] == end["test"]["samples"] == 7
    for key, value in single.items():
        assert end["test"][key] == pytest.approx(value, abs=1e-9), key


def test_torchrun_two_processes(dataset, tmp_path):
    import shutil

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not found")
    out = tmp_path / "run"
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "jeoparda", "train"] + \
        train_cmd(dataset, out, "train.epochs=1", "train.max_steps=2", "dist.backend=ddp")[4:]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    start, end = events(out)[0], events(out)[-1]
    assert (start["world_size"], start["backend"]) == (2, "ddp") and len(set(end["replica_sha256"])) == 1
