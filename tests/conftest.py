"""Shared fixtures: tests build their own tiny archives and data sets."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jeoparda.convert.run import run_conversion
from jeoparda.convert.plan import ConvertOptions
from jeoparda.sources.synth import synthesize
from jeoparda.cluster.env import ClusterEnv


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
