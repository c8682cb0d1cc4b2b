"""One upload's restart record: what makes a broken MODE E upload resumable on any host, and every
multipart upload findable by any host's janitor.

The record lives in S3 beside the upload (``storage/records.py``); a copy goes to the host's local cache
(``transfer/journal.py``) on the side, whose failures change nothing. The ``RestartKeeper`` is the
upload engine's ``UploadRecorder``:

* ``creating`` (worker thread, before CreateMultipartUpload): the intent, a record without upload id;
* ``created`` (the same thread, the moment the upload exists): the record with its upload id;
* every range marker (``ranges``, the ticker's source): the record with the parts the client is about
  to be told are stored, written *before* the marker goes out. While it cannot be written no range
  marker is sent, since a marker promises that a restart can resume;
* ``finished`` (completed or aborted): the record is removed. One S3 refused to abort stays for the
  janitor, as does the record of a daemon killed at any point.

A broken transfer whose client was told of stored ranges keeps its upload (``keep_on``); anything else
aborts it at once. A resumed upload continues under its record (same token), from any host.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from s3dsi.protocol.errors import DataChannelError, DsiError
from s3dsi.storage.backend import Backend, UploadRecordSet
from s3dsi.transfer.geometry import PartPlan
from s3dsi.transfer.journal import JournalEntry, new_token, this_host
from s3dsi.transfer.upload import UploadEngine

if TYPE_CHECKING:
    from s3dsi.server.session import Session

RECORD_FAILED = "cannot write the restart record"


class RestartKeeper:
    def __init__(self, session: Session, path: str, backend: Backend, plan: PartPlan,
                 entry: JournalEntry | None) -> None:
        self.session = session
        self.path = path
        self._backend = backend
        self._records: UploadRecordSet | None = None
        self.engine: UploadEngine | None = None
        self.plan = plan
        self.user = session.state.user or ""
        self.cache = session.ctx.journal
        self.entry = entry  # what S3 holds, with an upload id: set only once a write succeeded
        self.token = entry.token if entry is not None else new_token()
        self.promised = entry is not None  # the client was told some ranges are stored
        self.ended = False  # completed or aborted: nothing to record any more
        self._withheld: list[tuple[int, int]] = []

    @property
    def records(self) -> UploadRecordSet:
        """The records of this upload's object; asked for once the upload has been checked writable."""
        if self._records is None:
            self._records = self._backend.upload_records(self.path)
        return self._records

    def _base(self, upload_id: str) -> JournalEntry:
        return JournalEntry(user=self.user, path=self.path, upload_id=upload_id, plan=self.plan.to_dict(),
                            token=self.token, host=this_host(), bucket=self.records.bucket)

    def _write(self, entry: JournalEntry) -> bool:
        """Blocking: the record in S3 (False, logged, when S3 refused it), then the local cache."""
        try:
            self.records.put(self.token, entry.to_dict())
        except DsiError as err:
            self.session.log.warning(RECORD_FAILED, path=self.path, error=err.text)
            return False
        try:
            self.cache.record(entry)
        except OSError as err:
            self.session.log.info("local restart cache not written", error=str(err))
        return True

    # -- UploadRecorder (worker threads) ---------------------------------------------------------
    def creating(self) -> None:
        self._write(self._base(""))  # without it the upload still goes on; created() tries again

    def created(self, upload_id: str) -> None:
        entry = self._base(upload_id)
        if self._write(entry):
            self.entry = entry
        # else the upload goes on (every failure path still aborts it); it is never kept for a restart,
        # and only the intent, if that was written, tells a janitor of it should this daemon be killed

    def finished(self, upload_id: str) -> None:
        self.ended = True
        try:
            self.records.delete(self.token)
        except DsiError as err:
            self.session.log.warning("cannot remove the restart record; the janitor will", path=self.path,
                                     error=err.text)
        self.cache.remove(self.entry or self._base(upload_id))

    async def resumed(self) -> None:
        """A restart takes over the upload: its record is refreshed at once, so that no janitor takes it
        for abandoned while the missing ranges arrive (a failure here only means an older record)."""
        if self.entry is not None:
            entry = replace(self.entry, updated=time.time(), host=this_host())
            if await self.session.ctx.call(self._write, entry):
                self.entry = entry

    # -- range markers and the end -----------------------------------------------------------------
    async def ranges(self) -> list[tuple[int, int]]:
        """The ticker's range source: new durable ranges, recorded before the client hears of them."""
        assert self.engine is not None
        new = self._withheld + self.engine.pop_committed_ranges()
        self._withheld = []
        if self.ended:
            return new  # the final marker after completion: the ranges are in the object now
        if new and self.engine.upload_id is not None and not await self._record():
            self._withheld = new
            return []
        self.promised = self.promised or bool(new)
        return new

    async def _record(self) -> bool:
        assert self.engine is not None
        upload_id = self.engine.upload_id
        assert upload_id is not None
        base = self.entry or self._base(upload_id)
        entry = replace(base, parts=tuple(self.engine.committed_parts()), updated=time.time(),
                        host=this_host())
        if not await self.session.ctx.call(self._write, entry):  # S3 requests: off the event loop
            return False
        self.entry = entry
        return True

    async def keep_on(self, failure: BaseException) -> bool:
        """A broken connection after range markers were sent keeps the upload for a REST restart."""
        if not self.promised or self.entry is None or self.engine is None or self.engine.upload_id is None:
            return False
        transfer = self.session.transfer
        if transfer is not None and transfer.aborted_by_client:
            return False
        broken = isinstance(failure, DataChannelError) or (
            isinstance(failure, asyncio.CancelledError) and self.session.control_closed)
        # kept only if the record (where a restart or the janitor finds it) says so
        return broken and await asyncio.shield(self._record())
