"""Every GPU path end to end, for a machine with CUDA (the `device` tool's lent GPU; CI has none).

Run there with `pytest -m gpu tests/gpu -v`. Without CUDA every test here is skipped with the
reason; the CPU-checkable part of each item lives beside the code it tests.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from tests.training.test_train import events, train_cmd

NO_GPU = "needs a CUDA GPU (tests/gpu runs where one is lent)"
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)]

GPU = ["data.workers=2", "train.batch_size=8", "train.max_steps=4", "train.test=true"]


def run(cmd, **env):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_single_gpu_run_auto_precision_channels_last(dataset, tmp_path):
    """bf16 on compute capability >= 8 (fp16 + GradScaler below), channels_last, cudnn.benchmark,
    the GPU named in the log, one GPU per local rank."""
    out = tmp_path / "run"
    run(train_cmd(dataset, out, "train.epochs=2", "dist.backend=single", "train.precision=auto", *GPU))
    start, end = events(out)[0], events(out)[-1]
    major = torch.cuda.get_device_capability(0)[0]
    assert start["device"] == "cuda" and start["gpus_per_node"] == 1 and start["precision"] == (
        "bf16" if major >= 8 else "fp16")
    assert torch.cuda.get_device_name(0) in start["device_name"] and end["status"] == "completed"


def test_deterministic_cuda_run_needs_no_user_setting(dataset, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    proc = subprocess.run(train_cmd(dataset, tmp_path / "run", "dist.backend=single", "train.deterministic=true",
                                    *GPU), capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_resume_on_gpu_with_dropout_equals_uninterrupted(dataset, tmp_path):
    """BWMS has dropout: the CUDA random state must be in the checkpoint."""
    extra = ("train.epochs=2", "dist.backend=single", "train.test=false", "data.workers=0", "train.batch_size=8")
    run(train_cmd(dataset, tmp_path / "ref", *extra, model="bwms"))
    run(train_cmd(dataset, tmp_path / "cut", "train.epochs=1", *extra[1:], model="bwms"))
    run(train_cmd(dataset, tmp_path / "cut", *extra, model="bwms") + ["--resume"])
    assert events(tmp_path / "cut")[-1]["replica_sha256"] == events(tmp_path / "ref")[-1]["replica_sha256"]


def test_torch_and_dali_gpu_loaders_agree(dataset):
    pytest.importorskip("nvidia.dali")
    from jeoparda.cluster.env import ClusterEnv
    from jeoparda.devices import parse_device
    from jeoparda.loaders.build import build_loader
    from tests.loaders.test_loader import batches, cfg

    gpu = parse_device("cuda:0")
    device = gpu.device
    t = batches(build_loader(cfg(dataset, workers=1), ClusterEnv(), "val", gpu))
    d = batches(build_loader(cfg(dataset, "dali", workers=1), ClusterEnv(), "val", gpu))
    for x, y in zip(t, d, strict=True):
        assert x["image"].device == y["image"].device == device and x["label"].device == device
        assert torch.allclose(x["image"], y["image"], atol=1e-5) and torch.equal(x["label"], y["label"])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_ddp_over_nccl_two_gpus(dataset, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    out = tmp_path / "run"
    run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "jeoparda", "train"]
        + train_cmd(dataset, out, "train.epochs=1", "dist.backend=ddp", *GPU)[4:])
    start, end = events(out)[0], events(out)[-1]
    assert start["gpus_per_node"] == 2 and len(set(end["replica_sha256"])) == 1


def test_bench_loader_and_allreduce_on_the_gpu(dataset):
    proc = run([sys.executable, "-m", "jeoparda", "bench", "loader", "--data", str(dataset), "--steps", "5",
                "--workers", "1", "--json"])
    assert json.loads(proc.stdout.strip().splitlines()[-1])["device"].startswith("cuda")
    proc = run([sys.executable, "-m", "jeoparda", "bench", "allreduce", "--max-bytes", "1048576", "--iters", "3",
                "--json"])
    assert json.loads(proc.stdout.strip().splitlines()[-1])["device"] == "cuda"


def test_horovod_was_built_with_nccl():
    hvd = pytest.importorskip("horovod.torch", reason="Horovod not built")
    assert hvd.nccl_built(), "rebuild with scripts/install_horovod.sh on a machine with CUDA"


def test_energy_is_measured_on_the_gpu(dataset, tmp_path):
    pytest.importorskip("pynvml", reason="pip install 'jeoparda[energy]'")
    out = tmp_path / "run"
    run(train_cmd(dataset, out, "train.epochs=1", "dist.backend=single", *GPU))
    epoch = [e for e in events(out) if e["event"] == "epoch"][0]
    assert "gpu" in epoch["energy_sources"] and epoch["energy_j"] > 0 and epoch["energy_per_image_j"] > 0
    assert '"key": "energy_j"' in (out / "mllog.txt").read_text()


def test_learned_conversion_on_the_gpu(archive_master, sr_model, tmp_path):
    """--device cuda: deterministic from one run to the next, 1 or 2 workers, and within a few digital
    numbers of the CPU's output (different kernels, same networks)."""
    import numpy as np

    from tests.conftest import convert
    from tests.convert.test_learned import _images
    from tests.convert.test_run import same_tree

    for name, workers in (("a", 1), ("b", 2)):
        convert(archive_master, tmp_path / name, resample="learned", sr_model=sr_model, sr_device="cuda",
                workers=workers)
    assert same_tree(tmp_path / "a", tmp_path / "b")
    convert(archive_master, tmp_path / "cpu", resample="learned", sr_model=sr_model, sr_device="cpu")
    diff = np.abs(_images(tmp_path / "a").astype(int) - _images(tmp_path / "cpu"))
    assert diff.max() <= 4


def test_sr_train_on_the_gpu(archive_master, tmp_path):
    out = tmp_path / "sr.pt"
    run([sys.executable, "-m", "jeoparda", "sr", "train", "--data", str(archive_master), "--out", str(out),
         "--run-dir", str(tmp_path / "run"), "--steps", "50", "--backend", "single"])
    start = json.loads((tmp_path / "run" / "results.jsonl").read_text().splitlines()[0])
    assert start["device"] == "cuda" and start["gpus_per_node"] >= 1


@pytest.mark.parametrize("workers", [0, 2])
def test_gpu_input_path_equals_the_cpu_path(dataset, workers):
    """The real CUDA runtime under the device path the stand-in proves in CI: the registered ring,
    side-stream uploads, flips and turns on the GPU; batches equal the CPU's over two epochs."""
    from jeoparda.accelerator import Accelerator
    from jeoparda.cluster.env import ClusterEnv
    from jeoparda.config import AugmentConfig
    from jeoparda.devices import parse_device
    from jeoparda.loaders.build import build_loader
    from tests.loaders.test_device_path import epochs
    from tests.loaders.test_loader import cfg

    config = cfg(dataset, workers=workers, augment=AugmentConfig(flip=True, rot90=True))
    host = epochs(build_loader(config, ClusterEnv(), "train", Accelerator()), 2)
    device = epochs(build_loader(config, ClusterEnv(), "train", parse_device("cuda")), 2)
    for a_epoch, b_epoch in zip(host, device, strict=True):
        for a, b in zip(a_epoch, b_epoch, strict=True):
            assert b["image"].is_cuda and torch.allclose(a["image"], b["image"].cpu(), atol=1e-6)
            assert torch.equal(a["label"], b["label"].cpu()) and torch.equal(a["mask"], b["mask"].cpu())


def test_real_runtime_identity_and_host_registration():
    from jeoparda.cuda_runtime import CudaRuntime

    real = CudaRuntime()
    info = real.info(0)
    assert info.uuid.startswith(("GPU-", "MIG-")) and info.total_memory > 0 and info.capability >= (7, 0)
    try:
        import pynvml

        pynvml.nvmlInit()
        assert pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByUUID(info.uuid)) in (info.uuid, info.uuid.encode())
    except ImportError:
        pass
    ring = torch.arange(4096, dtype=torch.int32).share_memory_()
    assert real.register_host(ring) == 0
    stream = real.new_stream(0)
    with real.use_stream(stream):
        dev = real.upload(ring, torch.device("cuda", 0))
    stream.synchronize()
    assert torch.equal(dev.cpu(), ring)
    assert real.register_host(ring) != 0  # registered already: CUDA refuses and remembers the error
    real.take_error()
    assert torch.equal((torch.ones(4, device="cuda") + 1).cpu(), torch.full((4,), 2.0))  # no stale error raised
    assert real.unregister_host(ring) == 0


def test_deterministic_fcn_training_on_cuda(reben_dataset, tmp_path):
    """train.deterministic=true with an FCN: no kernel CUDA refuses in deterministic mode."""
    out = tmp_path / "run"
    run(train_cmd(reben_dataset, out, "train.epochs=1", "dist.backend=single", "train.deterministic=true",
                  "train.task=segmentation", "train.max_steps=2", "data.workers=0", model="fcn_resnet18"))
    assert events(out)[-1]["status"] == "completed"
