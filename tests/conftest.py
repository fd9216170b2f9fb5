"""Shared fixtures: tests build their own tiny archives and data sets."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jeoparda.cluster.env import ClusterEnv
from jeoparda.convert.plan import ConvertOptions
from jeoparda.convert.run import run_conversion
from jeoparda.sources.synth import synthesize


@pytest.fixture(scope="session")
def archive_master(tmp_path_factory) -> Path:
    """A 48-patch synthetic archive, written once per session; never modify it."""
    out = tmp_path_factory.mktemp("archive-master")
    synthesize(out, 48, seed=7)
    return out


@pytest.fixture
def archive(archive_master, tmp_path) -> Path:
    """A private copy of the master archive that a test may damage."""
    dest = tmp_path / "archive"
    shutil.copytree(archive_master, dest)
    return dest


@pytest.fixture
def copy(dataset, tmp_path) -> Path:
    """A private copy of the converted data set that a test may damage."""
    dest = tmp_path / "ds"
    shutil.copytree(dataset, dest)
    return dest


def convert(source: Path, out: Path, **kw) -> dict:
    """Run a conversion in-process (single rank) and return the manifest."""
    kw.setdefault("shard_size", 8)
    manifest, _ = run_conversion(ConvertOptions(source=source, out=out, **kw), ClusterEnv(),
                                 lambda total: (lambda n: None))
    return manifest


@pytest.fixture(scope="session")
def dataset(archive_master, tmp_path_factory) -> Path:
    """The master archive converted (shard size 8); never modify it."""
    out = tmp_path_factory.mktemp("dataset") / "shards"
    convert(archive_master, out)
    return out


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def reben_tree_master(tmp_path_factory) -> Path:
    """A 24-patch synthetic BigEarthNet v2.0 archive (GeoTIFF trees, maps, S1); never modify it."""
    from jeoparda.sources.synth_v2 import synthesize_v2

    out = tmp_path_factory.mktemp("reben-tree")
    synthesize_v2(out, 24, seed=4)
    return out


@pytest.fixture(scope="session")
def reben_lmdb_master(tmp_path_factory) -> Path:
    """The same 24 patches as rico-hdl would encode them (LMDB + maps); never modify it."""
    from jeoparda.sources.synth_v2 import synthesize_v2

    out = tmp_path_factory.mktemp("reben-lmdb")
    synthesize_v2(out, 24, seed=4, lmdb=True)
    return out


@pytest.fixture
def reben_tree(reben_tree_master, tmp_path) -> Path:
    dest = tmp_path / "reben-tree"
    shutil.copytree(reben_tree_master, dest)
    return dest


@pytest.fixture
def reben_lmdb(reben_lmdb_master, tmp_path) -> Path:
    dest = tmp_path / "reben-lmdb"
    shutil.copytree(reben_lmdb_master, dest)
    return dest


@pytest.fixture(scope="session")
def reben_dataset(reben_tree_master, tmp_path_factory) -> Path:
    """The v2 archive converted with maps and Sentinel-1 (shard size 6); never modify it."""
    out = tmp_path_factory.mktemp("reben-dataset") / "shards"
    convert(reben_tree_master, out, shard_size=6, with_s1=True)
    return out


@pytest.fixture(scope="session")
def eurosat_dataset(tmp_path_factory) -> Path:
    """A 200-image synthetic EuroSAT converted (shard size 32); never modify it."""
    from jeoparda.sources.synth_eurosat import synthesize_eurosat

    root = tmp_path_factory.mktemp("eurosat-archive")
    synthesize_eurosat(root, 200, seed=5)
    out = tmp_path_factory.mktemp("eurosat-dataset") / "shards"
    convert(root, out, shard_size=32)
    return out


@pytest.fixture(scope="session")
def sr_model(archive_master, tmp_path_factory) -> Path:
    """A super-resolution model file from 40 steps (quality irrelevant: the plumbing is under test)."""
    from jeoparda.superres.train import SRTrainOptions, train_sr

    out = tmp_path_factory.mktemp("sr-model")
    opts = SRTrainOptions(data=archive_master, out=out / "sr.pt", run_dir=out / "run", steps=40, patches=20,
                          eval_patches=4, features=8, blocks=1, backend="single", log_every=20)
    train_sr(opts, say=lambda line: None)
    return out / "sr.pt"


@pytest.fixture
def standin_gpu(monkeypatch):
    """The CUDA runtime and NVML replaced by the stand-in (tests/standin_cuda.py): a node of two
    H100-like GPUs, both visible unless the test sets CUDA_VISIBLE_DEVICES."""
    import sys

    from jeoparda import devices
    from tests.standin_cuda import StandInCuda, standin_nvml

    runtime = StandInCuda()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(devices, "RUNTIME", runtime)
    monkeypatch.setitem(sys.modules, "pynvml", standin_nvml(runtime))
    return runtime
