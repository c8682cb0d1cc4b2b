"""A user's S3 policy on the namespace: the virtual root, the bucket allow-list, append-only and
overwrite-if-unchanged, as a ``Backend`` wrapped around the namespace layer.

Why a layer of its own, above ``Namespace`` rather than inside it: the rules of directories over
prefixes are the same for every user and every store, while these rules differ per user and are about
*which* names exist and *which* writes are allowed; keeping them apart leaves the namespace layer's
contract (and its contract tests) untouched, and keeps every confinement rule in one short module a
reviewer can read whole. The only thing the namespace layer learns is that a virtual root's prefix
exists by definition (``mkdir(..., parent_known=True)``), because S3 prefixes are implicit.

**Confinement.** Paths reaching a back end are absolute and normalised by the protocol layer (``..``
never climbs above ``/``; ``parse_path`` refuses ``.``, ``..`` and empty segments), so the real path
of a virtual one is simply the root's path in front of it: no path, relative or absolute, through
CWD, RNFR/RNTO, STOR/RETR, listings or CKSM, names anything outside the root. The virtual root itself
always exists (an empty prefix lists as an empty directory) and can be neither removed nor renamed.
With a bucket allow-list, ``/`` lists exactly the allowed buckets (also those of other accounts,
which ListBuckets would not show) and a path in any other bucket is refused before S3 is asked. Error
texts name virtual paths only: the real layout above the root is not shown.

**Append-only.** Objects may be added, never replaced or removed: STOR/ESTO onto an existing key,
DELE, RMD and RNFR are refused with a reply that says so; the check at the start of an upload is
repeated by the store at commit (``If-None-Match: *``), so a writer that raced past it fails instead of
replacing. **overwrite=if-unchanged**: an upload replaces only the object seen when it began
(``If-Match`` with that ETag, or ``If-None-Match: *`` when there was none).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import NoReturn

from s3dsi.config.s3policy import S3Policy
from s3dsi.protocol.entries import Entry
from s3dsi.protocol.errors import (
    DsiError,
    ObjectChanged,
    PathExists,
    PathNotFound,
    PermissionDenied,
)
from s3dsi.storage.backend import ObjectInfo, PartInfo, UploadInfo, UploadRecordSet, WriteCondition
from s3dsi.storage.namespace import LISTING_PAGE, Namespace, directory_error
from s3dsi.storage.paths import parse_path, unique_for

APPEND_ONLY = "append_only"
IF_UNCHANGED = "overwrite=if-unchanged"


def _parent(path: str) -> str:
    return path.rpartition("/")[0] or "/"


class PolicyBackend:
    """The Backend protocol for one user: ``inner`` (that user's namespace) seen through ``policy``.

    It has no ``writable_known`` (the namespace's shortcut that lets an upload skip ``check_writable``):
    under a policy every upload must be checked, and its commit carry the resulting condition.
    """

    def __init__(self, inner: Namespace, policy: S3Policy) -> None:
        self.inner = inner
        self.policy = policy
        self.store = inner.store
        self._root = policy.root.path if policy.root is not None else None

    def __repr__(self) -> str:
        return f"PolicyBackend({self.inner!r}, {', '.join(self.policy.describe())})"

    # -- paths ---------------------------------------------------------------------------------------
    def _real(self, path: str, operation: str) -> str:
        if self._root is not None:
            return self._root if path == "/" else f"{self._root}{path}"
        if path != "/" and self.policy.buckets is not None:
            bucket = path[1:].split("/", 1)[0]
            if bucket not in self.policy.buckets:
                raise PermissionDenied(f"/{bucket}: not one of the buckets this account may use "
                                       f"({', '.join(self.policy.buckets)})", operation=operation)
        return path

    def _hide(self, err: DsiError) -> DsiError:
        """The error with every real path in its text written as the user sees it."""
        if self._root is not None:
            text = err.text.replace(f"{self._root}/", "/")
            err.text = re.sub(re.escape(self._root) + r"(?![\w.\-/])", "/", text)
            err.args = (err.text,)
        return err

    def _refuse(self, what: str, path: str, operation: str) -> NoReturn:
        raise PermissionDenied(f"{path}: {what} is refused: this account is append-only (objects can be "
                               "added, never removed, replaced or renamed)", operation=operation)

    # -- namespace ------------------------------------------------------------------------------------
    def stat(self, path: str) -> Entry:
        if path == "/" and self._root is not None:
            return Entry("/", True, 0, None, unique_for("/"))
        try:
            return self.inner.stat(self._real(path, "stat"))
        except DsiError as err:
            raise self._hide(err) from None

    def list_pages(self, path: str) -> Iterator[list[Entry]]:
        if path == "/" and self._root is None and self.policy.buckets is not None:
            buckets = [Entry(name, True, 0, None, unique_for(f"/{name}"))
                       for name in sorted(self.policy.buckets)]
            return iter([buckets[i:i + LISTING_PAGE] for i in range(0, len(buckets), LISTING_PAGE)])
        try:
            pages = self.inner.list_pages(self._real(path, "list"))
        except PathNotFound as err:
            if path == "/" and self._root is not None and self.policy.root and self.policy.root.prefix:
                return iter([])  # the root's prefix holds nothing yet: an empty directory
            raise self._hide(err) from None
        except DsiError as err:
            raise self._hide(err) from None
        return self._hidden(pages)

    def _hidden(self, pages: Iterator[list[Entry]]) -> Iterator[list[Entry]]:
        try:
            yield from pages
        except DsiError as err:
            raise self._hide(err) from None

    def mkdir(self, path: str) -> None:
        if path == "/":
            self.inner.mkdir("/")  # the namespace's own answer for "/" (exists), without a request
        try:
            self.inner.mkdir(self._real(path, "mkdir"),
                             parent_known=self._root is not None and _parent(path) == "/")
        except DsiError as err:
            raise self._hide(err) from None

    def rmdir(self, path: str) -> None:
        if self.policy.append_only:
            self._refuse("RMD", path, "rmdir")
        if path == "/" and self._root is not None:
            raise PermissionDenied("/: the root directory cannot be removed", operation="rmdir")
        try:
            self.inner.rmdir(self._real(path, "rmdir"))
        except DsiError as err:
            raise self._hide(err) from None

    def delete(self, path: str) -> None:
        if self.policy.append_only:
            self._refuse("DELE", path, "unlink")
        try:
            self.inner.delete(self._real(path, "unlink"))
        except DsiError as err:
            raise self._hide(err) from None

    def check_renamable(self, path: str) -> None:
        if self.policy.append_only:
            self._refuse("RNFR (rename)", path, "rename")
        if path == "/" and self._root is not None:
            raise PermissionDenied("/: the root directory cannot be renamed", operation="rename")
        self._real(path, "rename")

    def rename(self, src: str, dst: str) -> None:
        self.check_renamable(src)
        try:
            self.inner.rename(self._real(src, "rename"), self._real(dst, "rename"))
        except DsiError as err:
            raise self._hide(err) from None

    # -- reading --------------------------------------------------------------------------------------
    def head_object(self, path: str, *, with_tags: bool = False, with_checksums: bool = False) -> ObjectInfo:
        if path == "/" and self._root is not None:
            raise directory_error("/", "open")
        try:
            info = self.inner.head_object(self._real(path, "open"), with_tags=with_tags,
                                          with_checksums=with_checksums)
        except DsiError as err:
            raise self._hide(err) from None
        return replace(info, path=path)

    def open_read(self, path: str, start: int, into: memoryview) -> tuple[ObjectInfo, int]:
        if path == "/" and self._root is not None:
            raise directory_error("/", "open")
        try:
            info, count = self.inner.open_read(self._real(path, "open"), start, into)
        except DsiError as err:
            raise self._hide(err) from None
        return replace(info, path=path), count

    def read_range(self, info: ObjectInfo, start: int, into: memoryview) -> int:
        try:
            return self.inner.read_range(replace(info, path=self._real(info.path, "read")), start, into)
        except DsiError as err:
            raise self._hide(err) from None

    def get_tags(self, path: str) -> dict[str, str]:
        try:
            return self.inner.get_tags(self._real(path, "tags"))
        except DsiError as err:
            raise self._hide(err) from None

    def set_tags(self, path: str, tags: Mapping[str, str]) -> bool:
        try:
            return self.inner.set_tags(self._real(path, "tags"), tags)
        except DsiError as err:
            raise self._hide(err) from None

    # -- writing --------------------------------------------------------------------------------------
    def check_writable(self, path: str) -> WriteCondition | None:
        if path == "/" and self._root is not None:
            raise directory_error("/", "open")
        real = self._real(path, "open")
        try:
            self.inner.check_writable(real)
            if not (self.policy.append_only or self.policy.overwrite == "if-unchanged"):
                return None
            head = self.inner.store.head(parse_path(real), "open")
        except DsiError as err:
            raise self._hide(err) from None
        if self.policy.append_only:
            if head is not None:
                raise PathExists(f"{path}: exists, and this account is append-only: objects can be added, "
                                 "never replaced", operation="open")
            return WriteCondition(must_not_exist=True, reason=APPEND_ONLY)
        if head is None:
            return WriteCondition(must_not_exist=True, reason=IF_UNCHANGED)
        return WriteCondition(etag=head.etag, reason=IF_UNCHANGED)

    def _condition(self, given: WriteCondition | None) -> WriteCondition | None:
        if given is None and self.policy.append_only:
            return WriteCondition(must_not_exist=True, reason=APPEND_ONLY)  # whoever calls, never replace
        return given

    def _commit_failed(self, err: DsiError, path: str, condition: WriteCondition | None) -> DsiError:
        """A commit refused because its condition no longer held, said in the policy's words."""
        if condition is None or not isinstance(err, ObjectChanged | PathNotFound):
            return self._hide(err)
        if condition.reason == APPEND_ONLY:
            return PathExists(f"{path}: another upload created this object meanwhile; this account is "
                              "append-only, so it was not replaced (nothing was stored)", operation="close")
        if condition.must_not_exist:
            return ObjectChanged(f"{path}: another upload created this object meanwhile; it was not replaced "
                                 "(overwrite=if-unchanged; nothing was stored)", operation="close")
        return ObjectChanged(f"{path}: the object changed since this upload began; it was not replaced "
                             "(overwrite=if-unchanged; nothing was stored)", operation="close")

    def put_object(self, path: str, data: memoryview, *, crc32c: int | None = None,
                   tags: Mapping[str, str] | None = None,
                   condition: WriteCondition | None = None) -> ObjectInfo:
        condition = self._condition(condition)
        try:
            info = self.inner.put_object(self._real(path, "write"), data, crc32c=crc32c, tags=tags,
                                         condition=condition)
        except DsiError as err:
            raise self._commit_failed(err, path, condition) from None
        return replace(info, path=path)

    def create_upload(self, path: str) -> str:
        try:
            return self.inner.create_upload(self._real(path, "write"))
        except DsiError as err:
            raise self._hide(err) from None

    def upload_part(self, path: str, upload_id: str, number: int, data: memoryview, *,
                    crc32c: int | None = None) -> str:
        try:
            return self.inner.upload_part(self._real(path, "write"), upload_id, number, data, crc32c=crc32c)
        except DsiError as err:
            raise self._hide(err) from None

    def complete_upload(self, path: str, upload_id: str, parts: list[tuple[int, str]], *,
                        crc32c: int | None = None, condition: WriteCondition | None = None) -> ObjectInfo:
        condition = self._condition(condition)
        try:
            info = self.inner.complete_upload(self._real(path, "close"), upload_id, parts, crc32c=crc32c,
                                              condition=condition)
        except DsiError as err:
            raise self._commit_failed(err, path, condition) from None
        return replace(info, path=path)

    def abort_upload(self, path: str, upload_id: str) -> None:
        try:
            self.inner.abort_upload(self._real(path, "abort"), upload_id)
        except DsiError as err:
            raise self._hide(err) from None

    def list_uploads(self, path: str) -> list[UploadInfo]:
        try:
            found = self.inner.list_uploads(self._real(path, "list"))
        except DsiError as err:
            raise self._hide(err) from None
        return [replace(upload, path=path) for upload in found]

    def list_parts(self, path: str, upload_id: str) -> list[PartInfo]:
        try:
            return self.inner.list_parts(self._real(path, "list"), upload_id)
        except DsiError as err:
            raise self._hide(err) from None

    def upload_records(self, path: str) -> UploadRecordSet:
        """The restart records of the real object: they live at the top of its bucket (``.s3dsi``),
        outside any virtual root, where the user never sees them."""
        try:
            return self.inner.upload_records(self._real(path, "write"))
        except DsiError as err:
            raise self._hide(err) from None
