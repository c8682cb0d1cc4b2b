"""The README's first command, run as a new user would on a fresh machine (a new local account when
root, else a fresh HOME): virtualenv, pip install with the demo extra, `s3dsi serve --demo`; then the
globus-url-copy and curl commands the demo prints, pasted as printed."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3dsi.daemon.demo import DEMO_TEXT
from tests.functional.daemon.conftest import (
    DEMO_BANNER_END,
    IS_ROOT,
    REPO,
    LocalUsers,
    read_demo_banner,
    world_tempdir,
)
from tests.support.programs import need


def readme_commands() -> list[str]:
    """The commands of the README's first code block: the demo, then the test suite."""
    text = (REPO / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


README_COMMAND = readme_commands()[0]
START_TIMEOUT = 240


class NewUser:
    """Runs commands as a newcomer: a fresh account (root) or the current user with a fresh HOME."""

    def __init__(self, users: LocalUsers | None) -> None:
        if users is not None:
            account = users.create()
            self.home = account.home
            self.prefix = ["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--init-groups"]
            self.uid, self.gid = account.uid, account.gid
        else:
            self.home, self.prefix = world_tempdir("s3dsi-newcomer-"), []
            self.uid, self.gid = os.getuid(), os.getgid()
        self.env = {"HOME": str(self.home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

    def give(self, path: Path) -> None:
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), self.uid, self.gid)
        os.lchown(path, self.uid, self.gid)

    def popen(self, command: str, cwd: Path, **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen([*self.prefix, "bash", "-c", command], cwd=cwd, env=self.env, text=True,
                                **kwargs)  # type: ignore[call-overload]


@pytest.fixture
def newcomer(request: pytest.FixtureRequest) -> Iterator[NewUser]:
    user = NewUser(request.getfixturevalue("local_users") if IS_ROOT else None)
    try:
        yield user
    finally:
        if not IS_ROOT:
            shutil.rmtree(user.home, ignore_errors=True)


def test_the_readme_demo_command_serves_and_its_printed_commands_work(newcomer: NewUser) -> None:
    need("globus-url-copy")
    need("curl")
    checkout = newcomer.home / "s3dsi"
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, checkout / name)
    shutil.copytree(REPO / "src", checkout / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    work = newcomer.home / "work"
    work.mkdir()
    newcomer.give(newcomer.home)
    demo_dirs_before = set(glob.glob("/tmp/s3dsi-demo-*"))

    log = open(newcomer.home / "demo.log", "w")  # noqa: SIM115
    proc = newcomer.popen(README_COMMAND, checkout, stdout=subprocess.PIPE, stderr=log)
    try:
        lines = read_demo_banner(proc, START_TIMEOUT)
        log.flush()
        assert any(line.startswith(DEMO_BANNER_END) for line in lines), \
            f"no demo banner:\n{lines[-20:]}\n{(newcomer.home / 'demo.log').read_text()[-4000:]}"
        start = next(i for i, line in enumerate(lines) if line.startswith("listening on "))
        assert lines[start + 2].startswith("s3dsi demo:")  # the banner follows the listening line
        commands = [line.strip() for line in lines[start:]
                    if line.strip().startswith(("globus-url-copy", "curl"))]
        copies = [c for c in commands if c.startswith("globus-url-copy")]
        assert len(copies) == 2 and "file://$PWD/hello.txt" in copies[0]

        for command in copies:  # download, then upload under another name, exactly as printed
            client = newcomer.popen(command, work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            output, _ = client.communicate(timeout=120)
            assert client.returncode == 0, f"{command}\n{output}"
        assert (work / "hello.txt").read_bytes() == DEMO_TEXT
        listing = newcomer.popen(next(c for c in commands if c.startswith("curl ftp")), work,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        text, _ = listing.communicate(timeout=60)
        assert listing.returncode == 0 and "uploaded.txt" in text and "hello.txt" in text, text
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()
    assert proc.returncode == 0, (newcomer.home / "demo.log").read_text()[-3000:]
    deadline = time.monotonic() + 5
    while set(glob.glob("/tmp/s3dsi-demo-*")) - demo_dirs_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(glob.glob("/tmp/s3dsi-demo-*")) == demo_dirs_before  # the demo's temp dir is gone
