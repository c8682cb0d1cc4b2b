"""The read-only back end of anonymous sessions: reads pass, every change is refused before data moves."""

from __future__ import annotations

import pytest

from s3dsi.protocol.errors import PermissionDenied
from s3dsi.storage.memory import MemoryBackend
from s3dsi.storage.readonly import ReadOnlyBackend


def test_reads_pass_and_changes_are_refused() -> None:
    inner = MemoryBackend()
    inner.create_bucket("b")
    inner.put_object("/b/k", memoryview(b"data"))
    ro = ReadOnlyBackend(inner)
    assert ro.stat("/b/k").size == 4
    assert [e.name for page in ro.list_pages("/b") for e in page] == ["k"]
    info = ro.head_object("/b/k")
    buf = bytearray(4)
    assert ro.read_range(info, 0, memoryview(buf)) == 4 and bytes(buf) == b"data"
    assert ro.set_tags("/b/k", {"x": "y"}) is False
    for call in (lambda: ro.check_writable("/b/new"), lambda: ro.mkdir("/b/d"), lambda: ro.rmdir("/b"),
                 lambda: ro.delete("/b/k"), lambda: ro.rename("/b/k", "/b/l"),
                 lambda: ro.put_object("/b/k", memoryview(b"x")), lambda: ro.create_upload("/b/k"),
                 lambda: ro.upload_part("/b/k", "u", 1, memoryview(b"x")),
                 lambda: ro.complete_upload("/b/k", "u", []), lambda: ro.abort_upload("/b/k", "u")):
        with pytest.raises(PermissionDenied, match="read-only"):
            call()
    assert inner.get_tags("/b/k") == {}
    assert inner.stat("/b/k").size == 4
