"""``jeoparda download``: the published archives, fetched, verified and unpacked."""
from __future__ import annotations

import argparse
from pathlib import Path

from jeoparda.cli.common import non_negative_int, positive_float, positive_int

_EPILOG = """\
Every file is checked against the MD5 its publisher lists (recorded in jeoparda with the record it
comes from; --list shows them) before anything of it is unpacked; verification cannot be turned off.
A transfer that stops (a dropped connection, kill -9, a full disk) continues where it stopped on the
next run; a damaged file is deleted and fetched again by the next run. Archives are unpacked from
where they lie, into a scratch folder, and moved into place whole; then they are removed (keep them
with --keep-archives). Proxies: https_proxy, http_proxy and no_proxy are honoured.

examples:
  jeoparda download bigearthnet-v2 --out /scratch/reBEN                  # S2, reference maps, tables
  jeoparda download bigearthnet-v2 --out /scratch/reBEN --parts s1       # later: add Sentinel-1
  jeoparda download eurosat --out /scratch/eurosat --mirror https://data.example.org/eurosat/
  jeoparda download bigearthnet-v1 --list
"""


def add_download(sub: argparse._SubParsersAction) -> None:
    from jeoparda.download.catalog import DATASETS

    p = sub.add_parser(
        "download", help="fetch a published archive (BigEarthNet v1.0/v2.0, EuroSAT), verify and unpack it",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG,
        description="Fetch the official files of a data set, check each against its published MD5, unpack it\n"
        "and print the `jeoparda convert` command that reads the result.\n\n"
        + "\n".join(f"  {d.name:15} {d.title}; parts {', '.join(d.parts)} (default {','.join(d.default_parts)})"
                    for d in DATASETS.values()))
    p.add_argument("dataset", metavar="DATASET", help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--out", type=Path, help="folder to fill (made if missing; an earlier download's folder "
                   "is continued; a folder holding anything else is refused)")
    p.add_argument("--parts", type=_parts, default=None, metavar="P[,P...]",
                   help="which files: s2, s1, maps, metadata (default: what convert needs, see above)")
    p.add_argument("--mirror", metavar="URL", help="fetch the same file names from URL (a centre's copy) "
                   "instead of the publisher")
    p.add_argument("--checksums", type=Path, metavar="FILE",
                   help="MD5s in md5sum's format ('MD5  NAME') replacing the published ones for the files they "
                   "name, e.g. a mirror's own copies; lines for NAME.SUFFIX or NAMEaa, NAMEab, ... make NAME a "
                   "split file whose parts are fetched, each checked, and joined")
    p.add_argument("--list", action="store_true",
                   help="print each file's name, size, MD5, URL and source; fetch nothing")
    p.add_argument("--dry-run", action="store_true", help="say what would be fetched into --out; fetch nothing")
    p.add_argument("--workers", type=positive_int, default=4, metavar="N",
                   help="files fetched at once (default 4)")
    p.add_argument("--retries", type=non_negative_int, default=5, metavar="N",
                   help="retries of a failed request, back-off doubling from --backoff (default 5)")
    p.add_argument("--backoff", type=positive_float, default=2.0, metavar="SECONDS",
                   help="the first retry's wait (default 2)")
    p.add_argument("--keep-archives", action="store_true",
                   help="keep the verified archives in OUT/.jeoparda-download/ after unpacking")
    p.set_defaults(func=_run)


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if not parts:
        raise argparse.ArgumentTypeError("name at least one part")
    return parts


def _run(args: argparse.Namespace) -> int:
    from jeoparda.download.catalog import dataset
    from jeoparda.download.run import DownloadRequest, run_download
    from jeoparda.download.transfer import Policy
    from jeoparda.errors import JeopardaError

    if args.list:
        data = dataset(args.dataset)
        for f in data.files:
            size = f"{f.size:,}" if f.size is not None else "(from the server)"
            print(f"{f.part:8}  {f.name}  {size} bytes  MD5 {f.md5}  {f.url}  [{f.source}]")
        return 0
    if args.out is None:
        raise JeopardaError("download: --out DIR is needed (or --list)")
    policy = Policy(retries=args.retries, backoff_s=args.backoff)
    return run_download(DownloadRequest(args.dataset, args.out, args.parts, args.mirror, args.checksums,
                                        args.workers, args.keep_archives, args.dry_run, policy))
