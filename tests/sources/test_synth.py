"""The synthetic archive: layout, determinism, and that it carries learnable signal."""
import filecmp
import json

import numpy as np
import torch

from jeoparda.sentinel2 import BANDS
from jeoparda.sources.bigearthnet_v1 import METADATA_KEYS, labels_path, list_patches, locate_root
from jeoparda.sources.splits import read_name_list
from jeoparda.sources.synth import synthesize


def test_layout(archive_master):
    root = locate_root(archive_master)
    patches = list_patches(root)
    assert len(patches) == 48
    files = {p.name for p in (root / patches[0]).iterdir()}
    assert files == {f"{patches[0]}_{b.name}.tif" for b in BANDS} | {f"{patches[0]}_labels_metadata.json"}
    meta = json.loads(labels_path(root, patches[0]).read_text())
    assert set(METADATA_KEYS) <= set(meta) and 1 <= len(meta["labels"]) <= 4
    splits = {s: read_name_list(archive_master / "splits" / f"{s}.csv") for s in ("train", "val", "test")}
    assert sorted(sum(splits.values(), [])) == patches
    assert (len(splits["train"]), len(splits["val"]), len(splits["test"])) == (34, 7, 7)
    for noisy in ("patches_with_seasonal_snow.csv", "patches_with_cloud_and_shadow.csv"):
        assert set(read_name_list(archive_master / noisy)) <= set(patches)


def test_deterministic_for_a_seed(tmp_path):
    synthesize(tmp_path / "a", 6, seed=3)
    synthesize(tmp_path / "b", 6, seed=3)
    synthesize(tmp_path / "c", 6, seed=4)
    cmp = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    for sub in ("BigEarthNet-v1.0",):
        a, b = tmp_path / "a" / sub, tmp_path / "b" / sub
        for patch in list_patches(a):
            match, mismatch, errors = filecmp.cmpfiles(a / patch, b / patch, sorted(
                p.name for p in (a / patch).iterdir()), shallow=False)
            assert not mismatch and not errors
    assert list_patches(tmp_path / "a" / "BigEarthNet-v1.0") != list_patches(tmp_path / "c" / "BigEarthNet-v1.0")


def f1_samples(y, p):
    tp = (y * p).sum(1)
    return float(np.mean(2 * tp / np.maximum(y.sum(1) + p.sum(1), 1)))


def test_a_small_cnn_learns_it(tmp_path):
    """A tiny CNN trained briefly on 240 patches beats the best constant prediction by far."""
    import h5py

    from tests.conftest import convert

    synthesize(tmp_path / "arch", 320, seed=11)
    manifest = convert(tmp_path / "arch", tmp_path / "ds", shard_size=400)

    def load(split):
        with h5py.File(tmp_path / "ds" / manifest["splits"][split]["shards"][0]["file"]) as f:
            return f["images"][...].astype(np.float32), f["labels"][...].astype(np.float32)

    mean = np.array(manifest["band_stats"]["mean"], np.float32)[:, None, None]
    std = np.array(manifest["band_stats"]["std"], np.float32)[:, None, None]
    (xtr, ytr), (xva, yva) = load("train"), load("val")
    xtr, xva = torch.from_numpy((xtr - mean) / std), torch.from_numpy((xva - mean) / std)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Conv2d(12, 32, 3, padding=1),
                                torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 19))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    target = torch.from_numpy(ytr)
    for _ in range(40):
        for i in range(0, len(xtr), 32):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xtr[i:i + 32]), target[i:i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = (torch.sigmoid(model(xva)) > 0.5).float().numpy()
    prior = ytr.mean(0)
    constant = np.tile((prior >= np.sort(prior)[-2]).astype(np.float32), (len(yva), 1))
    assert f1_samples(yva, pred) >= 0.5
    assert f1_samples(yva, pred) >= f1_samples(yva, constant) + 0.25


def test_coarse_bands_are_averages_of_a_kept_10m_truth(tmp_path):
    """The 20 m and 60 m bands are 2 x 2 and 6 x 6 means of a 10 m rendering; --sr-truth keeps it and
    leaves the archive as it would be without."""
    from jeoparda.sources.detect import SourceOptions, open_source
    from jeoparda.sources.synth import truth_path

    synthesize(tmp_path / "plain", 6, seed=2)
    synthesize(tmp_path / "kept", 6, seed=2, truth=True)
    same = filecmp.dircmp(tmp_path / "plain" / "BigEarthNet-v1.0", tmp_path / "kept" / "BigEarthNet-v1.0")
    assert not same.diff_files and not same.left_only and not same.right_only
    source = open_source(SourceOptions(tmp_path / "kept"))
    for name in sorted(source.present()):
        truth = np.load(truth_path(tmp_path / "kept", name)).astype(float)
        assert truth.shape == (12, 120, 120)
        for b, (band, native) in enumerate(zip(BANDS, source.read(name).bands, strict=True)):
            f = band.resolution_m // 10
            mean = truth[b].reshape(120 // f, f, 120 // f, f).mean(axis=(1, 3))
            assert np.abs(mean - native).max() <= 1.0  # both are rounded to uint16 (0.5 each)
