"""`s3dsi probe` against a real (moto) S3 where everything is allowed: every check passes and every test
artifact is cleaned up; a bucket that does not exist is said to be missing."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.functional.daemon.conftest import IS_ROOT, SiteConfig, world_tempdir
from tests.functional.daemon.ftp import run
from tests.support.moto_server import MotoS3


def site_args(moto_s3: MotoS3, base: Path) -> list[str]:
    """A site in ``base`` whose map gives alice the moto credentials; its options for the commands
    (``-c``, ``-C``, ``--s3-conf``; no ``-p``, which probe and check-config do not take)."""
    map_file = base / "map"
    map_file.write_text(f"alice;{moto_s3.access_key};{moto_s3.secret_key}\n")
    map_file.chmod(0o600)
    config = SiteConfig(base, moto_s3, gridftp={"allow_root": "1"} if IS_ROOT else {},
                        s3={"s3_map_filename": str(map_file)}).write()
    return config.args()[:-2]


def test_probe_allows_everything_on_moto_and_leaves_nothing(moto_s3: MotoS3) -> None:
    bucket = moto_s3.create_bucket()
    moto_s3.client().put_object(Bucket=bucket, Key="existing.txt", Body=b"data")
    base = world_tempdir("s3dsi-probe-")
    try:
        args = site_args(moto_s3, base)
        proc = run([sys.executable, "-m", "s3dsi", "probe", "alice", "--bucket", bucket, *args])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Everything the connector needs is allowed." in proc.stdout
        for action in ("s3:ListAllMyBuckets", "s3:PutObjectTagging", "s3:AbortMultipartUpload",
                       "s3:DeleteObject"):
            assert action in proc.stdout
        assert "DENIED" not in proc.stdout and "FAILED" not in proc.stdout
        s3 = moto_s3.client()
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["existing.txt"]
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

        missing = run([sys.executable, "-m", "s3dsi", "probe", "nobody-mapped", *args])
        assert missing.returncode == 2 and "no entry for 'nobody-mapped'" in missing.stderr

        absent = run([sys.executable, "-m", "s3dsi", "probe", "alice", "--bucket", "s3dsi-no-such-bucket",
                      *args])
        assert absent.returncode == 1, absent.stdout + absent.stderr
        assert f"Bucket s3dsi-no-such-bucket does not exist at {moto_s3.endpoint}" in absent.stdout
        assert "PutObject" not in absent.stdout  # nothing else was tried
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_probe_and_check_config_report_the_lifecycle_rule(moto_s3: MotoS3) -> None:
    """The last safety net against forgotten uploads: both commands say whether the bucket has an
    AbortIncompleteMultipartUpload rule that covers every key; the probe also tries the restart records."""
    bucket = moto_s3.create_bucket()
    base = world_tempdir("s3dsi-probe-")
    try:
        args = site_args(moto_s3, base)
        probe = run([sys.executable, "-m", "s3dsi", "probe", "alice", "--bucket", bucket, *args])
        assert probe.returncode == 0, probe.stdout + probe.stderr  # a missing rule is advice, not failure
        for operation in ("PutObject .s3dsi/", "GetObject .s3dsi/", "DeleteObject .s3dsi/"):
            assert any(line.startswith(operation) and "allowed" in line for line in probe.stdout.splitlines())
        assert f"bucket {bucket}: no lifecycle rule aborts incomplete multipart uploads" in probe.stdout
        checked = run([sys.executable, "-m", "s3dsi", "check-config", *args, "--bucket", bucket])
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"warning: bucket {bucket}: no lifecycle rule aborts incomplete" in checked.stdout
        s3 = moto_s3.client()
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
            {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]})
        probe = run([sys.executable, "-m", "s3dsi", "probe", "alice", "--bucket", bucket, *args])
        assert f"bucket {bucket}: lifecycle rule aborts incomplete multipart uploads after 7 day(s)" \
            in probe.stdout, probe.stdout
        checked = run([sys.executable, "-m", "s3dsi", "check-config", *args, "--bucket", bucket])
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"bucket {bucket}: lifecycle rule aborts incomplete multipart uploads after 7" \
            in checked.stdout
        assert "warning: bucket" not in checked.stdout
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0  # no test record left behind
    finally:
        shutil.rmtree(base, ignore_errors=True)
