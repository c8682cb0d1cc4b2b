"""`s3dsi probe` against a stubbed S3 (botocore Stubber): the call sequence, the missing-action table,
clean-up of test artifacts and the `s3dsi policy` advice."""

from __future__ import annotations

import io
from typing import Any

import botocore.session
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from s3dsi.cli.probe import ProbeOptions, Prober, render

DENY = {"service_error_code": "AccessDenied", "http_status_code": 403}


def stubbed_client() -> tuple[Any, Stubber]:
    client = botocore.session.Session().create_client(
        "s3", region_name="us-east-1", aws_access_key_id="AKIAPROBE", aws_secret_access_key="not-a-secret")
    return client, Stubber(client)


def allow(stub: Stubber, method: str, response: dict[str, Any] | None = None) -> None:
    stub.add_response(method, response or {})


def deny(stub: Stubber, method: str) -> None:
    stub.add_client_error(method, **DENY)  # type: ignore[arg-type]


def bucket_start(stub: Stubber, contents: list[dict[str, Any]] | None = None) -> None:
    allow(stub, "list_buckets", {"Buckets": [{"Name": "lab"}]})
    allow(stub, "get_bucket_location", {"LocationConstraint": "eu-west-2"})
    allow(stub, "head_bucket")
    allow(stub, "list_objects_v2", {"Contents": contents or []})
    allow(stub, "list_multipart_uploads")


def body() -> dict[str, Any]:
    return {"Body": StreamingBody(io.BytesIO(b"s"), 1)}


def probe(client: Any, bucket: str | None = "lab") -> tuple[Any, list[str]]:
    regions: list[str] = []

    def client_for(region: str) -> Any:
        regions.append(region)
        return client

    return Prober(client_for, home_region="us-east-1").run(bucket), regions


def test_everything_allowed_and_everything_cleaned_up() -> None:
    client, stub = stubbed_client()
    bucket_start(stub)
    allow(stub, "put_object")
    allow(stub, "put_object_tagging")
    allow(stub, "get_object_tagging", {"TagSet": []})
    allow(stub, "get_object", body())
    allow(stub, "create_multipart_upload", {"UploadId": "u-1"})
    allow(stub, "list_parts")
    allow(stub, "abort_multipart_upload")
    records_allowed(stub)
    rule = {"Status": "Enabled", "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}
    allow(stub, "get_bucket_lifecycle_configuration", {"Rules": [rule]})
    allow(stub, "delete_object")
    with stub:
        report, regions = probe(client, bucket=None)
        stub.assert_no_pending_responses()
    assert regions == ["us-east-1", "eu-west-2"]
    assert report.bucket == "lab" and report.region == "eu-west-2"
    assert [o.result for o in report.outcomes] == ["allowed"] * 16
    assert report.ok and report.missing_actions == [] and report.leftovers == []
    text = render(report, "alice", "AKIAPROBE", "https://s3.amazonaws.com")
    assert "Everything the connector needs is allowed." in text
    assert "probing lab, the first bucket listed" in text
    assert "bucket lab: lifecycle rule aborts incomplete multipart uploads after 2 day(s)" in text


def no_lifecycle(stub: Stubber) -> None:
    stub.add_client_error("get_bucket_lifecycle_configuration",
                          service_error_code="NoSuchLifecycleConfiguration", http_status_code=404)


def records_allowed(stub: Stubber) -> None:
    """The restart-record checks: write, read back and remove a record under .s3dsi/."""
    allow(stub, "put_object")
    allow(stub, "get_object", body())
    allow(stub, "delete_object")


def test_a_read_only_identity_gets_the_missing_write_actions_and_the_policy_command() -> None:
    client, stub = stubbed_client()
    bucket_start(stub, contents=[{"Key": "dir/"}, {"Key": "dir/data.bin"}])
    deny(stub, "put_object")
    allow(stub, "get_object_tagging", {"TagSet": []})  # read on the existing object instead
    allow(stub, "get_object", body())
    deny(stub, "create_multipart_upload")
    deny(stub, "put_object")  # a restart record
    deny(stub, "get_bucket_lifecycle_configuration")
    with stub:
        report, _ = probe(client)
        stub.assert_no_pending_responses()
    results = {o.check.operation: o.result for o in report.outcomes}
    assert results["PutObject .s3dsi/"] == "denied"
    assert results["GetObject .s3dsi/"] == results["DeleteObject .s3dsi/"] == "skipped"
    assert report.lifecycle is not None and report.lifecycle.state == "unknown"
    assert results["PutObject"] == results["CreateMultipartUpload"] == "denied"
    assert results["GetObject"] == results["GetObjectTagging"] == "allowed"
    assert results["PutObjectTagging"] == results["ListParts"] == results["DeleteObject"] == "skipped"
    assert report.missing_actions == ["s3:PutObject"]
    assert report.fix_level == "upload"
    text = render(report, "alice", "AKIAPROBE", "https://s3.amazonaws.com")
    row = next(line for line in text.splitlines() if line.startswith("PutObject "))
    assert row.split()[:4] == ["PutObject", "s3:PutObject", "DENIED", "(AccessDenied)"]
    assert "  s3dsi policy --bucket lab --access upload\n" in text
    assert "--principal ARN_OF_THAT_IDENTITY" in text
    assert not report.ok


def test_what_cannot_be_cleaned_up_is_reported() -> None:
    client, stub = stubbed_client()
    bucket_start(stub)
    allow(stub, "put_object")
    allow(stub, "put_object_tagging")
    allow(stub, "get_object_tagging", {"TagSet": []})
    allow(stub, "get_object", body())
    allow(stub, "create_multipart_upload", {"UploadId": "u-9"})
    deny(stub, "list_parts")
    deny(stub, "abort_multipart_upload")
    allow(stub, "put_object")
    allow(stub, "get_object", body())
    deny(stub, "delete_object")  # the record
    stub.add_client_error("get_bucket_lifecycle_configuration",
                          service_error_code="NoSuchLifecycleConfiguration", http_status_code=404)
    deny(stub, "delete_object")
    with stub:
        report, _ = probe(client)
        stub.assert_no_pending_responses()
    assert report.missing_actions == ["s3:ListMultipartUploadParts", "s3:AbortMultipartUpload",
                                      "s3:DeleteObject"]
    assert report.fix_level == "delete"
    assert len(report.leftovers) == 3
    assert "u-9" in report.leftovers[0] and "s3://lab/.s3dsi/uploads/probe-" in report.leftovers[1]
    text = render(report, "alice", "AKIAPROBE", "https://s3.amazonaws.com")
    assert "left behind: s3://lab/.s3dsi-probe-" in text
    assert "bucket lab: no lifecycle rule aborts incomplete multipart uploads" in text


def test_rejected_keys_are_not_reported_as_missing_permissions() -> None:
    client, stub = stubbed_client()
    stub.add_client_error("list_buckets", service_error_code="InvalidAccessKeyId", http_status_code=403)
    with stub:
        report, _ = probe(client, bucket=None)
    assert report.outcomes[0].result == "failed"
    assert "rejects these credentials" in report.outcomes[0].detail
    assert report.missing_actions == []
    assert "give --bucket" in report.notes[0]


def test_a_bucket_that_does_not_exist_is_said_so_and_nothing_else_is_tried() -> None:
    client, stub = stubbed_client()
    allow(stub, "list_buckets", {"Buckets": [{"Name": "lab"}]})
    stub.add_client_error("get_bucket_location", service_error_code="NoSuchBucket", http_status_code=404)
    stub.add_client_error("head_bucket", service_error_code="404", http_status_code=404)
    with stub:
        report, _ = probe(client, bucket="no-such-bucket")
        stub.assert_no_pending_responses()  # and no further call was made
    assert [o.check.operation for o in report.outcomes] == ["ListBuckets", "GetBucketLocation", "HeadBucket"]
    assert report.bucket_unusable == "missing" and not report.ok
    text = render(report, "alice", "AKIAPROBE", "https://s3.amazonaws.com")
    assert "Bucket no-such-bucket does not exist at https://s3.amazonaws.com (NoSuchBucket)" in text
    assert "Missing IAM actions" not in text


def test_a_bucket_that_cannot_be_reached_is_said_so() -> None:
    client, stub = stubbed_client()
    allow(stub, "list_buckets", {"Buckets": []})
    stub.add_client_error("get_bucket_location", service_error_code="InternalError", http_status_code=500)
    stub.add_client_error("head_bucket", service_error_code="500", http_status_code=500)
    with stub:
        report, _ = probe(client, bucket="lab")
        stub.assert_no_pending_responses()
    assert report.bucket_unusable == "unreachable" and not report.ok
    text = render(report, "alice", "AKIAPROBE", "https://s3.amazonaws.com")
    assert "Bucket lab is not reachable at https://s3.amazonaws.com (InternalError; 500)" in text


def test_a_bucket_of_another_region_or_account_is_still_probed() -> None:
    client, stub = stubbed_client()
    allow(stub, "list_buckets", {"Buckets": []})
    deny(stub, "get_bucket_location")
    stub.add_client_error("head_bucket", service_error_code="403", http_status_code=403)
    with stub:
        report, _ = probe(client, bucket="theirs")
    assert report.bucket_unusable is None
    assert "ListObjectsV2" in [o.check.operation for o in report.outcomes]


def test_an_acl_refused_alone_is_the_missing_put_object_acl() -> None:
    client, stub = stubbed_client()
    bucket_start(stub)
    deny(stub, "put_object")  # with the ACL...
    allow(stub, "put_object")  # ...and without it
    allow(stub, "put_object_tagging")
    allow(stub, "get_object_tagging", {"TagSet": []})
    allow(stub, "get_object", body())
    allow(stub, "create_multipart_upload", {"UploadId": "u-1"})
    allow(stub, "list_parts")
    allow(stub, "abort_multipart_upload")
    records_allowed(stub)
    no_lifecycle(stub)
    allow(stub, "delete_object")
    options = ProbeOptions(acl="bucket-owner-full-control")
    with stub:
        report = Prober(lambda region: client, home_region="us-east-1", options=options).run("lab")
        stub.assert_no_pending_responses()
    assert report.missing_actions == ["s3:PutObjectAcl"]
    assert not report.leftovers
    text = render(report, "alice", "keys AKIAPROBE", "https://s3.amazonaws.com")
    assert "s3dsi policy --bucket lab --access upload --object-acl" in text


def test_append_only_checks_that_the_store_refuses_to_replace() -> None:
    client, stub = stubbed_client()
    bucket_start(stub)
    stub.add_response("put_object", {}, {"Bucket": "lab", "Key": ANY, "Body": ANY, "IfNoneMatch": "*"})
    stub.add_client_error("put_object", service_error_code="PreconditionFailed", http_status_code=412)
    allow(stub, "put_object_tagging")
    allow(stub, "get_object_tagging", {"TagSet": []})
    allow(stub, "get_object", body())
    allow(stub, "create_multipart_upload", {"UploadId": "u-1"})
    allow(stub, "list_parts")
    allow(stub, "abort_multipart_upload")
    # the restart records are at the top of the bucket, outside the prefix
    stub.add_response("put_object", {}, {"Bucket": "lab", "Key": ANY, "Body": ANY})
    allow(stub, "get_object", body())
    allow(stub, "delete_object")
    no_lifecycle(stub)
    allow(stub, "delete_object")
    with stub:
        report = Prober(lambda region: client, home_region="us-east-1",
                        options=ProbeOptions(append_only=True, prefix="drop/")).run("lab")
        stub.assert_no_pending_responses()
    assert report.ok and report.key is not None and report.key.startswith("drop/.s3dsi-probe-")
    [conditional] = [o for o in report.outcomes if o.check.operation == "ConditionalPut"]
    assert conditional.result == "allowed"


def test_a_store_that_replaces_despite_if_none_match_is_reported() -> None:
    client, stub = stubbed_client()
    bucket_start(stub)
    allow(stub, "put_object")
    allow(stub, "put_object")  # the second conditional put was not refused
    for method, response in (("put_object_tagging", {}), ("get_object_tagging", {"TagSet": []}),
                             ("get_object", body()), ("create_multipart_upload", {"UploadId": "u"}),
                             ("list_parts", {}), ("abort_multipart_upload", {}), ("put_object", {}),
                             ("get_object", body()), ("delete_object", {})):
        allow(stub, method, response)
    no_lifecycle(stub)
    allow(stub, "delete_object")
    with stub:
        report = Prober(lambda region: client, home_region="us-east-1",
                        options=ProbeOptions(append_only=True)).run("lab")
    [conditional] = [o for o in report.outcomes if o.check.operation == "ConditionalPut"]
    assert conditional.result == "failed" and "conditional_writes = no" in conditional.detail
    assert not report.ok
