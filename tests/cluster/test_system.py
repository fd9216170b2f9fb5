"""The system's name (fall-back order, host name rule, unsafe names) and description (a fake /sys,
/proc and root tree: InfiniBand, mounts, containers; broken trees never raise)."""
import dataclasses
import os
from pathlib import Path

import pytest

from jeoparda.accelerator import GpuInfo, cpu_model
from jeoparda.cluster.env import detect
from jeoparda.cluster.system import container, describe, filesystem, host_system, identify, infiniband, system_name
from jeoparda.errors import JeopardaError

CONTRACT = {"gpu_model", "gpus_per_node", "gpu_memory_gib", "cpu_model", "cpu_cores", "nodes", "interconnect",
            "filesystem", "container"}
GPU = GpuInfo(index=0, name="NVIDIA H100 80GB HBM3", capability=(9, 0), total_memory=80 * 2**30 + 2**28,
              uuid="GPU-0", pci_bus_id="00000000:0A:00.0")


def env_of(environ, hostname="node07.cluster.example"):
    return dataclasses.replace(detect(environ), hostname=hostname)


@pytest.mark.parametrize("cfg, environ, expected", [
    ("alpha", {"JEOPARDA_SYSTEM": "beta", "SLURM_CLUSTER_NAME": "gamma"}, ("alpha", "system.name")),
    ("", {"JEOPARDA_SYSTEM": "beta", "SLURM_CLUSTER_NAME": "gamma"}, ("beta", "JEOPARDA_SYSTEM")),
    ("", {"JEOPARDA_SYSTEM": "", "SLURM_CLUSTER_NAME": "gamma"}, ("gamma", "SLURM_CLUSTER_NAME")),
    ("", {}, ("node", "hostname")),
])
def test_name_falls_back_in_order(cfg, environ, expected):
    assert system_name(cfg, env_of(environ)) == expected


@pytest.mark.parametrize("hostname, expected", [
    ("node07", "node"), ("jwb0123.juwels", "jwb"), ("nid001234", "nid"), ("gpu-a100-03", "gpu-a100"),
    ("Login2.Example.org", "login"), ("gpu_07", "gpu"), ("1234", "1234"), ("fileserver", "fileserver"),
])
def test_host_name_without_its_node_number(hostname, expected):
    assert host_system(hostname) == expected


@pytest.mark.parametrize("var, value, shown", [
    ("JEOPARDA_SYSTEM", "my cluster/a", "' ' '/'"),
    ("SLURM_CLUSTER_NAME", "café", "'é'"),
    ("JEOPARDA_SYSTEM", "-alpha", "starts with '-'"),
])
def test_an_unsafe_name_from_a_variable_is_one_line_naming_it(var, value, shown):
    with pytest.raises(JeopardaError) as info:
        system_name("", env_of({var: value}))
    message = str(info.value)
    assert var in message and shown in message and "\n" not in message


def fake_tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    """/sys with two InfiniBand devices, /proc/self/mounts with nested mounts, an empty root."""
    sys_root, proc, root = tmp_path / "sys", tmp_path / "proc", tmp_path / "root"
    for device, rate, state, layer in (("mlx5_0", "200 Gb/sec (4X HDR)", "4: ACTIVE", "InfiniBand"),
                                       ("mlx5_1", "100 Gb/sec (4X EDR)", "1: DOWN", "Ethernet")):
        port = sys_root / "class" / "infiniband" / device / "ports" / "1"
        port.mkdir(parents=True)
        (port / "rate").write_text(rate + "\n")
        (port / "state").write_text(state + "\n")
        (port / "link_layer").write_text(layer + "\n")
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mounts").write_text(
        "overlay / overlay rw 0 0\n"
        "scratch /p/scratch lustre rw,flock 0 0\n"
        "proj /p/scratch/my\\040project gpfs rw 0 0\n"
        "tmpfs /p/scratch/my tmpfs rw 0 0\n")
    root.mkdir()
    return sys_root, proc, root


def test_describe_a_fake_node(tmp_path):
    sys_root, proc, root = fake_tree(tmp_path)
    env = env_of({"NCCL_IB_HCA": "mlx5_0", "NCCL_SOCKET_IFNAME": "ib0", "NCCL_DEBUG": "INFO"})
    data = "/p/scratch/my project/ben"
    info = describe(env, GPU, 4, 2, data, proc=proc, sys_root=sys_root, root=root)
    assert set(info) == CONTRACT
    assert (info["gpu_model"], info["gpus_per_node"], info["gpu_memory_gib"], info["nodes"]) == \
        ("NVIDIA H100 80GB HBM3", 4, round(GPU.total_memory / 2**30, 1), 2)
    assert info["cpu_model"] == cpu_model()
    assert info["cpu_cores"] == {"node": os.cpu_count(), "usable": len(os.sched_getaffinity(0))}
    assert info["interconnect"] == {
        "infiniband": [
            {"device": "mlx5_0", "ports": [{"port": 1, "rate": "200 Gb/sec (4X HDR)", "state": "ACTIVE",
                                            "link_layer": "InfiniBand"}]},
            {"device": "mlx5_1", "ports": [{"port": 1, "rate": "100 Gb/sec (4X EDR)", "state": "DOWN",
                                            "link_layer": "Ethernet"}]}],
        "nccl": {"NCCL_IB_HCA": "mlx5_0", "NCCL_SOCKET_IFNAME": "ib0"}}
    # the longest mount point holding the path, its escaped space decoded
    assert info["filesystem"] == {"path": data, "type": "gpfs", "mount": "/p/scratch/my project"}
    assert info["container"] is None


def test_a_cpu_run_without_data_or_network(tmp_path):
    sys_root, proc, root = fake_tree(tmp_path)
    (tmp_path / "empty").mkdir()
    info = describe(env_of({}), None, 0, 1, "", proc=proc, sys_root=tmp_path / "empty", root=root)
    assert (info["gpu_model"], info["gpus_per_node"], info["gpu_memory_gib"]) == (None, 0, None)
    assert info["interconnect"] == {"infiniband": None, "nccl": None} and info["filesystem"] is None


def test_filesystem_follows_links_to_the_data(tmp_path):
    _, proc, _ = fake_tree(tmp_path)
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    (proc / "self" / "mounts").write_text(f"a / ext4 rw 0 0\nb {real} xfs rw 0 0\n")
    assert filesystem(str(tmp_path / "link"), proc) == {"path": str(real), "type": "xfs", "mount": str(real)}
    # not Linux (no /proc/self/mounts): the path, nothing known of it
    assert filesystem(str(real), tmp_path / "none") == {"path": str(real), "type": None, "mount": None}


@pytest.mark.parametrize("environ, files, expected", [
    ({"APPTAINER_CONTAINER": "/images/jeoparda.sif", "APPTAINER_NAME": "jeoparda.sif"}, {},
     {"runtime": "apptainer", "image": "/images/jeoparda.sif", "digest": None}),
    ({"SINGULARITY_NAME": "old.simg"}, {}, {"runtime": "singularity", "image": "old.simg", "digest": None}),
    ({}, {"run/.containerenv": 'engine="podman-4.9.3"\nname="run1"\nid="c0ffee"\n'
          'image="ghcr.io/x/jeoparda:1.0"\nimageid="5e1f"\nrootless=1\n'},
     {"runtime": "podman", "image": "ghcr.io/x/jeoparda:1.0", "digest": "5e1f"}),
    ({}, {"run/.containerenv": ""}, {"runtime": "podman", "image": None, "digest": None}),
    ({}, {".dockerenv": ""}, {"runtime": "docker", "image": None, "digest": None}),
    ({}, {"etc/rc": "# enroot-provenance: docker://nvcr.io#nvidia/pytorch:24.05-py3\n# label x\n"
          "cd /workspace && unset OLDPWD || exit 1\n"},
     {"runtime": "enroot", "image": "docker://nvcr.io#nvidia/pytorch:24.05-py3", "digest": None}),
    ({"PYXIS_CONTAINER_IMAGE": "nvcr.io#nvidia/pytorch:24.05-py3"},
     {"etc/rc": 'mkdir -p "/" 2> /dev/null\ncd "/" && unset OLDPWD || exit 1\n'},
     {"runtime": "enroot", "image": "nvcr.io#nvidia/pytorch:24.05-py3", "digest": None}),
    ({"PYXIS_CONTAINER_IMAGE": "set but not in one"}, {"etc/rc": "#!/bin/sh\n# a distribution's own rc\n"}, None),
    ({}, {}, None),
])
def test_container_detection(tmp_path, environ, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert container(env_of(environ), tmp_path) == expected


def test_a_broken_tree_never_raises(tmp_path):
    sys_root, proc, root = tmp_path / "sys", tmp_path / "proc", tmp_path / "root"
    (sys_root / "class").mkdir(parents=True)
    (sys_root / "class" / "infiniband").write_text("not a folder")  # a file where a folder belongs
    (proc / "self" / "mounts").mkdir(parents=True)  # a folder where a file belongs
    (root / "run" / ".containerenv").mkdir(parents=True)
    (root / "etc" / "rc").mkdir(parents=True)
    (root / ".dockerenv").symlink_to(root / "nowhere")  # a dangling link: not there
    info = describe(env_of({}), None, 0, 1, "/data", proc=proc, sys_root=sys_root, root=root)
    assert info["interconnect"]["infiniband"] is None
    assert info["filesystem"] == {"path": "/data", "type": None, "mount": None} and info["container"] is None
    # a device whose ports cannot be listed, a port whose files are folders
    (sys_root / "class" / "infiniband").unlink()
    (sys_root / "class" / "infiniband" / "mlx5_0").mkdir(parents=True)
    (sys_root / "class" / "infiniband" / "mlx5_1" / "ports" / "1" / "rate").mkdir(parents=True)
    assert infiniband(sys_root) == [{"device": "mlx5_0", "ports": []},
                                    {"device": "mlx5_1", "ports": [{"port": 1, "rate": None, "state": None,
                                                                    "link_layer": None}]}]


def test_identify_names_where_the_name_came_from(tmp_path):
    name, info = identify("", env_of({"SLURM_CLUSTER_NAME": "jureca"}), GPU, 4, 1, "")
    assert (name, info["name_source"]) == ("jureca", "SLURM_CLUSTER_NAME") and set(info) == CONTRACT | {"name_source"}


def test_a_probe_failing_in_an_unforeseen_way_leaves_its_part_null(monkeypatch, tmp_path):
    from jeoparda.cluster import system

    def boom(*_):
        raise RuntimeError("unforeseen")

    for probe in ("cpu_model", "cpu_cores", "interconnect", "filesystem", "container"):
        monkeypatch.setattr(system, probe, boom)
    info = describe(env_of({}), GPU, 1, 1, "/data", proc=tmp_path, sys_root=tmp_path, root=tmp_path)
    assert info["gpu_model"] == GPU.name and info["cpu_model"] is None and info["filesystem"] is None
    assert info["interconnect"] == {"infiniband": None, "nccl": None} and info["container"] is None
    assert info["cpu_cores"] == {"node": None, "usable": None}
