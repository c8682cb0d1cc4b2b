"""In-place assembly of one S3 part from data blocks arriving in any order, duplicates included.

Received bytes are kept as sorted disjoint runs (two parallel lists, bisect): blocks from a few
interleaved streams leave a handful of runs per part, so marking a block costs O(runs) and no
per-block object is kept.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from s3dsi.transfer.buffers import PartBuffer
from s3dsi.transfer.geometry import PartSpan

FILLING, SEALED, UPLOADED, DONE = range(4)  # DONE: uploaded, hashed in order, buffer returned


class PartAssembly:
    """A part buffer being filled by blocks in any order, and the part's progress afterwards."""

    __slots__ = ("adler", "buf", "crc", "end", "ends", "filled", "hashed", "length", "number", "size",
                 "start", "starts", "state", "view")

    def __init__(self, span: PartSpan, buf: PartBuffer) -> None:
        self.number = span.number
        self.start = span.start
        self.end = span.end
        self.size = span.end - span.start
        self.buf: PartBuffer | None = buf
        self.view = buf.view
        self.starts: list[int] = []  # received runs, part-relative, disjoint and non-touching
        self.ends: list[int] = []
        self.filled = 0
        self.length = self.size  # final length once sealed (short for the last part)
        self.state = FILLING
        self.hashed = False
        self.crc = 0
        self.adler: int | None = None

    def add_run(self, s: int, e: int) -> int:
        """Mark [s, e) received; returns how many of those bytes are new."""
        starts, ends = self.starts, self.ends
        if not ends or s > ends[-1]:
            starts.append(s)
            ends.append(e)
            return e - s
        if s == ends[-1]:
            ends[-1] = e
            return e - s
        i = bisect_left(ends, s)
        j = bisect_right(starts, e)
        if i >= j:
            starts.insert(i, s)
            ends.insert(i, e)
            return e - s
        old = sum(ends[k] - starts[k] for k in range(i, j))
        new_start, new_end = min(s, starts[i]), max(e, ends[j - 1])
        starts[i:j] = [new_start]
        ends[i:j] = [new_end]
        return (new_end - new_start) - old

    def first_gap(self) -> int:
        """Part-relative offset of the first byte not received."""
        return self.ends[0] if self.starts and self.starts[0] == 0 else 0
