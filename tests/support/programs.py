"""The outside programs the tests run, and the Debian package that provides each.

``scripts/test`` installs these packages by name (``--no-install-recommends``: nothing arrives
unless it is named), and ``tests/unit/test_repository.py`` checks that every program the tests call
is listed here and that every package named here is in the script's list. ``need`` fails a test
loudly, naming the package, instead of letting it fail later for a reason that only looks like a bug.
"""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import urlsplit

import pytest

# program -> Debian package (Debian 12)
PROGRAMS: dict[str, str] = {
    "globus-url-copy": "globus-gass-copy-progs",
    "globus-gridftp-server": "globus-gridftp-server-progs",
    "grid-proxy-init": "globus-proxy-utils",
    "gfal-copy": "gfal2-util-scripts",
    "gfal-ls": "gfal2-util-scripts",
    "gfal-mkdir": "gfal2-util-scripts",
    "gfal-rename": "gfal2-util-scripts",
    "gfal-rm": "gfal2-util-scripts",
    "gfal-stat": "gfal2-util-scripts",
    "gfal-sum": "gfal2-util-scripts",
    "curl": "curl",
    "lftp": "lftp",
    "openssl": "openssl",
    "dpkg": "dpkg",
    "dpkg-deb": "dpkg",
    "dpkg-query": "dpkg",
    "sh": "dash",
    "bash": "bash",
    "fakeroot": "fakeroot",
    "systemd-analyze": "systemd",
    "setpriv": "util-linux",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    "dd": "coreutils",
    "ps": "procps",
    "ls": "coreutils",
    "useradd": "passwd",
    "userdel": "passwd",
}

# Debian's Essential packages: on every Debian system, so scripts/test need not name them.
ESSENTIAL_PACKAGES = frozenset({"bash", "dash", "dpkg", "coreutils"})

# gfal2 loads one plugin per URL scheme; gfal2-util-scripts only *recommends* them.
GFAL_PLUGINS: dict[str, str] = {
    "file": "gfal2-plugin-file",
    "ftp": "gfal2-plugin-gridftp",
    "gsiftp": "gfal2-plugin-gridftp",
}

SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


def need(program: str) -> str:
    """The program's path; fails the test (never skips it) when it is missing."""
    package = PROGRAMS.get(program)
    if package is None:
        pytest.fail(f"{program} is not in tests/support/programs.py: add it with its Debian package, "
                    "and the package to scripts/test")
    path = shutil.which(program) or shutil.which(program, path=SBIN)
    if path is None:
        pytest.fail(f"{program} is not installed: scripts/test installs the Debian package {package}")
    return path


def installed(package: str) -> bool:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True,
                          check=False, timeout=60)
    return proc.returncode == 0 and proc.stdout.endswith("ok installed")


def need_gfal_plugins(*urls: str) -> None:
    """Fail (naming the package) when gfal2 has no plugin for one of these URLs' schemes: without it
    gfal answers "Protocol not supported", which looks like a bug of the server under test."""
    for url in urls:
        scheme = urlsplit(url).scheme
        if not scheme or "://" not in url:
            continue
        package = GFAL_PLUGINS.get(scheme)
        if package is None:
            pytest.fail(f"no gfal2 plugin package is listed for {scheme}:// in tests/support/programs.py")
        if not installed(package):
            pytest.fail(f"gfal2's {scheme}:// plugin is not installed: scripts/test installs the Debian "
                        f"package {package}")
