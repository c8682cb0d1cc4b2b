"""Text from clients made safe to print: control characters shown as ``\\xNN`` escapes.

File names, user names and commands come from the network. Printed raw, a carriage return lets a name
overwrite what a log line or a terminal showed before it, and ESC (or the one-byte CSI, U+009B) starts
a terminal control sequence. Log lines and ``s3dsi status`` pass such text through ``printable``.
"""

from __future__ import annotations

import re

# C0 controls but TAB, DEL, and the C1 controls (U+0080-U+009F)
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character but TAB replaced by a visible ``\\xNN`` escape."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
