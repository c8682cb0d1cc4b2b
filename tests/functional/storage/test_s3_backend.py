"""S3Backend behaviour that only S3 has: lazy pagination, bucket regions, client reuse, multipart copy,
request headers, against the moto server process."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from s3dsi.protocol.errors import PathExists
from tests.support.moto_server import MotoS3
from tests.support.storage import moto_backend

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def big_listing(moto_s3: MotoS3) -> tuple[str, int]:
    """A bucket with 1,205 objects under ``many/`` (made once: it takes a few seconds)."""
    bucket = moto_s3.create_bucket()
    client = moto_s3.client()
    count = 1205

    def put(i: int) -> None:
        client.put_object(Bucket=bucket, Key=f"many/obj-{i:05d}", Body=b"x")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(count)))
    return bucket, count


def test_listing_is_paged_lazily(moto_s3: MotoS3, big_listing: tuple[str, int]) -> None:
    bucket, count = big_listing
    backend, _, log = moto_backend(moto_s3)
    backend.stat(f"/{bucket}")
    log.clear()
    pages = backend.list_pages(f"/{bucket}/many")
    assert log.count("ListObjectsV2") == 1  # first page fetched by the call itself
    first = next(pages)
    assert len(first) == 1000
    assert log.count("ListObjectsV2") == 1
    rest = list(pages)
    assert log.count("ListObjectsV2") == 2
    assert [len(p) for p in rest] == [count - 1000]
    names = [e.name for page in [first, *rest] for e in page]
    assert names == sorted(names)
    assert len(set(names)) == count


def test_bucket_region_learnt_once_and_used(moto_s3: MotoS3) -> None:
    bucket = moto_s3.create_bucket(region="eu-west-1")
    backend, factory, log = moto_backend(moto_s3)
    backend.put_object(f"/{bucket}/k", memoryview(b"abc"))
    assert factory.regions.get(bucket) == "eu-west-1"
    assert log.count("HeadBucket") == 1
    log.clear()
    backend.stat(f"/{bucket}/k")
    other_user = factory.for_credentials("AKIAOTHERUSER0000001", "another-secret")
    other_user.stat(f"/{bucket}/k")
    assert log.count("HeadBucket") == 0  # the cache is process-wide, shared by users
    signed = [h.get("Authorization", "") for op, h in log.headers if op == "HeadObject"]
    assert signed
    assert all("/eu-west-1/s3/aws4_request" in a for a in signed)


def test_buckets_of_a_region_share_one_client(moto_s3: MotoS3) -> None:
    buckets = [moto_s3.create_bucket(region="ap-south-1") for _ in range(3)]
    backend, factory, _ = moto_backend(moto_s3)
    for bucket in buckets:
        backend.check_writable(f"/{bucket}/k")
    before = factory.clients.created
    again = factory.for_credentials(moto_s3.access_key, moto_s3.secret_key)
    again.check_writable(f"/{buckets[0]}/k")
    assert factory.clients.created == before == 2  # home region + ap-south-1


def test_mkdir_bucket_goes_to_the_configured_region(moto_s3: MotoS3) -> None:
    backend, factory, _ = moto_backend(moto_s3, region="eu-central-1")
    name = f"s3dsi-region-{os.urandom(4).hex()}"
    backend.mkdir(f"/{name}")
    assert factory.regions.get(name) == "eu-central-1"
    head = moto_s3.client().head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "eu-central-1"
    with pytest.raises(PathExists, match="BucketAlreadyOwnedByYou"):
        backend.mkdir(f"/{name}")


def test_rename_above_threshold_uses_multipart_copy(moto_s3: MotoS3, s3_bucket: str) -> None:
    backend, _, log = moto_backend(moto_s3, multipart_copy_threshold=MiB, copy_part_size=5 * MiB)
    data = os.urandom(11 * MiB)
    client = moto_s3.client()
    client.put_object(Bucket=s3_bucket, Key="src", Body=data, ContentType="application/x-hdf5",
                      Metadata={"origin": "test"}, Tagging="adler32=0a0b0c0d")
    log.clear()
    backend.rename(f"/{s3_bucket}/src", f"/{s3_bucket}/dst")
    assert log.count("UploadPartCopy") == 3
    assert log.count("CopyObject") == 0
    assert log.count("CompleteMultipartUpload") == 1
    head = client.head_object(Bucket=s3_bucket, Key="dst")
    assert head["ContentType"] == "application/x-hdf5"
    assert head["Metadata"] == {"origin": "test"}
    assert backend.get_tags(f"/{s3_bucket}/dst") == {"adler32": "0a0b0c0d"}
    assert client.get_object(Bucket=s3_bucket, Key="dst")["Body"].read() == data
    assert "Contents" not in client.list_objects_v2(Bucket=s3_bucket, Prefix="src")
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_rename_below_threshold_uses_copy_object(moto_s3: MotoS3, s3_bucket: str) -> None:
    backend, _, log = moto_backend(moto_s3)
    backend.put_object(f"/{s3_bucket}/a", memoryview(b"small"))
    log.clear()
    backend.rename(f"/{s3_bucket}/a", f"/{s3_bucket}/b")
    assert log.count("CopyObject") == 1
    assert log.count("UploadPartCopy") == 0


def _sent(log_headers: list[tuple[str, dict[str, str]]], operation: str) -> dict[str, str]:
    return {k.lower(): v for k, v in next(h for op, h in log_headers if op == operation).items()}


def test_uploads_carry_crc32c_and_skip_payload_signing_on_loopback(moto_s3: MotoS3, s3_bucket: str) -> None:
    backend, _, log = moto_backend(moto_s3)
    backend.put_object(f"/{s3_bucket}/k", memoryview(b"abc"))
    sent = _sent(log.headers, "PutObject")
    assert sent["x-amz-checksum-crc32c"] == "Nks/tw=="  # CRC32C("abc") = 0x364b3fb7
    assert sent["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"  # loopback HTTP: CRC32C suffices


def test_payloads_are_signed_over_plain_http_without_crc32c(moto_s3: MotoS3, s3_bucket: str) -> None:
    backend, _, log = moto_backend(moto_s3, crc32c_checksums=False)
    backend.put_object(f"/{s3_bucket}/k", memoryview(b"abc"))
    sent = _sent(log.headers, "PutObject")
    assert "x-amz-checksum-crc32c" not in sent
    assert len(sent["x-amz-content-sha256"]) == 64  # SHA-256 of the payload: the only body check left


def test_unsigned_payload_over_http_when_configured(moto_s3: MotoS3, s3_bucket: str) -> None:
    backend, _, log = moto_backend(moto_s3, unsigned_payload_over_http=True)
    upload_id = backend.create_upload(f"/{s3_bucket}/m")
    etag = backend.upload_part(f"/{s3_bucket}/m", upload_id, 1, memoryview(b"part"))
    assert _sent(log.headers, "UploadPart")["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert _sent(log.headers, "CreateMultipartUpload")["x-amz-checksum-algorithm"] == "CRC32C"
    backend.complete_upload(f"/{s3_bucket}/m", upload_id, [(1, etag)])
    body = next(b for op, b in log.bodies if op == "CompleteMultipartUpload")
    assert b"<ChecksumCRC32C>" in body  # S3 requires each part's checksum when the upload has one
    assert moto_s3.client().get_object(Bucket=s3_bucket, Key="m")["Body"].read() == b"part"


def test_checksums_can_be_turned_off(moto_s3: MotoS3, s3_bucket: str) -> None:
    backend, _, log = moto_backend(moto_s3, crc32c_checksums=False)
    backend.put_object(f"/{s3_bucket}/k", memoryview(b"abc"))
    backend.create_upload(f"/{s3_bucket}/m")
    assert "x-amz-checksum-crc32c" not in _sent(log.headers, "PutObject")
    assert "x-amz-checksum-algorithm" not in _sent(log.headers, "CreateMultipartUpload")


def test_complete_after_restart_takes_part_checksums_from_list_parts(moto_s3: MotoS3, s3_bucket: str) -> None:
    first, _, _ = moto_backend(moto_s3)
    path = f"/{s3_bucket}/resumed"
    upload_id = first.create_upload(path)
    e1 = first.upload_part(path, upload_id, 1, memoryview(os.urandom(5 * MiB)))
    second, _, log = moto_backend(moto_s3)  # a new process: nothing remembered
    e2 = second.upload_part(path, upload_id, 2, memoryview(b"tail"))
    info = second.complete_upload(path, upload_id, [(1, e1), (2, e2)])
    assert log.count("ListParts") == 1
    assert info.size == 5 * MiB + 4


def test_many_threads_read_ranges_concurrently(moto_s3: MotoS3, s3_bucket: str) -> None:
    backend, _, _ = moto_backend(moto_s3)
    data = os.urandom(4 * MiB)
    backend.put_object(f"/{s3_bucket}/par", memoryview(data))
    info = backend.head_object(f"/{s3_bucket}/par")
    chunk = 256 * 1024
    buffer = bytearray(len(data))
    view = memoryview(buffer)

    def read(offset: int) -> int:
        return backend.read_range(info, offset, view[offset:offset + chunk])

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(read, range(0, len(data), chunk))) == len(data)
    assert bytes(buffer) == data
