"""Credential sources against a moto server process with IAM enforcement (tests/support/moto_iam.py),
through the fault proxy (which shows the access key every S3 request was signed with), driven by real
clients.

The world: a bucket; ``gateway`` keys whose only permission is sts:AssumeRole; a role ``lab-writer``
with the bucket's permissions that trusts the gateway and web identities; a role that trusts nobody
here; a role that wants an ExternalId; an ``instance`` user whose keys a fake IMDSv2 hands out. STS
sessions last a few seconds (the server's test knob), so refreshes happen during the tests.
"""

from __future__ import annotations

import ftplib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.interop.conftest import run, unique, write_file
from tests.support.daemon import ProcessDaemon
from tests.support.fake_imds import FakeImds
from tests.support.faultproxy import FaultProxy
from tests.support.interop_helpers import wait_for
from tests.support.moto_iam import ACCOUNT, IamMoto, Keys, as_moto, s3_statements
from tests.support.programs import need
from tests.support.s3dsi_env import PASSWORD, USER, MiB, S3dsiConfig, client_env, ftp_url

pytestmark = pytest.mark.interop

SESSION_SECONDS = 4
WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.s3dsi-test-web-identity.c2lnbmF0dXJl"
GATEWAY_ARN = f"arn:aws:iam::{ACCOUNT}:user/gateway"
OIDC = f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.example.org"


Site = tuple[S3dsiConfig, ProcessDaemon]


@dataclass
class World:
    iam: IamMoto
    proxy: FaultProxy
    bucket: str
    gateway: Keys
    role: str
    untrusted: str
    external: str
    instance: Keys

    def object(self, key: str) -> bytes | None:
        client = self.iam.client("s3")
        try:
            return bytes(client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except client.exceptions.NoSuchKey:
            return None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    logs = tmp_path_factory.mktemp("iam")
    with IamMoto.start(logs, web_identity_token=WEB_TOKEN, session_seconds=SESSION_SECONDS) as iam:
        bucket = iam.bucket()
        gateway = iam.user("gateway", [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}])
        instance = iam.user("instance", s3_statements(bucket))
        role = iam.role("lab-writer", [
            {"Effect": "Allow", "Principal": {"AWS": GATEWAY_ARN}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"Federated": OIDC}, "Action": "sts:AssumeRoleWithWebIdentity"},
        ], s3_statements(bucket))
        untrusted = iam.role("untrusted", [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/nobody"}}],
                             s3_statements(bucket))
        external = iam.role("partner", [{"Effect": "Allow", "Principal": {"AWS": GATEWAY_ARN},
                                         "Action": "sts:AssumeRole",
                                         "Condition": {"StringEquals": {"sts:ExternalId": "lab-42"}}}],
                            s3_statements(bucket))
        iam.enforce()
        proxy = FaultProxy.launch(iam.endpoint, logs / "proxy.log")
        try:
            yield World(iam, proxy, bucket, gateway, role, untrusted, external, instance)
        finally:
            proxy.stop()


def site(world: World, root: Path, **map_lines: str) -> S3dsiConfig:
    """A site whose S3 endpoint (and STS, the same host) is the proxy in front of the IAM server."""
    return S3dsiConfig(root, world.proxy.endpoint, world.gateway.access_key, world.gateway.secret_key,
                       s3_options={"credential_refresh": "1s", "max_attempts": "3"},
                       map_lines=dict(map_lines)).write()


@pytest.fixture(scope="module")
def keyed(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A daemon whose users' credentials come from the map's keys (the environment has none)."""
    config = site(world, tmp_path_factory.mktemp("keyed"))
    daemon = config.start(env={"GLOBUS_S3_DEBUG": f"1023,{config.root / 's3-debug.log'}"}, drop_env=["AWS_"])
    try:
        yield config, daemon
    finally:
        daemon.stop()


def login(daemon: ProcessDaemon) -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect(daemon.host, daemon.port, timeout=60)
    ftp.login(USER, PASSWORD)
    return ftp


def login_refused(daemon: ProcessDaemon) -> str:
    ftp = ftplib.FTP()
    ftp.connect(daemon.host, daemon.port, timeout=60)
    try:
        with pytest.raises(ftplib.error_perm) as refused:
            ftp.login(USER, PASSWORD)
    finally:
        ftp.close()
    return str(refused.value)


def guc_put(daemon: ProcessDaemon, src: Path, path: str) -> None:
    run([need("globus-url-copy"), f"file://{src}", ftp_url(daemon, path)])


def test_keys_that_may_only_assume_a_role_reach_nothing_by_themselves(
        world: World, keyed: Site, tmp_path: Path) -> None:
    config, daemon = keyed
    config.write_map({USER: f"{world.gateway.access_key};{world.gateway.secret_key}"})
    ftp = login(daemon)  # static keys: nothing is asked of S3 at login
    try:
        with pytest.raises(ftplib.error_perm, match=r"(?s)550.*(AccessDenied|403)"):
            ftp.nlst(f"/{world.bucket}")
        with pytest.raises(ftplib.error_perm, match=r"(?s)PERMISSION_DENIED.*403"):
            ftp.storbinary(f"STOR /{world.bucket}/direct.txt", io.BytesIO(b"nope"))
    finally:
        ftp.close()
    assert world.object("direct.txt") is None


def test_the_same_keys_reach_the_bucket_only_through_the_role(
        world: World, keyed: Site, tmp_path: Path) -> None:
    config, daemon = keyed
    config.write_map({USER: f"{world.gateway.access_key};{world.gateway.secret_key};role_arn={world.role}"})
    world.proxy.clear(counts=True)
    data = os.urandom(PART_PLUS)
    key = f"{unique('role')}.bin"
    guc_put(daemon, write_file(tmp_path / "up.bin", data), f"/{world.bucket}/{key}")
    assert world.object(key) == data
    back = tmp_path / "back.bin"
    run([need("globus-url-copy"), ftp_url(daemon, f"/{world.bucket}/{key}"), f"file://{back}"])
    assert back.read_bytes() == data
    s3_signers = {k for op in ("UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload",
                               "GetObjectRange", "HeadObject") for k in world.proxy.signers(op)}
    assert s3_signers and all(k.startswith("ASIA") for k in s3_signers), s3_signers  # role sessions only
    assert world.gateway.access_key in world.proxy.signers("STS")  # the gateway keys only asked STS


PART_PLUS = 5 * MiB + 1234


def test_sts_refusal_is_told_at_login_with_the_reason(world: World, keyed: Site) -> None:
    config, daemon = keyed
    keys = f"{world.gateway.access_key};{world.gateway.secret_key}"
    config.write_map({USER: f"{keys};role_arn={world.untrusted}"})
    reply = login_refused(daemon)
    assert reply.startswith("530")
    assert f"STS AssumeRole of {world.untrusted} failed: AccessDenied" in reply
    assert "not authorized to perform: sts:AssumeRole" in reply
    assert world.gateway.secret_key not in reply
    log = daemon.log_text()
    assert "STS AssumeRole failed" in log and world.untrusted in log
    assert world.gateway.secret_key not in log


def test_a_refresh_that_sts_refuses_fails_the_command_with_the_reason(world: World, keyed: Site) -> None:
    """The role's trust policy stops naming the gateway while a session is logged in: once the STS
    session expires, the next command answers 550 with STS's reason instead of using stale keys."""
    iam = world.iam.client("iam")
    fragile = world.iam.role("fragile", [{"Effect": "Allow", "Principal": {"AWS": GATEWAY_ARN},
                                          "Action": "sts:AssumeRole"}], s3_statements(world.bucket))
    config, daemon = keyed
    config.write_map({USER: f"{world.gateway.access_key};{world.gateway.secret_key};role_arn={fragile}"})
    ftp = login(daemon)
    try:
        ftp.nlst(f"/{world.bucket}")
        nobody = {"Effect": "Allow", "Action": "sts:AssumeRole",
                  "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/nobody"}}
        iam.update_assume_role_policy(RoleName="fragile", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [nobody]}))
        time.sleep(SESSION_SECONDS + 1)
        with pytest.raises(ftplib.error_perm) as refused:
            ftp.nlst(f"/{world.bucket}")
    finally:
        ftp.close()
    reply = str(refused.value)
    assert reply.startswith("550") and f"STS AssumeRole of {fragile} failed: AccessDenied" in reply
    assert world.gateway.secret_key not in reply


def test_external_id(world: World, keyed: Site) -> None:
    config, daemon = keyed
    line = f"{world.gateway.access_key};{world.gateway.secret_key};role_arn={world.external}"
    config.write_map({USER: f"{line},external_id=lab-42"})
    ftp = login(daemon)
    try:
        ftp.nlst(f"/{world.bucket}")
    finally:
        ftp.close()
    config.write_map({USER: f"{line},external_id=guessed"})
    assert "STS AssumeRole" in login_refused(daemon)


def test_a_transfer_outlives_several_role_sessions(world: World, keyed: Site,
                                                   tmp_path: Path) -> None:
    """Sessions last SESSION_SECONDS; a slow upload of three parts takes about three times that. The
    server refuses an expired session's requests (ExpiredToken), so the upload completes only if the
    daemon assumed the role again, in time, while it ran."""
    config, daemon = keyed
    config.write_map({USER: f"{world.gateway.access_key};{world.gateway.secret_key};role_arn={world.role}"})
    world.proxy.clear(counts=True)
    data = os.urandom(11 * MiB)
    key = f"{unique('long')}.bin"
    src = write_file(tmp_path / "long.bin", data)
    started = time.monotonic()
    run([need("curl"), "-sS", "--max-time", "120", "--limit-rate", "1M", "-T", str(src),
         ftp_url(daemon, f"/{world.bucket}/{key}")], timeout=150)
    assert time.monotonic() - started > 2 * SESSION_SECONDS
    assert world.object(key) == data
    part_signers = world.proxy.signers("UploadPart")
    assert len(part_signers) >= 2, part_signers  # parts signed by different role sessions
    assert world.proxy.requests("STS") >= 2  # the first session may come from an earlier login


def test_secrets_of_assumed_roles_never_reach_the_logs(world: World, keyed: Site) -> None:
    """GLOBUS_S3_DEBUG prints every request and answer of botocore, STS's included."""
    config, daemon = keyed
    secrets = world.iam.session_secrets()
    assert len(secrets) >= 4, "the tests before assumed roles"
    debug = (config.root / "s3-debug.log").read_text(errors="replace")
    assert "AssumeRole" in debug and "<SecretAccessKey>***</SecretAccessKey>" in debug
    for text in (debug, daemon.log_text()):
        for secret in secrets | {world.gateway.secret_key}:
            assert secret not in text


# -- botocore's chain (source=default) -----------------------------------------------------------------------
def chain_env(world: World, root: Path, **extra: str) -> dict[str, str]:
    """A daemon environment with no credentials but what ``extra`` gives (no files, no instance)."""
    env = {"AWS_CONFIG_FILE": str(root / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-creds"),
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL_STS": world.proxy.endpoint,
           "AWS_DEFAULT_REGION": "us-east-1"}
    env.update(extra)
    return env


@pytest.fixture
def chain_site(world: World, tmp_path: Path) -> S3dsiConfig:
    return site(world, tmp_path / "site", **{USER: ";;source=default"})


def test_web_identity(world: World, chain_site: S3dsiConfig, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("not the token the identity provider issued")
    env = chain_env(world, tmp_path, AWS_WEB_IDENTITY_TOKEN_FILE=str(token), AWS_ROLE_ARN=world.role,
                    AWS_ROLE_SESSION_NAME="s3dsi-web")
    daemon = chain_site.start(env=env, drop_env=["AWS_"])
    try:
        reply = login_refused(daemon)
        assert "source=default" in reply and "InvalidIdentityToken" in reply
        token.write_text(WEB_TOKEN)
        world.proxy.clear(counts=True)
        data = os.urandom(1000)
        key = f"{unique('web')}.txt"
        guc_put(daemon, write_file(tmp_path / "w.txt", data), f"/{world.bucket}/{key}")
        assert world.object(key) == data
        assert all(k.startswith("ASIA") for k in world.proxy.signers("PutObject"))
        assert WEB_TOKEN not in daemon.log_text()
    finally:
        daemon.stop()


def test_profile_and_the_default_chain_assuming_a_role(world: World, tmp_path: Path) -> None:
    """``alice;;;source=default,role_arn=...``: the default profile's keys (the gateway's) assume the role;
    ``bob;;;source=default,profile=lab``: the lab profile's keys (the instance user's) are used as such."""
    creds = tmp_path / "credentials"
    creds.write_text(f"[default]\naws_access_key_id = {world.gateway.access_key}\n"
                     f"aws_secret_access_key = {world.gateway.secret_key}\n"
                     f"[lab]\naws_access_key_id = {world.instance.access_key}\n"
                     f"aws_secret_access_key = {world.instance.secret_key}\n")
    config = S3dsiConfig(tmp_path / "site", world.proxy.endpoint, "", "",
                         users={USER: PASSWORD, "bob": PASSWORD},
                         s3_options={"credential_refresh": "1s"},
                         map_lines={USER: f";;source=default,role_arn={world.role}",
                                    "bob": ";;source=default,profile=lab"}).write()
    daemon = config.start(env=chain_env(world, tmp_path, AWS_SHARED_CREDENTIALS_FILE=str(creds)),
                          drop_env=["AWS_"])
    try:
        world.proxy.clear(counts=True)
        guc_put(daemon, write_file(tmp_path / "a.txt", b"alice"), f"/{world.bucket}/{unique('alice')}")
        assert all(k.startswith("ASIA") for k in world.proxy.signers("PutObject"))
        assert world.gateway.access_key in world.proxy.signers("STS")
        world.proxy.clear(counts=True)
        run([need("globus-url-copy"), f"file://{write_file(tmp_path / 'b.txt', b'bob')}",
             ftp_url(daemon, f"/{world.bucket}/{unique('bob')}", "bob", PASSWORD)])
        assert world.proxy.signers("PutObject") == {world.instance.access_key: 1}
    finally:
        daemon.stop()


def test_instance_metadata_credentials_are_refreshed(world: World, chain_site: S3dsiConfig,
                                                     tmp_path: Path) -> None:
    """IMDSv2 hands out the instance user's keys; they are rotated (new key served, old key deleted)
    while a slow upload runs, and again between two uploads of one session: both complete."""
    key1 = world.iam.user("rotating", s3_statements(world.bucket))
    imds = FakeImds(key1).start()
    env = chain_env(world, tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.endpoint)
    del env["AWS_EC2_METADATA_DISABLED"]
    daemon = chain_site.start(env=env, drop_env=["AWS_"])
    try:
        world.proxy.clear(counts=True)
        ftp = login(daemon)
        try:
            ftp.storbinary(f"STOR /{world.bucket}/imds-1.txt", io.BytesIO(b"first"))
            key2 = world.iam.new_key("rotating")
            imds.serve(key2)
            world.iam.delete_key("rotating", key1)
            time.sleep(2.5)  # credential_refresh is 1 s
            ftp.storbinary(f"STOR /{world.bucket}/imds-2.txt", io.BytesIO(b"second"))
        finally:
            ftp.close()
        assert world.object("imds-1.txt") == b"first" and world.object("imds-2.txt") == b"second"
        assert set(world.proxy.signers("PutObject")) == {key1.access_key, key2.access_key}

        # a slow upload across a rotation
        data = os.urandom(11 * MiB)
        src = write_file(tmp_path / "slow.bin", data)
        world.proxy.clear(counts=True)
        argv = [need("curl"), "-sS", "--max-time", "120", "--limit-rate", "1M", "-T", str(src),
                ftp_url(daemon, f"/{world.bucket}/imds-slow.bin")]
        curl = subprocess.Popen(argv, env=client_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        wait_for(lambda: world.proxy.requests("UploadPart") >= 1, timeout=60, what="the first part")
        key3 = world.iam.new_key("rotating")
        imds.serve(key3)
        world.iam.delete_key("rotating", key2)
        _, err = curl.communicate(timeout=150)
        assert curl.returncode == 0, err
        assert world.object("imds-slow.bin") == data
        assert set(world.proxy.signers("UploadPart")) == {key2.access_key, key3.access_key}
        assert key3.access_key in world.proxy.signers("CompleteMultipartUpload")
        assert imds.counts["token"] >= 2 and imds.counts["credentials"] >= 3
        assert imds.counts["refused"] == 0  # botocore never fell back to IMDSv1
    finally:
        daemon.stop()
        imds.stop()


def test_container_credentials(world: World, chain_site: S3dsiConfig, tmp_path: Path) -> None:
    imds = FakeImds(world.instance).start()
    env = chain_env(world, tmp_path, AWS_CONTAINER_CREDENTIALS_FULL_URI=imds.container_uri)
    daemon = chain_site.start(env=env, drop_env=["AWS_"])
    try:
        world.proxy.clear(counts=True)
        guc_put(daemon, write_file(tmp_path / "c.txt", b"container"), f"/{world.bucket}/container.txt")
        assert world.object("container.txt") == b"container"
        assert imds.counts["container"] >= 1
        assert world.proxy.signers("PutObject") == {world.instance.access_key: 1}
    finally:
        daemon.stop()
        imds.stop()


def test_nothing_in_the_chain_is_told_at_login(world: World, chain_site: S3dsiConfig, tmp_path: Path) -> None:
    daemon = chain_site.start(env=chain_env(world, tmp_path), drop_env=["AWS_"])
    try:
        reply = login_refused(daemon)
        assert reply.startswith("530") and "source=default: botocore found no credentials" in reply
    finally:
        daemon.stop()


# -- s3dsi probe with every credential source ---------------------------------------------------------------
def probe(config: S3dsiConfig, *args: str,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "s3dsi", "probe", *args, *config.serve_args()[:-2]],
                          capture_output=True, text=True, timeout=120, env=full, check=False)


def leftovers(world: World) -> list[str]:
    client = world.iam.client("s3")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=world.bucket).get("Contents", [])]
    uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=world.bucket).get("Uploads", [])]
    return [k for k in keys + uploads if ".s3dsi-probe-" in k]


def test_probe_through_a_role(world: World, keyed: Site) -> None:
    config, _ = keyed
    keys = f"{world.gateway.access_key};{world.gateway.secret_key}"
    config.write_map({USER: f"{keys};role_arn={world.role}"})
    proc = probe(config, USER, "--bucket", world.bucket)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"credentials role {world.role} assumed with keys {world.gateway.access_key}" in proc.stdout
    assert "Everything the connector needs is allowed." in proc.stdout
    assert leftovers(world) == []
    config.write_map({USER: f"{keys};role_arn={world.untrusted}"})
    proc = probe(config, USER, "--bucket", world.bucket)
    assert proc.returncode == 1
    assert f"The credentials cannot be obtained: STS AssumeRole of {world.untrusted} failed: AccessDenied" \
        in proc.stdout
    assert f"s3dsi policy --assume {world.untrusted}" in proc.stdout
    assert world.gateway.secret_key not in proc.stdout + proc.stderr


def test_probe_with_the_keys_alone_names_what_is_missing(world: World, keyed: Site) -> None:
    config, _ = keyed
    config.write_map({USER: f"{world.gateway.access_key};{world.gateway.secret_key}"})
    proc = probe(config, USER, "--bucket", world.bucket)
    assert proc.returncode == 1
    assert "Missing IAM actions: s3:ListAllMyBuckets" in proc.stdout or "not reachable" in proc.stdout, \
        proc.stdout


def test_probe_of_an_append_only_destination_with_the_printed_policy(
        world: World, keyed: Site, capsys: pytest.CaptureFixture[str]) -> None:
    """The policy `s3dsi policy --append-only` prints, attached to an identity: the connection test
    writes, checks that the store refuses to replace, deletes its own object, and leaves nothing."""
    from s3dsi.cli.main import main as s3dsi_main  # noqa: PLC0415 (the command line, in process)

    assert s3dsi_main(["policy", "--bucket", world.bucket, "--append-only", "--prefix", "drop"]) == 0
    document = capsys.readouterr().out
    dropbox = world.iam.user("dropbox", as_moto(json.loads(document)["Statement"]))
    config, _ = keyed
    config.write_map({USER: f"{dropbox.access_key};{dropbox.secret_key};root=/{world.bucket}/drop,"
                            "append_only=1"})
    proc = probe(config, USER)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ConditionalPut" in proc.stdout and "conditional writes work" in proc.stdout
    assert f"bucket {world.bucket}" in proc.stdout and "test object drop/.s3dsi-probe-" in proc.stdout
    assert leftovers(world) == []


def test_probe_with_instance_credentials(world: World, chain_site: S3dsiConfig, tmp_path: Path) -> None:
    imds = FakeImds(world.instance).start()
    try:
        env = chain_env(world, tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.endpoint)
        del env["AWS_EC2_METADATA_DISABLED"]
        proc = probe(chain_site, USER, "--bucket", world.bucket, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "credentials botocore's default chain" in proc.stdout
        assert imds.counts["credentials"] >= 1
        assert leftovers(world) == []
    finally:
        imds.stop()
