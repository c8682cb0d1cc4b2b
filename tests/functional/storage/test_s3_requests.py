"""What S3 requests carry for a user's policy, seen on the wire through the fault proxy in front of the
moto server: full-object CRC32C, Requester Pays, encryption, storage class, the bucket-owner ACL for
buckets of other accounts, conditional commits; and stores that refuse those headers (MinIO-style)
keep working, each refusal logged once."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import crc32c
import pytest

from s3dsi.config.s3policy import S3Policy
from s3dsi.protocol.errors import ObjectChanged, PathExists
from s3dsi.storage.backend import WriteCondition
from s3dsi.storage.policy import PolicyBackend
from s3dsi.storage.s3 import S3Backend, S3BackendFactory
from s3dsi.storage.s3clients import S3Credentials
from s3dsi.storage.s3io import crc32c_base64
from tests.support.faultproxy import FaultProxy
from tests.support.moto_server import MotoS3
from tests.support.storage import MiB, moto_config

OTHER_ACCOUNT = "111122223333"


@pytest.fixture(scope="module")
def proxy(moto_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:
    proxy = FaultProxy.launch(moto_s3.endpoint, tmp_path_factory.mktemp("proxy") / "proxy.log")
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def wire(proxy: FaultProxy) -> FaultProxy:
    proxy.clear(counts=True)
    return proxy


def backend(moto: MotoS3, proxy: FaultProxy, policy: S3Policy | None = None, **config: Any) -> S3Backend:
    factory = S3BackendFactory(moto_config(moto, endpoint_url=proxy.endpoint, **config),
                               session=botocore.session.Session())
    return factory.for_user(S3Credentials(moto.access_key, moto.secret_key), policy)


def multipart(view: S3Backend | PolicyBackend, path: str, data: bytes,
              condition: WriteCondition | None = None) -> None:
    upload_id = view.create_upload(path)
    cut = 5 * MiB
    parts = [(n, view.upload_part(path, upload_id, n, memoryview(piece), crc32c=crc32c.crc32c(piece)))
             for n, piece in ((1, data[:cut]), (2, data[cut:]))]
    view.complete_upload(path, upload_id, parts, crc32c=crc32c.crc32c(data), condition=condition)


DATA = bytes(range(256)) * (5 * MiB // 256) + b"tail of the object"


def test_multipart_uploads_ask_for_a_full_object_crc32c(moto_s3: MotoS3, wire: FaultProxy,
                                                        s3_bucket: str) -> None:
    view = backend(moto_s3, wire)
    multipart(view, f"/{s3_bucket}/big.bin", DATA)
    assert wire.headers("CreateMultipartUpload").get("x-amz-checksum-type") == 1
    assert wire.headers("CompleteMultipartUpload").get("x-amz-checksum-type") == 1
    assert wire.headers("CompleteMultipartUpload").get("x-amz-checksum-crc32c") == 1
    stored = moto_s3.client().head_object(Bucket=s3_bucket, Key="big.bin", ChecksumMode="ENABLED")
    assert stored["ChecksumType"] == "FULL_OBJECT"
    assert stored["ChecksumCRC32C"] == crc32c_base64(crc32c.crc32c(DATA))
    info = view.head_object(f"/{s3_bucket}/big.bin", with_checksums=True)
    assert info.checksums == {"CRC32C": f"{crc32c.crc32c(DATA):08x}"}
    assert wire.headers("HeadObject").get("x-amz-checksum-mode") == 1


def test_a_single_put_keeps_its_crc32c_as_the_objects_own(moto_s3: MotoS3, wire: FaultProxy,
                                                         s3_bucket: str) -> None:
    view = backend(moto_s3, wire)
    view.put_object(f"/{s3_bucket}/small", memoryview(b"hello"), crc32c=crc32c.crc32c(b"hello"))
    assert view.head_object(f"/{s3_bucket}/small", with_checksums=True).checksums == \
        {"CRC32C": f"{crc32c.crc32c(b'hello'):08x}"}
    assert view.head_object(f"/{s3_bucket}/small").crc32c == f"{crc32c.crc32c(b'hello'):08x}"


def test_a_store_refusing_full_object_checksums_keeps_working(moto_s3: MotoS3, wire: FaultProxy,
                                                              s3_bucket: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    wire.fail("CreateMultipartUpload", 400, code="InvalidArgument", header="x-amz-checksum-type")
    wire.fail("HeadObject", 400, header="x-amz-checksum-mode")
    view = backend(moto_s3, wire)
    with caplog.at_level(logging.WARNING, logger="s3dsi.storage"):
        multipart(view, f"/{s3_bucket}/one", DATA)
        assert view.head_object(f"/{s3_bucket}/one", with_checksums=True).size == len(DATA)
        after_one = wire.state()["headers"]
        multipart(view, f"/{s3_bucket}/two", DATA)
        assert view.head_object(f"/{s3_bucket}/two", with_checksums=True).size == len(DATA)
    assert moto_s3.client().get_object(Bucket=s3_bucket, Key="two")["Body"].read() == DATA
    assert wire.headers("CreateMultipartUpload").get("x-amz-checksum-type") == 1  # refused once, then never
    assert wire.requests("CreateMultipartUpload") == 3
    assert "x-amz-checksum-type" not in wire.headers("CompleteMultipartUpload")
    # botocore may send a refused HEAD twice (its region check), but the second object is asked plainly
    mode = "x-amz-checksum-mode"
    assert wire.headers("HeadObject").get(mode) == after_one["HeadObject"][mode]
    said = [r.getMessage() for r in caplog.records if "does not support a feature" in r.getMessage()]
    assert len(said) == 2, said  # full-object checksums, stored checksums in HeadObject: once each


def test_a_store_refusing_the_checksum_algorithm_on_put_keeps_working(moto_s3: MotoS3, wire: FaultProxy,
                                                                      s3_bucket: str) -> None:
    wire.fail("PutObject", 400, code="InvalidArgument", header="x-amz-sdk-checksum-algorithm")
    view = backend(moto_s3, wire)
    for name in ("one", "two"):
        view.put_object(f"/{s3_bucket}/{name}", memoryview(b"x"), crc32c=crc32c.crc32c(b"x"))
    assert wire.requests("PutObject") == 3
    assert wire.headers("PutObject") == {"x-amz-sdk-checksum-algorithm": 1, "x-amz-checksum-crc32c": 3}
    assert moto_s3.client().get_object(Bucket=s3_bucket, Key="two")["Body"].read() == b"x"


def test_a_store_that_ignores_full_object_checksums_gets_composite_completions(
        moto_s3: MotoS3, wire: FaultProxy, s3_bucket: str) -> None:
    """An older store creates the upload as it always did (no ChecksumType in its answer): completing
    it with FULL_OBJECT would be refused, so it is completed as a composite one."""
    view = backend(moto_s3, wire)
    client_events = view.store._factory.clients.session
    def forget_checksum_type(**kwargs: Any) -> None:
        kwargs["parsed"].pop("ChecksumType", None)

    client_events.register("after-call.s3.CreateMultipartUpload", forget_checksum_type)
    multipart(view, f"/{s3_bucket}/old-style", DATA)
    assert "x-amz-checksum-type" not in wire.headers("CompleteMultipartUpload")
    assert moto_s3.client().get_object(Bucket=s3_bucket, Key="old-style")["Body"].read() == DATA


def test_requester_pays_on_every_request(moto_s3: MotoS3, wire: FaultProxy, s3_bucket: str) -> None:
    view = PolicyBackend(backend(moto_s3, wire, S3Policy(requester_pays=("*",))), S3Policy())
    base = f"/{s3_bucket}"
    view.mkdir(f"{base}/dir")
    view.put_object(f"{base}/dir/a", memoryview(b"a"), tags={"t": "1"})
    multipart(view, f"{base}/dir/big", DATA)
    info = view.head_object(f"{base}/dir/a")
    view.read_range(info, 0, memoryview(bytearray(1)))
    view.get_tags(f"{base}/dir/a")
    view.set_tags(f"{base}/dir/a", {"t": "2"})
    [e for page in view.list_pages(f"{base}/dir") for e in page]
    view.list_uploads(f"{base}/dir/big")
    view.rename(f"{base}/dir/a", f"{base}/dir/b")
    view.delete(f"{base}/dir/b")
    upload_id = view.create_upload(f"{base}/dir/c")
    view.list_parts(f"{base}/dir/c", upload_id)
    view.abort_upload(f"{base}/dir/c", upload_id)
    state = wire.state()
    for op, count in state["requests"].items():
        if op in ("HeadBucket", "ListBuckets"):  # their APIs have no RequestPayer
            continue
        assert state["headers"].get(op, {}).get("x-amz-request-payer") == count, op


def test_only_the_named_buckets_are_paid_for(moto_s3: MotoS3, wire: FaultProxy, s3_bucket: str) -> None:
    view = backend(moto_s3, wire, S3Policy(requester_pays=("some-other-bucket",)))
    view.put_object(f"/{s3_bucket}/x", memoryview(b"x"))
    assert "x-amz-request-payer" not in wire.headers("PutObject")


def test_encryption_and_storage_class_of_new_objects(moto_s3: MotoS3, wire: FaultProxy,
                                                     s3_bucket: str) -> None:
    view = backend(moto_s3, wire, S3Policy(sse="AES256", storage_class="STANDARD_IA"))
    view.put_object(f"/{s3_bucket}/a", memoryview(b"a"))
    multipart(view, f"/{s3_bucket}/big", DATA)
    view.mkdir(f"/{s3_bucket}/dir")
    client = moto_s3.client()
    for key in ("a", "big"):
        head = client.head_object(Bucket=s3_bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256" and head["StorageClass"] == "STANDARD_IA"
    marker = client.head_object(Bucket=s3_bucket, Key="dir/")
    assert marker["ServerSideEncryption"] == "AES256"  # a bucket policy requiring SSE refuses markers too
    assert "StorageClass" not in marker  # markers stay in the default class
    kms = backend(moto_s3, wire, S3Policy(sse="aws:kms", sse_kms_key_id="alias/lab"))
    wire.clear(counts=True)
    kms.put_object(f"/{s3_bucket}/k", memoryview(b"k"))
    assert wire.headers("PutObject").get("x-amz-server-side-encryption-aws-kms-key-id") == 1


def foreign_bucket(moto: MotoS3) -> str:
    """A bucket of another account: reachable by name, not in our ListBuckets."""
    client = moto.client()
    client.meta.events.register("before-sign.s3.*", lambda request, **_: request.headers.__setitem__(
        "x-moto-account-id", OTHER_ACCOUNT))
    name = f"foreign-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


def test_objects_in_buckets_of_other_accounts_belong_to_their_owner(moto_s3: MotoS3, wire: FaultProxy,
                                                                    s3_bucket: str) -> None:
    theirs = foreign_bucket(moto_s3)
    view = backend(moto_s3, wire)
    view.put_object(f"/{theirs}/x", memoryview(b"x"))
    multipart(view, f"/{theirs}/big", DATA)
    view.mkdir(f"/{theirs}/dir")
    view.put_object(f"/{s3_bucket}/mine", memoryview(b"m"))
    assert wire.headers("PutObject").get("x-amz-acl") == 2  # object and marker abroad, none at home
    assert wire.headers("CreateMultipartUpload").get("x-amz-acl") == 1
    assert wire.requests("ListBuckets") == 1  # ownership learnt once


def test_a_bucket_refusing_the_default_acl_is_written_without(moto_s3: MotoS3, wire: FaultProxy,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    theirs = foreign_bucket(moto_s3)
    wire.fail("PutObject", 400, code="AccessControlListNotSupported", header="x-amz-acl")
    view = backend(moto_s3, wire)
    with caplog.at_level(logging.WARNING, logger="s3dsi.storage"):
        view.put_object(f"/{theirs}/a", memoryview(b"a"))
        view.put_object(f"/{theirs}/b", memoryview(b"b"))
    assert wire.requests("PutObject") == 3 and wire.headers("PutObject").get("x-amz-acl") == 1
    assert len([r for r in caplog.records if "does not accept object ACLs" in r.getMessage()]) == 1


def test_an_acl_the_policy_names_is_never_dropped(moto_s3: MotoS3, wire: FaultProxy, s3_bucket: str) -> None:
    wire.fail("PutObject", 403, code="AccessDenied", header="x-amz-acl")
    view = backend(moto_s3, wire, S3Policy(object_acl="bucket-owner-full-control"))
    with pytest.raises(Exception, match="AccessDenied"):
        view.put_object(f"/{s3_bucket}/a", memoryview(b"a"))
    assert wire.requests("PutObject") == 1


def test_commits_carry_their_condition(moto_s3: MotoS3, wire: FaultProxy, s3_bucket: str) -> None:
    view = PolicyBackend(backend(moto_s3, wire), S3Policy(append_only=True))
    view.put_object(f"/{s3_bucket}/a", memoryview(b"a"), condition=view.check_writable(f"/{s3_bucket}/a"))
    multipart(view, f"/{s3_bucket}/big", DATA, view.check_writable(f"/{s3_bucket}/big"))
    assert wire.headers("PutObject").get("if-none-match") == 1
    assert wire.headers("CompleteMultipartUpload").get("if-none-match") == 1
    changed = PolicyBackend(backend(moto_s3, wire), S3Policy(overwrite="if-unchanged"))
    multipart(changed, f"/{s3_bucket}/big", DATA[::-1], changed.check_writable(f"/{s3_bucket}/big"))
    assert wire.headers("CompleteMultipartUpload").get("if-match") == 1


def test_without_conditional_writes_the_commit_is_checked_just_before(
        moto_s3: MotoS3, wire: FaultProxy, s3_bucket: str, caplog: pytest.LogCaptureFixture) -> None:
    """A store that refuses If-None-Match: the first commit learns it, every commit is then preceded by
    a HeadObject that still catches a writer who came first (moto ignores If-Match on
    CompleteMultipartUpload: only this check catches that race there)."""
    wire.fail("PutObject", 501, header="if-none-match")
    wire.fail("CompleteMultipartUpload", 501, header="if-match")
    appending = PolicyBackend(backend(moto_s3, wire), S3Policy(append_only=True))
    with caplog.at_level(logging.WARNING, logger="s3dsi.storage"):
        path = f"/{s3_bucket}/a"
        appending.put_object(path, memoryview(b"first"), condition=appending.check_writable(path))
    assert [r for r in caplog.records if "conditional writes" in r.getMessage()]
    path = f"/{s3_bucket}/b"
    condition = appending.check_writable(path)
    moto_s3.client().put_object(Bucket=s3_bucket, Key="b", Body=b"other writer")
    with pytest.raises(PathExists, match="append-only"):
        appending.put_object(path, memoryview(b"mine"), condition=condition)
    guarded = PolicyBackend(backend(moto_s3, wire, conditional_writes=False),
                            S3Policy(overwrite="if-unchanged"))
    path = f"/{s3_bucket}/c"
    moto_s3.client().put_object(Bucket=s3_bucket, Key="c", Body=b"v1")
    condition = guarded.check_writable(path)
    moto_s3.client().put_object(Bucket=s3_bucket, Key="c", Body=b"v2")
    with pytest.raises(ObjectChanged):
        multipart(guarded, path, DATA, condition)
    assert moto_s3.client().get_object(Bucket=s3_bucket, Key="c")["Body"].read() == b"v2"
    assert "if-match" not in wire.headers("CompleteMultipartUpload")


def test_no_feature_is_used_by_an_old_style_map_that_did_not_ask(moto_s3: MotoS3, wire: FaultProxy,
                                                                 s3_bucket: str, tmp_path: Path) -> None:
    view = backend(moto_s3, wire)
    view.put_object(f"/{s3_bucket}/x", memoryview(b"x"))
    for op in ("PutObject",):
        seen = wire.headers(op)
        for header in ("x-amz-request-payer", "if-none-match", "if-match", "x-amz-acl",
                       "x-amz-server-side-encryption", "x-amz-storage-class"):
            assert header not in seen, header
