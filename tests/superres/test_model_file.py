import hashlib

import pytest
import torch

from jeoparda.errors import JeopardaError
from jeoparda.superres.model_file import SRModel, load_model, save_model
from jeoparda.superres.network import SRPair


def test_round_trip_keeps_weights_and_facts(tmp_path):
    torch.manual_seed(0)
    pair = SRPair(8, 2)
    path = tmp_path / "m.pt"
    sha = save_model(SRModel(pair, 8, 2, 0.3, training={"steps": 5}, eval={"rmse_20m": 1.5}), path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    model = load_model(path)
    assert (model.features, model.blocks, model.mtf, model.sha256) == (8, 2, 0.3, sha)
    assert model.training == {"steps": 5} and model.eval == {"rmse_20m": 1.5}
    x20, x60 = torch.rand(1, 10, 16, 16), torch.rand(1, 12, 18, 18)
    with torch.no_grad():
        for a, b in zip(pair.eval()(x20, x60), model.pair(x20, x60), strict=True):
            assert torch.equal(a, b)


def test_other_files_are_one_line(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(JeopardaError, match="notes.txt: not a jeoparda super-resolution model"):
        load_model(text)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "epoch": 3}, ckpt)
    with pytest.raises(JeopardaError, match="format None.*training checkpoint"):
        load_model(ckpt)
    with pytest.raises(JeopardaError, match="no such model file"):
        load_model(tmp_path / "absent.pt")


def test_another_band_set_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    save_model(SRModel(SRPair(4, 1), 4, 1, 0.3, bands=("B02", "B03", "B04")), path)
    with pytest.raises(JeopardaError, match="a model for the bands B02, B03, B04"):
        load_model(path)
