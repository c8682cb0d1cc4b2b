"""``Entry``: one name in a directory listing, or the result of a stat. Storage produces entries, the
listing formats (``protocol.listing``) and the namespace commands read them; a leaf module, so that
neither side has to import the other for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Entry:
    """One name in a directory listing, or the result of a stat.

    ``unique`` is stable for the same path and distinct between paths (GridFTP clients skip a
    directory whose Unique they have already seen). ``modified`` is UTC; None for prefixes that have
    no marker object (listings then show a fixed time). ETags are the bare value without HTTP quotes
    (``"d41d8cd9..."`` → ``d41d8cd9...``).
    """

    name: str
    is_dir: bool
    size: int
    modified: datetime | None
    unique: str
    etag: str | None = None
    storage_class: str | None = None
