"""Model zoo for 12-band Sentinel-2 input: ``create_model(name, in_chans=12, num_classes=19)``.

Every classification model splits into ``forward_features`` (a feature map) and ``forward_head``
(pool and classify); a dense model (kind ``dense``: the FCNs) maps the input to one class map per
class at input size in one ``forward``. Models know nothing of files, ranks or devices and work
with ``channels_last``. ``load_trained(path)`` rebuilds a trained model from its checkpoint.
"""
from jeoparda.models import bwms, cnn3d, fcn, resnet  # noqa: F401  (registers the models)
from jeoparda.models.registry import ModelEntry, create_model, list_models, model_kind
from jeoparda.models.trained import TrainedModel, load_trained

__all__ = ["ModelEntry", "TrainedModel", "create_model", "list_models", "load_trained", "model_kind"]
