"""Control listeners bound before the event loop (and before any privilege drop)."""

from __future__ import annotations

import os
import socket

import pytest

from s3dsi.config.settings import Settings
from s3dsi.daemon.sockets import bind_control, default_admin_socket, shown_address


def test_an_interface_gets_one_listener() -> None:
    (sock,) = bind_control(Settings(port=0, control_interface="127.0.0.1"))
    with sock:
        assert shown_address(sock).startswith("127.0.0.1:")


def test_all_interfaces_get_separate_ipv4_and_ipv6_listeners_on_one_port() -> None:
    socks = bind_control(Settings(port=0))
    try:
        assert shown_address(socks[0]) == f"0.0.0.0:{socks[0].getsockname()[1]}"
        if len(socks) == 2:
            assert shown_address(socks[1]) == f"[::]:{socks[0].getsockname()[1]}"
            assert socks[1].getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        # an IPv4 client sees a plain IPv4 address (PASV can only announce those)
        with socket.create_connection(("127.0.0.1", socks[0].getsockname()[1]), timeout=5) as client:
            conn, _ = socks[0].accept()
            with conn:
                assert conn.getsockname()[0] == "127.0.0.1"
                assert client.getpeername()[0] == "127.0.0.1"
    finally:
        for sock in socks:
            sock.close()


def test_a_port_in_use_is_an_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken, pytest.raises(OSError):
        bind_control(Settings(port=taken.getsockname()[1], control_interface="127.0.0.1"))


def test_default_admin_socket() -> None:
    assert default_admin_socket(Settings(admin_socket="/x/a.sock", state_dir="/y")) == "/x/a.sock"
    assert default_admin_socket(Settings(state_dir="/var/lib/s3dsi")) == "/var/lib/s3dsi/admin.sock"
    expected = "/run/s3dsi/admin.sock" if os.geteuid() == 0 else None
    if expected:
        assert default_admin_socket(Settings()) == expected
    else:
        assert default_admin_socket(Settings()).endswith("/s3dsi/admin.sock")
