"""The input pipeline: partition, augmentation, torch / dali / synthetic backends, staging.

``build_loader(cfg, env, split)`` (jeoparda.loaders.build) returns the loader of one rank.
"""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy: importing a light submodule (partition) must not pull in torch and every backend.
    if name == "build_loader":
        from jeoparda.loaders.build import build_loader

        return build_loader
    raise AttributeError(name)
