"""load_settings: every source, its precedence, the recorded origins, and the errors."""

from __future__ import annotations

import argparse
import os
import pwd
import time
from pathlib import Path

import pytest

from s3dsi.config import loader
from s3dsi.config.arguments import add_config_arguments, settings_from_args
from s3dsi.config.errors import ConfigError
from s3dsi.config.loader import SETTING_FIELDS, expand_user_path, load_settings
from s3dsi.config.settings import MiB, Settings, namespace_threads
from s3dsi.observability.logging import redact_text

REPO = Path(__file__).resolve().parents[3]


class Layout:
    """A scratch /etc: a gridftp.d directory, a main file and an S3 conf, all empty at first."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "gridftp.d"
        self.dir.mkdir()
        self.main = root / "gridftp.conf"
        self.main.write_text("")
        self.s3 = root / "s3.conf"
        self.s3.write_text("")

    def load(self, environ: dict[str, str] | None = None, **kwargs: object) -> Settings:
        env = {"HOME": "/home/tester"} if environ is None else environ
        return load_settings(config_file=str(self.main), config_dir=str(self.dir), s3_conf=str(self.s3),
                             environ=env, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def etc(tmp_path: Path) -> Layout:
    return Layout(tmp_path)


def test_defaults_when_everything_is_empty(etc: Layout) -> None:
    settings = etc.load()
    assert settings.port == 2811
    assert settings.load_dsi_module == "s3"
    assert settings.host_name == "https://s3.amazonaws.com"
    assert set(settings.sources) == set(SETTING_FIELDS)
    assert settings.sources["port"] == "default"
    assert settings.warnings == ()
    assert settings.config_files == (str(etc.main), str(etc.s3))


def test_example_files_of_the_repository_load() -> None:
    settings = load_settings(config_file="/dev/null", config_dir=str(REPO / "etc/gridftp.d"),
                             s3_conf=str(REPO / "etc/globus-gridftp-server-s3.conf"), environ={"HOME": "/x"})
    example = str(REPO / "etc/gridftp.d/gridftp-s3")
    assert settings.threads == 2
    assert settings.process_user == "globus-s3"
    assert settings.sources["threads"].startswith(example + ":")
    assert settings.sources["load_dsi_module"].startswith(example + ":")
    assert settings.host_name == "https://s3.us-east-1.amazonaws.com"
    assert settings.region == "us-east-1"
    assert "(from host_name)" in settings.sources["region"]


def test_sources_name_file_and_line(etc: Layout) -> None:
    (etc.dir / "gridftp-s3").write_text("# comment\n\nthreads 3\n")
    etc.s3.write_text("\npart_workers = 5\n")
    settings = etc.load(overrides={"port": 2900})
    assert settings.sources["threads"] == f"{etc.dir / 'gridftp-s3'}:3"
    assert settings.sources["part_workers"] == f"{etc.s3}:2"
    assert settings.sources["port"] == "flag"
    assert settings.port == 2900


def test_directory_files_in_order_then_main_file_last(etc: Layout) -> None:
    (etc.dir / "b").write_text("port 2002\nthreads 7\n")
    (etc.dir / "a").write_text("port 2001\nbanner first\n")
    (etc.dir / "c.rpmsave").write_text("port 9999\n")
    (etc.dir / "d.conf").write_text("banner fourth\n")
    etc.main.write_text("port 2003\n")
    settings = etc.load()
    # globus-gridftp-server reads the main file after the directory, so it wins
    assert settings.port == 2003
    assert settings.sources["port"] == f"{etc.main}:1"
    assert settings.threads == 7
    assert settings.banner == "fourth"
    assert settings.config_files == (str(etc.dir / "a"), str(etc.dir / "b"), str(etc.dir / "d.conf"),
                                     str(etc.main), str(etc.s3))


def test_flags_override_files(etc: Layout) -> None:
    etc.main.write_text("port 2003\nlog_level ERROR\n")
    etc.s3.write_text("part_workers = 4\n")
    settings = etc.load(overrides={"port": "2004", "part_workers": 2, "log_level": "all"})
    assert (settings.port, settings.part_workers, settings.log_level) == (2004, 2, "ALL")
    assert {settings.sources[n] for n in ("port", "part_workers", "log_level")} == {"flag"}


def test_bad_overrides(etc: Layout) -> None:
    with pytest.raises(ConfigError, match="unknown setting 'nope'"):
        etc.load(overrides={"nope": 1})
    with pytest.raises(ConfigError, match="flag: port: expected"):
        etc.load(overrides={"port": "http"})
    with pytest.raises(ConfigError, match="wrong type"):
        etc.load(overrides={"port": True})
    with pytest.raises(ConfigError, match="wrong type"):
        etc.load(overrides={"port_range": (1, 2, 3)})
    with pytest.raises(ConfigError, match="flag: port_range"):
        etc.load(overrides={"port_range": (9, 1)})
    assert etc.load(overrides={"upload_checksums": ["MD5"]}).upload_checksums == ("MD5",)


def test_env_lines_are_recorded_without_touching_the_process_when_environ_is_given(etc: Layout) -> None:
    etc.main.write_text('$S3DSI_TEST_VAR "hello world"\n')
    settings = etc.load()
    assert settings.environment == {"S3DSI_TEST_VAR": "hello world"}
    assert "S3DSI_TEST_VAR" not in os.environ


def test_env_lines_set_os_environ_when_reading_the_process_environment(
        etc: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S3DSI_TEST_VAR", raising=False)
    monkeypatch.delenv("GLOBUS_S3_DEBUG", raising=False)
    monkeypatch.delenv("GLOBUS_TCP_PORT_RANGE", raising=False)
    etc.main.write_text('$S3DSI_TEST_VAR "1023,/tmp/s3.log"\n')
    try:
        load_settings(config_file=str(etc.main), config_dir=str(etc.dir), s3_conf=str(etc.s3))
        assert os.environ["S3DSI_TEST_VAR"] == "1023,/tmp/s3.log"
    finally:
        os.environ.pop("S3DSI_TEST_VAR", None)


def test_s3_debug_from_environment_and_from_a_dollar_line(etc: Layout) -> None:
    assert etc.load({"GLOBUS_S3_DEBUG": "1023"}).sources["s3_debug"] == "env GLOBUS_S3_DEBUG"
    (etc.dir / "gridftp-s3").write_text('$GLOBUS_S3_DEBUG "1023,/var/log/s3.log"\n')
    settings = etc.load({"GLOBUS_S3_DEBUG": "1"})
    assert settings.s3_debug == "1023,/var/log/s3.log"
    assert settings.sources["s3_debug"] == f"{etc.dir / 'gridftp-s3'}:1"
    (etc.dir / "gridftp-s3").write_text('$GLOBUS_S3_DEBUG "loud"\n')
    with pytest.raises(ConfigError, match=r"gridftp-s3:1: GLOBUS_S3_DEBUG"):
        etc.load()


def test_port_range_precedence(etc: Layout) -> None:
    env = {"GLOBUS_TCP_PORT_RANGE": "40000 40100"}
    settings = etc.load(env)
    assert settings.port_range == (40000, 40100)
    assert settings.sources["port_range"] == "env GLOBUS_TCP_PORT_RANGE"
    etc.main.write_text("port_range 50000,50100\n")
    assert etc.load(env).port_range == (50000, 50100)
    etc.main.write_text("port_range 50000,50100\n$GLOBUS_TCP_PORT_RANGE 60000,60100\n")
    settings = etc.load(env)
    assert settings.port_range == (60000, 60100)
    assert settings.sources["port_range"] == f"{etc.main}:2"
    assert etc.load(env, overrides={"port_range": "1000,2000"}).port_range == (1000, 2000)
    with pytest.raises(ConfigError, match="env GLOBUS_TCP_PORT_RANGE"):
        etc.load({"GLOBUS_TCP_PORT_RANGE": "junk"})


def test_unknown_and_unsupported_options_are_warnings_naming_file_and_line(etc: Layout) -> None:
    etc.main.write_text("threads 2\nfrobnicate 1\ninetd 1\nhöst 1\n" + "z" * 500 + " 1\n")
    etc.s3.write_text("colour = blue\n")
    warnings = etc.load().warnings
    assert f"{etc.main}:2: unknown option 'frobnicate' (ignored)" in warnings
    assert any(w.startswith(f"{etc.main}:3: option 'inetd'") and "not supported" in w for w in warnings)
    assert any(w.startswith(f"{etc.main}:4: unknown option 'höst'") for w in warnings)
    assert all(len(w) < 300 for w in warnings)
    assert f"{etc.s3}:1: unknown setting 'colour' (ignored)" in warnings


@pytest.mark.parametrize(("text", "message"), [
    ("port 99999\n", r":2: port: expected a port number"),
    ("threads two\n", r":2: threads: expected an integer"),
    ("allow_anonymous yes\n", r":2: allow_anonymous: expected 0 or 1, got 'yes'"),
    ("log_level LOUD\n", r":2: log_level: expected a comma list"),
    ("port_range 9,1\n", r":2: port_range: expected a port range"),
    ("load_dsi_module file\n", r":2: load_dsi_module: expected 's3'"),
    ("banner two words\n", r":2: unexpected text after the value"),
    ("control_idle_timeout -5\n", r":2: control_idle_timeout: expected a non-negative integer"),
])
def test_bad_values_name_file_line_and_expectation(etc: Layout, text: str, message: str) -> None:
    etc.main.write_text("# first line\n" + text)
    with pytest.raises(ConfigError, match=str(etc.main) + message):
        etc.load()


def test_dsi_options_are_ignored_with_a_warning(etc: Layout) -> None:
    etc.main.write_text("load_dsi_module s3:some=thing\n")
    settings = etc.load()
    assert settings.load_dsi_module == "s3"
    assert any("DSI options" in w for w in settings.warnings)


def test_reference_and_short_option_names(etc: Layout) -> None:
    etc.main.write_text("pw_file /etc/s3dsi/passwd\ncontrol_idle_timeout 900\ncontrol_preauth_timeout 30\n"
                        "connections_max -1\nanonymous_names_allowed anon,guest\nthreads 0\n")
    settings = etc.load()
    assert settings.password_file == "/etc/s3dsi/passwd"
    assert (settings.idle_timeout, settings.preauth_timeout) == (900, 30)
    assert settings.connections_max is None
    assert settings.anonymous_names_allowed == ("anon", "guest")
    assert settings.threads == 2
    assert any("threads 0" in w and "taken as 2" in w for w in settings.warnings)
    etc.main.write_text("password_file relative/passwd\nidle_timeout 5\n")
    settings = etc.load()
    assert settings.password_file == os.path.abspath("relative/passwd")
    assert settings.idle_timeout == 5


def test_hostname_sets_both_interfaces_unless_given(etc: Layout) -> None:
    etc.main.write_text("hostname 127.0.0.1\ndata_interface 127.0.0.2\n")
    settings = etc.load()
    assert (settings.control_interface, settings.data_interface) == ("127.0.0.1", "127.0.0.2")
    assert settings.sources["control_interface"] == f"{etc.main}:1 (hostname)"


def test_s3_conf_values(etc: Layout) -> None:
    etc.s3.write_text("host_name = minio.example.org:9000\nregion = eu-central-1\naddressing_style = path\n"
                      "part_size_min = 16MiB\npart_size_max = 1G\nmemory_budget = 2G\nverify_tls = no\n"
                      "upload_checksums = md5\norphan_upload_age = 2d\nshutdown_grace = 1m\n"
                      "storage_class = intelligent_tiering\nmetrics_listen = 127.0.0.1:9102\n"
                      "log_format = json\nmax_attempts = 3\n")
    s = etc.load()
    assert s.host_name == "https://minio.example.org:9000"
    assert (s.region, s.addressing_style) == ("eu-central-1", "path")
    assert (s.part_size_min, s.part_size_max, s.memory_budget) == (16 * MiB, 1024 * MiB, 2048 * MiB)
    assert (s.verify_tls, s.upload_checksums, s.orphan_upload_age, s.shutdown_grace) == (False, ("MD5",),
                                                                                         172800, 60)
    assert (s.storage_class, s.metrics_listen, s.log_format) == ("INTELLIGENT_TIERING", "127.0.0.1:9102",
                                                                 "json")
    assert s.max_attempts == 3


def test_region_is_derived_from_an_aws_host_name(etc: Layout) -> None:
    etc.s3.write_text("host_name = s3-eu-west-3.amazonaws.com\n")
    settings = etc.load()
    assert settings.region == "eu-west-3"
    assert settings.sources["region"] == f"{etc.s3}:1 (from host_name)"
    etc.s3.write_text("host_name = s3.eu-west-3.amazonaws.com\nregion = us-west-1\n")
    settings = etc.load()
    assert settings.region == "us-west-1"
    assert any("differs from the region of host_name" in w for w in settings.warnings)
    etc.s3.write_text("host_name = http://127.0.0.1:9000\n")
    assert etc.load().sources["region"] == "default"


@pytest.mark.parametrize(("text", "message"), [
    ("part_size_min = 4M\n", r"s3.conf:1: part_size_min: must be at least 5M"),
    ("part_size_max = 6G\n", r"s3.conf:1: part_size_max: must be at most 5G"),
    ("part_size_min = 64M\npart_size_max = 32M\nmemory_budget = 1G\n",
     r"s3.conf:1: part_size_min: 64M is larger"),
    ("memory_budget = 12M\n", r"s3.conf:1: memory_budget: 12M must be at least twice part_size_min"),
    ("part_workers = 0\n", r"s3.conf:1: part_workers: expected a positive integer"),
    ("max_attempts = 0\n", r"s3.conf:1: max_attempts: expected a positive integer"),
    ("host_name = ftp://x\n", r"s3.conf:1: host_name: expected an http"),
    ("addressing_style = dns\n", r"s3.conf:1: addressing_style: expected one of auto"),
])
def test_s3_conf_validation(etc: Layout, text: str, message: str) -> None:
    etc.s3.write_text(text)
    with pytest.raises(ConfigError, match=message):
        etc.load()


def test_anonymous_needs_a_map_entry_name(etc: Layout) -> None:
    etc.main.write_text("allow_anonymous 1\n")
    with pytest.raises(ConfigError, match=r"gridftp.conf:1: allow_anonymous: anonymous_user"):
        etc.load()
    etc.main.write_text("allow_anonymous 1\nanonymous_user anon\n")
    assert etc.load().anonymous_user == "anon"


def test_map_file_default_and_expansion(etc: Layout) -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert etc.load({"HOME": "/home/tester"}).s3_map_filename == "/home/tester/.globus/s3"
    etc.s3.write_text("s3_map_filename = ~/maps/s3\n")
    assert etc.load({"HOME": "/home/t"}).s3_map_filename == "/home/t/maps/s3"
    etc.s3.write_text("s3_map_filename = /srv/$USER/s3\n")
    assert etc.load({"HOME": "/home/t"}).s3_map_filename == f"/srv/{me}/s3"
    if os.geteuid() != 0:
        return  # process_user only applies to a daemon started as root
    nobody = pwd.getpwnam("nobody")
    etc.main.write_text("process_user nobody\n")
    etc.s3.write_text("")
    assert etc.load().s3_map_filename == os.path.join(nobody.pw_dir, ".globus", "s3")


@pytest.mark.skipif(os.geteuid() != 0, reason="process_user only applies to a daemon started as root")
def test_map_file_of_a_missing_process_user(etc: Layout) -> None:
    etc.main.write_text("process_user no-such-user-s3dsi\n")
    settings = etc.load()
    assert settings.s3_map_filename is None
    assert any("no-such-user-s3dsi" in w and ":1:" in w for w in settings.warnings)
    etc.s3.write_text("s3_map_filename = $HOME/.globus/s3\n")
    with pytest.raises(ConfigError, match="s3_map_filename: cannot expand"):
        etc.load()
    etc.s3.write_text("s3_map_filename = /srv/maps/s3\n")
    assert etc.load().s3_map_filename == "/srv/maps/s3"


def test_missing_explicit_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(config_file=str(tmp_path / "nope"), config_dir=str(tmp_path), environ={})
    with pytest.raises(ConfigError, match="no such directory"):
        load_settings(config_file="/dev/null", config_dir=str(tmp_path / "nodir"), environ={})
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(config_file="/dev/null", config_dir=str(tmp_path), s3_conf=str(tmp_path / "x"),
                      environ={})


def test_missing_default_files_are_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEFAULT_CONFIG_FILE", "FALLBACK_CONFIG_FILE", "DEFAULT_CONFIG_DIR", "DEFAULT_S3_CONF"):
        monkeypatch.setattr(loader, name, str(tmp_path / name))
    settings = load_settings(environ={"HOME": "/h"})
    assert settings.config_files == ()
    assert settings.port == 2811


def test_fallback_main_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fallback = tmp_path / "grid-security-gridftp.conf"
    fallback.write_text("port 2999\n")
    monkeypatch.setattr(loader, "DEFAULT_CONFIG_FILE", str(tmp_path / "absent"))
    monkeypatch.setattr(loader, "FALLBACK_CONFIG_FILE", str(fallback))
    monkeypatch.setattr(loader, "DEFAULT_CONFIG_DIR", str(tmp_path / "absent-dir"))
    monkeypatch.setattr(loader, "DEFAULT_S3_CONF", str(tmp_path / "absent"))
    settings = load_settings(environ={"HOME": "/h"})
    assert settings.port == 2999
    assert settings.sources["port"] == f"{fallback}:1"


def test_directories_fifos_and_dangling_links_are_errors_not_hangs(etc: Layout, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_settings(config_file=str(tmp_path), config_dir=str(etc.dir), environ={})
    os.mkfifo(etc.dir / "fifo")
    with pytest.raises(ConfigError, match="not a regular file"):
        etc.load()
    os.remove(etc.dir / "fifo")
    (etc.dir / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="dangling: no such file"):
        etc.load()


def test_hostile_files(etc: Layout) -> None:
    target = etc.dir / "gridftp-s3"
    target.write_bytes(b"threads 2\nbanner " + b"A" * (10 * 1024 * 1024) + b"\n")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="larger than") as info:
        etc.load()
    assert time.monotonic() - started < 5
    assert len(str(info.value)) < 300
    target.write_bytes(b"threads 2\nbanner " + b"A" * (200 * 1024) + b"\n")
    with pytest.raises(ConfigError, match=r"gridftp-s3:2: line is longer than"):
        etc.load()
    target.write_bytes(os.urandom(4096).replace(b"\n", b"") + b"\n")
    with pytest.raises(ConfigError, match=r"gridftp-s3:1: "):
        etc.load()
    target.write_bytes(b"threads 2\r\nport 2811\x00\r\n")
    with pytest.raises(ConfigError, match=r"gridftp-s3:2: contains a NUL byte"):
        etc.load()
    target.write_bytes(b"\xef\xbb\xbfthreads 3\r\n\r\n")
    assert etc.load().threads == 3


def test_secret_looking_environment_lines_are_registered_for_redaction(etc: Layout) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzLOADER"
    etc.main.write_text(f"$AWS_SECRET_ACCESS_KEY {secret}\n")
    etc.load()
    assert secret not in redact_text(f"leak {secret}")


def test_settings_are_frozen(etc: Layout) -> None:
    settings = etc.load()
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.sources["port"] = "x"  # type: ignore[index]


def test_shared_command_line_arguments(etc: Layout) -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    etc.main.write_text("port 2555\n")
    args = parser.parse_args(["-c", str(etc.main), "-C", str(etc.dir), "--s3-conf", str(etc.s3)])
    settings = settings_from_args(args, overrides={"threads": 9}, environ={"HOME": "/h"})
    assert (settings.port, settings.threads) == (2555, 9)
    assert parser.parse_args(["--config-file", "x", "--config-dir", "y"]).config_dir == "y"


def test_symlinked_configuration_files_are_followed(etc: Layout, tmp_path: Path) -> None:
    real = tmp_path / "real-gridftp-s3"
    real.write_text("threads 6\n")
    (etc.dir / "gridftp-s3").symlink_to(real)
    settings = etc.load()
    assert settings.threads == 6
    assert settings.sources["threads"] == f"{etc.dir / 'gridftp-s3'}:1"


@pytest.mark.parametrize(("raw", "expanded"), [
    ("$HOMEDIR/s3", "$HOMEDIR/s3"), ("/srv/$USERNAME/s3", "/srv/$USERNAME/s3"),
    ("${HOME}/s3", "/home/u/s3"), ("$HOME/s3", "/home/u/s3"), ("/srv/${USER}.s3", "/srv/u.s3"),
    ("/srv/$USER-x/s3", "/srv/u-x/s3"),
])
def test_only_whole_home_and_user_variables_are_expanded(raw: str, expanded: str) -> None:
    # $HOMEDIR is not $HOME followed by "DIR" (the loader's own test for "needs a home" agrees)
    assert expand_user_path(raw, "u", "/home/u") == os.path.abspath(expanded)



@pytest.mark.parametrize(("value", "expected", "warned"), [("0", 2, True), ("1", 2, True), ("2", 2, False),
                                                            ("7", 7, False)])
def test_threads_below_two_are_taken_as_two(etc: Layout, value: str, expected: int, warned: bool) -> None:
    etc.main.write_text(f"threads {value}\n")
    settings = etc.load()
    assert settings.threads == expected == namespace_threads(int(value))  # what the daemon runs
    assert any(f"threads {value}" in w and "taken as 2" in w for w in settings.warnings) == warned


def test_security_options(etc: Layout) -> None:
    etc.main.write_text("$X509_CERT_DIR /opt/certs\ngridmap /opt/grid-mapfile\n"
                        "tls_certificate /opt/ftps.pem\n"
                        "tls_key /opt/ftps.key\nrequire_tls 1\nencrypt_data 1\ngsi_tls_max_version 1.2\n")
    settings = etc.load()
    assert (settings.gridmap, settings.tls_certificate, settings.tls_key) == (
        "/opt/grid-mapfile", "/opt/ftps.pem", "/opt/ftps.key")
    assert settings.require_tls and settings.encrypt_data
    assert settings.gsi_tls_max_version == "1.2"
    assert settings.environment["X509_CERT_DIR"] == "/opt/certs"
    assert not any("encrypt_data" in w for w in settings.warnings)  # implemented: no warning
    assert not any("not supported by s3dsi" in w for w in settings.warnings)
    etc.main.write_text("gsi_tls_max_version 1.1\n")
    with pytest.raises(ConfigError, match=r":1: gsi_tls_max_version: expected 1.2 or 1.3"):
        etc.load()
