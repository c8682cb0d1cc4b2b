"""A complete s3dsi configuration in a temp dir (gridftp.d file, S3 conf, password file, credential
map) pointing at a moto S3 server, and the daemon started from it as a real subprocess."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from s3dsi.identity.passwords import hash_password
from tests.support.daemon import ProcessDaemon, start_process_daemon

USER = "alice"
PASSWORD = "s3dsi test password"
MiB = 1024 * 1024


@dataclass
class S3dsiConfig:
    root: Path
    endpoint: str
    access_key: str
    secret_key: str
    gridftp_options: dict[str, str] = field(default_factory=dict)
    s3_options: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=lambda: {USER: PASSWORD})
    # a user's map line after the name ("KEY;SECRET;role_arn=...", ";;source=default"); default: the keys
    map_lines: dict[str, str] = field(default_factory=dict)

    @property
    def conf_dir(self) -> Path:
        return self.root / "gridftp.d"

    @property
    def s3_conf(self) -> Path:
        return self.root / "s3.conf"

    @property
    def map_file(self) -> Path:
        return self.root / "home" / ".globus" / "s3"

    def write(self) -> S3dsiConfig:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        pw = self.root / "passwd"
        pw.write_text("".join(f"{u}:{hash_password(p, time_cost=1, memory_cost=8192)}\n"
                              for u, p in self.users.items()))
        pw.chmod(0o600)
        options = {"load_dsi_module": "s3", "threads": "4", "control_interface": "127.0.0.1",
                   "data_interface": "127.0.0.1", "pw_file": str(pw), "log_level": "ALL"}
        if os.geteuid() == 0:  # CI runs as root; the test user has no local account to switch to
            options["allow_root"] = "1"
        options.update(self.gridftp_options)
        (self.conf_dir / "gridftp-s3").write_text(
            "".join(f'{k} "{v}"\n' for k, v in options.items()))
        self.write_map()
        s3 = {"host_name": self.endpoint, "s3_map_filename": str(self.map_file), "region": "us-east-1",
              "addressing_style": "path", "part_size_min": "5M", "memory_budget": "64M",
              "state_dir": str(self.root / "state")}
        s3.update(self.s3_options)
        self.s3_conf.write_text("".join(f"{k} = {v}\n" for k, v in s3.items()))
        return self

    def write_map(self, lines: dict[str, str] | None = None) -> None:
        """(Re)write the credential map (the daemon reads it at every login)."""
        if lines is not None:
            self.map_lines = dict(lines)
        self.map_file.parent.mkdir(parents=True, exist_ok=True)
        self.map_file.parent.chmod(0o700)
        text = "".join(f"{u};{self.map_lines.get(u, f'{self.access_key};{self.secret_key}')}\n"
                       for u in self.users)
        tmp = self.map_file.with_suffix(".new")
        tmp.write_text(text)
        tmp.chmod(0o600)
        tmp.rename(self.map_file)

    def serve_args(self) -> list[str]:
        return ["-c", "/dev/null", "-C", str(self.conf_dir), "--s3-conf", str(self.s3_conf), "-p", "0"]

    def start(self, env: Mapping[str, str] | None = None, prefix: Sequence[str] = (),
              drop_env: Sequence[str] = ()) -> ProcessDaemon:
        return start_process_daemon(self.serve_args(), log_path=self.root / "daemon.log", env=env,
                                    prefix=prefix, drop_env=drop_env)


def ftp_url(daemon: ProcessDaemon, path: str, user: str = USER, password: str = PASSWORD) -> str:
    return f"ftp://{quote(user)}:{quote(password, safe='')}@{daemon.host}:{daemon.port}{path}"


def client_env() -> dict[str, str]:
    """Environment for the Globus clients: loopback data ports, no stray proxies."""
    env = dict(os.environ)
    for var in ("http_proxy", "https_proxy", "ftp_proxy", "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY"):
        env.pop(var, None)
    return env
