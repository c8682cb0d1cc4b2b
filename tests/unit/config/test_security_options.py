"""Options that restrict access: implemented ones load and are checked, the others stop the daemon with
the file and line, never silently ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3dsi.config.errors import ConfigError
from s3dsi.config.loader import load_settings
from s3dsi.config.settings import Settings
from s3dsi.protocol.disabled import list_warnings


def load(tmp_path: Path, text: str) -> Settings:
    conf = tmp_path / "gridftp.d"
    conf.mkdir(exist_ok=True)
    (conf / "site").write_text(text)
    s3 = tmp_path / "s3.conf"
    s3.write_text("")
    return load_settings(config_file="/dev/null", config_dir=str(conf), s3_conf=str(s3),
                         environ={"HOME": "/x"})


def where(tmp_path: Path, line: int) -> str:
    return f"{tmp_path / 'gridftp.d' / 'site'}:{line}"


def test_access_lists_and_limits(tmp_path: Path) -> None:
    settings = load(tmp_path, 'allow_from "192.168.1.,10.0.0.0/8, [2001:db8:"\ndeny_from 192.168.1.13/32\n'
                              "connections_max 20\nconnections_max_per_address 4\nlogin_attempts_max 2\n"
                              'connections_disabled 1\noffline_msg "back at noon"\nanonymous_read_only 0\n'
                              'disable_command_list "DELE, SITE CHMOD,opts retr"\nbanner_terse 1\n')
    assert settings.allow_from == ("192.168.1.", "10.0.0.0/8", "[2001:db8:")
    assert settings.deny_from == ("192.168.1.13/32",)
    assert (settings.connections_max, settings.connections_max_per_address) == (20, 4)
    assert settings.login_attempts_max == 2
    assert settings.connections_disabled and settings.offline_msg == "back at noon"
    assert not settings.anonymous_read_only
    assert settings.disable_command_list == ("DELE", "SITE CHMOD", "opts retr")
    assert settings.banner_terse
    assert settings.sources["allow_from"] == where(tmp_path, 1)
    assert settings.warnings == ()
    unlimited = load(tmp_path, "connections_max -1\nconnections_max_per_address -1\n")
    assert (unlimited.connections_max, unlimited.connections_max_per_address) == (None, None)
    nobody = load(tmp_path, "connections_max_per_address 0\n")
    assert nobody.warnings == (f"{where(tmp_path, 1)}: connections_max_per_address 0 refuses every client "
                               "(-1 lifts the limit)",)


def test_defaults() -> None:
    settings = Settings()
    assert settings.allow_from is None and settings.deny_from == ()
    assert settings.anonymous_read_only
    assert settings.login_attempts_max == 3


@pytest.mark.parametrize("value", ["gw.example.org", "192.168.1.0/33", "10.0.0.1-10.0.0.9", "*"])
def test_host_names_and_garbage_in_address_lists_stop_the_daemon(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"threads 2\nallow_from {value}\n")
    assert str(caught.value).startswith(f"{where(tmp_path, 2)}: allow_from: expected IP networks")


def test_a_whole_ipv4_address_in_allow_from_draws_a_warning(tmp_path: Path) -> None:
    settings = load(tmp_path, "allow_from 10.0.0.1,10.0.1.,10.0.2.3/32\n")
    assert len(settings.warnings) == 1
    assert settings.warnings[0].startswith(f"{where(tmp_path, 1)}: allow_from '10.0.0.1' is a prefix")
    assert "10.0.0.1/32" in settings.warnings[0]


@pytest.mark.parametrize("line", ['restrict_paths "R/data,W~"', "chroot_path /srv/chroot", "acl mymodule",
                                  "auth_level 16", "auth_level 255", "auth_level 19"])
def test_restricting_options_s3dsi_does_not_implement_stop_the_daemon(tmp_path: Path, line: str) -> None:
    option = line.split(maxsplit=1)[0]
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"# site settings\n{line}\n")
    message = str(caught.value)
    assert message.startswith(f"{where(tmp_path, 2)}: {option}: s3dsi does not implement ")
    assert "will not start" in message


@pytest.mark.parametrize("level", ["0", "1", "3", "7", "15"])
def test_auth_levels_s3dsi_satisfies_are_accepted(tmp_path: Path, level: str) -> None:
    settings = load(tmp_path, f"auth_level {level}\n")
    assert len(settings.warnings) == 1 and "auth_level" in settings.warnings[0]


def test_encrypt_data_is_implemented_not_refused(tmp_path: Path) -> None:
    settings = load(tmp_path, "encrypt_data 1\n")
    assert settings.encrypt_data and settings.warnings == ()


def test_unknown_commands_in_disable_command_list_draw_a_warning(tmp_path: Path) -> None:
    settings = load(tmp_path, 'disable_command_list "DELE,XDEL,SITE FROB"\n')
    assert settings.disable_command_list == ("DELE", "XDEL", "SITE FROB")
    warnings = list_warnings(settings.disable_command_list, settings.sources["disable_command_list"])
    assert [w.split(": ", 2)[2] for w in warnings] == [
        "'XDEL' is not a command s3dsi implements (nothing to disable)",
        "'SITE FROB' is not a SITE command s3dsi implements (nothing to disable)"]


def test_ipc_and_sharing_options_stay_ignored(tmp_path: Path) -> None:
    """They restrict features s3dsi does not have (IPC, sharing): a warning, not a refusal."""
    settings = load(tmp_path, "ipc_allow_from 10.\nsharing_users_deny bob\n")
    assert len(settings.warnings) == 2 and all("not supported by s3dsi" in w for w in settings.warnings)
