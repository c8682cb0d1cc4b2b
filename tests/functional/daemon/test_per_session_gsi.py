"""gsiftp:// in the per-session process model: the session process authenticates the proxy while still
root, maps the DN through the grid-mapfile, becomes that local account and reads that account's own
~/.globus/s3, exactly as a password login does."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess

from s3dsi.security.credentials import parse_pem_credential
from s3dsi.security.gss import GssInitiator
from s3dsi.security.tlscontext import gsi_initiator_context
from s3dsi.security.trust import identity_of
from tests.functional.daemon.conftest import (
    LocalUsers,
    SiteConfig,
    needs_root,
    process_credentials,
    serve,
    world_tempdir,
)
from tests.functional.daemon.test_per_session import session_processes
from tests.support.ftp_client import Client
from tests.support.moto_server import MotoS3
from tests.support.pki import USER_DN, Pki

pytestmark = needs_root


def test_gsi_session_becomes_the_mapped_account(local_users: LocalUsers, moto_s3: MotoS3, pki: Pki,
                                                s3dsi_for_any_user: list[str]) -> None:
    ann = local_users.create()
    ann.write_map({ann.name: (moto_s3.access_key, moto_s3.secret_key)})
    bucket = moto_s3.create_bucket()
    base = world_tempdir("s3dsi-fork-gsi-")
    try:
        gridmap = base / "grid-mapfile"
        gridmap.write_text(f'"{USER_DN}" {ann.name}\n')
        gridmap.chmod(0o644)
        config = SiteConfig(base, moto_s3, s3={"shutdown_grace": "1"}).write()
        env = {**pki.server_env(), "GRIDMAP": str(gridmap)}
        served = serve(s3dsi_for_any_user, config.args(), base / "daemon.log", env=env)
        try:
            src = base / "src"
            src.write_bytes(os.urandom(300_000))
            src.chmod(0o644)
            proc = subprocess.run(["globus-url-copy", "-nodcau", f"file://{src}",
                                   f"gsiftp://127.0.0.1:{served.port}/{bucket}/gsi.bin"],
                                  env=pki.client_env(), capture_output=True, text=True, timeout=120,
                                  check=False)
            assert proc.returncode == 0, proc.stderr
            body = moto_s3.client().get_object(Bucket=bucket, Key="gsi.bin")["Body"].read()
            assert body == src.read_bytes()
            served.wait_for_log(f"user={ann.name} ftp_user=:globus-mapping:")

            # a session that stays open shows the drop: its process runs as ann, and only as ann
            client = Client(served.host, served.port)
            try:
                data = pki.proxies["rfc"].read_bytes()
                credential = parse_pem_credential(data, data, "proxy")
                context = GssInitiator(gsi_initiator_context(credential), identity_of, delegate=credential)
                client.send("AUTH GSSAPI")
                assert client.read_reply().code == 334
                token = context.step(None)
                while True:
                    client.send(f"ADAT {base64.b64encode(token).decode()}")
                    reply = client.read_reply()
                    if reply.code != 335:
                        break
                    token = context.step(base64.b64decode(reply.lines[0].split("=", 1)[1]))
                assert reply.code == 235
                for line in ("USER :globus-mapping:", "PASS "):
                    token = context.wrap(line.encode() + bytes([13, 10]))
                    client.send(f"ENC {base64.b64encode(token).decode()}")
                    wire = client.read_reply().lines[0]
                    plain = context.unwrap(base64.b64decode(wire[4:])).decode()
                assert plain.startswith(f"230 User {ann.name} logged in.")
                processes = session_processes(served.pid, 1)
                assert [uids for uids in processes.values() if uids[0] != 0] == [[ann.uid] * 4]
                assert process_credentials(served.pid)["Uid"] == [0] * 4
            finally:
                client.close()
        finally:
            served.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
