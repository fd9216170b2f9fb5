"""load_trained: a checkpoint back to its model, with the sizes read from its weights."""
import pytest
import torch

from jeoparda.errors import JeopardaError
from jeoparda.models import create_model, list_models, load_trained
from jeoparda.training import checkpoint


def save(path, name, in_chans=12, num_classes=19, **config):
    torch.manual_seed(1)
    model = create_model(name, in_chans=in_chans, num_classes=num_classes)
    torch.save({"model": model.state_dict(), "config": {"model": name, **config}, "epoch": 3}, path)
    return model


@pytest.mark.parametrize("name", [e.name for e in list_models()])
def test_round_trip_of_every_model(name, tmp_path):
    in_chans = 12 if name.startswith("bwms") else 5  # BWMS is built for the 12 bands only
    model = save(tmp_path / "m.pt", name, in_chans, 7, data={"bands": "x"})
    trained = load_trained(tmp_path / "m.pt")
    assert (trained.name, trained.num_classes, trained.config["data"]) == (name, 7, {"bands": "x"})
    assert trained.in_chans == (12 if name in ("bwms", "bwms50", "cnn3d") else 5)
    saved, loaded = model.state_dict(), trained.model.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)


def test_refusals_are_clear(tmp_path):
    save(tmp_path / "resnet.pt", "resnet18")
    with pytest.raises(JeopardaError, match="a checkpoint of resnet18, a classification model; predict needs"):
        load_trained(tmp_path / "resnet.pt", kind="dense", hint="predict needs a dense one")
    with pytest.raises(JeopardaError, match="a checkpoint of resnet18, not fcn_maggiori"):
        load_trained(tmp_path / "resnet.pt", name="fcn_maggiori")
    torch.save({"model": {}}, tmp_path / "bare.pt")
    with pytest.raises(JeopardaError, match="bare.pt: not a jeoparda training checkpoint"):
        load_trained(tmp_path / "bare.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(JeopardaError, match="junk.pt: unreadable checkpoint"):
        load_trained(tmp_path / "junk.pt")
    torch.save({"model": {}, "config": {"model": "resnet18"}}, tmp_path / "empty.pt")
    with pytest.raises(JeopardaError, match="cannot tell the classes and channels of resnet18"):
        load_trained(tmp_path / "empty.pt")
    weights = create_model("resnet18").state_dict()
    inner = [k for k, v in weights.items() if v.ndim == 4][5]  # a convolution inside, neither stem nor head
    weights[inner] = weights[inner][:3]
    torch.save({"model": weights, "config": {"model": "resnet18"}}, tmp_path / "cut.pt")
    with pytest.raises(JeopardaError, match="cut.pt: the weights do not fit resnet18"):
        load_trained(tmp_path / "cut.pt")


def test_training_reads_checkpoints_through_the_same_helper(tmp_path):
    save(tmp_path / "m.pt", "fcn_maggiori", 4, 3)
    assert checkpoint.load(tmp_path / "m.pt")["epoch"] == 3
