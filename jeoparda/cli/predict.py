"""``jeoparda predict``: label a Sentinel-2 tile with a trained dense model, as a GeoTIFF map."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from jeoparda.cli.common import positive_int


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="label a whole tile with a trained FCN: a georeferenced class map (GeoTIFF)",
        description="Mosaic the patches of one BigEarthNet v2.0 tile (patch names <tile>_<col>_<row>) from a "
        "converted data set, label every pixel with the dense model of a jeoparda checkpoint, and write "
        "OUT as a uint8 GeoTIFF of class indices (the 19-class order of docs/labels.md; 255 where no patch lies), "
        "with the CRS and origin read from the source archive's GeoTIFFs, plus OUT with .png: a quick look "
        "with a legend. The checkpoint's data.bands choose the channels, normalised as in training. "
        "A tile larger than --max-pixels needs --window: overlapping windows, each window's border of "
        "--overlap pixels computed but not kept. When the data set holds reference maps, prints the share "
        "of labelled pixels where the map agrees with them.")
    p.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint of a dense model (runs/*/checkpoints)")
    p.add_argument("--data", type=Path, required=True, help="the converted BigEarthNet v2.0 data set")
    p.add_argument("--tile", required=True, help="tile to label, e.g. S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP")
    p.add_argument("--out", type=Path, required=True, help="class map to write (GeoTIFF), e.g. map.tif")
    p.add_argument("--split", default="all", help="patches of which split (default all)")
    p.add_argument("--probabilities", action="store_true",
                   help="also write OUT-probability.tif: the winning class's probability (float32, NaN off-patch)")
    p.add_argument("--window", type=int, default=0, help="label in windows of this many pixels (default: one pass)")
    p.add_argument("--overlap", type=int, default=32, help="pixels of context kept around each window (default 32)")
    p.add_argument("--max-pixels", type=positive_int, default=50_000_000,
                   help="largest mosaic labelled in one pass (default 50,000,000)")
    p.add_argument("--device", default="auto",
                   help="where the model runs: auto (the first visible GPU, else the CPU), cpu, cuda or cuda:N "
                   "(default auto)")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from jeoparda.devices import parse_device
    from jeoparda.inference.predict import predict_tile
    from jeoparda.models import load_trained

    accel = parse_device(args.device)  # a wrong --device is said before the checkpoint is read
    trained = load_trained(args.checkpoint, kind="dense", hint="predict needs a dense one trained for segmentation "
                           "(e.g. benchmarks/configs/fcn_bigearthnet.yaml)")
    model = trained.model
    bands_spec = (trained.config.get("data") or {}).get("bands", "")
    summary = predict_tile(model, args.data, args.split, args.tile, args.out, window=args.window,
                           overlap=args.overlap, probabilities=args.probabilities, max_pixels=args.max_pixels,
                           bands_spec=bands_spec, accel=accel)
    print(f"{args.tile}: {summary['patches']} patches, {summary['width']}x{summary['height']} pixels, "
          f"EPSG:{summary['epsg']}, on {summary['device_name']}: {', '.join(summary['files'])}")
    for note in summary["notes"]:
        print(f"note: {note}")
    if summary["agreement"] is not None:
        print(f"agreement with the reference maps: {summary['agreement']:.1%} of "
              f"{summary['labelled_pixels']:,} labelled pixels")
    if args.json:
        print(json.dumps(summary))
    return 0
