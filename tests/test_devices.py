"""Device decisions that can be checked without a GPU: precision, cuBLAS determinism, random
states, the torch floor."""
import configparser
import os
import sys
from pathlib import Path

import pytest
import torch

from jeoparda.accelerator import Accelerator
from jeoparda.cluster.env import ClusterEnv
from jeoparda.config import RunConfig, TrainConfig
from jeoparda.devices import amp_precision, parse_device, rng_states, set_rng_states
from jeoparda.errors import JeopardaError


@pytest.mark.parametrize("capability,expected", [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"),
                                                 ((9, 0), "bf16")])
def test_auto_precision_follows_the_compute_capability(standin_gpu, capability, expected):
    standin_gpu.boards[0].capability = capability  # V100 7.0, T4 7.5, A100 8.0, H100 9.0
    assert amp_precision("auto", parse_device("cuda:0")) == expected
    assert amp_precision("auto", Accelerator()) == "fp32"
    assert amp_precision("bf16", Accelerator()) == "bf16"  # an explicit choice stays


def test_tf32_convolutions_follow_set_tf32_on_a_gpu_and_never_happen_on_the_cpu(standin_gpu):
    gpu = parse_device("cuda:0")
    assert gpu.tf32_convolutions() is True  # cuDNN's default
    gpu.set_tf32(False)
    assert gpu.tf32_convolutions() is False
    cpu = Accelerator()
    cpu.set_tf32(True)  # a CPU has no TF32: asking for it changes nothing
    assert cpu.tf32_convolutions() is False


def test_deterministic_on_cuda_sets_the_cublas_workspace(standin_gpu, monkeypatch):
    from jeoparda.training.setup import configure_threads

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    gpu = parse_device("cuda")
    try:
        configure_threads(RunConfig(train=TrainConfig(deterministic=True)), ClusterEnv(), gpu)
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # a user's setting is kept
        configure_threads(RunConfig(train=TrainConfig(deterministic=True)), ClusterEnv(), gpu)
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
        configure_threads(RunConfig(), ClusterEnv(), gpu)
        assert torch.backends.cudnn.benchmark  # fixed shapes on a GPU: cuDNN autotunes
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = False


def test_random_states_round_trip_and_old_checkpoints_load():
    states = rng_states(Accelerator())
    first = torch.rand(3)
    set_rng_states(states, Accelerator())
    assert torch.equal(torch.rand(3), first)
    set_rng_states(states["cpu"], Accelerator())  # checkpoints before CUDA states held a bare tensor
    assert torch.equal(torch.rand(3), first)


def test_gpu_random_state_is_saved_and_restored(standin_gpu):
    gpu = parse_device("cuda:1")
    states = rng_states(gpu)
    assert set(states) == {"cpu", "cuda"}
    standin_gpu.set_rng_state(torch.Generator().manual_seed(99).get_state(), 1)  # dropout drew on the GPU
    set_rng_states(states, gpu)
    assert torch.equal(standin_gpu.rng_state(1), states["cuda"])
    set_rng_states(states, Accelerator())  # a CPU run resumed from a GPU checkpoint ignores the GPU state


def test_torch_floor_is_what_the_code_needs():
    """torch.uint16 and torch.amp.GradScaler(device) arrived in 2.3: setup.cfg must not allow less."""
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    requires = [r.strip() for r in cfg["options"]["install_requires"].split("\n") if r.strip().startswith("torch")]
    assert requires == ["torch>=2.3"]
    assert hasattr(torch, "uint16") and torch.amp.GradScaler("cpu", enabled=False) is not None


class Announced(Exception):
    """Raised by the simulated gather at the round a rank cannot complete alone."""


def bind_node(runtime, monkeypatch, visible: list[str], hosts: list[str] | None = None, share=False) -> list:
    """bind_gpu for simulated ranks of one job, each with its own CUDA_VISIBLE_DEVICES: every rank
    announces what it sees, then every rank learns all announcements (as backend.gather_objects)."""
    from jeoparda.devices import bind_gpu

    hosts = hosts or ["n1"] * len(visible)
    envs = [ClusterEnv(rank=r, world_size=len(visible), local_rank=r, local_size=len(visible), hostname=h)
            for r, h in enumerate(hosts)]
    rounds: list[list] = [[], []]

    def run(rank, known):
        calls = []

        def gather(obj):
            calls.append(obj)
            if len(calls) > known:
                rounds[len(calls) - 1].append(obj)
                raise Announced
            return rounds[len(calls) - 1]

        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible[rank])
        try:
            return bind_gpu(envs[rank], gather, share)
        except Announced:
            return None

    for known in (0, 1):  # round by round: what each rank says, once it knows all earlier rounds
        for rank in range(len(visible)):
            run(rank, known)
    return [run(rank, 2) for rank in range(len(visible))]


def physical(runtime, accel):
    return [runtime.uuid_of(b) for b in range(len(runtime.boards))].index(accel.info.uuid)


def test_closest_binding_gives_ranks_sharing_a_socket_different_gpus(standin_gpu, monkeypatch):
    """--gpu-bind=closest on a 2-socket node, tasks placed cyclically over sockets: ranks 0 and 2
    see GPUs 0,1 and ranks 1 and 3 see GPUs 2,3. local_rank % 2 gave ranks 0 and 2 both index 0."""
    from tests.standin_cuda import Board

    standin_gpu.boards = [Board() for _ in range(4)]
    accels = bind_node(standin_gpu, monkeypatch, ["0,1", "2,3", "0,1", "2,3"])
    assert [physical(standin_gpu, a) for a in accels] == [0, 2, 1, 3]
    assert [a.index for a in accels] == [0, 0, 1, 1] and standin_gpu.current == 1


def test_per_task_and_whole_node_binding(standin_gpu, monkeypatch):
    per_task = bind_node(standin_gpu, monkeypatch, ["1", "0"])  # --gpus-per-task=1
    assert [(a.index, physical(standin_gpu, a)) for a in per_task] == [(0, 1), (0, 0)]
    whole = bind_node(standin_gpu, monkeypatch, ["0,1", "0,1"])  # no binding: each sees both
    assert [(a.index, physical(standin_gpu, a)) for a in whole] == [(0, 0), (1, 1)]
    by_uuid = bind_node(standin_gpu, monkeypatch, [standin_gpu.uuid_of(1)])  # CUDA_VISIBLE_DEVICES=GPU-...
    assert physical(standin_gpu, by_uuid[0]) == 1
    two_nodes = bind_node(standin_gpu, monkeypatch, ["0", "0"], hosts=["n1", "n2"])  # same board, other hosts
    assert [a.index for a in two_nodes] == [0, 0]


def test_two_ranks_on_one_gpu_stop_with_one_line(standin_gpu, monkeypatch):
    with pytest.raises(JeopardaError, match=r"ranks 0 and 2 on n1 both got GPU GPU-00000000.*one rank per GPU"):
        bind_node(standin_gpu, monkeypatch, ["0,1", "0,1", "0,1"])
    with pytest.raises(JeopardaError, match="ranks 0 and 1 on n1 both got GPU"):
        bind_node(standin_gpu, monkeypatch, ["0", "0"])  # a binding that hands one GPU to two tasks


def test_device_choices_of_the_tools(standin_gpu, monkeypatch):
    assert parse_device("auto").gpu and parse_device("cpu").kind == "cpu"
    assert parse_device("cuda:1").info.uuid == standin_gpu.uuid_of(1)
    with pytest.raises(JeopardaError, match=r"--device cuda:2: this process sees 2 GPUs \(cuda:0..cuda:1"):
        parse_device("cuda:2")
    with pytest.raises(JeopardaError, match="use auto, cpu, cuda or cuda:N"):
        parse_device("gpu")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU visible
    assert parse_device("auto").kind == "cpu"
    with pytest.raises(JeopardaError, match="--device cuda: no CUDA GPU is visible"):
        parse_device("cuda")


def test_without_a_gpu_every_rank_computes_on_the_cpu(monkeypatch):
    from jeoparda.devices import bind_gpu

    accel = bind_gpu(ClusterEnv(), lambda obj: pytest.fail("no GPU: nothing to gather"))
    assert accel.kind == "cpu" and accel.copier() is None and accel.rng_state() is None
    assert not accel.register_host(torch.zeros(2)) and accel.to_device(torch.ones(1)).device.type == "cpu"


def test_sharing_a_gpu_is_allowed_when_asked(standin_gpu, monkeypatch):
    """dist.share_gpus: a one-GPU machine runs two DDP ranks on its GPU, reducing over gloo."""
    from jeoparda import devices

    shared = bind_node(standin_gpu, monkeypatch, ["0", "0"], share=True)
    assert [physical(standin_gpu, a) for a in shared] == [0, 0]
    assert devices.collectives(share_gpus=True) == "gloo"
    standin_gpu.collectives = "nccl"
    assert devices.collectives() == "nccl"


def test_the_real_cuda_runtime_on_a_machine_without_cuda():
    """What CudaRuntime can say without a GPU it says truthfully; the rest needs a GPU
    (tests/gpu_only_lines.txt) and runs in benchmarks/gpu_check.py."""
    from jeoparda.accelerator import nvml_uuid, pci_bus_id
    from jeoparda.cuda_runtime import CudaRuntime

    real = CudaRuntime()
    if real.is_available():
        pytest.skip("a CUDA device is visible: tests/gpu covers the real runtime")
    assert real.device_count() == 0 and real.tensor_device(1) == torch.device("cuda", 1)
    assert real.collectives == "nccl"
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        real.set_tf32(False)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert real.tf32_convolutions() is False
        real.set_tf32(True)
        assert real.tf32_convolutions() is True
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    raw = bytes(range(16))
    assert nvml_uuid(raw) == "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f"
    assert nvml_uuid("GPU-1234") == "GPU-1234" and nvml_uuid("MIG-5") == "MIG-5"
    assert nvml_uuid("00010203-0405-0607-0809-0a0b0c0d0e0f") == "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f"
    assert pci_bus_id(0, 0x0A, 0) == "00000000:0A:00.0"
    assert repr(parse_device("cpu")) == "Accelerator(cpu)"


def test_gathering_without_a_backend(standin_gpu, monkeypatch):
    """bench loader and other backend-less tools: one process gathers its own; ranks an MPI launcher
    started gather over MPI; elsewhere (torchrun, srun --mpi=none, singleton MPI) there is no channel,
    and only a rank that sees one GPU can be bound; a rank that sees several says so in one line."""
    import types

    from jeoparda.devices import bind_gpu, launcher_gather

    assert launcher_gather(ClusterEnv())("x") == ["x"]
    world = types.SimpleNamespace(allgather=lambda obj: [obj, obj], Get_size=lambda: 2)
    monkeypatch.setitem(sys.modules, "mpi4py", types.SimpleNamespace(MPI=types.SimpleNamespace(COMM_WORLD=world)))
    assert launcher_gather(ClusterEnv(world_size=2))("x") == ["x", "x"]
    world.Get_size = lambda: 1  # torchrun ranks importing mpi4py: each a singleton
    assert launcher_gather(ClusterEnv(world_size=2)) is None
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    assert launcher_gather(ClusterEnv(world_size=2)) is None
    env = ClusterEnv(rank=1, world_size=2, local_rank=1, local_size=2, hostname="n1")
    with pytest.raises(JeopardaError, match="rank 1 sees 2 GPUs and cannot tell which is its own"):
        bind_gpu(env, None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # per-task binding: nothing to choose
    assert bind_gpu(env, None).info.uuid == standin_gpu.uuid_of(1)
    with pytest.raises(JeopardaError, match="1 of 2 ranks answered"):
        bind_gpu(env, lambda obj: [obj])


def test_cpu_name_without_proc_cpuinfo(monkeypatch):
    import builtins

    from jeoparda.accelerator import cpu_model

    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path) == "/proc/cpuinfo":
            raise OSError("no /proc")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    assert cpu_model() and cpu_model() == Accelerator().name


def test_taking_cudas_error_without_a_loaded_runtime(monkeypatch):
    """No libcudart in this process (a CPU build, or one linked statically): the error is surfaced
    by a synchronisation instead of by the next kernel."""
    from jeoparda.cuda_runtime import CudaRuntime

    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: synced.append(a))
    CudaRuntime().take_error()
    assert synced == [()]


def test_a_refused_unregistration_hands_over_cudas_error(standin_gpu):
    gpu = parse_device("cuda")
    ring = torch.zeros(8)
    assert gpu.register_host(ring)
    gpu.unregister_host(ring)
    gpu.unregister_host(ring)  # not registered any more: CUDA refuses and keeps the error
    assert standin_gpu.pending_error == 0
