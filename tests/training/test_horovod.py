"""dist.backend=horovod under a real mpirun -np 2 (CI builds Horovod: scripts/install_horovod.sh)."""
import subprocess

import pytest

from tests.convert.test_run_mpi import mpi_env, mpirun
from tests.training.test_train import events, train_cmd

pytestmark = pytest.mark.mpi


def test_horovod_two_ranks(dataset, tmp_path):
    pytest.importorskip("horovod.torch", reason="Horovod not built (make horovod)")
    out = tmp_path / "run"
    cmd = [mpirun(), "-np", "2", "--oversubscribe"] + train_cmd(dataset, out, "train.epochs=2", "dist.backend=horovod")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = events(out)
    assert (log[0]["backend"], log[0]["world_size"]) == ("horovod", 2)
    assert [e["epoch"] for e in log if e["event"] == "epoch"] == [1, 2]
    end = log[-1]
    assert end["status"] == "completed" and len(set(end["replica_sha256"])) == 1 and len(end["replica_sha256"]) == 2


def test_horovod_missing_is_a_clear_error(dataset, tmp_path, monkeypatch):
    import builtins
    import sys

    from jeoparda.cluster.backends import HorovodBackend
    from jeoparda.cluster.env import ClusterEnv
    from jeoparda.config import DistConfig
    from jeoparda.errors import JeopardaError

    real_import = builtins.__import__

    def no_horovod(name, *args, **kwargs):
        if name.startswith("horovod"):
            raise ImportError("No module named 'horovod'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_horovod)
    monkeypatch.delitem(sys.modules, "horovod.torch", raising=False)
    with pytest.raises(JeopardaError, match="make horovod"):
        HorovodBackend(ClusterEnv(), DistConfig(backend="horovod")).init()


def test_channels_last_is_turned_off_for_horovod_which_refuses_it():
    """Horovod's collectives refuse the non-contiguous parameters channels_last makes (checked
    here on CPU, where the layout can be forced); on a GPU the trainer turns the layout off for
    Horovod and says so, and keeps it for DDP."""
    pytest.importorskip("horovod.torch", reason="Horovod not built (make horovod)")
    import sys

    from jeoparda.cluster.backends import DDPBackend, HorovodBackend
    from jeoparda.cluster.env import ClusterEnv
    from jeoparda.config import DistConfig, RunConfig
    from jeoparda.training.setup import use_channels_last

    probe = ("import torch, horovod.torch as hvd\nhvd.init()\n"
             "w = torch.nn.Conv2d(3, 4, 3).weight.detach().to(memory_format=torch.channels_last)\n"
             "hvd.broadcast_(w, root_rank=0)\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "contiguous" in proc.stderr  # in its own process: hvd.init() stays there
    from jeoparda.accelerator import Accelerator, GpuAccelerator
    from tests.standin_cuda import StandInCuda

    gpu = GpuAccelerator(StandInCuda(), 0)  # the decision only; nothing runs on the device
    horovod = HorovodBackend(ClusterEnv(), DistConfig(backend="horovod"), "nccl")
    ddp = DDPBackend(ClusterEnv(), DistConfig(), "nccl")
    on, why = use_channels_last(RunConfig(), gpu, horovod)
    assert not on and "channels_last is off with dist.backend=horovod" in why
    assert use_channels_last(RunConfig(), gpu, ddp) == (True, "")
    assert use_channels_last(RunConfig(), Accelerator(), ddp) == (False, "")
