"""The daemon on loopback (memory back end) against the ways around its limits: login throttling,
connection limits and address lists, the pre-login deadline, disabled commands, anonymous writes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from s3dsi.config.settings import Settings
from s3dsi.server.backends import SharedBackend
from s3dsi.storage.memory import MemoryBackend
from tests.support.daemon import TEST_PASSWORD, TEST_USER, DaemonThread, StaticAuthenticator
from tests.support.daemon import test_settings as daemon_settings
from tests.support.ftp_client import Client

MiB = 1024 * 1024


class Served:
    def __init__(self, settings: Settings, authenticator: StaticAuthenticator | None = None) -> None:
        self.backend = MemoryBackend(min_part_size=5 * MiB)
        self.backend.create_bucket("data")
        self.thread = DaemonThread(settings, SharedBackend(self.backend))
        if authenticator is not None:
            self.thread.authenticator = authenticator
        self.thread.start()

    def client(self, source: str | None = None) -> Client:
        return Client(self.thread.host, self.thread.port, timeout=30, source=source)

    def raw(self, source: str = "127.0.0.1") -> socket.socket:
        return socket.create_connection((self.thread.host, self.thread.port), timeout=30,
                                        source_address=(source, 0))


@pytest.fixture
def serve() -> Iterator[object]:
    running: list[Served] = []

    def start(authenticator: StaticAuthenticator | None = None, **overrides: object) -> Served:
        served = Served(daemon_settings(**overrides), authenticator)
        running.append(served)
        return served

    yield start
    for served in running:
        served.thread.stop()


def timed_pass(c: Client, user: str, password: str) -> tuple[int, float]:
    assert c.cmd(f"USER {user}").code == 331
    started = time.monotonic()
    reply = c.cmd(f"PASS {password}")
    return reply.code, time.monotonic() - started


def test_once_throttled_even_the_right_password_waits(serve) -> None:  # type: ignore[no-untyped-def]
    """The old throttle delayed failures only: a client that gave up after half a second knew the guess
    was wrong and tried the next one on a new connection."""
    served = serve()
    c = served.client()
    assert timed_pass(c, TEST_USER, "wrong")[0] == 530
    c.close()
    c = served.client()  # a new connection changes nothing
    code, waited = timed_pass(c, TEST_USER, TEST_PASSWORD)
    assert code == 230 and waited >= 0.45
    c.close()


def test_the_count_is_per_account_and_per_address_block(serve) -> None:  # type: ignore[no-untyped-def]
    served = serve()
    c = served.client(source="127.0.0.1")
    assert timed_pass(c, TEST_USER, "wrong")[0] == 530
    assert timed_pass(c, TEST_USER, "wrong again")[0] == 530
    c.close()
    other_host = served.client(source="127.0.0.2")  # the same account from elsewhere
    code, waited = timed_pass(other_host, TEST_USER, TEST_PASSWORD)
    assert code == 230 and waited >= 0.95
    other_host.close()
    same_host = served.client(source="127.0.0.1")  # another account from the same address
    code, waited = timed_pass(same_host, "nobody-here", "x")
    assert code == 530 and waited >= 0.95
    same_host.close()


def test_failed_logins_per_connection_are_capped(serve) -> None:  # type: ignore[no-untyped-def]
    served = serve(login_attempts_max=2)
    c = served.client(source="127.0.0.3")
    assert c.cmd("USER mallory").code == 331
    assert c.cmd("PASS a").code == 530
    assert c.cmd("USER mallory").code == 331
    assert c.cmd("PASS b").code == 530
    closing = c.read_reply()
    assert closing.code == 421 and "Too many failed logins" in closing.text
    with pytest.raises((EOFError, ConnectionError)):
        c.cmd("USER mallory")
    c.close()


def test_the_pre_login_deadline_is_absolute(serve) -> None:  # type: ignore[no-untyped-def]
    """A client dripping a command now and then before login used to be kept for ever."""
    served = serve(preauth_timeout=2)
    sock = served.raw()
    sock.settimeout(1.0)
    stop = threading.Event()
    received = bytearray()

    def drip() -> None:
        while not stop.is_set():
            try:
                sock.sendall(b"N")
            except OSError:
                return
            time.sleep(0.3)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    deadline = time.monotonic() + 15
    closed = False
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        received += chunk
    stop.set()
    sock.close()
    assert closed, "the connection was still open 15 s after a 2 s pre-login deadline"
    assert b"421 Idle Timeout" in received


def test_connection_limits_per_address_and_in_total(serve) -> None:  # type: ignore[no-untyped-def]
    served = serve(connections_max=3, connections_max_per_address=2)
    first, second = served.client(), served.client()
    refused = served.client()
    assert refused.greeting.lines == ["421 Service not available: too many connections from your address."]
    refused.close()
    elsewhere = served.client(source="127.0.0.2")
    assert elsewhere.greeting.code == 220
    full = served.client(source="127.0.0.3")
    assert full.greeting.lines == ["421 Service not available: too many connections."]
    full.close()
    first.close()
    deadline = time.monotonic() + 5  # until the daemon has seen the first one go
    while (again := served.client()).greeting.code != 220 and time.monotonic() < deadline:
        again.close()
        time.sleep(0.1)
    assert again.greeting.code == 220, again.greeting
    for c in (second, elsewhere, again):
        c.close()


def test_allow_from_and_deny_from(serve) -> None:  # type: ignore[no-untyped-def]
    served = serve(allow_from=("127.0.0.",), deny_from=("127.0.0.3",))
    assert served.client(source="127.0.0.2").greeting.code == 220
    for source in ("127.0.0.3",):
        sock = served.raw(source)
        assert sock.recv(100) == b""  # closed without a word, as by the reference server
        sock.close()
    only = serve(allow_from=("127.0.0.2/32",))
    sock = only.raw("127.0.0.1")
    assert sock.recv(100) == b""
    sock.close()
    assert only.client(source="127.0.0.2").greeting.code == 220


def test_connections_disabled(serve) -> None:  # type: ignore[no-untyped-def]
    served = serve(connections_disabled=True, offline_msg="Maintenance until 14:00.")
    assert served.client().greeting.lines == ["422 Maintenance until 14:00."]


def test_disabled_commands_over_the_wire(serve) -> None:  # type: ignore[no-untyped-def]
    served = serve(disable_command_list=("DELE", "SITE CHMOD", "OPTS RETR"))
    c = served.client()
    c.login(TEST_USER, TEST_PASSWORD)
    served.backend.put_object("/data/k", memoryview(b"x"))
    assert c.cmd("DELE /data/k").lines == ["500 Command not supported."]
    assert c.cmd("SITE CHMOD 600 /data/k").lines == ["500 Invalid command."]
    assert c.cmd("OPTS RETR Parallelism=2,2,2;").lines == ["501 Command arguments disabled."]
    assert served.backend.stat("/data/k").size == 1
    c.close()


def test_anonymous_sessions_are_read_only_by_default(serve) -> None:  # type: ignore[no-untyped-def]
    anonymous = StaticAuthenticator({TEST_USER: TEST_PASSWORD}, anonymous=("anonymous",))
    served = serve(anonymous)
    served.backend.put_object("/data/public.txt", memoryview(b"hello"))
    c = served.client()
    c.login("anonymous", "guest@")
    c.pasv()
    c.send("STOR /data/new.bin")
    reply = c.read_reply()  # refused before 150: no data connection is even accepted
    assert reply.code == 500 and "c=PERMISSION_DENIED" in reply.text and "read-only" in reply.text
    for command in ("MKD /data/dir", "DELE /data/public.txt", "RNFR /data/public.txt"):
        r = c.cmd(command)
        if r.code == 350:
            r = c.cmd("RNTO /data/renamed.txt")
        assert r.code == 550 and "read-only" in r.text, (command, r)
    assert c.cmd("SIZE /data/public.txt").lines == ["213 5"]
    c.close()
    assert [e.name for page in served.backend.list_pages("/data") for e in page] == ["public.txt"]
    # the password user is not affected, and a site may let anonymous write
    writer = serve(StaticAuthenticator({TEST_USER: TEST_PASSWORD}, anonymous=("anonymous",)),
                   anonymous_read_only=False)
    c = writer.client()
    c.login("anonymous", "guest@")
    assert c.cmd("MKD /data/dir").code == 257
    c.close()


def test_passwords_are_checked_on_the_login_pool(serve) -> None:  # type: ignore[no-untyped-def]
    """Never on the namespace pool, where every user's CWD and LIST would wait behind argon2."""
    threads: list[str] = []

    class Recording(StaticAuthenticator):
        def authenticate(self, user: str, password: str) -> str | None:
            threads.append(threading.current_thread().name)
            return super().authenticate(user, password)

    served = serve(Recording({TEST_USER: TEST_PASSWORD}))
    c = served.client()
    c.login(TEST_USER, TEST_PASSWORD)
    c.close()
    assert threads and all(name.startswith("s3dsi-login") for name in threads)


def test_port_to_another_host_is_refused(serve) -> None:  # type: ignore[no-untyped-def]
    served = serve()
    c = served.client()
    c.login(TEST_USER, TEST_PASSWORD)
    assert c.cmd("PORT 127,0,0,2,195,80").code == 501  # FTP bounce: not the client's address
    assert c.cmd("PORT 127,0,0,1,0,25").code == 501  # a privileged port of the client itself
    assert c.cmd("EPRT |1|127.0.0.2|50000|").code == 501
    assert c.cmd("PORT 127,0,0,1,195,80").code == 200
    c.close()


def test_terse_banner(serve) -> None:  # type: ignore[no-untyped-def]
    served = serve(banner_terse=True, banner="Welcome to the lab")
    greeting = served.client().greeting
    assert greeting.lines == ["220 127.0.0.1 GridFTP Server ready."]


def test_a_silent_client_is_still_closed_after_login(serve) -> None:  # type: ignore[no-untyped-def]
    """control_idle_timeout still runs from the last byte once logged in (the PASS line included)."""
    served = serve(idle_timeout=1, preauth_timeout=30)
    c = served.client()
    c.login(TEST_USER, TEST_PASSWORD)
    started = time.monotonic()
    closing = c.read_reply()
    assert closing.code == 421 and "Idle Timeout" in closing.text
    assert time.monotonic() - started < 20
    c.close()
