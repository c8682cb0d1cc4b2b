"""A directory of 10,000 objects lists completely and in bounded memory: the daemon asks S3 for one
page of (at most) 1,000 keys at a time and streams each page out before asking for the next.

Memory is the daemon process's resident set from /proc/PID/status. The peak during a listing is
VmHWM after resetting it (``echo 5 > /proc/PID/clear_refs``) just before; where the kernel refuses
that, a thread samples VmRSS every 10 ms instead. Each test gets a daemon of its own, warmed up with
a one-page (1,000 keys) listing: a process reuses the memory of an earlier large listing, so only
its first one shows what a listing costs.

Why the bound is 3 MiB and not a round 30 MiB: calibrated on this 2-core machine with the same test
against a copy of the daemon that builds the whole listing before sending it, the growth was 4.0 MiB
(NLST) to 5.3 MiB (MLSD) for 10,000 entries (``Entry`` objects plus the listing text), so 30 MiB
could never fail at this size. The paged daemon grew 0.3 to 0.8 MiB (allocator arenas of the worker
threads); 3 MiB keeps a wide margin above that and still fails a listing built in memory.
"""

from __future__ import annotations

import ftplib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.interop.conftest import S3dsi, run
from tests.support.interop_helpers import (
    RssSampler,
    child_pids,
    ftp_session,
    list_requests,
    log_size,
    put_empty_objects,
    reset_peak_rss,
    status_kib,
    wait_for,
)
from tests.support.moto_server import MotoS3
from tests.support.programs import need
from tests.support.s3dsi_env import S3dsiConfig

pytestmark = pytest.mark.interop

KEYS = 10_000
WARM_KEYS = 1_000  # one full S3 page, listed before measuring
PAGE = 1_000  # ListObjectsV2's default (and maximum) page size, which the daemon uses
MAX_GROWTH_KIB = 3 * 1024
NAMES = [f"obj-{i:05d}" for i in range(KEYS)]


@dataclass(frozen=True)
class BigDirectory:
    bucket: str
    path: str  # "/bucket/many"


@pytest.fixture(scope="module")
def big_directory(moto_s3: MotoS3) -> BigDirectory:
    bucket = moto_s3.create_bucket(prefix="many")
    keys = [f"many/{n}" for n in NAMES] + [f"warm/w{i}" for i in range(WARM_KEYS)]
    put_empty_objects(moto_s3, bucket, keys)
    for key in ("small/a", "small/b", "small/sub/c"):
        moto_s3.client().put_object(Bucket=bucket, Key=key, Body=b"x")
    return BigDirectory(bucket, f"/{bucket}/many")


@pytest.fixture
def daemon(moto_s3: MotoS3, tmp_path: Path) -> Iterator[S3dsi]:
    """A daemon of its own per test: a process that has already listed a large directory reuses that
    memory for the next one, so only its first large listing shows what a listing costs."""
    config = S3dsiConfig(tmp_path / "s3dsi", moto_s3.endpoint, moto_s3.access_key, moto_s3.secret_key,
                         gridftp_options={"workers": "1"}).write()  # the sessions' memory is this process's
    process = config.start()
    try:
        yield S3dsi(process, config, moto_s3)
    finally:
        process.stop()


@dataclass
class Measured:
    names: list[str]
    growth_kib: int
    s3_pages: list[str]


def measure(s3dsi: S3dsi, bucket: str, listing: Callable[[], list[str]]) -> Measured:
    pid = s3dsi.daemon.process.pid
    # the test configuration runs every session in the daemon process itself (allow_root as root, or
    # the invoking user); a per-session child would hold the listing's memory instead
    assert child_pids(pid) == [], "the daemon forked per-session children: measure those instead"
    since = log_size(s3dsi.moto.log_path)
    before = status_kib(pid, "VmRSS")
    exact_peak = reset_peak_rss(pid)
    with RssSampler(pid) as sampler:
        names = listing()
    peak = status_kib(pid, "VmHWM") if exact_peak else sampler.peak
    pages = wait_for(lambda: list_requests(s3dsi.moto, bucket, since) or None, timeout=5,
                     what="the ListObjectsV2 requests in the moto log")
    return Measured(names, peak - before, pages)


@pytest.fixture
def warm_daemon(daemon: S3dsi, big_directory: BigDirectory) -> S3dsi:
    """Listings on two sessions first, so code paths, threads, S3 connections, one page's worth of
    parsing and the memory of a login (the password hash check takes 8 MiB, which glibc keeps after
    the first time) exist before the measurement."""
    for _ in range(2):
        with ftp_session(daemon.address) as ftp:
            list(ftp.mlsd(f"/{big_directory.bucket}/small"))
            ftp.nlst(f"/{big_directory.bucket}/small")
    with ftp_session(daemon.address) as ftp:
        assert len(list(ftp.mlsd(f"/{big_directory.bucket}/warm"))) == WARM_KEYS + 2
    return daemon


def assert_paged_and_flat(result: Measured, what: str) -> None:
    assert sorted(result.names) == NAMES, f"{what}: {len(result.names)} names arrived"
    # the first request carries no continuation token, every further page does
    assert len(result.s3_pages) >= KEYS // PAGE, result.s3_pages
    assert sum("continuation-token=" in line for line in result.s3_pages) >= KEYS // PAGE - 1
    assert result.growth_kib < MAX_GROWTH_KIB, (
        f"{what}: the daemon's resident memory grew by {result.growth_kib / 1024:.1f} MiB")


def test_mlsd_of_10000_keys(warm_daemon: S3dsi, big_directory: BigDirectory) -> None:
    s3dsi = warm_daemon
    with ftp_session(s3dsi.address, timeout=120) as ftp:
        def mlsd() -> list[str]:
            entries = list(ftp.mlsd(big_directory.path))
            assert [n for n, f in entries if f["type"] in ("cdir", "pdir")] == [".", ".."]
            assert all(f["type"] == "file" and f["size"] == "0" for n, f in entries if n not in (".", ".."))
            return [n for n, _ in entries if n not in (".", "..")]

        assert_paged_and_flat(measure(s3dsi, big_directory.bucket, mlsd), "MLSD")


def test_nlst_of_10000_keys(warm_daemon: S3dsi, big_directory: BigDirectory) -> None:
    s3dsi = warm_daemon
    with ftp_session(s3dsi.address, timeout=120) as ftp:
        def nlst() -> list[str]:
            return [n for n in ftp.nlst(big_directory.path) if n not in (".", "..")]

        assert_paged_and_flat(measure(s3dsi, big_directory.bucket, nlst), "NLST")


def test_globus_url_copy_list_of_10000_keys(warm_daemon: S3dsi, big_directory: BigDirectory) -> None:
    s3dsi = warm_daemon

    def guc_list() -> list[str]:
        out = run([need("globus-url-copy"), "-list", s3dsi.url(big_directory.path + "/")]).stdout
        return [line.strip() for line in out.splitlines()[1:] if line.strip()]

    assert_paged_and_flat(measure(s3dsi, big_directory.bucket, guc_list), "globus-url-copy -list")


def test_listing_a_missing_directory_fails(daemon: S3dsi, big_directory: BigDirectory) -> None:
    with ftp_session(daemon.address) as ftp, pytest.raises(ftplib.error_perm) as missing:
        list(ftp.mlsd(f"/{big_directory.bucket}/no-such-dir"))
    assert str(missing.value).startswith("550")
