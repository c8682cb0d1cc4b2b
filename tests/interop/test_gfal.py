"""gfal2 (gfal-copy, gfal-ls, gfal-stat, gfal-sum, gfal-mkdir, gfal-rename, gfal-rm) against s3dsi.

gfal2's GridFTP plugin ignores the user and password of an ftp:// URL (it logs in as anonymous unless
the ``FTP:USER`` / ``FTP:PASSWORD`` options are set), uses delayed passive (``PASV AllowDelayed``, 127)
for every transfer and listing, MLST to stat (up to three times before an upload), NLST in TYPE A for
``rm -r``, and derives errno values from the text of error replies. The control channel is read from
the client library's debug plugin (``GFAL2_GRIDFTP_DEBUG=1``).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import shutil
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.conftest import S3dsi, unique, write_file
from tests.support.gridftp_server import GridFTPServer
from tests.support.guc_debug import GFAL_PREFIX, Exchange, commands, on, parse_debug, replies
from tests.support.programs import need, need_gfal_plugins
from tests.support.s3dsi_env import PASSWORD, USER, MiB, client_env

pytestmark = pytest.mark.interop

PART = 5 * MiB


@functools.cache
def gfal_python() -> str:
    """An interpreter that can import gfal2 (the gfal-* scripts pick ``python`` from PATH, which may be
    a virtualenv or pyenv one without the system's gfal2 bindings)."""
    candidates = [os.environ.get("GFAL_PYTHONBIN"), "/usr/bin/python3", shutil.which("python3")]
    for python in candidates:
        if python and subprocess.run([python, "-c", "import gfal2, gfal2_util"], capture_output=True,
                                     check=False, timeout=60).returncode == 0:
            return python
    pytest.fail("no Python interpreter with the gfal2 and gfal2_util modules (scripts/test installs them)")


def gfal(tool: str, *args: str, check: bool = True, timeout: float = 120
         ) -> tuple[subprocess.CompletedProcess[str], list[Exchange]]:
    program = need(tool)
    need_gfal_plugins(*args)
    env = client_env()
    env.update(GFAL_PYTHONBIN=gfal_python(), GFAL2_GRIDFTP_DEBUG="1")
    argv = [program, "-D", f"FTP:USER={USER}", "-D", f"FTP:PASSWORD={PASSWORD}", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check:
        # the debug trace is long: show its end and gfal's own error line
        assert proc.returncode == 0, (f"{tool} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
                                      f"stderr:\n{proc.stderr[-4000:]}")
    return proc, parse_debug(proc.stderr, GFAL_PREFIX)


def url(s3dsi: S3dsi, path: str) -> str:
    """ftp:// URL without credentials (gfal2 takes them from its options)."""
    host, port = s3dsi.address
    return f"ftp://{host}:{port}{path}"


def assert_delayed_passive(exchanges: list[Exchange], transfer_verb: str) -> None:
    """gfal2 asks for delayed passive, and s3dsi answers it as the reference server does."""
    texts = [e.text for e in exchanges]
    assert "OPTS PASV AllowDelayed=1;" in texts
    i = next(n for n, t in enumerate(texts) if t.startswith(transfer_verb + " "))
    assert texts[texts.index("PASV") + 1] == "200 Passive delayed."
    after = [e for e in exchanges[i + 1:] if e.kind == "reply"]
    assert after[0].text.startswith("127 Entering Passive Mode (127,0,0,1,")
    assert after[1].code == 150


def adler32(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


# -- gfal-copy ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("checksum", [None, "ADLER32", "MD5"])
def test_copy_upload_and_download(s3dsi: S3dsi, bucket: str, tmp_path: Path, checksum: str | None) -> None:
    data = os.urandom(2 * PART + 4321)
    key = unique(f"gfal-{checksum or 'plain'}")
    src = write_file(tmp_path / "src.bin", data)
    k = ["-K", checksum] if checksum else []

    up, trace = gfal("gfal-copy", *k, src.as_uri(), url(s3dsi, f"/{bucket}/{key}"))
    assert s3dsi.object_bytes(bucket, key) == data
    sent = commands(trace)
    # existence checks before the upload: MLST answered 550 (gfal2 reads ENOENT from the text)
    mlst = [c for c in sent if c.startswith("MLST ")]
    assert 1 <= len(mlst) <= 3 and all(c == f"MLST /{bucket}/{key}" for c in mlst)
    assert_delayed_passive(trace, "STOR")
    if checksum:
        assert f"CKSM {checksum} 0 -1 /{bucket}/{key}" in sent
    assert f"{len(data)} bytes" in up.stdout

    dst = tmp_path / "back.bin"
    _, trace = gfal("gfal-copy", *k, url(s3dsi, f"/{bucket}/{key}"), dst.as_uri())
    assert dst.read_bytes() == data
    assert_delayed_passive(trace, "RETR")
    if checksum:
        assert f"CKSM {checksum} 0 -1 /{bucket}/{key}" in commands(trace)


def test_copy_overwrite_needs_force(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    key = unique("gfal-exists")
    s3dsi.moto.client().put_object(Bucket=bucket, Key=key, Body=b"old")
    new = write_file(tmp_path / "new.bin", b"new contents")
    proc, _ = gfal("gfal-copy", new.as_uri(), url(s3dsi, f"/{bucket}/{key}"), check=False)
    assert proc.returncode != 0 and "exists" in proc.stderr.lower()  # found by MLST: not overwritten
    assert s3dsi.object_bytes(bucket, key) == b"old"
    gfal("gfal-copy", "-f", new.as_uri(), url(s3dsi, f"/{bucket}/{key}"))
    assert s3dsi.object_bytes(bucket, key) == b"new contents"


# -- gfal-ls, gfal-stat ------------------------------------------------------------------------------
def _populate(s3dsi: S3dsi, bucket: str, top: str) -> dict[str, bytes]:
    files = {f"{top}/f{i}.bin": os.urandom(1000 * i + 1) for i in range(4)}
    files[f"{top}/sub/inner.txt"] = b"inner\n"
    client = s3dsi.moto.client()
    for key, data in files.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)
    return files


def test_ls_and_ls_long(s3dsi: S3dsi, bucket: str) -> None:
    top = unique("ls")
    files = _populate(s3dsi, bucket, top)
    proc, trace = gfal("gfal-ls", url(s3dsi, f"/{bucket}/{top}/"))
    assert sorted(proc.stdout.split()) == sorted(["f0.bin", "f1.bin", "f2.bin", "f3.bin", "sub"])
    sent = commands(trace)  # names only: NLST, in TYPE A
    assert f"NLST /{bucket}/{top}/" in sent and sent.index("TYPE A") < sent.index(f"NLST /{bucket}/{top}/")
    assert_delayed_passive(trace, "NLST")

    proc, trace = gfal("gfal-ls", "-l", url(s3dsi, f"/{bucket}/{top}/"))
    assert f"MLSD /{bucket}/{top}/" in commands(trace)  # with facts: MLSD
    assert_delayed_passive(trace, "MLSD")
    rows = {line.split()[-1]: line.split() for line in proc.stdout.splitlines() if line.strip()}
    assert set(rows) == {"f0.bin", "f1.bin", "f2.bin", "f3.bin", "sub"}
    for i in range(4):
        assert rows[f"f{i}.bin"][0].startswith("-")
        assert int(rows[f"f{i}.bin"][4]) == len(files[f"{top}/f{i}.bin"])
    assert rows["sub"][0].startswith("d")


def test_stat_file_directory_and_missing(s3dsi: S3dsi, bucket: str) -> None:
    top = unique("stat")
    files = _populate(s3dsi, bucket, top)
    proc, trace = gfal("gfal-stat", url(s3dsi, f"/{bucket}/{top}/f3.bin"))
    assert f"Size: {len(files[f'{top}/f3.bin'])}" in proc.stdout and "regular file" in proc.stdout
    assert f"MLST /{bucket}/{top}/f3.bin" in commands(trace)
    proc, _ = gfal("gfal-stat", url(s3dsi, f"/{bucket}/{top}/sub/"))
    assert "directory" in proc.stdout
    proc, _ = gfal("gfal-stat", url(s3dsi, f"/{bucket}/{top}/nope"), check=False)
    assert proc.returncode == 2  # ENOENT, read from "No such file or directory" in the 550 reply


def test_stat_in_missing_bucket_is_enoent(s3dsi: S3dsi) -> None:
    missing = unique("no-such-bucket")
    for path in (f"/{missing}", f"/{missing}/some/file"):
        proc, _ = gfal("gfal-stat", url(s3dsi, path), check=False)
        assert proc.returncode == 2, proc.stderr[-2000:]  # ENOENT, not "communication error"


# -- gfal-sum ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("algorithm", "local"), [
    ("ADLER32", adler32),
    ("MD5", lambda d: hashlib.md5(d).hexdigest()),
    ("SHA1", lambda d: hashlib.sha1(d).hexdigest()),
])
def test_sum_matches_local_digest(s3dsi: S3dsi, bucket: str, tmp_path: Path, algorithm: str,
                                  local: Callable[[bytes], str]) -> None:
    data = os.urandom(PART + 77)
    key = unique("sum")
    gfal("gfal-copy", write_file(tmp_path / "s.bin", data).as_uri(), url(s3dsi, f"/{bucket}/{key}"))
    proc, trace = gfal("gfal-sum", url(s3dsi, f"/{bucket}/{key}"), algorithm)
    assert proc.stdout.split() == [url(s3dsi, f"/{bucket}/{key}"), local(data)]
    assert f"CKSM {algorithm} 0 -1 /{bucket}/{key}" in commands(trace)


def test_sum_of_object_uploaded_elsewhere(s3dsi: S3dsi, bucket: str) -> None:
    """An object put straight into S3 (no digest stored by s3dsi): the daemon computes it."""
    data = os.urandom(3 * MiB + 1)
    key = unique("sum-foreign")
    s3dsi.moto.client().put_object(Bucket=bucket, Key=key, Body=data)
    proc, _ = gfal("gfal-sum", url(s3dsi, f"/{bucket}/{key}"), "ADLER32")
    assert proc.stdout.split()[-1] == adler32(data)


# -- gfal-mkdir -p, gfal-rename, gfal-rm -r -----------------------------------------------------------
def test_mkdir_parents_walks_up_from_the_leaf(s3dsi: S3dsi, bucket: str) -> None:
    top = unique("mk")
    _, trace = gfal("gfal-mkdir", "-p", url(s3dsi, f"/{bucket}/{top}/a/b/c"))
    mkd = [(e.text, r.text) for e, r in itertools.pairwise(trace)
           if e.kind == "command" and e.text.startswith("MKD ")]
    # leaf first (550: parent missing), then up, then the levels down again (257 each)
    assert mkd[0][0] == f"MKD /{bucket}/{top}/a/b/c" and mkd[0][1].startswith("550")
    assert mkd[-1][0] == f"MKD /{bucket}/{top}/a/b/c" and mkd[-1][1].startswith("257")
    for level in ("", "/a", "/a/b", "/a/b/c"):
        proc, _ = gfal("gfal-stat", url(s3dsi, f"/{bucket}/{top}{level}"))
        assert "directory" in proc.stdout, level
    proc, _ = gfal("gfal-ls", url(s3dsi, f"/{bucket}/{top}/a/b/"))
    assert proc.stdout.split() == ["c"]


def test_mkdir_parents_creates_a_new_bucket(s3dsi: S3dsi) -> None:
    """MKD /newbucket creates the bucket, so mkdir -p walks up to it and back down (the missing
    bucket's 550 must read as ENOENT for gfal2 to walk up)."""
    new_bucket = unique("gfalbucket")
    gfal("gfal-mkdir", "-p", url(s3dsi, f"/{new_bucket}/x/y"))
    s3dsi.moto.client().head_bucket(Bucket=new_bucket)
    proc, _ = gfal("gfal-stat", url(s3dsi, f"/{new_bucket}/x/y"))
    assert "directory" in proc.stdout


def test_rename(s3dsi: S3dsi, bucket: str) -> None:
    data = os.urandom(PART + 1)
    old, new = unique("ren-old"), unique("ren-new")
    s3dsi.moto.client().put_object(Bucket=bucket, Key=old, Body=data)
    _, trace = gfal("gfal-rename", url(s3dsi, f"/{bucket}/{old}"), url(s3dsi, f"/{bucket}/{new}"))
    sent = commands(trace)
    assert f"RNFR /{bucket}/{old}" in sent and f"RNTO /{bucket}/{new}" in sent
    assert s3dsi.object_bytes(bucket, new) == data
    assert old not in s3dsi.keys(bucket)


def test_rm_recursive_tree(s3dsi: S3dsi, bucket: str, tmp_path: Path) -> None:
    top = unique("rm")
    gfal("gfal-mkdir", "-p", url(s3dsi, f"/{bucket}/{top}/d1/d2"))
    gfal("gfal-mkdir", "-p", url(s3dsi, f"/{bucket}/{top}/e1"))
    files = {"x.bin": b"x" * 10, "d1/y.bin": b"", "d1/d2/z.bin": os.urandom(70_000), "e1/w": b"w"}
    for rel, data in files.items():
        gfal("gfal-copy", write_file(tmp_path / rel, data).as_uri(), url(s3dsi, f"/{bucket}/{top}/{rel}"))
    assert {k for k in s3dsi.keys(bucket, top + "/") if not k.endswith("/")} == {f"{top}/{r}" for r in files}
    keep = unique("keep")
    s3dsi.moto.client().put_object(Bucket=bucket, Key=keep, Body=b"keep")

    proc, trace = gfal("gfal-rm", "-r", url(s3dsi, f"/{bucket}/{top}"))
    assert s3dsi.keys(bucket, top) == []
    assert s3dsi.keys(bucket) == [keep]
    lines = proc.stdout.splitlines()
    assert sum("DELETED" in line for line in lines) == len(files)
    assert sum("RMDIR" in line for line in lines) == 4  # d1/d2, d1, e1, top
    sent = commands(trace)
    assert "TYPE A" in sent and any(c.startswith("NLST ") for c in sent)
    proc, _ = gfal("gfal-stat", url(s3dsi, f"/{bucket}/{top}"), check=False)
    assert proc.returncode == 2


def test_rm_recursive_tree_without_directory_markers(s3dsi: S3dsi, bucket: str) -> None:
    """A tree written straight into S3 has no directory markers: its directories exist only through
    the objects under them. As on a file system, deleting a directory's last file leaves the directory
    (the daemon writes its marker then), so gfal-rm -r removes the whole tree cleanly."""
    top = unique("rm-implicit")
    client = s3dsi.moto.client()
    keys = [f"{top}/a/b/f1", f"{top}/a/f2", f"{top}/f3"]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    keep = unique("keep")
    client.put_object(Bucket=bucket, Key=keep, Body=b"keep")
    proc, _ = gfal("gfal-rm", "-r", url(s3dsi, f"/{bucket}/{top}"), check=False)
    assert s3dsi.keys(bucket) == [keep]
    assert sum("DELETED" in line for line in proc.stdout.splitlines()) == len(keys)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- gfal-copy third party between the C server and s3dsi ---------------------------------------------
def test_third_party_copy_both_directions(s3dsi: S3dsi, gt: GridFTPServer, bucket: str) -> None:
    """gfal2 third party: stream mode, delayed passive on the receiving end, CKSM on both ends."""
    data = os.urandom(2 * PART + 99)
    name = unique("gfal-tp")
    source = gt.write(f"{name}.src", data)
    gt_url = f"ftp://127.0.0.1:{gt.port}"
    _, trace = gfal("gfal-copy", "-K", "MD5", gt_url + source, url(s3dsi, f"/{bucket}/{name}"))
    assert s3dsi.object_bytes(bucket, name) == data
    mine = on(trace, s3dsi.address[1])
    assert_delayed_passive(mine, "STOR")
    assert f"ALLO {len(data)}" in commands(mine)  # gfal2 announces the size in third party
    assert any(r.startswith("213 " + hashlib.md5(data).hexdigest()) for r in replies(mine))

    _, trace = gfal("gfal-copy", "-K", "ADLER32", url(s3dsi, f"/{bucket}/{name}"),
                    gt_url + gt.path(f"{name}.back"))
    assert gt.read(f"{name}.back") == data
    sent = commands(on(trace, s3dsi.address[1]))
    assert any(c.startswith("PORT ") for c in sent)  # s3dsi sends to the C server's 127 address
    assert f"CKSM ADLER32 0 -1 /{bucket}/{name}" in sent
