"""disable_command_list, as the reference server applies it: whole commands, SITE commands, and
argument values."""

from __future__ import annotations

from s3dsi.protocol.disabled import DisabledCommands, unknown_command
from s3dsi.protocol.lines import CommandLine
from s3dsi.protocol.replies import Reply
from s3dsi.protocol.session import Deferred, ProtocolCore

DISABLED = DisabledCommands.parse(["DELE", "site chmod", "OPTS RETR", "TYPE A", "SITE TASKID secret",
                                   "MODE E extra", "NOOP"])


def core(logged_in: bool = True) -> ProtocolCore:
    c = ProtocolCore(disabled=DISABLED)
    if logged_in:
        c.handle(CommandLine.parse("USER alice"))
        assert isinstance(c.handle(CommandLine.parse("PASS x")), Deferred)
        c.login_succeeded("alice")
    return c


def answer(c: ProtocolCore, command: str) -> str:
    result = c.handle(CommandLine.parse(command))
    if isinstance(result, Deferred):
        return "deferred"
    assert isinstance(result, Reply)
    return result.lines[0]


def test_a_disabled_command_is_a_command_the_server_does_not_have() -> None:
    for c in (core(), core(logged_in=False)):
        assert answer(c, "DELE /b/k") == "500 Command not supported."
        assert answer(c, "dele /b/k") == "500 Command not supported."
        assert answer(c, "NOOP") == "500 Command not supported."
    assert answer(core(), "RETR /b/k") == "deferred"


def test_a_disabled_site_command() -> None:
    c = core()
    assert answer(c, "SITE CHMOD 644 /b/k") == "500 Invalid command."
    assert answer(c, "SITE chmod 644 /b/k") == "500 Invalid command."
    assert answer(c, "SITE CLIENTINFO appname=x") == "250 OK."


def test_disabled_arguments_are_compared_word_by_word() -> None:
    c = core()
    assert answer(c, "OPTS RETR Parallelism=4,4,4;") == "501 Command arguments disabled."
    assert answer(c, "OPTS CKSM markers=5;") == "200 OPTS Command Successful."
    assert answer(c, "TYPE A") == "501 Command arguments disabled."
    assert answer(c, "TYPE a") == "501 Command arguments disabled."
    assert answer(c, "TYPE I") == "200 Type set to I."
    assert answer(c, "SITE TASKID secret") == "501 Command arguments disabled."
    assert answer(c, "SITE TASKID other") == "250 OK."
    # the reference's rule: equal for as many words as both have, so a shorter command is refused too
    assert answer(c, "MODE E") == "501 Command arguments disabled."
    assert answer(c, "MODE S") == "200 Mode set to S."


def test_argument_checks_come_after_the_login() -> None:
    assert answer(core(logged_in=False), "TYPE A") == "530 Please login with USER and PASS."


def test_unknown_entries_are_named() -> None:
    assert unknown_command("DELE") is None
    assert unknown_command("SITE CHMOD") is None
    assert "'XYZZ'" in (unknown_command("XYZZ") or "")
    assert "'SITE FOO'" in (unknown_command("site foo") or "")
    assert not DisabledCommands.parse([])
