"""s3dsi policy: least-privilege IAM documents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from s3dsi.cli.main import main


def policy(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["policy", *args]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def actions(document: dict[str, Any], sid: str) -> set[str]:
    [statement] = [s for s in document["Statement"] if s["Sid"] == sid]
    return set(statement["Action"])


def test_download_policy_has_the_three_statements(capsys: pytest.CaptureFixture[str]) -> None:
    doc = policy(capsys, "--bucket", "data-a", "--bucket", "data-b", "--access", "download")
    assert doc["Version"] == "2012-10-17"
    assert [s["Sid"] for s in doc["Statement"]] == ["S3dsiListBuckets", "S3dsiBucketAccess",
                                                    "S3dsiObjectAccess"]
    assert actions(doc, "S3dsiListBuckets") == {"s3:ListAllMyBuckets", "s3:GetBucketLocation"}
    assert doc["Statement"][0]["Resource"] == "*"
    assert actions(doc, "S3dsiBucketAccess") == {"s3:ListBucket", "s3:ListBucketMultipartUploads"}
    assert doc["Statement"][1]["Resource"] == ["arn:aws:s3:::data-a", "arn:aws:s3:::data-b"]
    assert actions(doc, "S3dsiObjectAccess") == {"s3:GetObject", "s3:GetObjectTagging"}
    assert doc["Statement"][2]["Resource"] == ["arn:aws:s3:::data-a/*", "arn:aws:s3:::data-b/*"]
    assert all(s["Effect"] == "Allow" for s in doc["Statement"])


def test_access_levels_grow(capsys: pytest.CaptureFixture[str]) -> None:
    browse = policy(capsys, "--bucket", "bk1", "--access", "browse")
    assert [s["Sid"] for s in browse["Statement"]] == ["S3dsiListBuckets", "S3dsiBucketAccess"]
    upload = actions(policy(capsys, "--bucket", "bk1", "--access", "upload"), "S3dsiObjectAccess")
    assert upload == {"s3:GetObject", "s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectTagging",
                      "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
    delete = actions(policy(capsys, "--bucket", "bk1", "--access", "delete"), "S3dsiObjectAccess")
    assert delete == upload | {"s3:DeleteObject"}
    full = policy(capsys, "--bucket", "bk1", "--access", "full")
    assert actions(full, "S3dsiObjectAccess") == delete
    assert {"s3:CreateBucket", "s3:DeleteBucket"} <= actions(full, "S3dsiBucketAccess")
    assert "s3:DeleteObject" not in actions(policy(capsys, "--bucket", "bk1", "--access", "upload"),
                                            "S3dsiObjectAccess")


def test_default_access_is_download(capsys: pytest.CaptureFixture[str]) -> None:
    assert actions(policy(capsys, "--bucket", "bk1"), "S3dsiObjectAccess") == {"s3:GetObject",
                                                                              "s3:GetObjectTagging"}


def test_cross_account_bucket_policy(capsys: pytest.CaptureFixture[str]) -> None:
    arn = "arn:aws:iam::123456789012:user/gridftp"
    doc = policy(capsys, "--bucket", "shared", "--access", "upload", "--principal", arn)
    assert all(s["Principal"] == {"AWS": arn} for s in doc["Statement"])
    every = set().union(*(set(s["Action"]) for s in doc["Statement"]))
    assert "s3:ListAllMyBuckets" not in every
    assert {"s3:ListBucket", "s3:GetBucketLocation", "s3:PutObject"} <= every
    assert doc["Statement"][0]["Resource"] == "arn:aws:s3:::shared"
    assert doc["Statement"][1]["Resource"] == "arn:aws:s3:::shared/*"
    account = policy(capsys, "--bucket", "shared", "--principal", "123456789012", "--partition", "aws-cn")
    assert account["Statement"][0]["Principal"] == {"AWS": "arn:aws-cn:iam::123456789012:root"}
    assert account["Statement"][0]["Resource"] == "arn:aws-cn:s3:::shared"


@pytest.mark.parametrize("args", [
    ["--bucket", "a/b"], ["--bucket", "x"], ["--bucket", "ok-name", "--principal", "someone"],
    ["--bucket", "one", "--bucket", "two", "--principal", "123456789012"], ["--bucket", "b*"],
])
def test_bad_input(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    assert main(["policy", *args]) == 2
    assert "error" in capsys.readouterr().err


def test_bucket_is_required() -> None:
    with pytest.raises(SystemExit):
        main(["policy"])


def test_append_only_policy(capsys: pytest.CaptureFixture[str]) -> None:
    doc = policy(capsys, "--bucket", "drop", "--append-only", "--prefix", "incoming/lab")
    objects = actions(doc, "S3dsiObjectAccess")
    assert "s3:PutObject" in objects and "s3:DeleteObject" not in objects
    [objects_statement] = [s for s in doc["Statement"] if s["Sid"] == "S3dsiObjectAccess"]
    assert objects_statement["Resource"] == ["arn:aws:s3:::drop/incoming/lab/*"]
    [cleanup] = [s for s in doc["Statement"] if s["Sid"] == "S3dsiProbeCleanup"]
    assert cleanup["Action"] == ["s3:DeleteObject"]
    assert cleanup["Resource"] == ["arn:aws:s3:::drop/incoming/lab/.s3dsi-probe-*"]
    [deny] = [s for s in doc["Statement"] if s["Sid"] == "S3dsiAppendOnly"]
    # deletes are denied but for the probe's objects and the restart records (outside the prefix)
    assert deny["Effect"] == "Deny"
    assert deny["NotResource"] == [*cleanup["Resource"], "arn:aws:s3:::drop/.s3dsi/*"]
    [records] = [s for s in doc["Statement"] if s["Sid"] == "S3dsiRestartRecords"]
    assert records["Resource"] == ["arn:aws:s3:::drop/.s3dsi/*"]
    assert set(deny["Action"]) == {"s3:DeleteObject", "s3:DeleteObjectVersion"}
    owner = policy(capsys, "--bucket", "drop", "--append-only", "--principal", "123456789012")
    every = set().union(*(set(s["Action"]) for s in owner["Statement"]))
    assert "s3:PutObject" in every and "s3:PutObjectAcl" in every
    assert [s["Resource"] for s in owner["Statement"] if s["Sid"] == "S3dsiProbeCleanup"] == \
        ["arn:aws:s3:::drop/.s3dsi-probe-*"]


def test_object_acl_and_kms(capsys: pytest.CaptureFixture[str]) -> None:
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab"
    doc = policy(capsys, "--bucket", "lab", "--access", "upload", "--object-acl", "--kms-key", key)
    assert "s3:PutObjectAcl" in actions(doc, "S3dsiObjectAccess")
    assert actions(doc, "S3dsiKms") == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert "s3:PutObjectAcl" not in actions(policy(capsys, "--bucket", "lab", "--access", "upload"),
                                            "S3dsiObjectAccess")
    assert main(["policy", "--bucket", "lab", "--kms-key", "alias-without-arn"]) == 2


def test_trust_policies(capsys: pytest.CaptureFixture[str]) -> None:
    gateway = "arn:aws:iam::111122223333:user/gridftp-gw"
    doc = policy(capsys, "--trust", gateway, "--external-id", "lab-42")
    [statement] = doc["Statement"]
    assert statement["Principal"] == {"AWS": gateway} and statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": "lab-42"}}
    instance = policy(capsys, "--trust", "ec2")["Statement"][0]
    assert instance["Principal"] == {"Service": "ec2.amazonaws.com"} and "Condition" not in instance
    oidc = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"
    web = policy(capsys, "--web-identity", oidc, "--audience", "sts.amazonaws.com",
                 "--subject", "system:serviceaccount:gridftp:s3dsi")["Statement"][0]
    assert web["Principal"] == {"Federated": oidc} and web["Action"] == "sts:AssumeRoleWithWebIdentity"
    host = "oidc.eks.eu-west-1.amazonaws.com/id/ABC"
    assert web["Condition"] == {"StringEquals": {f"{host}:aud": "sts.amazonaws.com",
                                                 f"{host}:sub": "system:serviceaccount:gridftp:s3dsi"}}
    role = "arn:aws:iam::111122223333:role/lab-writer"
    assume = policy(capsys, "--assume", role)["Statement"][0]
    assert assume["Action"] == ["sts:AssumeRole"] and assume["Resource"] == [role]
    assert main(["policy", "--assume", "not-a-role"]) == 2
    assert main(["policy", "--trust", "ec2", "--external-id", "x"]) == 2
def test_uploads_keep_their_restart_records_whatever_the_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    doc = policy(capsys, "--bucket", "bk1", "--bucket", "bk2", "--access", "upload", "--prefix", "home/alice")
    [records] = [s for s in doc["Statement"] if s["Sid"] == "S3dsiRestartRecords"]
    assert records["Action"] == ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
    assert records["Resource"] == ["arn:aws:s3:::bk1/.s3dsi/*", "arn:aws:s3:::bk2/.s3dsi/*"]
    for access in ("upload", "delete", "full"):
        assert "S3dsiRestartRecords" in [s["Sid"] for s in policy(capsys, "--bucket", "bk1", "--access",
                                                                      access)["Statement"]]
    for access in ("browse", "download"):  # no uploads, no records
        assert "S3dsiRestartRecords" not in [s["Sid"] for s in policy(capsys, "--bucket", "bk1", "--access",
                                                                          access)["Statement"]]
    acl = policy(capsys, "--bucket", "bk1", "--access", "upload", "--object-acl")
    assert "s3:PutObjectAcl" in actions(acl, "S3dsiRestartRecords")
    arn = "arn:aws:iam::123456789012:user/gridftp"
    shared = policy(capsys, "--bucket", "shared", "--access", "upload", "--principal", arn)
    [records] = [s for s in shared["Statement"] if s["Sid"] == "S3dsiRestartRecords"]
    assert records["Resource"] == "arn:aws:s3:::shared/.s3dsi/*" and records["Principal"] == {"AWS": arn}
