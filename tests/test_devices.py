"""Device decisions that can be checked without a GPU: precision, cuBLAS determinism, random
states, the torch floor."""
import configparser
import os
from pathlib import Path

import pytest
import torch

from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import RunConfig, TrainConfig
from jeoparda.devices import amp_precision, rng_states, set_rng_states


@pytest.mark.parametrize("capability,expected", [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"),
                                                 ((9, 0), "bf16")])
def test_auto_precision_follows_the_compute_capability(capability, expected):
    assert amp_precision("auto", torch.device("cuda", 0), capability) == expected  # V100 7.0, A100 8.0, H100 9.0
    assert amp_precision("auto", torch.device("cpu")) == "fp32"
    assert amp_precision("bf16", torch.device("cpu")) == "bf16"  # an explicit choice stays


def test_deterministic_on_cuda_sets_the_cublas_workspace(monkeypatch):
    from jeoparda.training.loop import configure_threads

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        configure_threads(RunConfig(train=TrainConfig(deterministic=True)), ClusterEnv(), torch.device("cuda", 0))
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # a user's setting is kept
        configure_threads(RunConfig(train=TrainConfig(deterministic=True)), ClusterEnv(), torch.device("cuda", 0))
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    finally:
        torch.use_deterministic_algorithms(False)


def test_random_states_round_trip_and_old_checkpoints_load():
    states = rng_states(torch.device("cpu"))
    first = torch.rand(3)
    set_rng_states(states, torch.device("cpu"))
    assert torch.equal(torch.rand(3), first)
    set_rng_states(states["cpu"], torch.device("cpu"))  # checkpoints before CUDA states held a bare tensor
    assert torch.equal(torch.rand(3), first)


def test_torch_floor_is_what_the_code_needs():
    """torch.uint16 and torch.amp.GradScaler(device) arrived in 2.3: setup.cfg must not allow less."""
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    requires = [r.strip() for r in cfg["options"]["install_requires"].split("\n") if r.strip().startswith("torch")]
    assert requires == ["torch>=2.3"]
    assert hasattr(torch, "uint16") and torch.amp.GradScaler("cpu", enabled=False) is not None
