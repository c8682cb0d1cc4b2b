"""A moto server process with IAM enforcement, for credential tests: STS, IAM users, roles and policies.

A process of its own, because moto's IAM enforcement is process-wide: it starts with
``INITIAL_NO_AUTH_ACTION_COUNT`` so high that the arranging requests (users, keys, roles, buckets) are
not checked, then ``enforce()`` switches checking on for every request that follows (moto's
``/moto-api/reset-auth``); from then on a request is accepted only if it is signed with the secret of
a known key and a policy of that identity allows the action (and, for ``sts:AssumeRole``, the role's
trust policy lets the caller in).

Two things AWS does and moto does not are added when this module runs as the server (``python -m
tests.support.moto_iam``): credentials of an STS session stop working when the session expires
(``ExpiredToken``), so a client that does not refresh them fails as it would on AWS; and
AssumeRoleWithWebIdentity is an unsigned request, authorised by its token: the server accepts it
without a signature when the token equals ``S3DSI_TEST_WEB_IDENTITY_TOKEN`` and refuses others
(``InvalidIdentityToken``). ``S3DSI_TEST_STS_SESSION_SECONDS`` makes every STS session that long,
whatever was asked for (AWS's minimum is 900 s, which botocore enforces before sending): a test can
then outlive a few sessions in seconds. The secret key and token of every session go to the file
``IamMoto.session_secrets`` names, so tests can look for them where they must not be (logs).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.support.moto_server import _answers, _log_tail, free_port
from tests.support.processes import stop_process

REGION = "us-east-1"
ACCOUNT = "123456789012"
WEB_IDENTITY_TOKEN_ENV = "S3DSI_TEST_WEB_IDENTITY_TOKEN"
SESSION_SECONDS_ENV = "S3DSI_TEST_STS_SESSION_SECONDS"
SECRETS_FILE_ENV = "S3DSI_TEST_STS_SECRETS_FILE"  # every session's secret key and token, for leak checks
_REPO = Path(__file__).resolve().parents[2]


def _patch_moto() -> None:
    """The two AWS behaviours moto lacks (see the module docstring); runs in the server process."""
    from moto.core.authorization import ActionAuthenticatorMixin  # noqa: PLC0415 (the server process only)
    from moto.core.exceptions import _RESTError as RESTError  # noqa: PLC0415 (the server process only)
    from moto.core.utils import utcnow  # noqa: PLC0415 (the server process only)
    from moto.iam import access_control as ac  # noqa: PLC0415 (the server process only)
    from moto.s3.exceptions import S3ClientError  # noqa: PLC0415 (the server process only)
    from moto.sts import models as sts_models  # noqa: PLC0415 (the server process only)

    class S3ExpiredToken(S3ClientError):
        def __init__(self) -> None:
            super().__init__("ExpiredToken", "The provided token has expired.")

    class StsExpiredToken(RESTError):
        code = 400

        def __init__(self) -> None:
            super().__init__("ExpiredTokenException", "The security token included in the request is expired")

    class InvalidIdentityToken(RESTError):
        code = 400

        def __init__(self) -> None:
            super().__init__("InvalidIdentityToken", "The web identity token that was passed could not be "
                                                     "validated by AWS.")

    session_seconds = os.environ.get(SESSION_SECONDS_ENV)
    secrets_file = os.environ.get(SECRETS_FILE_ENV)
    original_assume = sts_models.STSBackend.assume_role

    def assume(self: Any, *args: Any, **kwargs: Any) -> Any:
        if session_seconds is not None:  # (AssumedRole.__init__ is wrapped by moto's instance tracking)
            kwargs["duration"] = int(session_seconds)
        role = original_assume(self, *args, **kwargs)
        if secrets_file is not None:
            with open(secrets_file, "a") as out:
                out.write(f"{role.secret_access_key}\n{role.session_token}\n")
        return role

    sts_models.STSBackend.assume_role = assume  # type: ignore[method-assign]

    original_init = ac.AssumedRoleAccessKey.__init__

    def assumed_role_key(self: Any, account_id: str, partition: str, access_key_id: str,
                         headers: dict[str, str]) -> None:
        original_init(self, account_id, partition, access_key_id, headers)
        for role in sts_models.sts_backends[account_id][partition].assumed_roles:
            if role.access_key_id == access_key_id and role.expiration < utcnow():
                raise ac.CreateAccessKeyFailure(reason="ExpiredToken")

    ac.AssumedRoleAccessKey.__init__ = assumed_role_key  # type: ignore[method-assign]

    for cls, expired in ((ac.S3IAMRequest, S3ExpiredToken), (ac.IAMRequest, StsExpiredToken)):
        def raise_invalid(self: Any, reason: str, _original: Any = cls._raise_invalid_access_key,
                          _expired: Any = expired) -> None:
            if reason == "ExpiredToken":
                raise _expired()
            _original(self, reason)

        cls._raise_invalid_access_key = raise_invalid  # type: ignore[method-assign]

    original_auth = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authenticate(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        if "Authorization" not in self.headers and self._get_action() == "AssumeRoleWithWebIdentity":
            expected = os.environ.get(WEB_IDENTITY_TOKEN_ENV)
            if expected is not None and self._get_param("WebIdentityToken") != expected:
                raise InvalidIdentityToken()
            return
        original_auth(self, iam_request_cls, resource)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate  # type: ignore[method-assign]


@dataclass
class Keys:
    access_key: str
    secret_key: str


class IamMoto:
    """The server process as tests use it; ``admin`` keys may do anything once IAM is enforced."""

    def __init__(self, process: subprocess.Popen[bytes], endpoint: str, log_path: Path) -> None:
        self.process = process
        self.endpoint = endpoint
        self.log_path = log_path
        self.pid = process.pid
        self.admin = Keys("AKIAIAMMOTOBOOTSTRAP", "bootstrap-secret")  # replaced in arrange_admin()
        self.enforced = False
        self.secrets_file: Path | None = None

    def session_secrets(self) -> set[str]:
        """The secret key and session token of every STS session handed out so far."""
        if self.secrets_file is None or not self.secrets_file.exists():
            return set()
        return {line for line in self.secrets_file.read_text().splitlines() if line}

    @classmethod
    @contextlib.contextmanager
    def start(cls, log_dir: Path, web_identity_token: str | None = None,
              session_seconds: int | None = None) -> Iterator[IamMoto]:
        server = cls.launch(log_dir, web_identity_token, session_seconds)
        try:
            yield server
        finally:
            server.stop()

    @classmethod
    def launch(cls, log_dir: Path, web_identity_token: str | None = None, session_seconds: int | None = None,
               timeout: float = 30.0) -> IamMoto:
        log_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log_path = log_dir / f"moto-iam-{port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"INITIAL_NO_AUTH_ACTION_COUNT": "1000000", "MOTO_PORT": str(port),
                    "PYTHONPATH": str(_REPO) + os.pathsep + env.get("PYTHONPATH", "")})
        if web_identity_token is not None:
            env[WEB_IDENTITY_TOKEN_ENV] = web_identity_token
        if session_seconds is not None:
            env[SESSION_SECONDS_ENV] = str(session_seconds)
        env[SECRETS_FILE_ENV] = str(log_dir / f"sts-secrets-{port}")
        with log_path.open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "tests.support.moto_iam", "-H", "127.0.0.1",
                                        "-p", str(port)], stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, env=env, cwd=str(_REPO))
        server = cls(process, f"http://127.0.0.1:{port}", log_path)
        server.secrets_file = Path(env[SECRETS_FILE_ENV])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            if _answers(server.endpoint):
                server.arrange_admin()
                return server
            time.sleep(0.1)
        server.stop()
        raise RuntimeError(f"IAM moto server did not start:\n{_log_tail(log_path)}")

    def stop(self) -> None:
        stop_process(self.process, 5)

    # -- clients ------------------------------------------------------------------------------------------
    def client(self, service: str, keys: Keys | None = None, **config: Any) -> Any:
        keys = keys or self.admin
        options: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 2}}
        if service == "s3":
            options["s3"] = {"addressing_style": "path"}
        make: Any = boto3.client
        return make(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=keys.access_key, aws_secret_access_key=keys.secret_key,
                            config=Config(**options, **config))

    def arrange_admin(self) -> None:
        iam = self.client("iam")
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        self.admin = Keys(key["AccessKeyId"], key["SecretAccessKey"])

    def enforce(self) -> None:
        """Every request from now on must be signed by a known key and allowed by its policies."""
        # not a form (urllib's default type): moto reads the raw body as the new count
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10):
            pass
        self.enforced = True

    # -- arranging ------------------------------------------------------------------------------------------
    def user(self, name: str, statements: list[dict[str, Any]]) -> Keys:
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))
        return self.new_key(name)

    def new_key(self, user: str) -> Keys:
        key = self.client("iam").create_access_key(UserName=user)["AccessKey"]
        return Keys(key["AccessKeyId"], key["SecretAccessKey"])

    def delete_key(self, user: str, keys: Keys) -> None:
        self.client("iam").delete_access_key(UserName=user, AccessKeyId=keys.access_key)

    def role(self, name: str, trust: list[dict[str, Any]], statements: list[dict[str, Any]]) -> str:
        iam = self.client("iam")
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": trust}))["Role"]["Arn"]
        iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))
        return str(arn)

    def bucket(self, prefix: str = "cred") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client("s3").create_bucket(Bucket=name)
        return name


# moto checks the *operation* name (s3:HeadObject, s3:UploadPart...) where AWS checks the IAM action
# that covers it (s3:GetObject, s3:PutObject...): the operations each IAM action stands for, so that a
# policy written for AWS (what `s3dsi policy` prints) means the same to moto.
_MOTO_OPERATIONS = {
    "s3:ListAllMyBuckets": ("s3:ListBuckets",),
    "s3:ListBucket": ("s3:ListObjectsV2", "s3:ListObjects", "s3:HeadBucket"),
    "s3:ListBucketMultipartUploads": ("s3:ListMultipartUploads",),
    "s3:GetObject": ("s3:HeadObject",),
    "s3:PutObject": ("s3:CreateMultipartUpload", "s3:UploadPart", "s3:CompleteMultipartUpload"),
    "s3:ListMultipartUploadParts": ("s3:ListParts",),
}


def as_moto(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``statements`` with moto's operation names added to each action list (see ``_MOTO_OPERATIONS``)."""
    out = []
    for given in statements:
        actions = given.get("Action")
        if isinstance(actions, str):
            actions = [actions]
        if actions is None:
            out.append(given)
            continue
        extra = [op for action in actions for op in _MOTO_OPERATIONS.get(action, ())]
        out.append({**given, "Action": list(dict.fromkeys([*actions, *extra]))})
    return out


def s3_statements(bucket: str) -> list[dict[str, Any]]:
    """Everything the connector does in ``bucket``, and listing buckets."""
    return as_moto([{"Effect": "Allow", "Action": ["s3:ListAllMyBuckets", "s3:GetBucketLocation"],
                     "Resource": "*"},
                    {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}",
                                                                      f"arn:aws:s3:::{bucket}/*"]}])


if __name__ == "__main__":
    _patch_moto()
    from moto.server import main

    main()
