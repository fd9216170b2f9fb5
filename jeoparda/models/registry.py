"""Model registry: ``create_model(name, in_chans=12, num_classes=19)``."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from jeoparda.errors import JeopardaError


class FeatureHeadModel(nn.Module):
    """A model in two parts: ``forward_features`` (a feature map) and ``forward_head`` (pool and
    classify); ``forward`` is their composition."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[..., nn.Module]
    summary: str
    kind: str = "classification"  # classification: (B, K) scores; dense: (B, K, H, W) maps


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, summary: str, kind: str = "classification"
             ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a builder ``f(in_chans, num_classes) -> nn.Module`` under ``name``."""
    def add(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = ModelEntry(name, build, summary, kind)
        return build
    return add


def list_models(kind: str | None = None) -> list[ModelEntry]:
    """The registered models, or those of one kind (classification, dense)."""
    return [e for e in _REGISTRY.values() if kind is None or e.kind == kind]


def model_kind(name: str) -> str:
    entry = _REGISTRY.get(name)
    if entry is None:
        raise JeopardaError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}")
    return entry.kind


def create_model(name: str, in_chans: int = 12, num_classes: int = 19) -> nn.Module:
    """Build a registered model; unknown names give an error listing the known ones."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise JeopardaError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}")
    return entry.build(in_chans=in_chans, num_classes=num_classes)
