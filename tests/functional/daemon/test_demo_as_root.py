"""`s3dsi serve --demo` started as root (CI runs as root): both the daemon and its embedded S3 become
``nobody`` before serving, and every S3 operation the demo offers still works — also where the
interpreter is private to root (a pyenv under /root, mode 0700), so that nothing can be imported
after the drop: multipart uploads in stream mode and MODE E, ranged downloads, listings, renames,
deletes, checksums."""

from __future__ import annotations

import ftplib
import glob
import hashlib
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.functional.daemon.conftest import DEMO_BANNER_END, IS_ROOT, read_demo_banner
from tests.support.programs import need

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the demo drops from root to nobody: run as root")
MB = 1000 * 1000
START_TIMEOUT = 180


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            real, effective, saved, _ = line.split()[1:]
            assert real == effective == saved
            return int(real)
    raise AssertionError("no Uid line")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True,
                         check=False).stdout
    return [int(x) for x in out.split()]


def interpreter_private_to_root() -> bool:
    """True when ``nobody`` cannot read this interpreter's standard library (the case the demo must
    survive); then a module not imported before the drop can never be imported after it."""
    nobody = pwd.getpwnam("nobody")
    proc = subprocess.run([need("setpriv"), f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                           "--clear-groups", "ls", os.path.dirname(os.__file__)],
                          capture_output=True, check=False, timeout=30)
    return proc.returncode != 0


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    host: str
    port: int
    password: str
    lines: list[str]

    def url(self, path: str) -> str:
        return f"ftp://demo:{self.password}@{self.host}:{self.port}{path}"


@pytest.fixture
def demo() -> Iterator[Demo]:
    before = set(glob.glob("/tmp/s3dsi-demo-*"))
    proc = subprocess.Popen([sys.executable, "-m", "s3dsi", "serve", "--demo", "-p", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    try:
        lines = read_demo_banner(proc, START_TIMEOUT)
        assert any(line.startswith(DEMO_BANNER_END) for line in lines), lines
        host, port = lines[0].removeprefix("listening on ").rsplit(":", 1)
        password = next(line.split()[-1] for line in lines if line.strip().startswith("password:"))
        yield Demo(proc, host, int(port), password, lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "Error" not in stderr, stderr[-3000:]
    deadline = time.monotonic() + 10
    while set(glob.glob("/tmp/s3dsi-demo-*")) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(glob.glob("/tmp/s3dsi-demo-*")) == before  # nothing left behind


def test_demo_started_as_root_serves_every_operation_as_nobody(demo: Demo, tmp_path: Path) -> None:
    guc, curl = need("globus-url-copy"), need("curl")
    nobody = pwd.getpwnam("nobody").pw_uid
    store = _children(demo.proc.pid)
    assert len(store) == 1, "the embedded S3 runs in a process of its own"
    assert _uid(demo.proc.pid) == nobody and _uid(store[0]) == nobody
    private = interpreter_private_to_root()
    print(f"interpreter private to root: {private}")

    big, medium = os.urandom(40 * MB), os.urandom(20 * MB)
    (tmp_path / "big").write_bytes(big)
    (tmp_path / "medium").write_bytes(medium)
    bucket = "/s3dsi-demo"

    def run(*argv: str) -> None:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, f"{argv[0]}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"

    # MODE E multipart upload, stream-mode multipart upload, then both back byte for byte
    run(guc, "-p", "4", f"file://{tmp_path}/big", demo.url(f"{bucket}/big.bin"))
    run(curl, "-sS", "-T", str(tmp_path / "medium"), demo.url(f"{bucket}/medium.bin"))
    run(guc, "-p", "4", demo.url(f"{bucket}/big.bin"), f"file://{tmp_path}/big.back")
    run(curl, "-sS", "-o", str(tmp_path / "medium.back"), demo.url(f"{bucket}/medium.bin"))
    assert (tmp_path / "big.back").read_bytes() == big
    assert (tmp_path / "medium.back").read_bytes() == medium

    with ftplib.FTP() as ftp:  # the namespace operations and a checksum
        ftp.connect(demo.host, demo.port, timeout=60)
        ftp.login("demo", demo.password)
        ftp.voidcmd("TYPE I")
        assert ftp.size(f"{bucket}/medium.bin") == len(medium)
        cksm = ftp.sendcmd(f"CKSM MD5 0 -1 {bucket}/medium.bin")
        assert cksm.split()[-1] == hashlib.md5(medium).hexdigest()
        ftp.mkd(f"{bucket}/dir")
        ftp.rename(f"{bucket}/medium.bin", f"{bucket}/dir/moved.bin")
        names = {name for name, _ in ftp.mlsd(f"{bucket}/dir")}
        assert "moved.bin" in names
        ftp.delete(f"{bucket}/dir/moved.bin")
        ftp.rmd(f"{bucket}/dir")
        assert {name for name, _ in ftp.mlsd(bucket)} >= {"big.bin", "hello.txt"}
