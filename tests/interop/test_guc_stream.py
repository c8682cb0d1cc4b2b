"""globus-url-copy against s3dsi in stream mode (no -p, no -fast: PASV + STOR/RETR/ERET on one data
connection, as in the reference transcripts upload_stream_noP / download_stream_noP).

Every transferred file is compared byte for byte: uploads with the object read back from moto,
downloads with the local file. What went over the wire comes from the client's own ``-dbg`` trace.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

import pytest

from tests.interop.conftest import S3dsi, run, unique, write_file
from tests.support.guc_debug import Exchange, commands, parse_debug
from tests.support.interop_helpers import (
    enable_versioning,
    ftp_session,
    multipart_part_count,
    object_bytes,
    trees_differ,
    versions,
)
from tests.support.programs import need
from tests.support.s3dsi_env import MiB

pytestmark = pytest.mark.interop

PART = 5 * MiB  # part_size_min of the test configuration (tests/support/s3dsi_env.py)
SIZES = {"empty": 0, "1-byte": 1, "3-MiB": 3 * MiB + 5, "one-part": PART, "part-plus-1": PART + 1,
         "over-10-parts": 11 * PART + 7}


def guc(*args: str, check: bool = True, timeout: float = 120) -> tuple[str, str, list[Exchange]]:
    """globus-url-copy -dbg ARGS: (stdout, stderr, parsed control-channel trace)."""
    proc = run([need("globus-url-copy"), "-dbg", *args], check=check, timeout=timeout)
    return proc.stdout, proc.stderr, parse_debug(proc.stderr)


def assert_stream_mode(trace: list[Exchange], transfer: str) -> None:
    """One data connection per transfer, set up with PASV, and never MODE E."""
    sent = commands(trace)
    assert not [c for c in sent if c.upper().startswith("MODE")], sent
    assert "PASV" in sent, sent
    assert any(c.startswith(transfer) for c in sent), sent


def reply_to(trace: list[Exchange], command_prefix: str) -> str:
    """The final reply that followed the first command starting with ``command_prefix``."""
    for i, e in enumerate(trace):
        if e.kind == "command" and e.text.startswith(command_prefix):
            for later in trace[i + 1:]:
                if later.kind == "reply" and later.code >= 200:
                    return later.text
    raise AssertionError(f"no {command_prefix!r} with a reply in {commands(trace)}")


def local_url(path: Path) -> str:
    return f"file://{path}"


# -- single files -----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
def test_upload_then_download(s3dsi: S3dsi, bucket: str, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    src = write_file(tmp_path / "src.bin", data)
    key = f"{unique('up')}.bin"

    _, _, trace = guc(local_url(src), s3dsi.url(f"/{bucket}/{key}"))
    assert_stream_mode(trace, f"STOR /{bucket}/{key}")
    if size:
        assert f"ALLO {size}" in commands(trace)
    assert object_bytes(s3dsi.moto, bucket, key) == data
    if size > 10 * PART:
        etag = s3dsi.moto.client().head_object(Bucket=bucket, Key=key)["ETag"]
        assert multipart_part_count(etag) > 10, etag

    dst = tmp_path / "back.bin"
    _, _, trace = guc(s3dsi.url(f"/{bucket}/{key}"), local_url(dst))
    assert_stream_mode(trace, f"RETR /{bucket}/{key}")
    assert dst.read_bytes() == data


def test_partial_download_writes_at_the_offset(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    """-off O -len L sends ``ERET P O L`` and the client writes the bytes at offset O of the local file
    (a hole before them); without -len it sends ``REST O`` + RETR. Ranges cross a part boundary and
    one runs past the end of the object (clipped, as GT does)."""
    data = os.urandom(PART + 3 * MiB)
    key = unique("partial")
    s3dsi.moto.client().put_object(Bucket=bucket, Key=key, Body=data)
    url = s3dsi.url(f"/{bucket}/{key}")

    cases = [(1000, 5000), (PART - 4096, 10_000), (len(data) - 1000, 50_000)]
    for offset, length in cases:
        dst = tmp_path / f"part-{offset}.bin"
        _, _, trace = guc("-off", str(offset), "-len", str(length), url, local_url(dst))
        assert_stream_mode(trace, f"ERET P {offset} {length} /{bucket}/{key}")
        got = dst.read_bytes()
        end = min(offset + length, len(data))
        assert len(got) == end
        assert got[offset:] == data[offset:end]
        assert got[:offset] == bytes(offset)

    offset = len(data) - 123_456
    dst = tmp_path / "rest.bin"
    _, _, trace = guc("-off", str(offset), url, local_url(dst))
    assert f"REST {offset}" in commands(trace)
    got = dst.read_bytes()
    assert got[offset:] == data[offset:] and got[:offset] == bytes(offset)


# -- listings ------------------------------------------------------------------------------------
def listed_names(stdout: str) -> set[str]:
    """Names printed by ``globus-url-copy -list URL/`` (first line is the URL; dirs end in /)."""
    lines = [line.strip() for line in stdout.splitlines()[1:]]
    return {line for line in lines if line}


def test_list_directory(s3dsi: S3dsi, bucket: str) -> None:
    client = s3dsi.moto.client()
    for key in ("top/a.txt", "top/b.bin", "top/sub/c.txt", "top/sub/deeper/d.txt", "top/empty/", "other.txt"):
        client.put_object(Bucket=bucket, Key=key, Body=b"" if key.endswith("/") else key.encode())

    stdout, _, trace = guc("-list", s3dsi.url(f"/{bucket}/top/"))
    assert "MLSD" in " ".join(commands(trace))
    assert listed_names(stdout) == {"a.txt", "b.bin", "sub/", "empty/"}

    stdout, _, _ = guc("-list", s3dsi.url(f"/{bucket}/"))
    assert listed_names(stdout) == {"top/", "other.txt"}

    stdout, _, _ = guc("-list", s3dsi.url(f"/{bucket}/top/empty/"))
    assert listed_names(stdout) == set()


# -- recursive copies -----------------------------------------------------------------------------
def make_tree(root: Path) -> Path:
    write_file(root / "a.txt", b"alpha\n")
    write_file(root / "zero", b"")
    (root / "empty1").mkdir()
    write_file(root / "sub" / "b.bin", os.urandom(70_000))
    (root / "sub" / "empty2").mkdir()
    (root / "sub" / "nested-empty" / "inner-empty").mkdir(parents=True)
    write_file(root / "sub" / "deeper" / "c.txt", b"c\n")
    write_file(root / "sub" / "deeper" / "big.bin", os.urandom(PART + 3))
    write_file(root / "dir one" / "file a%41.txt", b"spaces and percent signs survive the URLs\n")
    (root / "dir one" / "empty two").mkdir()
    return root


def test_recursive_upload_and_download_keep_the_tree(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    remote = f"/{bucket}/{unique('rtree')}/"

    _, _, trace = guc("-r", "-cd", local_url(tree) + "/", s3dsi.url(remote))
    sent = commands(trace)
    assert not [c for c in sent if c.upper().startswith("MODE")], sent
    prefix = remote[len(bucket) + 2:]
    keys = set(s3dsi.keys(bucket, prefix))
    files = ("a.txt", "zero", "sub/b.bin", "sub/deeper/c.txt", "sub/deeper/big.bin", "dir one/file a%41.txt")
    for rel in files:
        assert object_bytes(s3dsi.moto, bucket, prefix + rel) == (tree / rel).read_bytes(), rel
    for empty in ("empty1/", "sub/empty2/", "sub/nested-empty/inner-empty/", "dir one/empty two/"):
        assert prefix + empty in keys, f"no directory marker for {empty}: {sorted(keys)}"

    back = tmp_path / "back"
    guc("-r", "-cd", s3dsi.url(remote), local_url(back) + "/")
    assert trees_differ(tree, back) == []


# -- sync ---------------------------------------------------------------------------------------
def test_sync_level_3_transfers_only_what_changed(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    """Bucket versioning makes every stored upload visible as a new version, so "nothing was
    transferred" is checked on the S3 side, not only from the client's trace."""
    enable_versioning(s3dsi.moto, bucket)
    data = bytearray(os.urandom(PART + 12_345))
    src = write_file(tmp_path / "sync.bin", bytes(data))
    key = unique("sync")
    url = s3dsi.url(f"/{bucket}/{key}")

    _, _, trace = guc("-sync", "-sync-level", "3", local_url(src), url)
    assert any(c.startswith("STOR") for c in commands(trace))
    first = versions(s3dsi.moto, bucket, key)
    assert len(first) == 1 and object_bytes(s3dsi.moto, bucket, key) == bytes(data)

    _, _, trace = guc("-sync", "-sync-level", "3", local_url(src), url)
    sent = commands(trace)
    assert any(c.startswith(f"CKSM MD5 0 -1 /{bucket}/{key}") for c in sent), sent
    assert not any(c.startswith(("STOR", "ESTO")) for c in sent), sent
    assert versions(s3dsi.moto, bucket, key) == first

    data[PART:PART + 8] = b"changed!"  # same size: only the checksum can tell
    src.write_bytes(bytes(data))
    _, _, trace = guc("-sync", "-sync-level", "3", local_url(src), url)
    assert any(c.startswith("STOR") for c in commands(trace))
    assert len(versions(s3dsi.moto, bucket, key)) == 2
    assert object_bytes(s3dsi.moto, bucket, key) == bytes(data)


# -- checksums -----------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["MD5", "SHA256"])
def test_verify_checksum(s3dsi: S3dsi, bucket: str, tmp_path: Path, algorithm: str) -> None:
    """-verify-checksum: CKSM after STOR (second connection) and before RETR; the client compares the
    server's digest with its own. The object spans two parts, so its ETag is not its MD5."""
    data = os.urandom(PART + 1)
    digest = hashlib.new(algorithm.lower(), data).hexdigest()
    src = write_file(tmp_path / "vc.bin", data)
    key = unique("vc")
    extra = [] if algorithm == "MD5" else ["-checksum-alg", algorithm]

    _, _, trace = guc("-verify-checksum", *extra, local_url(src), s3dsi.url(f"/{bucket}/{key}"))
    assert reply_to(trace, f"CKSM {algorithm} 0 -1 /{bucket}/{key}") == f"213 {digest}"
    assert object_bytes(s3dsi.moto, bucket, key) == data

    dst = tmp_path / "vc.back"
    _, _, trace = guc("-verify-checksum", *extra, s3dsi.url(f"/{bucket}/{key}"), local_url(dst))
    assert reply_to(trace, f"CKSM {algorithm} 0 -1 /{bucket}/{key}") == f"213 {digest}"
    assert dst.read_bytes() == data


def test_adler32_is_computed_by_the_server(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    """globus-url-copy cannot compute ADLER32 locally (it fails after the transfer, like against GT:
    transcript verify_checksum_download_adler32), so ADLER32 is checked through CKSM directly."""
    data = os.urandom(PART + 77)
    key = unique("adler")
    s3dsi.moto.client().put_object(Bucket=bucket, Key=key, Body=data)
    with ftp_session(s3dsi.address) as ftp:
        assert ftp.sendcmd(f"CKSM ADLER32 0 -1 /{bucket}/{key}") == f"213 {zlib.adler32(data):08x}"
        assert ftp.sendcmd(f"CKSM adler32 1000 5000 /{bucket}/{key}") == \
            f"213 {zlib.adler32(data[1000:6000]):08x}"
        assert ftp.sendcmd(f"CKSM MD5 {PART - 10} 20 /{bucket}/{key}") == \
            f"213 {hashlib.md5(data[PART - 10:PART + 10]).hexdigest()}"

    dst = tmp_path / "adler.back"
    _, stderr, trace = guc("-verify-checksum", "-checksum-alg", "ADLER32", s3dsi.url(f"/{bucket}/{key}"),
                           local_url(dst), check=False)
    assert reply_to(trace, f"CKSM ADLER32 0 -1 /{bucket}/{key}") == f"213 {zlib.adler32(data):08x}"
    assert "Unable to use checksum algorithm ADLER32" in stderr
    assert dst.read_bytes() == data
