"""`s3dsi janitor` run by root in the service-user model sweeps with process_user's identity and map: the
restart records in S3 (tests/interop/test_scaleout.py) and the local cache the daemon writes (its own
default state directory, or state_dir/uploads), whose entries from before records lived in S3 it aborts
as it always did."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from s3dsi.transfer.journal import JournalEntry, UploadJournal
from tests.functional.daemon.conftest import LocalUser, LocalUsers, SiteConfig, needs_root, world_tempdir
from tests.functional.daemon.ftp import run
from tests.support.moto_server import MotoS3

pytestmark = needs_root


def journal_as(user: LocalUser, state_dir: Path, entry: JournalEntry) -> Path:
    """``entry`` in ``state_dir``'s journal, everything owned by ``user`` (as its daemon writes it)."""
    UploadJournal(str(state_dir)).record(entry)
    for directory, _, files in os.walk(state_dir):
        os.chown(directory, user.uid, user.gid)
        for name in files:
            os.chown(os.path.join(directory, name), user.uid, user.gid)
    return state_dir / "uploads" / f"{entry.key}.json"


@pytest.mark.parametrize("with_state_dir", [False, True])
def test_root_sweeps_the_journal_of_process_user(local_users: LocalUsers, moto_s3: MotoS3,
                                                 s3dsi_for_any_user: list[str], with_state_dir: bool) -> None:
    service = local_users.create()
    service.write_map({"alice": (moto_s3.access_key, moto_s3.secret_key)})
    bucket = moto_s3.create_bucket()
    upload_id = moto_s3.client().create_multipart_upload(Bucket=bucket, Key="left.bin")["UploadId"]
    base = world_tempdir("s3dsi-janitor-")
    try:
        s3 = {}
        state_dir = service.home / ".local" / "state" / "s3dsi"  # the account's own default
        if with_state_dir:
            state_dir = base / "state"
            state_dir.mkdir(mode=0o755)
            s3["state_dir"] = str(state_dir)
        config = SiteConfig(base, moto_s3, gridftp={"process_user": service.name}, s3=s3).write()
        left = JournalEntry("alice", f"/{bucket}/left.bin", upload_id, plan={}, created=0, updated=0)
        entry = journal_as(service, state_dir, left)
        if with_state_dir:
            os.chown(state_dir, 0, 0)  # systemd's StateDirectory: root's, the journal the account's

        proc = run([*s3dsi_for_any_user, "janitor", *config.args()[:-2]])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"aborted: /{bucket}/left.bin (upload {upload_id}, user alice)" in proc.stdout
        summary = proc.stdout.strip().splitlines()[-1]
        assert summary.startswith("1 aborted, ") and ", 0 failed, " in summary, summary
        assert moto_s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        assert not entry.exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)
