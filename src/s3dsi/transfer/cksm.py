"""CKSM: a digest of an object or a byte range.

For the whole object the answer comes, in this order, from the store's own whole-object checksum
(S3 keeps a FULL_OBJECT CRC32C of what s3dsi uploads, and the checksums other tools upload with;
HeadObject with ``ChecksumMode=ENABLED`` tells it without reading the object), from the tags s3dsi
left when it uploaded the object (when they provably describe it), and only then from reading the
object back (the result is then kept in tags for the next time).

Tags prove themselves only when the size matches and either the ``s3dsi-etag`` tag names the object's
current ETag (multipart uploads, and digests remembered after a read-back), or the store's own
full-object CRC32C, which S3 verified against the data, equals the ``s3dsi-crc32c`` tag (a single
PutObject carries its tags in the same request and has no ETag tag). A matching size alone proves
nothing: any same-sized object with copied or hand-made tags would do. A digest read back is
remembered with the ETag it was read at; when it equals its own tag, the tags of that upload are proven
by it and kept with it (a store that keeps no checksum then reads a single-PutObject object back once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from s3dsi.storage.backend import Backend, ObjectInfo
from s3dsi.transfer.buffers import BufferPool
from s3dsi.transfer.checksums import new_digest, normalize_algorithm
from s3dsi.transfer.download import DownloadEngine
from s3dsi.transfer.errors import UnknownChecksumAlgorithm
from s3dsi.transfer.tags import ETAG_TAG, SIZE_TAG, TAG_PREFIX, digest_from_tags, digest_tag, digest_tags
from s3dsi.transfer.workers import PartWorkers

__all__ = ["UnknownChecksumAlgorithm", "compute_checksum", "tags_apply"]


def tags_apply(tags: Mapping[str, str], info: ObjectInfo) -> bool:
    """Whether our tags provably describe the object ``info`` describes (see the module rules)."""
    if tags.get(SIZE_TAG) != str(info.size):
        return False
    etag = tags.get(ETAG_TAG)
    if etag is not None:
        return etag == info.etag.strip('"')
    crc = tags.get(digest_tag("CRC32C"))
    return crc is not None and info.crc32c is not None and crc.lower() == info.crc32c.lower()


async def compute_checksum(backend: Backend, path: str, alg: str, offset: int, length: int, *,
                           pool: BufferPool, workers: PartWorkers, part_size: int,
                           progress: Callable[[int], None] | None = None) -> str:
    """Lower-case hex digest of bytes ``[offset, offset+length)`` (length -1: to the end).

    An offset at or past the end gives the digest of no bytes, as GT does. ``progress`` is called
    with the bytes hashed so far (for ``113`` markers) when the object is read back.
    """
    algorithm = normalize_algorithm(alg)
    if offset < 0 or length < -1:
        raise ValueError("offset must be >= 0 and length >= -1")
    info = await workers.run(partial(backend.head_object, path, with_checksums=True))
    end = info.size if length == -1 else min(info.size, offset + length)
    if offset >= end:
        return new_digest(algorithm).hexdigest()
    whole = offset == 0 and end == info.size
    if whole and algorithm in info.checksums:
        return info.checksums[algorithm]
    if whole:
        # S3 fills info.tags from HeadObject's tag count; stores that do not send it need the ask
        tags = dict(info.tags) or await workers.run(backend.get_tags, path)
        stored = digest_from_tags(tags, algorithm, info) if tags_apply(tags, info) else None
        if stored is not None:
            return stored
    digest = new_digest(algorithm)
    hashed = 0
    async with DownloadEngine(backend, path, ranges=[(offset, end)], pool=pool, workers=workers,
                              part_size=part_size, chunk_size=part_size, prefetch_parts=2,
                              info=info) as engine:
        while (chunk := await engine.next_chunk()) is not None:
            try:
                await workers.run_cpu(digest.update, chunk.data)
            finally:
                chunk.release()
            hashed += len(chunk.data)
            if progress is not None:
                progress(hashed)
    value = digest.hexdigest()
    if offset == 0 and end == info.size:
        await workers.run(remember_digest, backend, path, info, algorithm, value)
    return value


MAX_TAGS = 10  # S3's limit per object


def remember_digest(backend: Backend, path: str, info: ObjectInfo, algorithm: str, value: str) -> bool:
    """Store a digest that had to be read back, so the next CKSM of this object is answered at once.

    The tags name the ETag the digest was computed from (every ranged GET was pinned to it), so if
    the object changed meanwhile the tags simply do not apply to the new one. Best effort.
    """
    current = backend.get_tags(path)
    # Our other digests are kept (and so vouched for by the ETag tag added now) only if they proved
    # themselves, or if the one just computed from these very bytes equals its tag: digests of one upload
    # are written together, so they then describe these bytes too. Anything else is dropped as stale.
    ours_apply = tags_apply(current, info) or (
        current.get(SIZE_TAG) == str(info.size) and current.get(digest_tag(algorithm)) == value)
    tags = {k: v for k, v in current.items() if ours_apply or not k.startswith(TAG_PREFIX)}
    tags.update(digest_tags({algorithm: value}, info.size, info.etag))
    if len(tags) > MAX_TAGS:
        return False
    return backend.set_tags(path, tags)
