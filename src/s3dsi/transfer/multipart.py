"""The life cycle of one upload's S3 object, as a small state machine:

    PENDING ──▶ SINGLE (one PutObject) ──▶ COMPLETED
       │
       └──▶ OPEN (CreateMultipartUpload) ──▶ COMPLETED | ABORTED | KEPT (for a REST restart)

A file that fits in part 1 must become one PutObject, so the multipart upload is created only once the
file is known to be larger than part 1 (``want_multipart``), lazily, by the first part that is ready
to upload; part 1 itself waits for that decision (``first_part_goes_multipart``) until a byte beyond
it arrives or ``finish`` chooses the single PutObject. The abort is registered with the transfer's
coordinator in the very thread that created the upload, before anything else can run, so no failure
path can leave it behind; a kept upload is not aborted (the janitor removes it if nobody resumes).
An ``UploadRecorder`` (the restart records) hears of every multipart upload just before it is created,
the moment it exists, in the thread that created it, and again once it is completed or aborted: an
upload S3 refused to abort, or one whose daemon was killed, stays recorded for the janitor.

The commit (PutObject or CompleteMultipartUpload) carries the ``WriteCondition`` the back end gave when
the upload was opened (append-only: no object of that name may exist; overwrite=if-unchanged: the
object is still the one seen then), so the check and the write cannot be raced apart, and the whole
object's CRC32C, which S3 verifies against a full-object checksum.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import partial
from typing import Protocol

from s3dsi.protocol.errors import TransferAborted
from s3dsi.storage.backend import Backend, ObjectInfo, WriteCondition
from s3dsi.transfer.coordinator import TransferCoordinator

PENDING, SINGLE, OPEN, COMPLETED, ABORTED, KEPT = "pending", "single", "open", "completed", "aborted", "kept"


class UploadRecorder(Protocol):
    """Where multipart uploads are recorded for restarts and the janitor; called in worker threads."""

    def creating(self) -> None:
        """CreateMultipartUpload is about to be sent: record the intent, so that a daemon killed before
        it learns the upload id still leaves a trace (raising fails the transfer; nothing exists yet)."""

    def created(self, upload_id: str) -> None:
        """The upload exists; raising makes it aborted at once (an unrecorded upload is never kept)."""

    def finished(self, upload_id: str) -> None:
        """The upload was completed or aborted: nothing is left to clean up."""


class MultipartUpload:
    def __init__(self, backend: Backend, path: str, coordinator: TransferCoordinator, *,
                 upload_id: str | None = None, recorder: UploadRecorder | None = None) -> None:
        self._backend = backend
        self.condition: WriteCondition | None = None  # set by the engine from check_writable
        self._recorder = recorder
        self._path = path
        self._coordinator = coordinator
        self.upload_id = upload_id
        self.state = OPEN if upload_id is not None else PENDING
        self._multipart_wanted = upload_id is not None
        self._decision: asyncio.Future[bool] | None = None
        self._create: asyncio.Future[str] | None = None
        self.first_part_parked = False  # part 1 waits for the single-or-multipart decision
        if upload_id is not None:
            coordinator.add_failure_cleanup(self._abort)

    # -- the decision ------------------------------------------------------------------------------
    @property
    def multipart_wanted(self) -> bool:
        return self._multipart_wanted

    def want_multipart(self) -> None:
        """The file is larger than part 1 (or finish says so): parts go to a multipart upload."""
        self._multipart_wanted = True
        self._decide(True)

    def choose_single(self) -> None:
        """``finish``: the whole file is part 1: one PutObject, no multipart upload."""
        self._decide(False)

    def _decide(self, multipart: bool) -> None:
        if self._decision is None:
            self._decision = self._coordinator.loop.create_future()
        if not self._decision.done():
            self._decision.set_result(multipart)

    async def first_part_goes_multipart(self) -> bool:
        """For part 1: wait until the decision is made; False means finish stores it with PutObject."""
        if self._multipart_wanted:
            return True
        if self._decision is None:
            self._decision = self._coordinator.loop.create_future()
        self.first_part_parked = True
        self._coordinator.notify()  # parked: the engine may now have nothing in motion
        try:
            return await self._decision
        finally:
            self.first_part_parked = False

    # -- multipart ---------------------------------------------------------------------------------
    async def ensure_open(self) -> str:
        if self.upload_id is not None:
            return self.upload_id
        if self._create is None:
            self._create = self._coordinator.spawn(self._coordinator.io(self._create_upload))
        return await asyncio.shield(self._create)

    @property
    def creating(self) -> bool:
        return self._create is not None and not self._create.done()

    def _create_upload(self) -> str:
        """Worker thread: create the upload and register its abort before anything else runs."""
        if self._recorder is not None:
            self._recorder.creating()
        upload_id = self._backend.create_upload(self._path)
        try:
            if self._recorder is not None:
                self._recorder.created(upload_id)
        except BaseException:
            self._backend.abort_upload(self._path, upload_id)
            raise
        if not self._coordinator.register_from_thread(self._abort):
            self._backend.abort_upload(self._path, upload_id)
            self._finished(upload_id)
            raise TransferAborted()
        self.upload_id = upload_id
        self.state = OPEN
        return upload_id

    async def upload_part(self, number: int, data: memoryview, crc32c: int) -> str:
        upload_id = await self.ensure_open()
        return await self._coordinator.io(partial(self._backend.upload_part, self._path, upload_id, number,
                                                  data, crc32c=crc32c))

    async def complete(self, parts: list[tuple[int, str]], crc32c: int | None = None) -> ObjectInfo:
        upload_id = await self.ensure_open()
        info = await self._coordinator.io(partial(self._backend.complete_upload, self._path, upload_id, parts,
                                                  crc32c=crc32c, condition=self.condition))
        self.state = COMPLETED  # the upload id is spent: nothing to abort any more
        await self._coordinator.io(self._finished, upload_id)
        return info

    async def put_single(self, data: memoryview, crc32c: int,
                         tags: Mapping[str, str] | None) -> ObjectInfo:
        self.state = SINGLE
        info = await self._coordinator.io(partial(self._backend.put_object, self._path, data, crc32c=crc32c,
                                                  tags=tags, condition=self.condition))
        self.state = COMPLETED
        return info

    def keep(self) -> None:
        """Leave an open upload in S3 when the transfer fails (a REST restart may resume it)."""
        if self.state == OPEN:
            self.state = KEPT

    async def _abort(self) -> None:
        if self.state != OPEN or self.upload_id is None:
            return
        self.state = ABORTED
        await self._coordinator.io(self._backend.abort_upload, self._path, self.upload_id)
        await self._coordinator.io(self._finished, self.upload_id)  # not reached if S3 refused

    def _finished(self, upload_id: str) -> None:
        if self._recorder is not None:
            self._recorder.finished(upload_id)
