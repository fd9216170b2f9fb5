"""The backend tables drive the CLI's choices, configuration validation and the builders."""
import pytest

from jeoparda.backend_tables import DATA_BACKENDS, DIST_BACKENDS, BackendEntry
from jeoparda.cli import build_parser
from jeoparda.config import DataConfig, DistConfig, load_config
from jeoparda.errors import JeopardaError


def choices(*path):
    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if a.dest in ("command", "bench", "sr_command"))
        parser = action.choices[name]
    return next(a for a in parser._actions if a.dest == "backend").choices


def test_a_registered_data_backend_is_offered_and_valid(monkeypatch):
    assert list(choices("bench", "loader")) == ["torch", "dali", "synthetic"]
    with pytest.raises(JeopardaError, match="data.backend: 'arrow' is not one of torch, dali, synthetic"):
        DataConfig(backend="arrow")
    monkeypatch.setitem(DATA_BACKENDS, "arrow", BackendEntry("arrow", "builtins:dict", "a test entry"))
    assert "arrow" in choices("bench", "loader")
    assert load_config(overrides=["data.backend=arrow"]).data.backend == "arrow"


def test_a_registered_dist_backend_is_offered_and_valid(monkeypatch):
    assert list(choices("sr", "train")) == ["ddp", "horovod", "single"]
    assert list(choices("bench", "allreduce")) == ["ddp", "horovod"]  # single has no peers
    with pytest.raises(JeopardaError, match="dist.backend: 'gloo' is not one of ddp, horovod, single"):
        DistConfig(backend="gloo")
    monkeypatch.setitem(DIST_BACKENDS, "gloo", BackendEntry("gloo", "builtins:dict", "a test entry"))
    assert "gloo" in choices("sr", "train") and "gloo" in choices("bench", "allreduce")
    assert DistConfig(backend="gloo").backend == "gloo"


def test_every_entry_names_its_class():
    from jeoparda.cluster.backends import Backend
    from jeoparda.loaders.base import Loader

    for entry in DIST_BACKENDS.values():
        assert issubclass(entry.load(), Backend)
    for name in ("torch", "synthetic"):  # dali's module imports without DALI; its class needs it to run
        assert issubclass(DATA_BACKENDS[name].load(), Loader)


def test_build_loader_builds_the_registered_backend(monkeypatch):
    from jeoparda.cluster.env import ClusterEnv
    from jeoparda.loaders.build import build_loader

    made = []
    monkeypatch.setitem(DATA_BACKENDS, "fake", BackendEntry("fake", "builtins:dict", "x", data_optional=True))
    monkeypatch.setattr(BackendEntry, "load", lambda self: lambda *args: made.append(args) or "loader")
    cfg = load_config(overrides=["data.backend=fake"])
    assert build_loader(cfg, ClusterEnv(), "train") == "loader"
    assert made[0][:3] == (cfg, ClusterEnv(), "train") and made[0][3] is None  # no data path: no source
