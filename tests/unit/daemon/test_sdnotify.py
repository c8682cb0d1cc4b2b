"""sd_notify over a datagram socket, as systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid

from s3dsi.daemon.sdnotify import monotonic_usec, sd_notify


def test_fields_arrive_as_one_datagram() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as directory:
        path = os.path.join(directory, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(path)
            assert sd_notify("READY=1", "STATUS=2 sessions\nsplit", environ={"NOTIFY_SOCKET": path})
            assert server.recv(4096) == b"READY=1\nSTATUS=2 sessions split"


def test_abstract_namespace_socket() -> None:
    name = f"s3dsi-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        assert sd_notify("STOPPING=1", environ={"NOTIFY_SOCKET": "@" + name})
        assert server.recv(4096) == b"STOPPING=1"


def test_without_systemd_nothing_is_sent() -> None:
    assert not sd_notify("READY=1", environ={})
    assert not sd_notify("READY=1", environ={"NOTIFY_SOCKET": "/nonexistent/s3dsi/notify"})


def test_monotonic_usec() -> None:
    name, value = monotonic_usec().split("=")
    assert name == "MONOTONIC_USEC"
    assert int(value) > 0
