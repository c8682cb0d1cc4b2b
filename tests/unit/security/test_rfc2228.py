"""The RFC 2228 control layer (ENC/MIC/CONF in, 631/632 out) and the protocol core's security rules."""

from __future__ import annotations

import base64

import pytest

from s3dsi.protocol.lines import CommandLine, ControlLineBuffer
from s3dsi.protocol.replies import Reply
from s3dsi.protocol.session import Deferred, ProtocolCore
from s3dsi.security.engine import SecurityContextError
from s3dsi.security.rfc2228 import ADAT_MAX_LINE, ProtectedControl


class Fake:
    """A wrapper whose tokens are b"T:" + plaintext (enough to see what is wrapped, line by line)."""

    def __init__(self, encrypts: bool = True) -> None:
        self.encrypts = encrypts
        self.wrapped: list[bytes] = []

    def wrap(self, plaintext: bytes) -> bytes:
        self.wrapped.append(plaintext)
        return b"T:" + plaintext

    def unwrap(self, token: bytes) -> bytes:
        if not token.startswith(b"T:"):
            raise SecurityContextError("bad record mac")
        return token[2:]


def enc(verb: str, plain: bytes) -> bytes:
    return f"{verb} {base64.b64encode(b'T:' + plain).decode()}\r\n".encode()


def test_enc_mic_conf_unwrap_identically() -> None:
    layer = ProtectedControl(Fake())
    data = enc("ENC", b"USER :globus-mapping:\r\n") + enc("MIC", b"PASS \r\n") + enc("conf", b"PWD\x00")
    assert layer.incoming(data) == b"USER :globus-mapping:\r\nPASS \r\nPWD\r\n"


def test_lines_split_across_reads_and_telnet_bytes() -> None:
    layer = ProtectedControl(Fake())
    data = b"\xff\xf4\xff\xf2" + enc("ENC", b"ABOR\r\n")
    assert layer.incoming(data[:7]) == b""
    assert layer.incoming(data[7:]) == b"ABOR\r\n"


def test_unprotected_and_undecodable_become_sentinels_answered_533_and_535() -> None:
    layer = ProtectedControl(Fake())
    plain = layer.incoming(b"PWD\r\nENC !!notbase64!!\r\n" + enc("ENC", b"NOOP\r\n"))
    core = ProtocolCore()
    replies = [core.handle(line) for line in ControlLineBuffer().feed(plain)]
    assert [r.code for r in replies if isinstance(r, Reply)] == [533, 535, 200]


def test_a_token_tls_rejects_ends_the_connection() -> None:
    layer = ProtectedControl(Fake())
    with pytest.raises(ConnectionError, match="bad record mac"):
        layer.incoming(f"ENC {base64.b64encode(b'XX').decode()}\r\n".encode())


def test_protected_line_limit() -> None:
    layer = ProtectedControl(Fake())
    assert layer.incoming(enc("ENC", b"A" * 500_000 + b"\r\n")).startswith(b"AAA")
    with pytest.raises(ConnectionError, match="too long"):
        layer.incoming(b"ENC " + b"A" * (ADAT_MAX_LINE + 10))


def test_each_reply_line_is_wrapped_on_its_own() -> None:
    fake = Fake()
    wire = ProtectedControl(fake).outgoing(["214-The following", " HELP", "214 End"])
    assert fake.wrapped == [b"214-The following\r\n", b" HELP\r\n", b"214 End\r\n"]
    lines = wire.decode().split("\r\n")
    assert [line[:4] for line in lines[:3]] == ["632-", "632-", "632 "]
    assert base64.b64decode(lines[2][4:]) == b"T:214 End\r\n"
    assert ProtectedControl(Fake(encrypts=False)).outgoing(["200 ok"]).startswith(b"631 ")


def _core(**kwargs: object) -> ProtocolCore:
    return ProtocolCore(**kwargs)  # type: ignore[arg-type]


def _code(core: ProtocolCore, command: str) -> int:
    result = core.handle(CommandLine.parse(command))
    assert isinstance(result, Reply), command
    return result.code


def test_require_protection_refuses_clear_text_logins() -> None:
    core = _core(require_protection=True)
    assert _code(core, "USER alice") == 530
    assert core.state.pending_user is None
    assert _code(core, "PASS secret") == 530  # never deferred: the password is not even looked at
    core.state.protection = "TLS"
    assert _code(core, "USER alice") == 331
    assert isinstance(core.handle(CommandLine.parse("PASS secret")), Deferred)


def test_auth_exchange_allows_only_adat_and_quit() -> None:
    core = _core()
    assert core.auth_started().code == 334
    assert _code(core, "USER alice") == 530
    assert _code(core, "FEAT") == 530
    assert isinstance(core.handle(CommandLine.parse("ADAT AAAA")), Deferred)
    core.auth_ended("GSSAPI")
    assert core.state.protection == "GSSAPI"
    assert _code(core, "USER :globus-mapping:") == 331


def test_pbsz_prot_ccc_on_a_protected_channel() -> None:
    core = _core()
    assert _code(core, "PBSZ 0") == 530  # before login on a clear channel: as GT
    core.state.protection = "TLS"
    assert _code(core, "PBSZ 0") == 200
    assert _code(core, "PROT P") == 200
    assert core.state.prot == "P"
    assert _code(core, "PROT E") == 536
    assert _code(core, "CCC") == 534
    core.handle(CommandLine.parse("USER a"))
    core.handle(CommandLine.parse("PASS b"))
    core.login_succeeded("a")
    assert isinstance(core.handle(CommandLine.parse("RETR /x")), Deferred)  # the data channels honour PROT P
    assert _code(core, "PROT C") == 200
    assert isinstance(core.handle(CommandLine.parse("LIST")), Deferred)


def test_prot_p_needs_a_protected_channel() -> None:
    core = _core()
    core.handle(CommandLine.parse("USER a"))
    core.handle(CommandLine.parse("PASS b"))
    core.login_succeeded("a")
    assert _code(core, "PROT P") == 536


def test_feat_lists_the_mechanisms() -> None:
    lines = _core(auth_mechanisms=("GSSAPI", "TLS")).feat().lines
    security = [x for x in lines if x.strip().startswith(("AUTH", "PBSZ", "PROT"))]
    assert security == [" AUTH GSSAPI", " AUTH TLS", " PBSZ", " PROT"]
    assert " DCAU" in lines  # gsi.md pitfall 8: listed where GSSAPI (and so DCAU A) is served
    assert " DCAU" not in _core(auth_mechanisms=("TLS",)).feat().lines
    assert not any("AUTH" in x for x in _core().feat().lines)
