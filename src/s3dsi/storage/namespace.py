"""Directories over S3 prefixes: the ``Backend`` protocol on any ``ObjectStore``, and the one place where
the directory rules and their error texts live.

The rules, for S3 and for the in-memory fake alike:

* ``/`` lists the credentials' buckets; a bucket is a directory; below it, a name is a directory when
  keys start with ``name/`` (a *prefix*), whether or not the zero-byte ``name/`` marker exists. A
  name that is both an object and a prefix stats as the object and lists as the prefix.
* MKD writes the marker and requires the parent to exist (``globus-url-copy -cd`` and ``gfal-mkdir -p``
  rely on that answer); an upload may name a prefix that does not exist yet.
* RMD removes only an empty directory (its marker alone); DELE only an object; RNFR/RNTO only objects
  (server-side copy, then delete).
* Removing the last key under an implicit directory leaves that directory, as an explicit marker.

gfal2 turns the texts of these errors into errno ("No such file" → ENOENT, "exists" → EEXIST, ...),
so they are part of the interface: ``tests/functional/storage/test_namespace_rules.py`` pins each one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NoReturn

from s3dsi.protocol.entries import Entry
from s3dsi.protocol.errors import (
    DirectoryNotEmpty,
    DsiError,
    IsADirectory,
    NotADirectory,
    NotSupported,
    ObjectChanged,
    PathExists,
    PathNotFound,
    PermissionDenied,
)
from s3dsi.storage import s3errors
from s3dsi.storage.backend import ObjectInfo, PartInfo, UploadInfo, UploadRecordSet, WriteCondition
from s3dsi.storage.dircache import DirectoryCache
from s3dsi.storage.paths import S3Path, check_bucket_name, check_key, is_reserved_key, parse_path, unique_for
from s3dsi.storage.records import UploadRecords
from s3dsi.storage.store import BucketListing, KeyPage, ListedKey, ObjectHead, ObjectStore

LISTING_PAGE = 1000  # entries per page of list_pages, at most


class Namespace:
    """The Backend protocol over ``store``; as thread-safe as the store. Its only state is what recent
    listings showed about child directories (``DirectoryCache``), which spares uploads a request."""

    def __init__(self, store: ObjectStore, directories: DirectoryCache | None = None) -> None:
        self.store = store
        self.directories = directories or DirectoryCache()

    # -- shared checks -----------------------------------------------------------------------------------
    def _keys_under(self, target: S3Path, prefix: str, operation: str, limit: int = 1) -> list[ListedKey]:
        """The first ``limit`` keys starting with ``prefix`` (a directory's marker sorts first)."""
        return self.store.list_keys(target, prefix, operation, limit=limit).keys

    def _require_parent(self, target: S3Path, operation: str) -> None:
        if target.parent_prefix and not self._keys_under(target, target.parent_prefix, operation):
            # gfal2 derives errno from this text ("No such file" -> ENOENT); mkdir -p relies on it
            raise PathNotFound(f"{target.path}: No such file or directory (parent directory does not exist)",
                               operation=operation)

    def _directory_or_missing(self, target: S3Path, operation: str) -> NoReturn:
        """For a name that is no object: IsADirectory if it is a prefix, else PathNotFound."""
        if self._keys_under(target, target.dir_prefix, operation):
            raise IsADirectory(f"{target.path}: Is a directory", operation=operation)
        raise PathNotFound(f"{target.path}: No such file or directory", operation=operation)

    def _keep_parent(self, target: S3Path, operation: str) -> None:
        """Removing the last key under an implicit directory would make the directory vanish; as on a
        file system it stays, now as an explicit (empty) directory marker."""
        if target.parent_prefix and not self._keys_under(target, target.parent_prefix, operation):
            self.store.put_marker(target, target.parent_prefix, operation)

    def _check_writable(self, target: S3Path, operation: str) -> None:
        if target.is_root or target.is_bucket:
            raise IsADirectory(f"{target.path}: Is a directory", operation=operation)
        check_key(target)
        children = self._child_directories(target, operation)
        if children is not None:
            if target.name in children:
                raise IsADirectory(f"{target.path}: Is a directory", operation=operation)
            return
        if self._keys_under(target, target.dir_prefix, operation):
            raise IsADirectory(f"{target.path}: Is a directory", operation=operation)

    def _child_directories(self, target: S3Path, operation: str) -> frozenset[str] | None:
        """The directories beside ``target`` when known (a recent listing; for the second upload into a
        directory within the cache's time, one listing of its own), else None: check by name."""
        bucket, parent = target.bucket, target.parent_prefix
        known = self.directories.children(bucket, parent)
        if known is not None or not self.directories.checked_before(bucket, parent):
            return known
        page = self.store.list_keys(target, parent, operation, delimited=True)
        if page.next_token is not None:
            return None  # too big to know in one page
        names = [common[len(parent):-1] for common in page.prefixes]
        self.directories.remember(bucket, parent, names)
        return frozenset(names)

    @staticmethod
    def _no_directory(target: S3Path, operation: str) -> None:
        if target.is_root or target.is_bucket:
            raise IsADirectory(f"{target.path}: Is a directory", operation=operation)

    # -- namespace -----------------------------------------------------------------------------------------
    def stat(self, path: str) -> Entry:
        target = parse_path(path)
        if target.is_root:
            return Entry("/", True, 0, None, unique_for("/"))
        if target.is_bucket:
            self.store.check_bucket(target, "stat")
            return Entry(target.name, True, 0, None, unique_for(target.path))
        head = self.store.head(target, "stat")
        if head is not None:
            return Entry(target.name, False, head.size, head.modified, unique_for(target.path), head.etag,
                         head.storage_class)
        under = self._keys_under(target, target.dir_prefix, "stat")
        if not under:
            raise PathNotFound(f"{path}: No such file or directory", operation="stat")
        marker = under[0] if under[0].key == target.marker_key else None
        return Entry(target.name, True, 0, marker.modified if marker else None, unique_for(target.path))

    def list_pages(self, path: str) -> Iterator[list[Entry]]:
        """The first page is fetched before returning, so a missing path fails here, not mid-iteration."""
        target = parse_path(path)
        if target.is_root:
            return self._bucket_pages(self.store.list_buckets(None))
        page = self.store.list_keys(target, target.dir_prefix, "list", delimited=True)
        if page.empty and not target.is_bucket:
            if self.store.head(target, "list") is not None:
                raise NotADirectory(f"{path}: Not a directory", operation="list")
            raise PathNotFound(f"{path}: No such file or directory", operation="list")
        return self._pages(target, page)

    def _pages(self, target: S3Path, page: KeyPage) -> Iterator[list[Entry]]:
        directories: list[str] = []
        while True:
            entries = self._entries(target, page)
            directories += (entry.name for entry in entries if entry.is_dir)
            if entries:
                yield entries
            if page.next_token is None:
                self.directories.remember(target.bucket, target.dir_prefix, directories)
                return
            page = self.store.list_keys(target, target.dir_prefix, "list", delimited=True,
                                        token=page.next_token)

    @staticmethod
    def _entries(target: S3Path, page: KeyPage) -> list[Entry]:
        prefix = target.dir_prefix
        entries: list[Entry] = []
        for common in page.prefixes:
            name = common[len(prefix):-1]
            if name and not is_reserved_key(common[:-1]):  # "dir//x": an empty segment no path can name
                entries.append(Entry(name, True, 0, None, unique_for(target.child(name))))
        for key in page.keys:
            name = key.key[len(prefix):]
            if name and not is_reserved_key(key.key):  # the directory's own marker; the daemon's records
                entries.append(Entry(name, False, key.size, key.modified, unique_for(target.child(name)),
                                     key.etag, key.storage_class))
        entries.sort(key=lambda e: f"{e.name}/" if e.is_dir else e.name)  # S3's key order, as one list
        return entries

    def _bucket_pages(self, listing: BucketListing) -> Iterator[list[Entry]]:
        while True:
            buckets = [Entry(name, True, 0, created, unique_for(f"/{name}"))
                       for name, created in listing.names]
            for start in range(0, len(buckets), LISTING_PAGE):
                yield buckets[start:start + LISTING_PAGE]
            if not listing.next_token:
                return
            listing = self.store.list_buckets(listing.next_token)

    def mkdir(self, path: str, *, parent_known: bool = False) -> None:
        """``parent_known``: the parent exists by definition (a virtual root, see storage/policy.py)."""
        target = parse_path(path)
        if target.is_root:
            raise PathExists("/: File exists", operation="mkdir")
        if target.is_bucket:
            check_bucket_name(target.bucket)
            self.store.create_bucket(target)
            return
        check_key(target)
        if self.store.head(target, "mkdir") is not None:
            raise PathExists(f"{path}: a file of that name exists", operation="mkdir")
        if self._keys_under(target, target.marker_key, "mkdir"):
            raise PathExists(f"{path}: File exists", operation="mkdir")
        if not parent_known:
            self._require_parent(target, "mkdir")
        self.store.put_marker(target, target.marker_key, "mkdir")
        self.directories.note_key(target.bucket, target.marker_key)
        self.directories.remember(target.bucket, target.marker_key, ())  # new: nothing inside

    def rmdir(self, path: str) -> None:
        target = parse_path(path)
        if target.is_root:
            raise PermissionDenied("/: the bucket list cannot be removed", operation="rmdir")
        if target.is_bucket:
            self.store.delete_bucket(target)
            return
        under = self._keys_under(target, target.marker_key, "rmdir", limit=2)
        if not under:
            if self.store.head(target, "rmdir") is not None:
                raise NotADirectory(f"{path}: Not a directory", operation="rmdir")
            raise PathNotFound(f"{path}: No such file or directory", operation="rmdir")
        if len(under) > 1 or under[0].key != target.marker_key:
            raise DirectoryNotEmpty(f"{path}: Directory not empty", operation="rmdir")
        self.store.delete(target, target.marker_key, "rmdir")
        self.directories.discard(target.bucket, target.parent_prefix, target.name)
        self._keep_parent(target, "rmdir")

    def delete(self, path: str) -> None:
        target = parse_path(path)
        self._no_directory(target, "unlink")
        if self.store.head(target, "unlink") is None:
            self._directory_or_missing(target, "unlink")
        self.store.delete(target, target.key, "unlink")
        self._keep_parent(target, "unlink")

    def rename(self, src: str, dst: str) -> None:
        source, dest = parse_path(src), parse_path(dst)
        if source.is_root or source.is_bucket:
            raise NotSupported("directory rename is not supported on S3", operation="rename")
        head = self.store.head(source, "rename")
        if head is None:
            if self._keys_under(source, source.dir_prefix, "rename"):
                raise NotSupported("directory rename is not supported on S3", operation="rename")
            raise PathNotFound(f"{src}: No such file or directory", operation="rename")
        if source.path == dest.path:
            return
        self._check_writable(dest, "rename")
        self.store.copy(source, head, dest)
        self.directories.note_key(dest.bucket, dest.key)
        self.store.delete(source, source.key, "rename")
        self._keep_parent(source, "rename")

    # -- reading ---------------------------------------------------------------------------------------------
    def head_object(self, path: str, *, with_tags: bool = False, with_checksums: bool = False) -> ObjectInfo:
        target = parse_path(path)
        self._no_directory(target, "open")
        head = self.store.head(target, "open", with_checksums=with_checksums)
        if head is None:
            self._directory_or_missing(target, "open")
        archived = s3errors.archived(path, head.storage_class, head.restore, head.archive_status)
        if archived is not None:
            raise archived
        # a caller asking for the store's own checksums (CKSM) reads tags only if those do not answer
        wanted = with_tags or (head.tag_count > 0 and not with_checksums)
        tags = self.store.get_tags(target, "open") if wanted else {}
        return object_info(path, head, tags)

    def open_read(self, path: str, start: int, into: memoryview) -> tuple[ObjectInfo, int]:
        target = parse_path(path)
        self._no_directory(target, "open")
        got = self.store.read_first(target, start, into)
        if got is None:
            self._directory_or_missing(target, "open")
        head, count = got
        return object_info(path, head, {}), count

    def read_range(self, info: ObjectInfo, start: int, into: memoryview) -> int:
        count = min(len(into), info.size - start)
        if count <= 0:
            return 0
        view = into.cast("B")[:count] if into.format != "B" else into[:count]
        try:
            return self.store.read_into(parse_path(info.path), info.etag, start, view)
        except PathNotFound as exc:
            raise ObjectChanged(f"{info.path}: object was deleted during the transfer",
                                operation="read") from exc

    def get_tags(self, path: str) -> dict[str, str]:
        target = parse_path(path)
        self._no_directory(target, "tags")
        return self.store.get_tags(target, "tags")

    def set_tags(self, path: str, tags: Mapping[str, str]) -> bool:
        target = parse_path(path)
        self._no_directory(target, "tags")
        return self.store.put_tags(target, tags)

    # -- writing ---------------------------------------------------------------------------------------------
    def check_writable(self, path: str) -> WriteCondition | None:
        self._check_writable(parse_path(path), "open")
        return None

    def check_renamable(self, path: str) -> None:
        return None  # the source's kind is checked by RNTO's rename

    def writable_known(self, path: str) -> bool:
        """True when ``check_writable`` would pass without a request (the directory cache knows the
        name is no directory); False: ask ``check_writable``. Never blocks."""
        try:
            target = parse_path(path)
            if target.is_root or target.is_bucket:
                return False
            check_key(target)
        except DsiError:
            return False
        children = self.directories.children(target.bucket, target.parent_prefix)
        return children is not None and target.name not in children

    def put_object(self, path: str, data: memoryview, *, crc32c: int | None = None,
                   tags: Mapping[str, str] | None = None,
                   condition: WriteCondition | None = None) -> ObjectInfo:
        target = parse_path(path)
        check_key(target)
        info = self.store.put(target, data, crc32c=crc32c, tags=tags, condition=condition)
        self.directories.note_key(target.bucket, target.key)
        return info

    def create_upload(self, path: str) -> str:
        target = parse_path(path)
        check_key(target)
        return self.store.create_upload(target)

    def upload_part(self, path: str, upload_id: str, number: int, data: memoryview, *,
                    crc32c: int | None = None) -> str:
        return self.store.upload_part(parse_path(path), upload_id, number, data, crc32c=crc32c)

    def complete_upload(self, path: str, upload_id: str, parts: list[tuple[int, str]], *,
                        crc32c: int | None = None, condition: WriteCondition | None = None) -> ObjectInfo:
        target = parse_path(path)
        info = self.store.complete_upload(target, upload_id, parts, crc32c=crc32c, condition=condition)
        self.directories.note_key(target.bucket, target.key)
        return info

    def abort_upload(self, path: str, upload_id: str) -> None:
        self.store.abort_upload(parse_path(path), upload_id)

    def list_uploads(self, path: str) -> list[UploadInfo]:
        return self.store.list_uploads(parse_path(path))

    def list_parts(self, path: str, upload_id: str) -> list[PartInfo]:
        return self.store.list_parts(parse_path(path), upload_id)

    def upload_records(self, path: str) -> UploadRecordSet:
        target = parse_path(path)
        self._no_directory(target, "write")
        check_key(target)
        return UploadRecords(self.store, target)


def directory_error(path: str, operation: str) -> IsADirectory:
    """The error for an object operation on a directory (a policy layer's virtual root, too)."""
    return IsADirectory(f"{path}: Is a directory", operation=operation)


def object_info(path: str, head: ObjectHead, tags: Mapping[str, str]) -> ObjectInfo:
    return ObjectInfo(path=path, size=head.size, etag=head.etag, modified=head.modified,
                      storage_class=head.storage_class, tags=dict(tags), crc32c=head.crc32c,
                      checksums=dict(head.checksums))
