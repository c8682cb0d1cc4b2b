"""Python's ftplib against s3dsi: the namespace commands (MLSD/MLST facts, MKD/RMD, RNFR/RNTO, SIZE,
MDTM, DELE, CWD/PWD/CDUP, NLST), binary STOR/RETR in passive and active mode, and ``/`` as the list
of the user's buckets. Expected replies follow the reference server (brief §4, §14)."""

from __future__ import annotations

import ftplib
import io
import os
from datetime import UTC, datetime

import pytest

from tests.interop.conftest import S3dsi, unique
from tests.support.interop_helpers import ftp_session, object_bytes
from tests.support.s3dsi_env import MiB

pytestmark = pytest.mark.interop

PART = 5 * MiB


def put(s3dsi: S3dsi, bucket: str, key: str, body: bytes = b"") -> None:
    s3dsi.moto.client().put_object(Bucket=bucket, Key=key, Body=body)


def code(exc: ftplib.Error) -> int:
    return int(str(exc)[:3])


def test_root_lists_the_buckets(s3dsi: S3dsi, bucket: str) -> None:
    with ftp_session(s3dsi.address) as ftp:
        assert ftp.pwd() == "/"
        entries = dict(ftp.mlsd("/"))
        assert entries[bucket]["type"] == "dir"
        assert entries["."]["type"] == "cdir"
        assert bucket in ftp.nlst("/")


def test_mlsd_facts(s3dsi: S3dsi, bucket: str) -> None:
    data = os.urandom(1234)
    put(s3dsi, bucket, "d/file.bin", data)
    put(s3dsi, bucket, "d/a/sub/x", b"x")
    put(s3dsi, bucket, "d/b/sub/y", b"y")
    put(s3dsi, bucket, "d/empty/")
    modified = s3dsi.moto.client().head_object(Bucket=bucket, Key="d/file.bin")["LastModified"]

    with ftp_session(s3dsi.address) as ftp:
        entries = dict(ftp.mlsd(f"/{bucket}/d"))
        assert set(entries) == {".", "..", "file.bin", "a", "b", "empty"}
        assert entries["."]["type"] == "cdir" and entries[".."]["type"] == "pdir"
        f = entries["file.bin"]
        assert f["type"] == "file" and int(f["size"]) == len(data)
        mtime = datetime.strptime(f["modify"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        assert abs((mtime - modified).total_seconds()) < 2
        for name in ("a", "b", "empty"):
            assert entries[name]["type"] == "dir"
        uniques = [facts["unique"] for facts in entries.values()]
        assert len(set(uniques)) == len(uniques), entries

        # two directories of the same name in different parents: globus-url-copy -r skips a directory
        # whose Unique it has seen, so these must differ
        sub_a = dict(ftp.mlsd(f"/{bucket}/d/a"))["sub"]["unique"]
        sub_b = dict(ftp.mlsd(f"/{bucket}/d/b"))["sub"]["unique"]
        assert sub_a != sub_b

        # ftplib's facts= sends OPTS MLST first; only the chosen facts come back
        chosen = dict(ftp.mlsd(f"/{bucket}/d", facts=["type", "size"]))
        assert chosen["file.bin"] == {"type": "file", "size": str(len(data))}
        assert all(set(facts) == {"type", "size"} for facts in chosen.values()), chosen
        ftp.sendcmd("OPTS MLST Type;Size;Modify;Perm;UNIX.mode;UNIX.owner;UNIX.group;Unique;")

        lines = ftp.sendcmd(f"MLST /{bucket}/d/file.bin").splitlines()
        assert lines[0].startswith("250-") and lines[-1].startswith("250")
        assert "type=file;" in lines[1].lower() and f"size={len(data)};" in lines[1].lower()
        assert lines[1].endswith(f" /{bucket}/d/file.bin")


def test_mkd_and_rmd(s3dsi: S3dsi, bucket: str) -> None:
    put(s3dsi, bucket, "full/child", b"c")
    with ftp_session(s3dsi.address) as ftp:
        reply = ftp.sendcmd(f"MKD /{bucket}/newdir")
        assert reply.startswith("257") and f'"/{bucket}/newdir"' in reply
        assert dict(ftp.mlsd(f"/{bucket}"))["newdir"]["type"] == "dir"
        with pytest.raises(ftplib.error_perm) as exists:
            ftp.mkd(f"/{bucket}/newdir")
        assert code(exists.value) == 553 and "PATH_EXISTS" in str(exists.value)
        with pytest.raises(ftplib.error_perm) as no_parent:
            ftp.mkd(f"/{bucket}/missing/child")
        assert code(no_parent.value) == 550

        ftp.rmd(f"/{bucket}/newdir")
        assert "newdir" not in dict(ftp.mlsd(f"/{bucket}"))
        with pytest.raises(ftplib.error_temp) as not_empty:
            ftp.rmd(f"/{bucket}/full")
        assert code(not_empty.value) == 451 and "not empty" in str(not_empty.value).lower()
        assert object_bytes(s3dsi.moto, bucket, "full/child") == b"c"
        with pytest.raises(ftplib.error_perm) as missing:
            ftp.rmd(f"/{bucket}/never-was")
        assert code(missing.value) == 550


def test_rename(s3dsi: S3dsi, bucket: str) -> None:
    data = os.urandom(PART + 10)  # a multipart-sized object: server-side copy, then delete
    put(s3dsi, bucket, "from.bin", data)
    put(s3dsi, bucket, "adir/inside", b"i")
    with ftp_session(s3dsi.address) as ftp:
        assert ftp.rename(f"/{bucket}/from.bin", f"/{bucket}/to.bin").startswith("250")
        assert object_bytes(s3dsi.moto, bucket, "to.bin") == data
        assert object_bytes(s3dsi.moto, bucket, "from.bin") is None

        with pytest.raises(ftplib.error_perm) as refused:
            ftp.rename(f"/{bucket}/adir", f"/{bucket}/bdir")
        assert 500 <= code(refused.value) < 600
        assert "directory rename is not supported" in str(refused.value)
        assert object_bytes(s3dsi.moto, bucket, "adir/inside") == b"i"

        with pytest.raises(ftplib.error_perm) as missing:
            ftp.sendcmd(f"RNFR /{bucket}/nothing-here")
        assert code(missing.value) == 500  # GT answers RNFR of a missing file with 500
        with pytest.raises(ftplib.error_perm) as no_rnfr:
            ftp.sendcmd(f"RNTO /{bucket}/x")
        assert str(no_rnfr.value) == "501 Invalid command arguments."  # as GT


def test_size_mdtm_dele(s3dsi: S3dsi, bucket: str) -> None:
    put(s3dsi, bucket, "f.bin", b"0123456789")
    put(s3dsi, bucket, "dir/x", b"x")
    modified = s3dsi.moto.client().head_object(Bucket=bucket, Key="f.bin")["LastModified"]
    with ftp_session(s3dsi.address) as ftp:
        assert ftp.size(f"/{bucket}/f.bin") == 10
        reply = ftp.sendcmd(f"MDTM /{bucket}/f.bin")
        assert reply.startswith("213 ")
        mtime = datetime.strptime(reply[4:], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        assert abs((mtime - modified).total_seconds()) < 2
        with pytest.raises(ftplib.error_perm) as missing:
            ftp.size(f"/{bucket}/nope")
        assert code(missing.value) == 550 and "PATH_NOT_FOUND" in str(missing.value)

        with pytest.raises(ftplib.error_perm) as is_dir:
            ftp.delete(f"/{bucket}/dir")
        assert code(is_dir.value) == 550
        assert object_bytes(s3dsi.moto, bucket, "dir/x") == b"x"
        assert ftp.delete(f"/{bucket}/f.bin").startswith("250")
        assert object_bytes(s3dsi.moto, bucket, "f.bin") is None
        with pytest.raises(ftplib.error_perm) as gone:
            ftp.delete(f"/{bucket}/f.bin")
        assert code(gone.value) == 550


def test_cwd_pwd_and_relative_paths(s3dsi: S3dsi, bucket: str) -> None:
    put(s3dsi, bucket, "top/mid/file.txt", b"hello")
    with ftp_session(s3dsi.address) as ftp:
        ftp.cwd(f"/{bucket}/top")
        assert ftp.pwd() == f"/{bucket}/top"
        ftp.cwd("mid")
        assert ftp.pwd() == f"/{bucket}/top/mid"
        assert sorted(ftp.nlst()) == [".", "..", "file.txt"]
        assert ftp.size("file.txt") == 5
        ftp.storbinary("STOR rel.bin", io.BytesIO(b"relative"))
        assert object_bytes(s3dsi.moto, bucket, "top/mid/rel.bin") == b"relative"
        ftp.cwd("..")  # ftplib sends CDUP
        assert ftp.pwd() == f"/{bucket}/top"
        for bad in ("mid/file.txt", "no-such-dir"):
            with pytest.raises(ftplib.error_perm) as refused:
                ftp.cwd(bad)
            assert code(refused.value) == 550
        assert ftp.pwd() == f"/{bucket}/top"


@pytest.mark.parametrize("passive", [True, False], ids=["pasv", "port"])
def test_binary_stor_retr_roundtrip(s3dsi: S3dsi, bucket: str, passive: bool) -> None:
    data = os.urandom(2 * PART + 1)
    key = unique("ftplib")
    with ftp_session(s3dsi.address) as ftp:
        ftp.set_pasv(passive)
        assert ftp.storbinary(f"STOR /{bucket}/{key}", io.BytesIO(data), blocksize=256 * 1024) \
            .startswith("226")
        assert object_bytes(s3dsi.moto, bucket, key) == data
        got = bytearray()
        assert ftp.retrbinary(f"RETR /{bucket}/{key}", got.extend).startswith("226")
        assert bytes(got) == data
        got.clear()
        ftp.retrbinary(f"RETR /{bucket}/{key}", got.extend, rest=PART - 3)
        assert bytes(got) == data[PART - 3:]
        assert ftp.voidcmd("NOOP").startswith("200")
