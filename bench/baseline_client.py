"""The benchmarks' baseline: one upload or download with boto3's s3transfer, timed from inside.

    .venv/bin/python bench/baseline_client.py up|down ENDPOINT BUCKET KEY PATH

Credentials come from BENCH_ACCESS_KEY / BENCH_SECRET_KEY; prints {"wall": s, "cpu": s} as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

MiB = 1024 * 1024
BASELINE_PART = 16 * MiB
BASELINE_THREADS = 8
BASELINE_IO_CHUNK = 4 * MiB


def baseline_client(direction: str, endpoint: str, bucket: str, key: str, path: str) -> None:
    """One transfer with boto3's s3transfer, timed from inside (no interpreter start-up); prints JSON.

    s3transfer is what ``aws s3 cp`` and most Python tools use. Tuned for speed on this store: 16 MiB
    parts on 8 threads (faster here than 8 MiB), 4 MiB write chunks for downloads (its default
    256 KiB costs ~0.8 CPU s/GiB more), no SHA-256 payload signing and no checksums.
    """
    speed = Config(s3={"addressing_style": "path", "payload_signing_enabled": False},
                   request_checksum_calculation="when_required", response_checksum_validation="when_required",
                   max_pool_connections=BASELINE_THREADS * 2)
    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", config=speed,
        aws_access_key_id=os.environ["BENCH_ACCESS_KEY"],
        aws_secret_access_key=os.environ["BENCH_SECRET_KEY"], verify=os.environ.get("BENCH_CA_BUNDLE"))
    config = TransferConfig(multipart_threshold=BASELINE_PART, multipart_chunksize=BASELINE_PART,
                            max_concurrency=BASELINE_THREADS, io_chunksize=BASELINE_IO_CHUNK)
    client.head_bucket(Bucket=bucket)  # connection and credentials warm, as for a running daemon
    cpu0, t0 = os.times(), time.perf_counter()
    if direction == "up":
        client.upload_file(path, bucket, key, Config=config)
    else:
        client.download_file(bucket, key, path, Config=config)
    wall, cpu1 = time.perf_counter() - t0, os.times()
    print(json.dumps({"wall": wall, "cpu": cpu1.user + cpu1.system - cpu0.user - cpu0.system}))


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] not in ("up", "down"):
        raise SystemExit(__doc__)
    baseline_client(*sys.argv[1:])
