"""Learned super-resolution on GPUs, on the stand-in accelerator (tests/standin_cuda.py): every
conversion process of a node takes its own GPU, TF32 is off, the manifest names the GPU model, and
``sr train`` binds its rank's GPU."""
import json

import pytest

from jeoparda.cluster.slots import set_slot
from jeoparda.errors import JeopardaError
from jeoparda.superres import apply
from tests.conftest import convert
from tests.convert.test_run import same_tree


@pytest.fixture(autouse=True)
def fresh_models(monkeypatch):
    monkeypatch.setattr(apply, "_LOADED", {})
    yield
    set_slot(0)


def test_conversion_processes_of_a_node_take_the_gpus_in_turn(standin_gpu):
    """Local rank x workers + worker: 2 ranks of 2 workers on a 2-GPU node use GPUs 0, 1, 0, 1."""
    chosen = []
    for number in range(4):
        set_slot(number)
        chosen.append(apply.process_accelerator("cuda").index)
    assert chosen == [0, 1, 0, 1]
    set_slot(3)
    assert apply.process_accelerator("cuda:0").index == 0  # an explicit GPU stays
    assert apply.process_accelerator("cpu").kind == "cpu"


def test_learned_conversion_on_a_gpu_records_the_model_and_runs_without_tf32(
        standin_gpu, archive_master, sr_model, tmp_path):
    on_gpu = convert(archive_master, tmp_path / "gpu", resample="learned", sr_model=sr_model, sr_device="auto")
    assert on_gpu["sr_model"]["device"] == "cuda"
    assert on_gpu["sr_model"]["device_name"] == "NVIDIA H100 80GB HBM3"
    assert standin_gpu.tf32 is False  # TF32 rounding differs between GPU generations
    on_cpu = convert(archive_master, tmp_path / "cpu", resample="learned", sr_model=sr_model, sr_device="cpu")
    assert on_cpu["sr_model"]["device_name"] == "cpu" and on_cpu["fingerprint"] != on_gpu["fingerprint"]
    # the stand-in computes on the CPU: the same bytes prove the GPU path moves data faithfully
    for split in ("train", "val", "test"):
        assert same_tree(tmp_path / "gpu" / split, tmp_path / "cpu" / split)


def test_sr_device_refusals_are_one_line(standin_gpu, archive_master, sr_model, tmp_path, monkeypatch):
    with pytest.raises(JeopardaError, match="--device cuda:7: this process sees 2 GPUs"):
        convert(archive_master, tmp_path / "x", resample="learned", sr_model=sr_model, sr_device="cuda:7")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(JeopardaError, match="--device cuda: no CUDA GPU is visible"):
        convert(archive_master, tmp_path / "y", resample="learned", sr_model=sr_model, sr_device="cuda")


def test_sr_train_binds_the_ranks_gpu(standin_gpu, archive_master, tmp_path):
    from jeoparda.superres.train import SRTrainOptions, train_sr

    opts = SRTrainOptions(data=archive_master, out=tmp_path / "sr.pt", run_dir=tmp_path / "run", steps=4,
                          patches=8, eval_patches=2, features=4, blocks=1, backend="single", log_every=2)
    train_sr(opts, say=lambda line: None)
    start = json.loads((tmp_path / "run" / "results.jsonl").read_text().splitlines()[0])
    assert start["device"] == "cuda" and start["device_name"] == "NVIDIA H100 80GB HBM3"
    assert start["gpus_per_node"] == 1 and standin_gpu.current == 0
    assert any(u["memory"] == "pinned" for u in standin_gpu.uploads)  # windows crossed pinned, non-blocking
