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


def test_uploads_may_remove_their_restart_records(capsys: pytest.CaptureFixture[str]) -> None:
    doc = policy(capsys, "--bucket", "bk1", "--bucket", "bk2", "--access", "upload")
    [records] = [s for s in doc["Statement"] if s["Sid"] == "S3dsiRestartRecords"]
    assert records["Action"] == ["s3:DeleteObject"]
    assert records["Resource"] == ["arn:aws:s3:::bk1/.s3dsi/*", "arn:aws:s3:::bk2/.s3dsi/*"]
    for access in ("browse", "download", "delete", "full"):  # delete and full may delete everything anyway
        assert "S3dsiRestartRecords" not in [s["Sid"] for s in policy(capsys, "--bucket", "bk1", "--access",
                                                                          access)["Statement"]]
    arn = "arn:aws:iam::123456789012:user/gridftp"
    shared = policy(capsys, "--bucket", "shared", "--access", "upload", "--principal", arn)
    [records] = [s for s in shared["Statement"] if s["Sid"] == "S3dsiRestartRecords"]
    assert records["Resource"] == "arn:aws:s3:::shared/.s3dsi/*" and records["Principal"] == {"AWS": arn}
