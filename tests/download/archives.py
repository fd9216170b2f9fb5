"""Small archives built in the tests, in each format the publishers use."""
from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile


def members(root: str, count: int = 4, size: int = 50_000, seed: int = 1) -> dict[str, bytes]:
    """{path: bytes}: ``count`` files under ``root/sub/``, random-looking (so compression keeps them large)."""
    out = {}
    for i in range(count):
        block = hashlib.sha256(f"{seed}-{i}".encode()).digest()
        out[f"{root}/sub/f{i}.bin"] = (block * (size // len(block) + 1))[:size - 8] + i.to_bytes(8, "big")
    return out


def tar_bytes(files: dict[str, bytes], compression: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_zst(files: dict[str, bytes], frames: int = 2) -> bytes:
    """A .tar.zst of several concatenated zstd frames (as large archives are written)."""
    import zstandard

    plain = tar_bytes(files)
    cut = [len(plain) * k // frames for k in range(frames + 1)]
    return b"".join(zstandard.ZstdCompressor().compress(plain[a:b]) for a, b in zip(cut, cut[1:], strict=False))


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()
