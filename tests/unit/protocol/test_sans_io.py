from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("asyncio", "socket", "selectors", "ssl", "boto3", "botocore", "threading")


def test_protocol_package_imports_no_io() -> None:
    code = (
        "import sys, json\n"
        "import s3dsi.protocol.session, s3dsi.protocol.modee\n"
        "import s3dsi.protocol.markers, s3dsi.protocol.listing\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []
