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


class _Code:
    """Pickled as a call to ``os.system``: what a hostile checkpoint carries."""

    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/jeoparda-pwned",))


def _malformed(folder):
    """name -> (write the file, what the one-line error says)."""
    real = create_model("resnet18").state_dict()

    def good(path):
        torch.save({"model": real, "config": {"model": "resnet18"}}, path)

    def truncated(path):
        good(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return {
        "truncated": (truncated, "unreadable checkpoint"),
        "not a zip": (lambda p: p.write_bytes(b"PK\x03\x04" + b"\0" * 100), "unreadable checkpoint"),
        "empty": (lambda p: p.write_bytes(b""), "unreadable checkpoint"),
        "pickled code": (lambda p: torch.save({"model": real, "config": {"model": "resnet18"}, "x": _Code()}, p),
                         "holds pickled code or objects, which jeoparda never loads"),
        "a list": (lambda p: torch.save([1, 2], p), "not a jeoparda training checkpoint"),
        "no config": (lambda p: torch.save({"model": real}, p), "not a jeoparda training checkpoint"),
        "config text": (lambda p: torch.save({"model": real, "config": "resnet18"}, p),
                        "not a jeoparda training checkpoint"),
        "model name a list": (lambda p: torch.save({"model": real, "config": {"model": ["resnet18"]}}, p),
                              "config.model is list, not a model name"),
        "unknown model": (lambda p: torch.save({"model": real, "config": {"model": "resnet9000"}}, p),
                          "unknown model 'resnet9000'"),
        "weights a list": (lambda p: torch.save({"model": [1.0], "config": {"model": "resnet18"}}, p),
                           "'model' is not a state dict"),
        "weights not tensors": (lambda p: torch.save({"model": {k: 1.0 for k in real},
                                                      "config": {"model": "resnet18"}}, p),
                                "'model' is not a state dict"),
        "another model": (lambda p: torch.save({"model": create_model("bwms").state_dict(),
                                                "config": {"model": "resnet18"}}, p),
                          "resnet18"),
        "another shape": (lambda p: torch.save({"model": create_model("resnet18", 12, 7).state_dict()
                                                | {"fc.weight": torch.zeros(7, 3)},
                                                "config": {"model": "resnet18"}}, p), "resnet18"),
    }


@pytest.mark.parametrize("case", list(_malformed(None)))
def test_a_malformed_checkpoint_is_one_line_naming_the_file(tmp_path, case):
    import os

    write, message = _malformed(tmp_path)[case]
    path = tmp_path / "ckpt.pt"
    write(path)
    with pytest.raises(JeopardaError) as info:
        load_trained(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text
    assert not os.path.exists("/tmp/jeoparda-pwned")


def test_a_fifo_or_a_folder_is_refused_without_blocking(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.pt")
    with pytest.raises(JeopardaError, match="fifo.pt: not a regular file"):
        load_trained(tmp_path / "fifo.pt")
    with pytest.raises(JeopardaError, match="not a regular file"):
        load_trained(tmp_path)
