"""curl (libcurl's FTP client) against s3dsi: uploads and downloads over every data-connection set-up
curl offers (EPSV, PASV, EPRT, PORT) and path style (multicwd, singlecwd, nocwd), LIST and NLST,
quote commands before and after a transfer, --ftp-create-dirs, ranged downloads (REST, then ABOR)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.interop.conftest import S3dsi, run, unique, write_file
from tests.support.interop_helpers import ftp_session, object_bytes
from tests.support.programs import need
from tests.support.s3dsi_env import MiB

pytestmark = pytest.mark.interop

PART = 5 * MiB

DATA_CHANNELS = {
    "epsv": [],
    "pasv": ["--disable-epsv"],
    "eprt": ["--ftp-port", "127.0.0.1"],
    "port": ["--ftp-port", "127.0.0.1", "--disable-eprt"],
    "nocwd": ["--ftp-method", "nocwd"],
    "singlecwd": ["--ftp-method", "singlecwd"],
}


def curl(*args: str, check: bool = True) -> tuple[int, str, str]:
    proc = run([need("curl"), "-sS", "--max-time", "60", *args], check=check)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("options", list(DATA_CHANNELS.values()), ids=list(DATA_CHANNELS))
def test_upload_and_download(s3dsi: S3dsi, bucket: str, tmp_path: Path, options: list[str]) -> None:
    data = os.urandom(PART + 4321)
    src = write_file(tmp_path / "up.bin", data)
    key = f"{unique('curl')}.bin"
    url = s3dsi.url(f"/{bucket}/{key}")

    curl(*options, "-T", str(src), url)
    assert object_bytes(s3dsi.moto, bucket, key) == data

    dst = tmp_path / "down.bin"
    curl(*options, "-o", str(dst), url)
    assert dst.read_bytes() == data


def test_empty_file_roundtrip(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    src = write_file(tmp_path / "empty", b"")
    curl("-T", str(src), s3dsi.url(f"/{bucket}/empty"))
    assert object_bytes(s3dsi.moto, bucket, "empty") == b""
    dst = tmp_path / "empty.back"
    curl("-o", str(dst), s3dsi.url(f"/{bucket}/empty"))
    assert dst.exists() and dst.read_bytes() == b""


def test_list_and_nlst(s3dsi: S3dsi, bucket: str) -> None:
    client = s3dsi.moto.client()
    client.put_object(Bucket=bucket, Key="dir/a.txt", Body=b"12345")
    client.put_object(Bucket=bucket, Key="dir/sub/b.txt", Body=b"b")
    client.put_object(Bucket=bucket, Key="dir/empty/", Body=b"")

    _, out, _ = curl(s3dsi.url(f"/{bucket}/dir/"))
    rows = {line.split()[-1]: line.split() for line in out.splitlines() if line.strip()}
    assert set(rows) == {".", "..", "a.txt", "sub", "empty"}, out
    assert rows["a.txt"][0].startswith("-") and rows["a.txt"][4] == "5", out
    assert rows["sub"][0].startswith("d") and rows["empty"][0].startswith("d"), out

    _, out, _ = curl("--list-only", s3dsi.url(f"/{bucket}/dir/"))
    assert sorted(out.split()) == [".", "..", "a.txt", "empty", "sub"], out


def test_quote_dele_before_and_after_a_transfer(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    client = s3dsi.moto.client()
    client.put_object(Bucket=bucket, Key="gone-before", Body=b"x")
    data = os.urandom(100_000)
    client.put_object(Bucket=bucket, Key="gone-after", Body=data)

    curl("-Q", f"DELE /{bucket}/gone-before", "--list-only", s3dsi.url(f"/{bucket}/"))
    assert object_bytes(s3dsi.moto, bucket, "gone-before") is None

    dst = tmp_path / "after.bin"
    curl("-Q", f"-DELE /{bucket}/gone-after", "-o", str(dst), s3dsi.url(f"/{bucket}/gone-after"))
    assert dst.read_bytes() == data
    assert object_bytes(s3dsi.moto, bucket, "gone-after") is None


def test_failing_quote_command_fails_curl(s3dsi: S3dsi, bucket: str) -> None:
    rc, _, err = curl("-Q", f"DELE /{bucket}/no-such-file", "--list-only", s3dsi.url(f"/{bucket}/"),
                      check=False)
    assert rc == 21, err  # CURLE_QUOTE_ERROR
    assert "550" in err


def test_create_dirs(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(10_000)
    src = write_file(tmp_path / "f.bin", data)
    top = unique("new")

    rc, _, err = curl("-T", str(src), s3dsi.url(f"/{bucket}/{top}/x/f.bin"), check=False)
    assert rc == 9, err  # CURLE_REMOTE_ACCESS_DENIED: CWD into a missing directory
    assert s3dsi.keys(bucket, top) == []

    curl("--ftp-create-dirs", "-T", str(src), s3dsi.url(f"/{bucket}/{top}/x/y/f.bin"))
    assert object_bytes(s3dsi.moto, bucket, f"{top}/x/y/f.bin") == data
    with ftp_session(s3dsi.address) as ftp:
        facts = dict(ftp.mlsd(f"/{bucket}/{top}/x"))
    assert facts["y"]["type"] == "dir"


def test_ranged_download(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    """``-r a-b``: REST a + RETR, and curl stops reading (ABOR) once it has its bytes."""
    data = os.urandom(PART + 100)
    s3dsi.moto.client().put_object(Bucket=bucket, Key="ranged", Body=data)
    for first, last in ((0, 99), (PART - 50, PART + 49), (PART + 90, PART + 99)):
        dst = tmp_path / f"r{first}"
        curl("-r", f"{first}-{last}", "-o", str(dst), s3dsi.url(f"/{bucket}/ranged"))
        assert dst.read_bytes() == data[first:last + 1]
