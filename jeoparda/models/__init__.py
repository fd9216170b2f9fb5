"""Model zoo for 12-band Sentinel-2 input: ``create_model(name, in_chans=12, num_classes=19)``.

Every model splits into ``forward_features`` (a feature map) and ``forward_head`` (pool and
classify), knows nothing of files, ranks or devices, and works with ``channels_last``.
"""
from jeoparda.models import bwms, cnn3d, fcn, resnet  # noqa: F401  (registers the models)
from jeoparda.models.registry import ModelEntry, create_model, list_models, model_kind

__all__ = ["ModelEntry", "create_model", "list_models", "model_kind"]
