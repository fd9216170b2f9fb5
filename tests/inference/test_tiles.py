"""jeoparda predict over scattered patches, as real BigEarthNet tiles hold them: only windows with
patches are computed, maps are Cloud-Optimized GeoTIFFs with overviews, several tiles get VRT
mosaics that GDAL reads, and two ranks write the same bytes as one."""
import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from jeoparda.inference.plan import find_patches
from jeoparda.labels import NO_CLASS
from jeoparda.shards.manifest import read_manifest
from jeoparda.sources.synth_v2 import synthesize_v2
from tests.conftest import convert
from tests.convert.test_run_mpi import mpi_env, mpirun
from tests.inference.test_predict import checkpoint


@pytest.fixture(scope="module")
def scattered(tmp_path_factory):
    """40 patches scattered over the four synthetic tiles (four UTM zones), converted with maps."""
    root = tmp_path_factory.mktemp("scattered")
    synthesize_v2(root / "arch", 40, seed=5)
    convert(root / "arch", root / "data", shard_size=8)
    (root / "fcn.pt").write_bytes(checkpoint(root / "fcn.pt", "fcn_maggiori").read_bytes())
    return root


def tiles_of(data, split="all"):
    return find_patches(data, read_manifest(data), split)


def predict(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "jeoparda", "predict", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def summaries(proc):
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_work_follows_the_patches_not_the_tile(scattered, tmp_path):
    tile, patches = max(tiles_of(scattered / "data").items(), key=lambda kv: len(kv[1]))
    proc = predict("--checkpoint", scattered / "fcn.pt", "--data", scattered / "data", "--tile", tile,
                   "--out", tmp_path / "map.tif", "--json")
    assert proc.returncode == 0, proc.stderr
    (summary,) = summaries(proc)
    margin = summary["margin"]
    assert summary["width"] * summary["height"] > 50 * len(patches) * 120 * 120  # a mostly empty tile
    # scattered patches get a window each: their pixels plus the model's context, nothing else
    assert summary["windows"] <= len(patches)
    assert summary["computed_pixels"] <= len(patches) * (120 + 2 * margin + 4) ** 2
    with rasterio.open(tmp_path / "map.tif") as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and ds.profile["tiled"]
        assert ds.overviews(1) == [2 ** k for k in range(1, summary["overviews"] + 1)] and summary["overviews"] >= 5
        classes = ds.read(1)
    assert (classes != NO_CLASS).sum() == len(patches) * 120 * 120
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"


def test_a_tile_without_patches_in_the_split_is_one_line(scattered, tmp_path):
    synthesize_v2(tmp_path / "arch", 6, seed=5)  # six patches over four tiles: some split misses a tile
    convert(tmp_path / "arch", tmp_path / "data", shard_size=8)
    everywhere = tiles_of(tmp_path / "data")
    split, split_tiles, tile = next((s, there, t) for s in ("test", "val", "train")
                                    for there in [tiles_of(tmp_path / "data", s)]
                                    for t in sorted(everywhere) if t not in there)
    proc = predict("--checkpoint", scattered / "fcn.pt", "--data", tmp_path / "data", "--tile", tile,
                   "--split", split, "--out", tmp_path / "out" / "map.tif")
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        f"jeoparda: error: {tmp_path / 'data'}: tile {tile} has no patch in the {split} split (tiles there: "
        f"{', '.join(sorted(split_tiles)) or 'none'})"]
    assert not (tmp_path / "out").exists()


def test_all_tiles_get_a_map_each_and_a_mosaic_per_coordinate_system(scattered, tmp_path):
    proc = predict("--checkpoint", scattered / "fcn.pt", "--data", scattered / "data", "--tiles", "all",
                   "--out", tmp_path / "maps", "--json")
    assert proc.returncode == 0, proc.stderr
    found = tiles_of(scattered / "data")
    assert {s["tile"] for s in summaries(proc)} == set(found)
    vrts = sorted((tmp_path / "maps").glob("mosaic-EPSG*.vrt"))
    assert len(vrts) == len({s["epsg"] for s in summaries(proc)}) == 4
    for summary in summaries(proc):
        vrt = tmp_path / "maps" / f"mosaic-EPSG{summary['epsg']}.vrt"
        with rasterio.open(vrt) as mosaic, rasterio.open(summary["files"][0]) as one:
            assert mosaic.crs == one.crs and mosaic.transform.c <= one.transform.c
            assert np.array_equal(mosaic.read(1), one.read(1))  # one tile per zone here: the same pixels


def test_overlapping_tiles_of_one_zone_share_a_mosaic_without_blanking_each_other(tmp_path):
    from jeoparda.inference.cog import Georef, Raster, write_cog
    from jeoparda.inference.vrt import write_vrts

    left = np.full((300, 400), 3, np.uint8)
    right = np.full((300, 400), 7, np.uint8)
    right[:, :100] = NO_CLASS  # no patches at b's left edge, where a has them
    placed = []
    for name, image, x0 in (("a", left, 500000.0), ("b", right, 501000.0)):  # b starts 100 px right of a
        write_cog(tmp_path / f"{name}.tif", Raster(400, 300, np.dtype(np.uint8), NO_CLASS, Georef(32633, x0, 6e6, 10)),
                  lambda first, step, count, image=image: image[first:first + step * count:step])
        placed.append((tmp_path / f"{name}.tif", {"epsg": 32633, "origin": [x0, 6e6], "width": 400, "height": 300}))
    (vrt,) = write_vrts(tmp_path, placed)
    assert vrt.name == "mosaic.vrt"
    with rasterio.open(vrt) as mosaic:
        pixels = mosaic.read(1)
        assert (mosaic.width, mosaic.height, mosaic.transform.c, mosaic.crs.to_epsg()) == (500, 300, 500000.0, 32633)
    assert (pixels[:, :200] == 3).all()  # b's no-data does not blank a
    assert (pixels[:, 200:] == 7).all()


@pytest.mark.mpi
def test_two_ranks_write_the_bytes_of_one(scattered, tmp_path):
    args = ["--checkpoint", scattered / "fcn.pt", "--data", scattered / "data", "--tiles", "all",
            "--probabilities", "--max-memory", "40M"]
    one = predict(*args, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    two = subprocess.run([mpirun(), "-np", "2", "--oversubscribe", sys.executable, "-m", "jeoparda", "predict",
                          *map(str, args), "--out", str(tmp_path / "two")], capture_output=True, text=True,
                         env=mpi_env(), timeout=300)
    assert two.returncode == 0, two.stderr
    names = sorted(p.name for p in (tmp_path / "one").iterdir() if p.suffix != ".png")
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir() if p.suffix != ".png") and len(names) > 8
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert two.stdout.count("agreement with the reference maps") == len(tiles_of(scattered / "data"))
