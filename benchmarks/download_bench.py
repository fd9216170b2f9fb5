"""`jeoparda download` on this machine (issue: jeoparda download): a .tar.zst made here, served on
loopback by Python's http.server (no range support, like many mirrors), fetched, verified and
unpacked; GNU tar unpacking the same archive is timed in the same run as the reference.

Each repeat alternates the two (`jeoparda download` into a fresh folder, then `tar --zstd -xf`) and
the medians are printed; the ratio is what to compare across machines.

Usage: python benchmarks/download_bench.py [--mb 200] [--repeats 3] [--work DIR]
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAME = "BigEarthNet-S2.tar.zst"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def make_archive(path: Path, megabytes: int) -> int:
    """A tar.zst of 5 MB members, half random and half zeros (it packs to about half); its plain size."""
    import zstandard

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(max(1, megabytes // 5)):
            data = os.urandom(2_500_000) + bytes(2_500_000)
            info = tarfile.TarInfo(f"BigEarthNet-S2/t/f{i}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(zstandard.ZstdCompressor(level=3).compress(buf.getvalue()))
    return len(buf.getvalue())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=200, help="plain size of the archive's members (default 200)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="download-bench-"))
    mirror = work / "mirror"
    mirror.mkdir(parents=True, exist_ok=True)
    plain = make_archive(mirror / NAME, args.mb)
    packed = (mirror / NAME).stat().st_size
    sums = work / "sums.md5"
    sums.write_text(f"{hashlib.md5((mirror / NAME).read_bytes()).hexdigest()}  {NAME}\n")
    handler = functools.partial(_Quiet, directory=str(mirror))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ours, tar, rates = [], [], {"verify": [], "unpack": []}
    try:
        for _ in range(args.repeats):
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "jeoparda", "download", "bigearthnet-v2", "--parts", "s2",
                                   "--out", str(out), "--mirror", url, "--checksums", str(sums)],
                                  capture_output=True, text=True, env=env)
            ours.append(time.perf_counter() - start)
            if done.returncode:
                print(done.stderr, file=sys.stderr)
                return 1
            for step in rates:
                line = next(x for x in done.stderr.splitlines() if x.startswith(f"{step} {NAME}"))
                rates[step].append(float(re.search(r"([\d.]+) MB/s", line)[1]))  # type: ignore[index]
            ref = work / "ref"
            shutil.rmtree(ref, ignore_errors=True)
            ref.mkdir()
            start = time.perf_counter()
            subprocess.run(["tar", "--zstd", "-xf", str(mirror / NAME), "-C", str(ref)], check=True)
            tar.append(time.perf_counter() - start)
    finally:
        server.shutdown()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"archive {packed / 1e6:.1f} MB, {plain / 1e6:.1f} MB unpacked; {args.repeats} repeats, medians:")
    print(f"jeoparda download (fetch + verify + unpack): {statistics.median(ours):.2f} s "
          f"(runs {', '.join(f'{t:.2f}' for t in ours)})")
    print(f"  verify {statistics.median(rates['verify']):.0f} MB/s, unpack {statistics.median(rates['unpack']):.0f} "
          "MB/s of the archive")
    print(f"tar --zstd -xf alone: {statistics.median(tar):.2f} s; download / tar = "
          f"{statistics.median(ours) / statistics.median(tar):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
