"""``jeoparda predict``: label Sentinel-2 tiles with a trained dense model, as Cloud-Optimized GeoTIFFs."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jeoparda.cli.common import add_max_memory, non_negative_int


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="label whole tiles with a trained FCN: georeferenced class maps (Cloud-Optimized GeoTIFF)",
        description="Place the patches of BigEarthNet v2.0 tiles (patch names <tile>_<col>_<row>) from a converted "
        "data set on their grid, label every patch pixel with the dense model of a jeoparda checkpoint, and write "
        "each tile's class map as a Cloud-Optimized GeoTIFF: uint8 class indices (the 19-class order of "
        "docs/labels.md; 255 where no patch lies), tiled, compressed, with overviews, the CRS and origin read from "
        "the source archive's GeoTIFFs, plus a quick-look PNG with a legend. Only windows that hold patches are "
        "computed, each with the context the model's receptive field needs, in batches sized to --max-memory; "
        "the map is streamed to disk, so memory does not grow with the tile. Under mpirun or srun the windows "
        "are split over the ranks and each tile is written once. The checkpoint's data.bands choose the channels, "
        "normalised as in training. When the data set holds reference maps, prints the share of labelled "
        "pixels where the map agrees with them.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--tile", help="one tile to label, e.g. S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP; "
                       "--out is then the map's file name")
    which.add_argument("--tiles", help="several tiles, comma-separated, or all (every tile of --split); --out is "
                       "then a folder of <tile>.tif maps and a mosaic.vrt (one per coordinate system)")
    p.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint of a dense model (runs/*/checkpoints)")
    p.add_argument("--data", type=Path, required=True, help="the converted BigEarthNet v2.0 data set")
    p.add_argument("--out", type=Path, required=True, help="class map to write (--tile, e.g. map.tif) or folder "
                   "(--tiles)")
    p.add_argument("--split", default="all", help="patches of which split (default all)")
    p.add_argument("--probabilities", action="store_true",
                   help="also write <map>-probability.tif: the winning class's probability (float32, NaN off-patch)")
    add_max_memory(p, "sets the window size and the windows per batch")
    p.add_argument("--window", type=non_negative_int, default=0,
                   help="side in pixels of each window given to the model, context included (rounded out to the "
                   "model's output stride; default: as large as --max-memory allows)")
    p.add_argument("--overlap", type=non_negative_int, default=None,
                   help="pixels of context each side of a window (default: what the model's receptive field "
                   "needs, so that windows equal one pass; less is faster and may change pixels near window edges)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="fp32 (default: the same map on every device) or bf16 autocast (faster on GPUs that have "
                   "it; near-tie pixels may differ)")
    p.add_argument("--device", default="auto",
                   help="where the model runs: auto (each rank's GPU, else the CPU), cpu, cuda or cuda:N "
                   "(default auto)")
    p.add_argument("--json", action="store_true", help="end with one JSON line per tile")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from jeoparda.cluster.backends import create_backend
    from jeoparda.cluster.env import detect
    from jeoparda.cluster.session import Solo
    from jeoparda.config import DistConfig
    from jeoparda.devices import bind_gpu, collectives, parse_device
    from jeoparda.inference.predict import Options, predict
    from jeoparda.models import load_trained

    env = detect()
    accel = parse_device(args.device)  # a wrong --device is said before the checkpoint is read
    trained = load_trained(args.checkpoint, kind="dense", hint="predict needs a dense one trained for segmentation "
                           "(e.g. benchmarks/configs/fcn_bigearthnet.yaml)")
    opts = Options(split=args.split, window=args.window, overlap=args.overlap, probabilities=args.probabilities,
                   max_memory=args.max_memory, bf16=args.precision == "bf16",
                   bands_spec=(trained.config.get("data") or {}).get("bands", ""))
    tiles = [args.tile] if args.tile else [t.strip() for t in args.tiles.split(",") if t.strip()]
    backend = create_backend(env, DistConfig(backend="ddp"), collectives()) if env.is_distributed else None
    try:
        if backend is not None and args.device == "auto":
            accel = bind_gpu(env, backend.gather_objects)  # each rank its own GPU, else the CPU
        summaries = predict(trained.model, args.data, tiles, args.out, opts, accel=accel, comm=backend or Solo(),
                            one_file=bool(args.tile), say=lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        if backend is not None:
            backend.shutdown()
    for summary in summaries:
        print(f"{summary['tile']}: {summary['patches']} patches, {summary['width']}x{summary['height']} pixels, "
              f"EPSG:{summary['epsg']}, {summary['windows']} windows in {summary['batches']} batches, "
              f"{summary['overviews']} overviews, on {summary['device_name']}: {', '.join(summary['files'])}")
        for note in summary["notes"]:
            print(f"note: {note}")
        if summary["agreement"] is not None:
            print(f"agreement with the reference maps: {summary['agreement']:.1%} of "
                  f"{summary['labelled_pixels']:,} labelled pixels")
    if summaries and summaries[0].get("mosaics"):
        print(f"mosaic: {', '.join(summaries[0]['mosaics'])}")
    if args.json:
        for summary in summaries:
            print(json.dumps(summary))
    return 0
