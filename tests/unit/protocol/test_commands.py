from __future__ import annotations

import pytest

from s3dsi.protocol.commands import COMMANDS, SITE_COMMANDS, feat_reply, help_reply

from .test_transcript_replay import FEAT_AFTER_LOGIN, FEAT_BEFORE_LOGIN, HELP_LIST
from .transcript import load

BRIEF_COMMANDS = {
    "USER", "PASS", "QUIT", "NOOP", "SYST", "FEAT", "HELP", "SITE", "OPTS", "TYPE", "MODE", "STRU", "PWD",
    "CWD", "CDUP", "SIZE", "MDTM", "MLST", "MLSD", "MLSC", "MLSR", "LIST", "NLST", "STAT", "MKD", "RMD",
    "DELE", "RNFR", "RNTO", "ALLO", "REST", "RETR", "STOR", "APPE", "ERET", "ESTO", "CKSM", "PASV", "EPSV",
    "SPAS", "PORT", "EPRT", "SPOR", "SBUF", "DCAU", "PBSZ", "PROT", "ABOR", "LANG", "TREV", "SCKS", "AUTH",
    "ADAT", "CCC",  # CCC: RFC 4217, refused
}


def test_table_has_exactly_the_commands_of_the_brief() -> None:
    assert set(COMMANDS) == BRIEF_COMMANDS


def test_pre_auth_commands_are_those_of_gt() -> None:
    assert {v for v, spec in COMMANDS.items() if spec.pre_auth} == {"USER", "PASS", "QUIT", "NOOP", "FEAT",
                                                                     "HELP", "AUTH", "ADAT"}


def test_help_list_layout() -> None:
    assert list(help_reply().lines) == HELP_LIST
    gt = next(e.replies for e in load("raw_session_commands") if e.command == "HELP")
    # Where the command sets coincide the layout is GT's, byte for byte.
    assert list(help_reply().lines[:5]) == gt[:5]


def test_help_lists_every_listed_command_once() -> None:
    words = " ".join(help_reply().lines[1:-1]).split()
    assert sorted(words) == sorted(v for v, spec in COMMANDS.items() if spec.listed)
    assert "AUTH" not in words
    assert "MFMT" not in words


def test_help_for_one_command_matches_gt() -> None:
    gt = next(e.replies for e in load("raw_session_commands") if e.command == "HELP RETR")
    assert list(help_reply("RETR").lines) == gt
    assert help_reply("retr").lines == help_reply("RETR").lines
    assert help_reply("AUTH").lines == ("502 Unknown command 'AUTH'.",)
    assert help_reply("FOO\r\n226 x").lines == ("502 Unknown command 'FOO'.",)


def test_help_site_lists_site_commands() -> None:
    lines = help_reply("SITE").lines
    assert lines[0] == "214-Help for SITE:"
    assert lines[-1] == "214 End."
    assert [line.split()[1] for line in lines[1:-1]] == list(SITE_COMMANDS)


@pytest.mark.parametrize(("logged_in", "expected"), [(True, FEAT_AFTER_LOGIN), (False, FEAT_BEFORE_LOGIN)])
def test_feat(logged_in: bool, expected: list[str]) -> None:
    algorithms = ["MD5", "ADLER32", "SHA1", "SHA256", "SHA512", "CRC32C"]
    reply = feat_reply(logged_in=logged_in, checksum_algorithms=algorithms, mode_e=True)
    assert list(reply.lines) == expected


def test_feat_shape_for_the_globus_parser() -> None:
    reply = feat_reply(logged_in=True, checksum_algorithms=["MD5"], mode_e=False)
    body = reply.lines[1:-1]
    assert reply.lines[0] == "211-Extensions supported"
    assert reply.lines[-1] == "211 End."
    assert all(line.startswith(" ") and not line.startswith("  ") for line in body)
    labels = {line.split()[0] for line in body}
    assert not labels & {"DCAU", "DCSC", "GETPUT", "MFMT", "STORATTR", "HTTP", "PARALLEL"}
    assert " CKSM MD5:10;" in body
    assert reply.encode().endswith(b" SBUF\r\n211 End.\r\n")
