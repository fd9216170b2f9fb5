"""jeoparda predict: a tile's patches mosaicked on their grid, labelled, and written as a GeoTIFF
that a GIS reader (rasterio) places where the source archive's GeoTIFFs lie."""
import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch

from jeoparda.errors import JeopardaError
from jeoparda.inference.predict import Options
from jeoparda.inference.predict import predict as predict_tiles
from jeoparda.labels import NO_CLASS
from jeoparda.models import create_model
from jeoparda.shards.manifest import read_manifest
from jeoparda.shards.reader import ShardReader
from jeoparda.sources.synth_v2 import synthesize_v2
from tests.conftest import convert

TILE = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"


@pytest.fixture(scope="module")
def block(tmp_path_factory):
    """10 patches side by side on one tile (4 columns: the last row has 2), converted with maps."""
    root = tmp_path_factory.mktemp("block")
    synthesize_v2(root / "arch", 10, seed=11, block=True)
    convert(root / "arch", root / "data", shard_size=4)
    return root


def predict_tile(model, data, split, tile, out, accel=None, **options):
    """One tile's map in this process; the summary of it."""
    return predict_tiles(model, data, [tile], out, Options(split=split, **options), accel=accel)[0]


def checkpoint(path, model_name, in_chans=12, bands=""):
    torch.manual_seed(0)
    model = create_model(model_name, in_chans=in_chans, num_classes=19)
    torch.save({"model": model.state_dict(), "config": {"model": model_name, "data": {"bands": bands}}}, path)
    return path


def predict(*args):
    return subprocess.run([sys.executable, "-m", "jeoparda", "predict", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def stored_patches(data, masks=None):
    """{name: normalised 12-band image} as the loaders deliver them (``masks``: filled with the maps)."""
    manifest = read_manifest(data)
    mean = np.asarray(manifest["band_stats"]["mean"][:12], np.float32).reshape(-1, 1, 1)
    std = np.asarray(manifest["band_stats"]["std"][:12], np.float32).reshape(-1, 1, 1)
    out = {}
    for split in manifest["splits"].values():
        for entry in split["shards"]:
            with ShardReader(data / entry["file"]) as shard:
                for i, name in enumerate(shard.names):
                    out[name] = (shard.read_images(i, i + 1)[0] - mean) / std
                    if masks is not None:
                        masks[name] = shard.read_masks(i, i + 1)[0]
    return out


def test_map_lies_where_the_source_geotiffs_lie(block, tmp_path):
    ckpt = checkpoint(tmp_path / "fcn.pt", "fcn_maggiori")
    proc = predict("--checkpoint", ckpt, "--data", block / "data", "--tile", TILE, "--out", tmp_path / "map.tif",
                   "--probabilities")
    assert proc.returncode == 0, proc.stderr
    names = stored_patches(block / "data")
    grid = {tuple(int(v) for v in n.rsplit("_", 2)[1:]): n for n in names}
    col0, row0 = min(c for c, _ in grid), min(r for _, r in grid)
    with rasterio.open(tmp_path / "map.tif") as out:
        classes = out.read(1)
        crs, transform = out.crs, out.transform
        assert out.nodata == NO_CLASS
    upper_left = grid[(col0, row0)]
    with rasterio.open(block / "arch" / "BigEarthNet-S2" / TILE / upper_left / f"{upper_left}_B02.tif") as src:
        assert crs == src.crs
        assert (transform.c, transform.f) == (src.transform.c, src.transform.f)
        assert (transform.a, transform.e) == (10.0, -10.0)
    assert classes.shape == (120 * (max(r for _, r in grid) - row0 + 1), 120 * (max(c for c, _ in grid) - col0 + 1))
    for r in range(classes.shape[0] // 120):
        for c in range(classes.shape[1] // 120):
            cell = classes[r * 120:(r + 1) * 120, c * 120:(c + 1) * 120]
            if (c + col0, r + row0) in grid:
                assert cell.max() < 19
            else:  # no patch there (beyond the block, or a noisy patch left out)
                assert (cell == NO_CLASS).all()
    with rasterio.open(tmp_path / "map-probability.tif") as prob:
        p = prob.read(1)
    assert np.isnan(p[classes == NO_CLASS]).all() and (p[classes != NO_CLASS] >= 1 / 19 - 1e-6).all()
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"


def test_each_patch_is_labelled_at_its_grid_cell(block, tmp_path):
    torch.manual_seed(1)
    pointwise = torch.nn.Conv2d(12, 19, 1)  # no context: the map must equal the patch-by-patch answer
    summary = predict_tile(pointwise, block / "data", "all", TILE, tmp_path / "map.tif")
    masks: dict = {}
    names = stored_patches(block / "data", masks)
    col0 = min(int(n.rsplit("_", 2)[1]) for n in names)
    row0 = min(int(n.rsplit("_", 2)[2]) for n in names)
    with rasterio.open(tmp_path / "map.tif") as out:
        classes = out.read(1)
    assert summary["patches"] == len(names)
    agree = labelled = 0
    for name, image in names.items():
        col, row = (int(v) for v in name.rsplit("_", 2)[1:])
        want = pointwise(torch.from_numpy(image)[None]).argmax(1)[0].numpy()
        got = classes[(row - row0) * 120:(row - row0 + 1) * 120, (col - col0) * 120:(col - col0 + 1) * 120]
        assert (got == want).mean() > 0.999, name  # float summation order may flip a near tie
        known = masks[name] != NO_CLASS
        agree += int((want[known] == masks[name][known]).sum())
        labelled += int(known.sum())
    assert summary["labelled_pixels"] == labelled
    assert summary["agreement"] == pytest.approx(agree / labelled, abs=1e-3)


def one_pass(model, data):
    """The class map of one forward pass over the whole mosaic (zero-padded to the output stride)."""
    names = stored_patches(data)
    grid = {tuple(int(v) for v in n.rsplit("_", 2)[1:]): n for n in names}
    col0, row0 = min(c for c, _ in grid), min(r for _, r in grid)
    h = 120 * (max(r for _, r in grid) - row0 + 1)
    w = 120 * (max(c for c, _ in grid) - col0 + 1)
    stride = getattr(model, "stride", 1)
    mosaic = torch.zeros(12, -(-h // stride) * stride, -(-w // stride) * stride)
    for (c, r), name in grid.items():
        mosaic[:, (r - row0) * 120:(r - row0 + 1) * 120, (c - col0) * 120:(c - col0 + 1) * 120] = \
            torch.from_numpy(names[name])
    with torch.no_grad():
        classes = model.eval()(mosaic[None])[0].argmax(0)[:h, :w].numpy().astype(np.uint8)
    covered = np.zeros((h, w), bool)
    for c, r in grid:
        covered[(r - row0) * 120:(r - row0 + 1) * 120, (c - col0) * 120:(c - col0 + 1) * 120] = True
    classes[~covered] = NO_CLASS
    return classes


@pytest.mark.parametrize("model_name,smaller", [("fcn_maggiori", {"max_memory": 20 * 2**20}),
                                                ("fcn_resnet18", {"window": 700})])
def test_windows_with_the_models_margin_equal_one_pass(block, tmp_path, model_name, smaller):
    """Windows cut with the context the receptive field needs label as one pass over the mosaic does,
    and smaller windows give the bytes of larger ones."""
    torch.manual_seed(2)
    model = create_model(model_name, in_chans=12, num_classes=19)
    large = predict_tile(model, block / "data", "all", TILE, tmp_path / "large.tif", probabilities=True)
    small = predict_tile(model, block / "data", "all", TILE, tmp_path / "small.tif", probabilities=True, **smaller)
    assert small["windows"] > large["windows"] and small["batches"] > 1
    assert (tmp_path / "large.tif").read_bytes() == (tmp_path / "small.tif").read_bytes()
    with rasterio.open(tmp_path / "large-probability.tif") as a, rasterio.open(tmp_path / "small-probability.tif") as b:
        assert np.allclose(a.read(1), b.read(1), atol=1e-5, equal_nan=True)
    with rasterio.open(tmp_path / "small.tif") as out:
        assert (out.read(1) == one_pass(model, block / "data")).mean() > 0.9999  # float order may flip a near tie
    assert large["agreement"] == small["agreement"]


def test_refusals_are_one_line(block, dataset, tmp_path):
    fcn = checkpoint(tmp_path / "fcn.pt", "fcn_maggiori")
    cases = [
        (("--checkpoint", checkpoint(tmp_path / "resnet.pt", "resnet18"), "--tile", TILE), "classification model"),
        (("--checkpoint", fcn, "--tile", "T99XXX"), "tile T99XXX has no patch in any split"),
        (("--checkpoint", fcn, "--tile", TILE, "--split", "nope"), "no split 'nope'"),
        (("--checkpoint", fcn, "--tile", TILE, "--window", "60"), "smaller than the model's receptive field"),
        (("--checkpoint", fcn, "--tile", TILE, "--overlap", "30"), "multiple of the model's output stride (4)"),
        (("--checkpoint", fcn, "--tile", TILE, "--max-memory", "1M"), "cannot hold one patch with its context"),
        (("--checkpoint", fcn, "--tile", TILE, "--max-memory", "lots"), "'lots' is not a size"),
        (("--checkpoint", checkpoint(tmp_path / "rgb.pt", "fcn_maggiori", in_chans=3), "--tile", TILE),
         "takes 3 channels"),
    ]
    for args, message in cases:
        proc = predict(*args, "--data", block / "data", "--out", tmp_path / "x.tif")
        assert proc.returncode in (1, 2) and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 or proc.returncode == 2, proc.stderr
    proc = predict("--checkpoint", fcn, "--data", dataset, "--tile", TILE, "--out", tmp_path / "x.tif")
    assert proc.returncode == 1 and "BigEarthNet v2.0 tiles" in proc.stderr
    assert not (tmp_path / "x.tif").exists() and not list(tmp_path.glob(".x.tif*"))


def test_a_folder_too_small_for_the_map_is_refused_before_any_work(block, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(JeopardaError, match=r"may take up to 0\.\d MB \(scratch included\) but the file system "
                       r"has 0\.0 MB free"):
        predict_tile(torch.nn.Conv2d(12, 19, 1), block / "data", "all", TILE, tmp_path / "map.tif")
    assert list(tmp_path.iterdir()) == []


def test_band_choice_of_the_run_reaches_the_model(block, tmp_path):
    ckpt = checkpoint(tmp_path / "rgb.pt", "fcn_maggiori", in_chans=3, bands="B02,B03,B04")
    proc = predict("--checkpoint", ckpt, "--data", block / "data", "--tile", TILE, "--out", tmp_path / "rgb.tif")
    assert proc.returncode == 0, proc.stderr


def test_grid_convention_matches_real_bigearthnet_v2_patches():
    """Two real patches of tile T33UUP (rico-hdl's samples): the origin derived from one, moved by
    our <col>_<row> grid convention, lands exactly on the other's GeoTIFF origin."""
    from jeoparda.inference.predict import georef
    from tests.conftest import FIXTURES

    manifest = {"source": {"path": str(FIXTURES / "reben")}}
    geo = georef(manifest, f"{TILE}_75_43", 26, 43)  # mosaic spanning columns 26.. and rows 43..
    other = f"{TILE}_26_57"
    with rasterio.open(FIXTURES / "reben" / "Reference_Maps" / TILE / other / f"{other}_reference_map.tif") as src:
        assert geo.epsg == src.crs.to_epsg()
        assert (geo.x0, geo.y0 - (57 - 43) * 1200) == (src.transform.c, src.transform.f)


def test_origin_reads_back_what_was_written_and_a_plain_tiff_is_refused(tmp_path):
    import tifffile

    from jeoparda.sources.geotiff import TiffReadError, read_origin, write_band

    write_band(tmp_path / "geo.tif", np.zeros((4, 4), np.uint16), origin=(331200.0, 5331600.0),
               pixel_size_m=10, epsg=32633)
    assert read_origin(tmp_path / "geo.tif") == (32633, 331200.0, 5331600.0)
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(TiffReadError, match="not a GeoTIFF"):
        read_origin(tmp_path / "plain.tif")


def test_predict_on_a_gpu_equals_the_cpu_map(standin_gpu, block, tmp_path):
    """--device: the mosaic's windows cross to the GPU pinned and non-blocking, the answers come
    back; on the stand-in (CPU arithmetic) the map is the CPU's to the byte."""
    from jeoparda.devices import parse_device

    torch.manual_seed(3)
    model = torch.nn.Conv2d(12, 19, 3, padding=1)
    cpu = predict_tile(model, block / "data", "all", TILE, tmp_path / "cpu.tif", window=240, overlap=16)
    gpu = predict_tile(model, block / "data", "all", TILE, tmp_path / "gpu.tif", window=240, overlap=16,
                       accel=parse_device("cuda:1"))
    assert (tmp_path / "cpu.tif").read_bytes() == (tmp_path / "gpu.tif").read_bytes()
    assert cpu["agreement"] == gpu["agreement"]
    batches = [u for u in standin_gpu.uploads if len(u["shape"]) == 4]
    assert len(batches) > 1 and all(u["memory"] == "pinned" for u in batches)
    assert standin_gpu.current == 1


def test_predict_device_refusals(block, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    fcn = checkpoint(tmp_path / "fcn.pt", "fcn_maggiori")
    proc = predict("--checkpoint", fcn, "--data", block / "data", "--tile", TILE, "--out", tmp_path / "m.tif",
                   "--device", "cuda")
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "jeoparda: error: --device cuda: no CUDA GPU is visible to this process"]


def test_the_map_is_written_without_matplotlib(block, tmp_path, monkeypatch):
    """A bare GPU image may lack matplotlib: the map is the product, the PNG a convenience."""
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    summary = predict_tile(torch.nn.Conv2d(12, 19, 1), block / "data", "all", TILE, tmp_path / "map.tif")
    assert summary["files"] == [str(tmp_path / "map.tif")] and "matplotlib" in summary["notes"][0]
    assert summary["device"] == "cpu"


def test_scratch_files_go_whether_the_map_is_written_or_not(block, tmp_path, monkeypatch):
    import jeoparda.inference.predict as predict_module

    model = torch.nn.Conv2d(12, 19, 1)
    predict_tile(model, block / "data", "all", TILE, tmp_path / "ok" / "map.tif", probabilities=True)
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["map-probability.tif", "map.png", "map.tif"]

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "bad" / "map.tif"))

    monkeypatch.setattr(predict_module, "write_cog", full_disk)
    with pytest.raises(OSError, match="No space left"):
        predict_tile(model, block / "data", "all", TILE, tmp_path / "bad" / "map.tif", probabilities=True)
    assert list((tmp_path / "bad").iterdir()) == []


def test_bf16_labels_nearly_every_pixel_as_fp32_and_json_names_the_device(block, tmp_path):
    ckpt = checkpoint(tmp_path / "fcn.pt", "fcn_maggiori")
    runs = {}
    for precision in ("fp32", "bf16"):
        proc = predict("--checkpoint", ckpt, "--data", block / "data", "--tile", TILE, "--out",
                       tmp_path / f"{precision}.tif", "--precision", precision, "--device", "cpu", "--json")
        assert proc.returncode == 0, proc.stderr
        runs[precision] = json.loads(proc.stdout.strip().splitlines()[-1])
        assert runs[precision]["device"] == "cpu" and runs[precision]["device_name"]
    with rasterio.open(tmp_path / "fp32.tif") as a, rasterio.open(tmp_path / "bf16.tif") as b:
        full, half = a.read(1), b.read(1)
    labelled = full != NO_CLASS
    assert (half != NO_CLASS).sum() == labelled.sum() and (full[labelled] == half[labelled]).mean() > 0.9
