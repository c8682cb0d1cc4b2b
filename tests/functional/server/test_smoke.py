from __future__ import annotations

import ftplib
import io
import os

from tests.functional.server.conftest import RunningDaemon
from tests.support.daemon import TEST_PASSWORD, TEST_USER


def test_ftplib_roundtrip(memory_daemon: RunningDaemon) -> None:
    host, port = memory_daemon.address
    ftp = ftplib.FTP()
    ftp.connect(host, port, timeout=20)
    ftp.login(TEST_USER, TEST_PASSWORD)
    data = os.urandom(3 * 1024 * 1024 + 17)
    ftp.mkd("/data/dir")
    ftp.storbinary("STOR /data/dir/x.bin", io.BytesIO(data))
    out = io.BytesIO()
    ftp.retrbinary("RETR /data/dir/x.bin", out.write)
    assert out.getvalue() == data
    assert ftp.size("/data/dir/x.bin") == len(data)
    names = [n for n, _ in ftp.mlsd("/data/dir")]
    assert "x.bin" in names
    ftp.quit()
