"""What the demo prints after `listening on`, and the settings it runs with."""

from __future__ import annotations

from s3dsi.daemon.demo import DEMO_BUCKET, DEMO_FILE, banner, demo_settings


def test_banner_holds_the_user_password_and_pasteable_commands() -> None:
    text = banner("127.0.0.1", 2811, "s3cr3t-Pass_word")
    lines = text.splitlines()
    assert "  user:     demo" in lines and "  password: s3cr3t-Pass_word" in lines
    url = f"ftp://demo:s3cr3t-Pass_word@127.0.0.1:2811/{DEMO_BUCKET}"
    copies = [line.strip() for line in lines if line.strip().startswith("globus-url-copy")]
    assert copies == [f"globus-url-copy -v {url}/{DEMO_FILE} file://$PWD/{DEMO_FILE}",
                      f"globus-url-copy -v -p 4 file://$PWD/{DEMO_FILE} {url}/uploaded.txt"]
    assert any(line.strip() == f"curl {url}/" for line in lines)
    assert "[::1]:2811" in banner("::1", 2811, "p")


def test_demo_settings_keep_everything_on_loopback_and_in_the_work_dir() -> None:
    settings = demo_settings(0, "127.0.0.1", "http://127.0.0.1:5000", "/tmp/s3dsi-demo-x")
    assert settings.control_interface == settings.data_interface == "127.0.0.1"
    assert settings.host_name == "http://127.0.0.1:5000" and settings.addressing_style == "path"
    assert settings.state_dir == "/tmp/s3dsi-demo-x/state"
    assert settings.admin_socket == "/tmp/s3dsi-demo-x/admin.sock"
    assert settings.log_transfer is None and settings.password_file is None
