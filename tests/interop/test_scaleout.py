"""Several hosts over one S3: two daemon processes ("hosts" on 127.0.0.1 and 127.0.0.2, each with its own
state directory) reach the same moto server through the fault proxy, which slows part uploads or holds
S3's answers when a test needs the daemon caught at a precise moment.

* A ``globus-url-copy -p 4 -rst`` upload (third-party, from the reference C server: globus-url-copy's
  restart plugin restarts those with the markers it received; a local-file upload it does not restart)
  through a control-port load balancer is broken after range markers by SIGKILLing the first host,
  whose state directory is then deleted; the client's restart lands on the second host, which resumes
  from the records in S3 (REST ranges checked against ListParts) and receives only the missing ranges.
  The object is byte-exact.
* The first host is SIGKILLed right after CreateMultipartUpload (S3 created the upload, the daemon never
  heard its id), or after range markers; ``s3dsi janitor`` run with the *second* host's configuration
  leaves no multipart upload and no record.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.conftest import S3dsi, proxied_config, unique
from tests.interop.fault_checks import PREVIOUS, run_janitor, slow_guc_upload
from tests.support.balancer import Balancer
from tests.support.faultproxy import FaultProxy
from tests.support.gridftp_server import GridFTPServer
from tests.support.guc_debug import commands, parse_debug
from tests.support.interop_helpers import (
    kill_tree,
    object_bytes,
    pending_uploads,
    recorded_parts,
    restart_records,
    user_keys,
    wait_for,
)
from tests.support.moto_server import MotoS3
from tests.support.programs import need
from tests.support.s3dsi_env import MiB, S3dsiConfig, client_env, ftp_url

pytestmark = pytest.mark.interop

PART = 5 * MiB
FIRST_RANGE_MARKER = 5.0


def host_config(root: Path, proxy: FaultProxy, moto: MotoS3, address: str) -> S3dsiConfig:
    """One host's configuration: its own addresses and state directory, the shared S3 (via the proxy);
    few part workers, so that a slowed UploadPart slows the whole upload."""
    config = proxied_config(root, proxy, moto, part_workers="2")
    config.gridftp_options.update(control_interface=address, data_interface=address)
    return config.write()


@contextlib.contextmanager
def two_hosts(tmp_path: Path, proxy: FaultProxy, moto: MotoS3) -> Iterator[tuple[S3dsi, S3dsi]]:
    first_config = host_config(tmp_path / "host-a", proxy, moto, "127.0.0.1")
    second_config = host_config(tmp_path / "host-b", proxy, moto, "127.0.0.2")
    first = S3dsi(first_config.start(), first_config, moto)
    try:
        second = S3dsi(second_config.start(), second_config, moto)
        try:
            assert first.config.root != second.config.root
            yield first, second
        finally:
            second.daemon.stop()
    finally:
        first.daemon.stop()


def kill(host: S3dsi) -> None:
    kill_tree(host.daemon.process)  # SIGKILL of the daemon and its workers, by PID


def forget_host(host: S3dsi) -> None:
    """The host is gone for good, and its disk with it."""
    shutil.rmtree(host.config.root / "state")


def test_restart_lands_on_another_host(fault_proxy: FaultProxy, moto_s3: MotoS3, gt: GridFTPServer,
                                       bucket: str, tmp_path: Path) -> None:
    """``globus-url-copy -p 4 -rst`` steers a MODE E upload from the C server into S3 through the
    balancer. The first host is killed after range markers; the client restarts the transfer with the
    ranges those markers named (``REST``), the balancer sends it to the second host, which resumes."""
    key = unique("moved")
    data = os.urandom(24 * PART + 4321)  # 25 parts: more than one host's memory budget holds
    source = gt.write(f"{key}.src", data)
    with two_hosts(tmp_path, fault_proxy, moto_s3) as (first, second):
        balancer = Balancer([first.address, second.address]).start()
        fault_proxy.delay("UploadPart", 3.0)  # a slow S3: the upload runs past range markers
        url = ftp_url(first.daemon, f"/{bucket}/{key}").replace(
            f"{first.daemon.host}:{first.daemon.port}", f"{balancer.address[0]}:{balancer.address[1]}")
        proc = subprocess.Popen([need("globus-url-copy"), "-dbg", "-p", "4", "-rst", "-rst-interval", "1",
                                 "-rst-retries", "5", gt.url(source), url], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=client_env())
        try:
            wait_for(lambda: recorded_parts(moto_s3, bucket, key), timeout=FIRST_RANGE_MARKER + 30,
                     what="range markers (parts in the restart record)")
            promised = recorded_parts(moto_s3, bucket, key)
            kill(first)
            forget_host(first)
            fault_proxy.clear()
            stdout, stderr = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            balancer.close()
        exchanges = parse_debug(stderr)
        assert proc.returncode == 0, f"{stdout}\n{stderr[-5000:]}"
        assert balancer.routed[-1] == second.address and first.address in balancer.routed, balancer.routed
        rests = [c for c in commands(exchanges) if c.startswith("REST ")]
        assert rests, "the client restarted without REST ranges"
        assert object_bytes(moto_s3, bucket, key) == data
        log = second.daemon.log_text()
        resumed = re.search(r"resuming upload.*? parts=(\d+)", log)
        assert resumed and int(resumed.group(1)) >= promised > 0, log[-3000:]
        received = [int(n) for n in re.findall(r" NBYTES=(\d+) .* TYPE=STOR CODE=226", log)]
        assert received == [len(data) - int(resumed.group(1)) * PART], received  # only the missing ranges
        assert pending_uploads(moto_s3, bucket) == [] and restart_records(moto_s3, bucket) == []
        assert user_keys(moto_s3, bucket) == [key]


@pytest.mark.parametrize("moment", ["after-create", "after-markers"])
def test_killed_host_is_cleaned_up_by_another_hosts_janitor(fault_proxy: FaultProxy, moto_s3: MotoS3,
                                                             bucket: str, tmp_path: Path,
                                                             moment: str) -> None:
    key = unique(f"killed-{moment}")
    moto_s3.client().put_object(Bucket=bucket, Key=key, Body=PREVIOUS)
    with two_hosts(tmp_path, fault_proxy, moto_s3) as (first, second):
        if moment == "after-create":
            # S3 creates the upload; its answer is held until the daemon is dead
            fault_proxy.delay("CreateMultipartUpload", 30.0, key=key)
        with slow_guc_upload(tmp_path, first.url(f"/{bucket}/{key}"), os.urandom(PART + 2 * MiB)):
            if moment == "after-create":
                wait_for(lambda: pending_uploads(moto_s3, bucket, key), timeout=30,
                         what="S3 to create the multipart upload")
                entries = restart_records(moto_s3, bucket, key)
                assert [e["upload_id"] for e in entries] == [""], "only the intent: no upload id known yet"
            else:
                wait_for(lambda: recorded_parts(moto_s3, bucket, key), timeout=FIRST_RANGE_MARKER + 15,
                         what="the first range marker (parts in the record)")
            kill(first)
        forget_host(first)
        fault_proxy.clear()
        assert pending_uploads(moto_s3, bucket, key), "the killed host's upload is still there"
        output = run_janitor(second, config=second.config)
        assert re.search(r"^1 aborted, ", output, re.MULTILINE), output
        assert pending_uploads(moto_s3, bucket) == [], output
        assert restart_records(moto_s3, bucket) == [], output
        assert user_keys(moto_s3, bucket) == [key]
        assert object_bytes(moto_s3, bucket, key) == PREVIOUS

