"""S3 wire details: part-sized buffers through botocore without extra copies (measured with
bench/storage_botocore_costs.py), the CRC32C header form, and S3's timestamps.

Uploads: botocore turns a ``bytes`` body into a BytesIO that urllib3 then sends 16 KiB at a time,
one new bytes object per block; a file-like view over the caller's buffer that hands out large
memoryview slices goes straight to ``socket.sendall``. Downloads: urllib3's ``readinto`` reads into a
temporary bytes object and copies it; reading from the underlying ``http.client`` response fills the
caller's buffer straight from the socket.
"""

from __future__ import annotations

import base64
import http.client
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import botocore.utils
import crc32c as _crc32c

_SEND_CHUNK = 1024 * 1024


def crc32c_base64(value: int) -> str:
    """The ``x-amz-checksum-crc32c`` form: base64 of the big-endian 4 bytes."""
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


# HeadObject's checksum fields, by the CKSM algorithm name they answer
_STORED_CHECKSUMS = {"CRC32C": "ChecksumCRC32C", "SHA1": "ChecksumSHA1", "SHA256": "ChecksumSHA256",
                     "SHA512": "ChecksumSHA512", "MD5": "ChecksumMD5"}


def stored_checksums(head: Mapping[str, Any]) -> dict[str, str]:
    """The whole-object checksums of a HeadObject answer (``ChecksumMode=ENABLED``), as lower-case hex.

    A COMPOSITE checksum (multipart ``value-N``) is a checksum of the parts' checksums, not of the
    object, so it is left out; a single PutObject's checksum is a full-object one even when the store
    does not say ``ChecksumType``.
    """
    kind = head.get("ChecksumType")
    found: dict[str, str] = {}
    for algorithm, name in _STORED_CHECKSUMS.items():
        value = head.get(name)
        if not isinstance(value, str) or not value:
            continue
        if kind == "COMPOSITE" or (kind is None and "-" in value):
            continue
        try:
            found[algorithm] = base64.b64decode(value, validate=True).hex()
        except ValueError:
            continue
    return found


def crc32c_of(data: memoryview) -> int:
    return int(_crc32c.crc32c(data))


def fast_timestamp(value: Any) -> Any:
    """botocore's timestamp parser, fast for what S3 sends (ISO 8601 in XML, RFC 1123 in headers).

    botocore hands every timestamp to dateutil's general parser: about a tenth of the daemon's CPU per
    small file went there. Anything else still goes to botocore's own parser.
    """
    if isinstance(value, str):
        try:
            if value.endswith("Z") and "T" in value:
                return datetime.fromisoformat(value[:-1] + "+00:00")
            if value.endswith("GMT"):
                return parsedate_to_datetime(value)
        except (ValueError, TypeError, IndexError):
            pass
    return botocore.utils.parse_timestamp(value)


def use_fast_timestamps(session: Any) -> None:
    """Make every client of this botocore session parse timestamps with ``fast_timestamp``."""
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=fast_timestamp)


CONTINUE_ABOVE = 1024 * 1024  # bodies up to this size are sent without "Expect: 100-continue"


def _no_continue_for_small_bodies(params: dict[str, Any], **_kwargs: Any) -> None:
    headers = params.get("headers")
    if not headers:
        return
    if headers.get("Expect") != "100-continue":
        return
    length = botocore.utils.determine_content_length(params.get("body"))
    if length is not None and length <= CONTINUE_ABOVE:
        del headers["Expect"]


def send_small_bodies_at_once(session: Any) -> None:
    """botocore asks S3 for ``100 Continue`` before every PutObject and UploadPart body, which costs a
    round trip and a wait per request. It saves sending a large body that S3 would refuse anyway; for a
    small one (a small file's PutObject) it is only the round trip, so those go out with their headers."""
    # botocore adds the header in a handler of every S3 call ("before-call.s3"); a handler of one
    # operation would run before it, so this one is the last of all S3 calls'.
    session.get_component("event_emitter").register_last(
        "before-call.s3", _no_continue_for_small_bodies, unique_id="s3dsi-no-continue")


def utc_seconds(value: datetime) -> datetime:
    """UTC, whole seconds: HeadObject has second resolution and listings milliseconds, and both must agree."""
    return value.astimezone(UTC).replace(microsecond=0)


def reply_date(response: Mapping[str, Any]) -> datetime:
    """The server's Date header (close to the new object's LastModified), else our clock."""
    header = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return utc_seconds(parsedate_to_datetime(header)) if header else utc_seconds(datetime.now(UTC))
    except (TypeError, ValueError):
        return utc_seconds(datetime.now(UTC))


class MemoryviewBody(io.RawIOBase):
    """A seekable, read-only file over a memoryview; ``read`` returns memoryview slices, not copies.

    ``read(n)`` returns at least ``n`` and up to 1 MiB (urllib3 asks for 16 KiB blocks; larger slices
    mean fewer ``sendall`` calls, and every caller in botocore/urllib3 only iterates until empty).
    """

    def __init__(self, data: memoryview) -> None:
        super().__init__()
        self._data = data.cast("B") if data.format != "B" or data.ndim != 1 else data
        self._pos = 0

    def __len__(self) -> int:
        return len(self._data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._data)}[whence]
        self._pos = min(max(base + offset, 0), len(self._data))
        return self._pos

    def read(self, size: int | None = -1) -> Any:  # memoryview: a bytes-like the callers accept
        remaining = len(self._data) - self._pos
        count = remaining if size is None or size < 0 else min(remaining, max(size, _SEND_CHUNK))
        chunk = self._data[self._pos:self._pos + count]
        self._pos += count
        return chunk

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        count = min(len(target), len(self._data) - self._pos)
        target[:count] = self._data[self._pos:self._pos + count]
        self._pos += count
        return count


def read_body_into(body: Any, into: memoryview) -> int:
    """Fill ``into`` from a botocore StreamingBody; returns bytes read (short only at end of body).

    Uses the ``http.client`` response under urllib3 when the body is a plain length-delimited
    stream that nothing has read yet, and gives the connection back to the pool once the response is
    consumed; otherwise falls back to the public ``StreamingBody.readinto``.
    """
    raw: Any = getattr(body, "_raw_stream", None)
    fp: Any = getattr(raw, "_fp", None)
    direct = (
        isinstance(fp, http.client.HTTPResponse)
        and not getattr(raw, "chunked", True)
        and getattr(raw, "_fp_bytes_read", 1) == 0
        and not raw.headers.get("content-encoding")
    )
    total = 0
    while total < len(into):
        got = fp.readinto(into[total:]) if direct else body.readinto(into[total:])
        if not got:
            break
        total += got
    if direct and fp.isclosed() and fp.length == 0:  # read to the end: the connection can be reused
        raw.release_conn()
    return total
