"""The per-session parent's own sockets: nothing a client sends may hold its single selector loop."""

from __future__ import annotations

import socket
import threading
import time

from s3dsi.config.settings import Settings
from s3dsi.daemon.configsource import ConfigSource
from s3dsi.daemon.runtime import Listeners
from s3dsi.daemon.supervisor import Supervisor
from s3dsi.identity.auth import Authenticator
from s3dsi.observability.transferlog import TransferLog


def test_a_dribbling_metrics_client_cannot_hold_the_parent() -> None:
    """The parent accepts sessions, reaps children and handles signals in one loop: a metrics request
    that sends one byte now and then must be cut off, not served for hours."""
    control = socket.create_server(("127.0.0.1", 0))
    metrics = socket.create_server(("127.0.0.1", 0))
    listeners = Listeners([control], metrics=metrics)
    supervisor = Supervisor(ConfigSource(), Settings(), Authenticator(None), listeners, TransferLog(None),
                            metrics=True)
    client = socket.create_connection(metrics.getsockname())
    stop = threading.Event()

    def dribble() -> None:
        while not stop.wait(0.3):
            try:
                client.send(b"G")
            except OSError:
                return

    sender = threading.Thread(target=dribble, daemon=True)
    sender.start()
    serving = threading.Thread(target=supervisor._metrics, args=(metrics,), daemon=True)
    started = time.monotonic()
    serving.start()
    serving.join(8)
    held = time.monotonic() - started
    stop.set()
    client.close()
    serving.join(10)
    sender.join(5)
    control.close()
    metrics.close()
    assert held < 5, "the metrics request held the parent's loop"
