"""Test files of the benchmarks: making them, their digests, comparing them, sizes like ``1G``."""

from __future__ import annotations

import hashlib
import mmap
import os
import zlib
from pathlib import Path

MiB = 1024 * 1024
GiB = 1024 * MiB
_STEP = 64 * MiB


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": MiB, "G": GiB, "T": 1024 * GiB}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def make_file(path: Path, size: int, seed_file: Path | None = None) -> None:
    """Random bytes; with a seed file, copies of it, each starting with a fresh random MiB (cheap to make)."""
    seed = memoryview(seed_file.read_bytes()) if seed_file is not None else memoryview(b"")
    written = 0
    with path.open("wb") as f:
        while written < size:
            head = os.urandom(min(MiB if len(seed) > MiB else _STEP, size - written))
            f.write(head)
            written += len(head)
            tail = seed[len(head):len(head) + size - written]
            f.write(tail)
            written += len(tail)


def file_digests(path: Path, *, md5: bool) -> dict[str, str]:
    """ADLER32 (and MD5) in the lower-case hex form s3dsi stores in its ``s3dsi-<alg>`` tags."""
    adler = 1
    h = hashlib.md5()  # compared with the digest s3dsi stores
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        view = memoryview(m)
        try:
            for i in range(0, len(view), _STEP):
                adler = zlib.adler32(view[i:i + _STEP], adler)
                if md5:
                    h.update(view[i:i + _STEP])
        finally:
            view.release()
    out = {"adler32": f"{adler:08x}"}
    if md5:
        out["md5"] = h.hexdigest()
    return out


def same_bytes(a: Path, b: Path) -> bool:
    size = a.stat().st_size
    if size != b.stat().st_size:
        return False
    if size == 0:
        return True
    with a.open("rb") as fa, b.open("rb") as fb, \
            mmap.mmap(fa.fileno(), 0, access=mmap.ACCESS_READ) as ma, \
            mmap.mmap(fb.fileno(), 0, access=mmap.ACCESS_READ) as mb:
        return all(ma[i:i + _STEP] == mb[i:i + _STEP] for i in range(0, size, _STEP))
