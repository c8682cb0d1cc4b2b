"""The Debian package: metadata, conffiles, maintainer scripts, layout; unpacked into a throwaway root
(dpkg -x), its s3dsi runs with the system Python and answers 220. And the systemd unit verifies."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.functional.daemon.conftest import REPO, SiteConfig, serve, world_tempdir
from tests.functional.daemon.ftp import connect, run
from tests.support.moto_server import MotoS3
from tests.support.programs import need

CONFFILES = ["/etc/gridftp.d/gridftp-s3", "/etc/globus/globus-gridftp-server-s3.conf",
             "/etc/logrotate.d/s3dsi"]


def test_the_package_metadata_conffiles_and_scripts(deb_package: Path, tmp_path: Path) -> None:
    fields = run(["dpkg-deb", "--field", str(deb_package), "Package", "Version", "Architecture", "Depends"])
    assert fields.returncode == 0, fields.stderr
    assert "Package: s3dsi" in fields.stdout and "Version: 0.1.0-1" in fields.stdout
    assert "python3 (>= 3.11)" in fields.stdout and "adduser" in fields.stdout
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "--control", str(deb_package), str(control)], check=True, timeout=60)
    assert (control / "conffiles").read_text().split() == CONFFILES
    postinst = (control / "postinst").read_text()
    assert "adduser --system --group" in postinst and "globus-s3" in postinst
    for script in ("postinst", "prerm", "postrm"):
        assert (control / script).stat().st_mode & 0o111
        assert subprocess.run(["sh", "-n", str(control / script)], check=False).returncode == 0
    listing = run(["dpkg-deb", "--contents", str(deb_package)]).stdout
    for path in ("./opt/s3dsi/bin/s3dsi", "./opt/s3dsi/lib/s3dsi/daemon/startup.py",
                 "./opt/s3dsi/lib/botocore/", "./lib/systemd/system/s3dsi.service",
                 "./usr/share/doc/s3dsi/admin.md", *(f".{p}" for p in CONFFILES)):
        assert f" {path}" in listing, path
    assert "./usr/bin/s3dsi -> /opt/s3dsi/bin/s3dsi" in listing
    assert " root/root " in listing and ".egg-info" not in listing


def test_the_unpacked_package_runs_and_answers(installed_tree: Path, moto_s3: MotoS3) -> None:
    binary = installed_tree / "opt" / "s3dsi" / "bin" / "s3dsi"
    assert binary.read_text().startswith("#!/usr/bin/python3 -I\n")
    version = run([str(binary), "--version"])
    assert version.returncode == 0 and version.stdout.strip() == "s3dsi 0.1.0", version.stderr
    unit = (installed_tree / "lib" / "systemd" / "system" / "s3dsi.service").read_text()
    assert "ExecStart=/opt/s3dsi/bin/s3dsi serve\n" in unit
    etc = installed_tree / "etc"
    check = run([str(binary), "check-config", "-c", "/dev/null", "-C", str(etc / "gridftp.d"),
                 "--s3-conf", str(etc / "globus" / "globus-gridftp-server-s3.conf")])
    assert check.returncode == 0, check.stdout + check.stderr  # the shipped examples are valid
    base = world_tempdir("s3dsi-deb-run-")
    try:
        config = SiteConfig(base, moto_s3, passwords={"alice": "pw"}).write()
        served = serve([str(binary)], config.args(), base / "daemon.log")
        try:
            client = connect(served)
            assert client.greeting.code == 220
            client.close()
        finally:
            assert served.stop() == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    tool = need("systemd-analyze")
    proc = subprocess.run([tool, "verify", str(REPO / "systemd" / "s3dsi.service")], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "s3dsi.service" not in proc.stderr  # no warning about our unit either
    text = (REPO / "systemd" / "s3dsi.service").read_text()
    for directive in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                      "NoNewPrivileges=yes", "ProtectSystem=", "ProtectHome=read-only", "PrivateTmp=yes",
                      "CapabilityBoundingSet=CAP_SETUID CAP_SETGID"):
        assert directive in text, directive


def unit_directive(name: str) -> str:
    text = (REPO / "systemd" / "s3dsi.service").read_text()
    return next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{name}="))


def test_postinst_creates_the_directories_of_the_unit(deb_package: Path, tmp_path: Path) -> None:
    """/var/log/gridftp and /var/lib/s3dsi exist before the first start (check-config passes with the
    example log_single, log_transfer and state_dir), as the unit would create them."""
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "--control", str(deb_package), str(control)], check=True, timeout=60)
    stubs, calls = tmp_path / "bin", tmp_path / "calls"
    stubs.mkdir()
    for command in ("adduser", "install", "systemctl"):
        (stubs / command).write_text(f'#!/bin/sh\necho "{command} $*" >> {calls}\n')
    entry = "globus-s3:x:999:999::/var/lib/globus-s3:/usr/sbin/nologin"
    (stubs / "getent").write_text(f"#!/bin/sh\necho '{entry}'\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    proc = subprocess.run(["sh", str(control / "postinst"), "configure", ""], capture_output=True, text=True,
                          timeout=60, env={"PATH": f"{stubs}:/usr/bin:/bin"}, check=False)
    assert proc.returncode == 0, proc.stderr
    made = calls.read_text().splitlines()
    for kind, base in (("Logs", "/var/log/"), ("State", "/var/lib/")):
        directory, mode = base + unit_directive(f"{kind}Directory"), unit_directive(f"{kind}DirectoryMode")
        assert f"install -d -m {mode} -o root -g root {directory}" in made, made
    assert unit_directive("StateDirectoryMode") == unit_directive("RuntimeDirectoryMode") == "0755"
