"""Per-user S3 policy from the map's fourth field, against real clients (globus-url-copy, curl, gfal2,
ftplib): a virtual root nothing escapes, a bucket allow-list, append-only and overwrite-if-unchanged
destinations whose commits lose a race instead of replacing; CKSM CRC32C answered from S3's stored
checksum without reading the object (requests counted by the fault proxy in front of the S3 server)."""

from __future__ import annotations

import base64
import ftplib
import io
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import crc32c
import pytest

from tests.interop.conftest import run, unique, write_file
from tests.interop.test_gfal import gfal_python
from tests.support.daemon import ProcessDaemon
from tests.support.faultproxy import FaultProxy
from tests.support.interop_helpers import wait_for
from tests.support.moto_server import MotoS3
from tests.support.programs import need, need_gfal_plugins
from tests.support.s3dsi_env import PASSWORD, MiB, S3dsiConfig, client_env, ftp_url

pytestmark = pytest.mark.interop

USERS = ("rooted", "listed", "appender", "careful", "plain")


@dataclass
class Site:
    daemon: ProcessDaemon
    config: S3dsiConfig
    moto: MotoS3
    proxy: FaultProxy
    bucket: str  # every user's own bucket
    other: str  # a bucket the keys can reach but no policy allows
    foreign: str  # named in the allow-list only

    def url(self, user: str, path: str) -> str:
        return ftp_url(self.daemon, path, user, PASSWORD)

    def plain_url(self, path: str) -> str:
        return f"ftp://{self.daemon.host}:{self.daemon.port}{path}"

    def get(self, key: str, bucket: str | None = None) -> bytes | None:
        client = self.moto.client()
        try:
            return bytes(client.get_object(Bucket=bucket or self.bucket, Key=key)["Body"].read())
        except client.exceptions.NoSuchKey:
            return None

    def put(self, key: str, data: bytes, bucket: str | None = None) -> None:
        self.moto.client().put_object(Bucket=bucket or self.bucket, Key=key, Body=data)

    def ftp(self, user: str) -> ftplib.FTP:
        ftp = ftplib.FTP()
        ftp.connect(self.daemon.host, self.daemon.port, timeout=60)
        ftp.login(user, PASSWORD)
        return ftp


@pytest.fixture(scope="module")
def site(moto_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("policy")
    bucket, other = moto_s3.create_bucket(prefix="mine"), moto_s3.create_bucket(prefix="other")
    foreign = f"unlisted-{uuid.uuid4().hex[:10]}"
    proxy = FaultProxy.launch(moto_s3.endpoint, root / "proxy.log")
    keys = f"{moto_s3.access_key};{moto_s3.secret_key}"
    config = S3dsiConfig(root, proxy.endpoint, moto_s3.access_key, moto_s3.secret_key,
                         users=dict.fromkeys(USERS, PASSWORD),
                         map_lines={"rooted": f"{keys};root=/{bucket}/home/rooted",
                                    "listed": f"{keys};buckets={bucket}:{foreign}",
                                    "appender": f"{keys};root=/{bucket}/drop,append_only=1",
                                    "careful": f"{keys};root=/{bucket}/docs,overwrite=if-unchanged"}).write()
    daemon = config.start(drop_env=["AWS_"])
    try:
        yield Site(daemon, config, moto_s3, proxy, bucket, other, foreign)
    finally:
        daemon.stop()
        proxy.stop()


def guc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([need("globus-url-copy"), *args], check=check)


def guc_list(url: str) -> list[str]:
    """Names ``globus-url-copy -list`` prints (after its first line, the URL itself)."""
    return sorted(guc("-list", url).stdout.split()[1:])


def curl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([need("curl"), "-sS", "--max-time", "60", *args], check=check)


def gfal(tool: str, user: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    need_gfal_plugins(*args)
    env = client_env()
    env["GFAL_PYTHONBIN"] = gfal_python()
    proc = subprocess.run([need(tool), "-D", f"FTP:USER={user}", "-D", f"FTP:PASSWORD={PASSWORD}", *args],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    if check:
        assert proc.returncode == 0, f"{tool}: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


# -- virtual root ------------------------------------------------------------------------------------------
@pytest.fixture
def rooted(site: Site) -> Site:
    site.put("outside.txt", b"outside the root")
    site.put("home/other-user/secret.txt", b"someone else's")
    site.put("home/rooted/in.txt", b"inside")
    return site


def test_the_root_is_slash_for_every_client(rooted: Site, tmp_path: Path) -> None:
    site = rooted
    data = os.urandom(5 * MiB + 77)
    guc(f"file://{write_file(tmp_path / 'up.bin', data)}", site.url("rooted", "/sub/up.bin"))
    assert site.get("home/rooted/sub/up.bin") == data
    assert guc_list(site.url("rooted", "/")) == ["in.txt", "sub/"]
    back = tmp_path / "back.bin"
    curl("-o", str(back), site.url("rooted", "/sub/up.bin"))
    assert back.read_bytes() == data
    names = gfal("gfal-ls", "rooted", site.plain_url("/")).stdout.split()
    assert sorted(names) == ["in.txt", "sub"]
    ftp = site.ftp("rooted")
    try:
        assert ftp.pwd() == "/"
        ftp.cwd("..")
        ftp.cwd("../..")
        assert ftp.pwd() == "/"
        assert sorted(set(ftp.nlst()) - {".", ".."}) == ["in.txt", "sub"]
    finally:
        ftp.close()


@pytest.mark.parametrize("path", ["/../outside.txt", "/../../outside.txt", "/sub/../../other-user/secret.txt",
                                  f"/{'..'}/{'..'}/home/other-user/secret.txt"])
def test_escape_attempts_read_nothing(rooted: Site, tmp_path: Path, path: str) -> None:
    site = rooted
    out = tmp_path / "stolen"
    assert curl("--path-as-is", "-o", str(out), site.url("rooted", path), check=False).returncode != 0
    assert not out.exists() or out.read_bytes() == b""
    assert guc(site.url("rooted", path), f"file://{tmp_path / 'stolen2'}", check=False).returncode != 0
    assert not (tmp_path / "stolen2").exists() or (tmp_path / "stolen2").read_bytes() == b""
    proc = gfal("gfal-copy", "rooted", site.plain_url(path), (tmp_path / "stolen3").as_uri(), check=False)
    assert proc.returncode != 0
    ftp = site.ftp("rooted")
    try:
        with pytest.raises(ftplib.error_perm, match="No such file"):
            ftp.size(path)
        with pytest.raises(ftplib.error_perm):
            ftp.retrbinary(f"RETR {path}", lambda _: None)
    finally:
        ftp.close()


def test_renames_and_uploads_cannot_land_outside(rooted: Site) -> None:
    site = rooted
    curl("-Q", "RNFR /in.txt", "-Q", "RNTO ../../stolen.txt", "--head", site.url("rooted", "/"))
    assert site.get("stolen.txt") is None and site.get("home/stolen.txt") is None
    assert site.get("home/rooted/stolen.txt") == b"inside"
    ftp = site.ftp("rooted")
    try:
        ftp.storbinary("STOR /../../planted.txt", io.BytesIO(b"planted"))
        ftp.storbinary(f"STOR /{site.bucket}/home/other-user/planted.txt", io.BytesIO(b"planted"))
        ftp.mkd("/../../newdir")
    finally:
        ftp.close()
    assert site.get("planted.txt") is None and site.get("home/other-user/planted.txt") is None
    assert site.get("home/rooted/planted.txt") == b"planted"
    assert site.get(f"home/rooted/{site.bucket}/home/other-user/planted.txt") == b"planted"
    assert site.get("home/rooted/newdir/") == b""
    assert site.get("newdir/") is None


def test_error_replies_name_only_what_the_user_sees(rooted: Site) -> None:
    ftp = rooted.ftp("rooted")
    try:
        with pytest.raises(ftplib.error_perm) as caught:
            ftp.sendcmd("MLST /missing.txt")
    finally:
        ftp.close()
    assert "/missing.txt" in str(caught.value) and "home/rooted" not in str(caught.value)
    assert rooted.bucket not in str(caught.value)


# -- bucket allow-list -----------------------------------------------------------------------------------
def test_allow_list(site: Site, tmp_path: Path) -> None:
    site.put("x.txt", b"x", bucket=site.other)
    assert guc_list(site.url("listed", "/")) == sorted([f"{site.bucket}/", f"{site.foreign}/"])
    proc = guc(site.url("listed", f"/{site.other}/x.txt"), f"file://{tmp_path / 'x'}", check=False)
    assert proc.returncode != 0 and "not one of the buckets this account may use" in proc.stderr
    proc = guc(f"file://{write_file(tmp_path / 'y', b'y')}", site.url("listed", f"/{site.other}/y.txt"),
               check=False)
    assert proc.returncode != 0 and site.get("y.txt", site.other) is None
    guc(f"file://{write_file(tmp_path / 'z', b'z')}", site.url("listed", f"/{site.bucket}/z.txt"))
    assert site.get("z.txt") == b"z"
    assert gfal("gfal-ls", "listed", site.plain_url(f"/{site.other}/"), check=False).returncode != 0


# -- append-only ------------------------------------------------------------------------------------------
def test_append_only_destination(site: Site, tmp_path: Path) -> None:
    key = unique("drop")
    src = write_file(tmp_path / "a", b"first version")
    guc(f"file://{src}", site.url("appender", f"/{key}"))
    assert site.get(f"drop/{key}") == b"first version"
    again = write_file(tmp_path / "b", b"second version")
    proc = guc(f"file://{again}", site.url("appender", f"/{key}"), check=False)
    assert proc.returncode != 0 and "append-only" in proc.stderr
    proc = curl("-T", str(again), site.url("appender", f"/{key}"), check=False)
    assert proc.returncode != 0
    for command in (f"DELE /{key}", f"RNFR /{key}"):
        proc = curl("-Q", command, "--head", site.url("appender", "/"), check=False)
        assert proc.returncode != 0 and "550" in proc.stderr, command
    assert gfal("gfal-rm", "appender", site.plain_url(f"/{key}"), check=False).returncode != 0
    proc = gfal("gfal-copy", "appender", "-f", again.as_uri(), site.plain_url(f"/{key}"), check=False)
    assert proc.returncode != 0
    ftp = site.ftp("appender")
    try:
        ftp.mkd("/newdir")  # new names are fine, directories too
        for call in (lambda: ftp.rmd("/newdir"), lambda: ftp.delete(f"/{key}"),
                     lambda: ftp.rename(f"/{key}", "/renamed")):
            with pytest.raises(ftplib.error_perm, match=r"550.*append-only"):
                call()
    finally:
        ftp.close()
    assert site.get(f"drop/{key}") == b"first version"


def slow_upload(site: Site, user: str, path: str, data: bytes, tmp_path: Path,
                rate: str = "2M") -> subprocess.Popen[str]:
    src = write_file(tmp_path / f"slow-{uuid.uuid4().hex[:6]}", data)
    return subprocess.Popen([need("curl"), "-sS", "--max-time", "120", "--limit-rate", rate, "-T", str(src),
                             site.url(user, path)], env=client_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_append_only_upload_loses_a_race_instead_of_replacing(site: Site, tmp_path: Path) -> None:
    """The name is free when the upload begins; another writer creates it meanwhile. The commit carries
    If-None-Match: * and fails; what the other writer stored stays."""
    key = unique("race")
    site.proxy.clear(counts=True)
    upload = slow_upload(site, "appender", f"/{key}", os.urandom(7 * MiB), tmp_path)
    wait_for(lambda: site.proxy.requests("UploadPart") >= 1, timeout=60, what="the first part")
    site.put(f"drop/{key}", b"the other writer was faster")
    upload.communicate(timeout=120)
    assert upload.returncode != 0, "the upload must fail"
    assert site.get(f"drop/{key}") == b"the other writer was faster"
    assert site.proxy.headers("CompleteMultipartUpload").get("if-none-match") == 1
    assert site.moto.client().list_multipart_uploads(Bucket=site.bucket).get("Uploads", []) == [] or all(
        u["Key"] != f"drop/{key}" for u in site.moto.client().list_multipart_uploads(
            Bucket=site.bucket).get("Uploads", []))


def test_overwrite_if_unchanged(site: Site, tmp_path: Path) -> None:
    """The upload replaces only the object it saw when it began (If-Match with that ETag): a change
    made meanwhile fails it. The object is small, so the commit is one PutObject, whose If-Match the
    S3 server checks (moto ignores If-Match on CompleteMultipartUpload: there only the header is seen)."""
    key = unique("doc")
    site.put(f"docs/{key}", b"v1")
    guc(f"file://{write_file(tmp_path / 'v2', b'v2')}", site.url("careful", f"/{key}"))  # nobody in between
    assert site.get(f"docs/{key}") == b"v2"
    site.proxy.clear(counts=True)
    upload = slow_upload(site, "careful", f"/{key}", os.urandom(3 * MiB), tmp_path, rate="1M")
    wait_for(lambda: site.proxy.requests("HeadObject") >= 1, timeout=60, what="the upload to begin")
    site.put(f"docs/{key}", b"v3 by someone else")
    _, err = upload.communicate(timeout=120)
    assert upload.returncode != 0, err
    assert site.get(f"docs/{key}") == b"v3 by someone else"
    assert site.proxy.headers("PutObject").get("if-match") == 1
    site.proxy.clear(counts=True)
    guc(f"file://{write_file(tmp_path / 'v4', os.urandom(6 * MiB))}", site.url("careful", f"/{key}"))
    assert site.proxy.headers("CompleteMultipartUpload").get("if-match") == 1


def test_a_policy_line_that_widens_the_site_is_refused(site: Site) -> None:
    keys = f"{site.moto.access_key};{site.moto.secret_key}"
    site.config.write_map({**site.config.map_lines, "plain": f"{keys};requester_pays=1"})
    try:
        ftp = ftplib.FTP()
        ftp.connect(site.daemon.host, site.daemon.port, timeout=60)
        with pytest.raises(ftplib.error_perm, match="530"):
            ftp.login("plain", PASSWORD)
        ftp.close()
        assert "goes beyond the site's S3 policy: requester_pays" in site.daemon.log_text()
    finally:
        site.config.write_map({k: v for k, v in site.config.map_lines.items() if k != "plain"})


# -- CKSM from S3's own checksum -----------------------------------------------------------------------------
def cksm(site: Site, user: str, path: str, algorithm: str = "CRC32C") -> str:
    ftp = site.ftp(user)
    try:
        reply = ftp.sendcmd(f"CKSM {algorithm} 0 -1 {path}")
    finally:
        ftp.close()
    assert reply.startswith("213 "), reply
    return reply.split()[1]


def test_cksm_crc32c_without_reading_the_object(site: Site, tmp_path: Path) -> None:
    """An object another tool (boto3) uploaded with a CRC32C checksum: CKSM CRC32C is answered from
    HeadObject; neither a GET of the object nor of its tags is needed."""
    data = os.urandom(3 * MiB + 11)
    value = crc32c.crc32c(data)
    site.moto.client().put_object(Bucket=site.bucket, Key="by-boto3.bin", Body=data,
                                  ChecksumAlgorithm="CRC32C",
                                  ChecksumCRC32C=base64.b64encode(value.to_bytes(4, "big")).decode())
    site.proxy.clear(counts=True)
    assert cksm(site, "plain", f"/{site.bucket}/by-boto3.bin") == f"{value:08x}"
    assert site.proxy.requests("GetObjectRange") == 0 and site.proxy.requests("GetObject") == 0
    assert site.proxy.requests("GetObjectTagging") == 0
    assert site.proxy.headers("HeadObject").get("x-amz-checksum-mode") == 1

    big = os.urandom(11 * MiB + 5)  # uploaded by s3dsi in parts: S3 keeps the FULL_OBJECT CRC32C
    guc(f"file://{write_file(tmp_path / 'big', big)}", site.url("plain", f"/{site.bucket}/by-s3dsi.bin"))
    site.proxy.clear(counts=True)
    assert cksm(site, "plain", f"/{site.bucket}/by-s3dsi.bin") == f"{crc32c.crc32c(big):08x}"
    assert site.proxy.requests("GetObjectRange") == 0 and site.proxy.requests("GetObjectTagging") == 0

    site.put("no-checksum.bin", data)  # neither S3's checksum nor our tags: read back
    site.proxy.clear(counts=True)
    assert cksm(site, "plain", f"/{site.bucket}/no-checksum.bin") == f"{value:08x}"
    assert site.proxy.requests("GetObjectRange") >= 1
