"""The demo's embedded S3: moto's server in a process of its own, which also never serves as root.

``s3dsi serve --demo`` started as root becomes ``nobody``. An interpreter may be private to root (a
pyenv under ``/root``, mode 0700): after the drop neither process can import a module it has not
imported yet, and moto and botocore import code lazily (moto's S3 model on the first request, a codec
for the first multipart ETag, werkzeug's error pages). So the store runs in its own interpreter,
started as root; the demo drives every S3 operation it offers through the store once (``warm_up``)
while both are still root, then tells the store to drop, waits for it, and drops itself.

Protocol on the child's stdin/stdout, one line each: child ``port N``; parent ``drop UID GID`` or
``stay``; child ``ready`` (or ``error TEXT``). The child exits when its stdin closes (the demo ended or
died), so it never outlives the demo.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pkgutil
import selectors
import subprocess
import sys
from typing import IO

from s3dsi.daemon.accounts import Account, PrivilegeError, drop_privileges

_START_TIMEOUT = 120.0


class DemoStoreError(Exception):
    """The embedded S3 did not start or could not leave root."""


def preload(*packages: str) -> None:
    """Import every submodule of these packages now, while the files can still be read."""
    for name in packages:
        try:
            package = importlib.import_module(name)
        except ImportError:
            continue
        for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=f"{name}."):
            if info.name.rsplit(".", 1)[-1] in ("__main__", "tests", "testing", "conftest"):
                continue  # a __main__ runs its program when imported
            with contextlib.suppress(Exception):  # optional extras a module wants; not ours to need
                importlib.import_module(info.name)


# What an interpreter imports on demand that the demo's paths reach (codecs for ETags and host names,
# werkzeug's traceback page, uvloop): loaded before a drop in both processes.
STDLIB_ON_DEMAND = ("encodings", "sysconfig", "email", "http", "json", "xml.etree", "uuid", "hashlib",
                    "hmac", "base64", "binascii", "zlib", "gzip", "unicodedata", "uvloop")


class DemoStore:
    """The parent's handle on the store process."""

    def __init__(self, workdir: str) -> None:
        store_tmp = os.path.join(workdir, "store")
        os.makedirs(store_tmp, mode=0o700, exist_ok=True)
        env = {**os.environ, "TMPDIR": store_tmp}  # moto spools large bodies to temporary files
        self._proc = subprocess.Popen([sys.executable, "-m", "s3dsi.daemon.demostore"], cwd=workdir,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.store_tmp = store_tmp
        line = self._read_line()
        if not line.startswith("port "):
            self.stop()
            raise DemoStoreError(f"the embedded S3 did not start: {line or 'no answer'}")
        self.port = int(line.split()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read_line(self) -> str:
        """The child's next line ('' when it said nothing within the time limit or died)."""
        stdout = self._proc.stdout
        assert stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            if not selector.select(_START_TIMEOUT):
                return ""
        return stdout.readline().strip()

    def _say(self, line: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def settle(self, account: Account | None) -> None:
        """Drop the store to ``account`` (None: it keeps running as the invoking user)."""
        if account is not None:
            os.chown(self.store_tmp, account.uid, account.gid)
        self._say(f"drop {account.uid} {account.gid} {account.name}" if account is not None else "stay")
        answer = self._read_line()
        if answer != "ready":
            self.stop()
            raise DemoStoreError(f"the embedded S3 could not leave root: {answer or 'no answer'}")

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


# -- the child ---------------------------------------------------------------------------------------

def _serve(stdin: IO[str], stdout: IO[str]) -> int:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    preload(*STDLIB_ON_DEMAND, "moto.s3", "moto.core", "moto.utilities", "werkzeug", "flask", "jinja2")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(f"port {server.get_host_and_port()[1]}", file=stdout, flush=True)
    command = stdin.readline().split()  # the parent warms both processes up meanwhile
    if command[:1] == ["drop"] and len(command) == 4:
        try:
            drop_privileges(Account(command[3], int(command[1]), int(command[2]), "/"))
        except (PrivilegeError, OSError) as err:
            print(f"error {err}", file=stdout, flush=True)
            return 70
    elif command != ["stay"]:
        return 0  # the parent went away before it decided
    print("ready", file=stdout, flush=True)
    while stdin.readline():  # serve until the demo closes our stdin
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_serve(sys.stdin, sys.stdout))
