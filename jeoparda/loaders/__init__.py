"""The input pipeline: partition, augmentation, torch / dali / synthetic backends, staging.

``build_loader(cfg, env, split, accel, task)`` (jeoparda.loaders.build) returns the loader of one rank;
``run_task(cfg)`` there decides the run's task once, before any loader is built.
"""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy: importing a light submodule (partition) must not pull in torch and every backend.
    if name == "build_loader":
        from jeoparda.loaders.build import build_loader

        return build_loader
    raise AttributeError(name)
