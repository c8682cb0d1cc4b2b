"""``s3dsi serve --demo``: the daemon on an embedded, throwaway S3; nothing to configure, nothing kept.

moto's server (extra ``demo``) answers on a free loopback port in a process of its own
(``demostore``), with a demo bucket holding a demo file; a demo user gets a random password. No
configuration file is read, and everything the daemon and the store write goes to a temporary
directory removed at exit. Started as root, both processes become ``nobody`` before the daemon
serves (after one pass through every S3 operation, see ``warm_up``): the demo never serves as root.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import secrets
import shutil
import sys
import tempfile
from typing import Any, TextIO

import botocore.session
from botocore.config import Config

from s3dsi.config.settings import Settings
from s3dsi.daemon.accounts import Account, AccountError, PrivilegeError, drop_privileges
from s3dsi.daemon.demostore import STDLIB_ON_DEMAND, DemoStore, DemoStoreError, preload
from s3dsi.daemon.eventloop import run_loop
from s3dsi.daemon.model import ProcessModel
from s3dsi.daemon.runtime import SingleProcessRuntime
from s3dsi.daemon.services import S3Factories, apply_logging
from s3dsi.daemon.startup import StartupError, open_listeners
from s3dsi.identity.auth import Authenticator
from s3dsi.identity.passwords import PasswordFile, hash_password
from s3dsi.observability.transferlog import TransferLog
from s3dsi.server.app import Daemon
from s3dsi.server.backends import SharedBackend
from s3dsi.storage.backend import Backend
from s3dsi.transfer.checksums import crc32c_of

DEMO_BUCKET = "s3dsi-demo"
DEMO_FILE = "hello.txt"
DEMO_USER = "demo"
DEMO_TEXT = b"Hello from s3dsi! This object lives in an S3 bucket and travelled over GridFTP.\n"
DEFAULT_PORT = 2811
UNPRIVILEGED = "nobody"
# moto accepts any credentials; these exist only inside this process
_ACCESS_KEY = "AKIAS3DSIDEMO0000000"
_SECRET_KEY = "s3dsi-demo-secret-key-000000000000000000"  # noqa: S105
MiB = 1024 * 1024


def demo_settings(port: int, interface: str, endpoint: str, workdir: str) -> Settings:
    return Settings(port=port, control_interface=interface, data_interface=interface, host_name=endpoint,
                    region="us-east-1", addressing_style="path", part_size_min=5 * MiB,
                    part_size_max=64 * MiB, memory_budget=64 * MiB, part_workers=4, threads=4,
                    state_dir=os.path.join(workdir, "state"),
                    admin_socket=os.path.join(workdir, "admin.sock"),
                    log_level="ERROR,WARN")


def banner(host: str, port: int, password: str) -> str:
    """What the demo prints after the ``listening on`` line: the user and commands to paste."""
    where = f"[{host}]" if ":" in host else host
    base = f"ftp://{DEMO_USER}:{password}@{where}:{port}"
    return "\n".join([
        "",
        "s3dsi demo: a GridFTP server on an embedded, throwaway S3 (everything is gone at exit).",
        f"  bucket:   {DEMO_BUCKET} (holds {DEMO_FILE})",
        f"  user:     {DEMO_USER}",
        f"  password: {password}",
        "",
        "Try, from another terminal:",
        f"  globus-url-copy -v {base}/{DEMO_BUCKET}/{DEMO_FILE} file://$PWD/{DEMO_FILE}",
        f"  globus-url-copy -v -p 4 file://$PWD/{DEMO_FILE} {base}/{DEMO_BUCKET}/uploaded.txt",
        f"  curl {base}/{DEMO_BUCKET}/",
        f"  curl -o {DEMO_FILE} {base}/{DEMO_BUCKET}/{DEMO_FILE}",
        f"  curl -T {DEMO_FILE} {base}/{DEMO_BUCKET}/",
        "",
        "Stop with Ctrl-C.",
    ])


def _fill_store(endpoint: str) -> None:
    client: Any = botocore.session.Session().create_client(
        "s3", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id=_ACCESS_KEY,
        aws_secret_access_key=_SECRET_KEY, config=Config(s3={"addressing_style": "path"}))
    client.create_bucket(Bucket=DEMO_BUCKET)
    client.put_object(Bucket=DEMO_BUCKET, Key=DEMO_FILE, Body=DEMO_TEXT)


def warm_up(backend: Backend) -> None:
    """Every S3 operation the demo's daemon makes, once, in a bucket removed again afterwards.

    Run while the demo and its store can still read the interpreter's files: both sides then hold
    every module these code paths import on demand (moto's multipart code, botocore's handlers).
    """
    bucket = f"/s3dsi-warm-up-{secrets.token_hex(4)}"
    backend.mkdir(bucket)
    try:
        backend.mkdir(f"{bucket}/dir")
        backend.check_writable(f"{bucket}/dir/small")
        small = memoryview(b"warm-up")
        backend.put_object(f"{bucket}/dir/small", small, crc32c=crc32c_of(small), tags={"s3dsi-size": "7"})
        part = memoryview(bytearray(5 * MiB))
        path = f"{bucket}/big"
        upload_id = backend.create_upload(path)
        etags = [(n, backend.upload_part(path, upload_id, n, part, crc32c=crc32c_of(part))) for n in (1, 2)]
        backend.list_uploads(path)
        backend.list_parts(path, upload_id)
        backend.complete_upload(path, upload_id, etags)
        backend.set_tags(path, {"s3dsi-size": str(10 * MiB)})
        backend.get_tags(path)
        info = backend.head_object(path)
        backend.read_range(info, 0, part)
        backend.abort_upload(path, backend.create_upload(path))
        for _ in backend.list_pages(bucket):
            pass
        for _ in backend.list_pages("/"):
            pass
        backend.stat(f"{bucket}/dir")
        backend.rename(path, f"{bucket}/dir/big")
        for name in ("dir/big", "dir/small"):
            backend.delete(f"{bucket}/{name}")
        backend.rmdir(f"{bucket}/dir")
    finally:
        with contextlib.suppress(Exception):
            for name in ("big", "dir/big", "dir/small", "dir/"):
                with contextlib.suppress(Exception):
                    backend.delete(f"{bucket}/{name}")
            backend.rmdir(bucket)


def _demo_account() -> Account | None:
    """As root, the account the demo becomes (``nobody``); else None (it stays the invoking user)."""
    if os.geteuid() != 0:
        return None
    try:
        return Account.lookup(UNPRIVILEGED)
    except AccountError:
        raise StartupError(f"the demo does not run as root and there is no {UNPRIVILEGED!r} account to "
                           "switch to; run it as an ordinary user") from None


def run_demo(*, port: int | None = None, interface: str | None = None, stdout: TextIO | None = None) -> int:
    try:
        importlib.import_module("moto.server")
    except ImportError:
        raise StartupError("the demo needs moto, the 'demo' extra: pip install 's3dsi[demo]'") from None
    out = stdout if stdout is not None else sys.stdout
    apply_logging(Settings(log_level="ERROR,WARN"))
    account = _demo_account()
    # as root, in /tmp whatever TMPDIR says: the account it becomes must reach it
    workdir = tempfile.mkdtemp(prefix="s3dsi-demo-", dir="/tmp" if account else None)  # noqa: S108
    store: DemoStore | None = None
    try:
        store = DemoStore(workdir)
        _fill_store(store.endpoint)
        host = interface or "127.0.0.1"
        settings = demo_settings(DEFAULT_PORT if port is None else port, host, store.endpoint, workdir)
        apply_logging(settings)
        try:
            listeners = open_listeners(settings, owner=None)
        except StartupError:
            if port is not None:
                raise
            settings = dataclasses.replace(settings, port=0)  # 2811 is taken: any free port
            listeners = open_listeners(settings, owner=None)
        password = secrets.token_urlsafe(12)
        passwords = PasswordFile.parse(f"{DEMO_USER}:{hash_password(password)}\n".encode(), "<demo>")
        backend = S3Factories().factory(settings).for_credentials(_ACCESS_KEY, _SECRET_KEY)
        warm_up(backend)
        preload(*STDLIB_ON_DEMAND)
        if account is not None:
            os.chown(workdir, account.uid, account.gid)
        store.settle(account)
        if account is not None:
            try:
                drop_privileges(account)
            except PrivilegeError as err:
                raise StartupError(f"cannot leave root for the demo: {err}", 1) from None

        def announce(daemon: Daemon) -> None:
            address, bound = daemon.addresses[0]
            print(banner(host if address in ("0.0.0.0", "::") else address, bound, password), file=out,
                  flush=True)

        runtime = SingleProcessRuntime(
            settings, model=ProcessModel.INVOKER, runs_as=Account.current(), listeners=listeners,
            authenticator=Authenticator(passwords), backends=SharedBackend(backend),
            transfer_log=TransferLog(None), on_ready=announce, stdout=out)
        return run_loop(runtime.run())
    except DemoStoreError as err:
        raise StartupError(str(err), 1) from None
    finally:
        if store is not None:
            store.stop()
        shutil.rmtree(workdir, ignore_errors=True)
