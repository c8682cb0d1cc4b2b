"""Replays the reference server's raw transcripts through the core: same bytes where we mean to be GT.

Commands the core answers itself must produce GT's exact reply lines, except the deliberate
deviations listed (with our exact reply) in DEVIATIONS. Commands that need I/O must come back as
Deferred; their completions (login, CWD, RNFR) are simulated from GT's answer and compared too.
"""

from __future__ import annotations

import pytest

from s3dsi.protocol.lines import CommandLine
from s3dsi.protocol.session import Deferred, ProtocolCore

from .transcript import load

HELP_LIST = [
    "214-The following commands are recognized:",
    "    ALLO    APPE    REST    CWD     CDUP    DCAU    EPSV    FEAT",
    "    ERET    MDTM    STAT    ESTO    HELP    LIST    MODE    NLST",
    "    MLSC    MLSD    PASV    RNFR    MLSR    MLST    NOOP    OPTS",
    "    STOR    PASS    PBSZ    PORT    PROT    SITE    EPRT    RETR",
    "    SPOR    SCKS    TREV    PWD     QUIT    SBUF    SIZE    SPAS",
    "    STRU    SYST    RNTO    TYPE    USER    LANG    MKD     RMD ",
    "    DELE    CKSM    ABOR",
    "214 End",
]
FEAT_AFTER_LOGIN = [
    "211-Extensions supported",
    " CKSM MD5:10;ADLER32:10;SHA1:10;SHA256:11;SHA512:12;CRC32C:10;",
    " MLSR", " MLSC", " UTF8", " LANG EN", " PARALLEL", " SIZE",
    " MLST Type*;Size*;Modify*;Perm*;Charset;UNIX.mode*;UNIX.owner*;UNIX.group*;Unique*;X.count;",
    " ERET", " ESTO", " SPAS", " SPOR", " REST STREAM", " MDTM", " PASV AllowDelayed;", " SBUF",
    "211 End.",
]
FEAT_BEFORE_LOGIN = [line for line in FEAT_AFTER_LOGIN if not line.startswith(" CKSM")]
HELP_SITE = [
    "214-Help for SITE:",
    " SITE HELP [<sp> command]: help on server commands",
    ' SITE CLIENTINFO <sp> appname="<name>";appver="<version>";scheme="<ftp,gsiftp>";',
    " SITE CHMOD <sp> mode <sp> pathname (accepted; S3 has no modes)",
    " SITE RETRBUFSIZE <sp> size: TCP buffer for sending",
    " SITE RBUFSZ <sp> size: TCP buffer for sending",
    " SITE RBUFSIZ <sp> size: TCP buffer for sending",
    " SITE STORBUFSIZE <sp> size: TCP buffer for receiving",
    " SITE SBUFSZ <sp> size: TCP buffer for receiving",
    " SITE SBUFSIZ <sp> size: TCP buffer for receiving",
    " SITE WHOAMI",
    " SITE VERSION",
    " SITE SETDISKSTACK <sp> drivers (accepted and ignored)",
    " SITE SETNETSTACK <sp> drivers (accepted and ignored)",
    " SITE TASKID <sp> taskid",
    "214 End.",
]

# (transcript, command) -> our exact reply where we deliberately differ from GT 13.24.
DEVIATIONS: dict[tuple[str, str], list[str]] = {
    ("raw_session_commands", "FEAT"): FEAT_AFTER_LOGIN,
    ("raw_prelogin_and_login", "FEAT"): FEAT_BEFORE_LOGIN,
    ("raw_session_commands", "HELP"): HELP_LIST,
    ("raw_session_commands", "SITE HELP"): HELP_LIST,
    ("raw_prelogin_and_login", "HELP"): HELP_LIST,
    ("raw_session_commands", "HELP SITE"): HELP_SITE,
    # GT embeds the command's CRLF in the reply; RFC 959 says TYPE L 8 is binary.
    ("raw_session_commands", "TYPE L 8"): ["200 Type set to I."],
    ("raw_session_commands", "TYPE X"): ["501 'TYPE X' unrecognized type."],
    ("raw_session_commands", "LANG FR"): ["501 'LANG FR' unrecognized language."],
    # No security context without GSI.
    ("raw_session_commands", "DCAU A"): ["504 DCAU A not supported: no security context (only DCAU N)."],
    ("raw_session_commands", "DCAU S /CN=someone"):
        ["504 DCAU S not supported: no security context (only DCAU N)."],
    ("raw_session_commands", "PROT P"): ["536 P protection level not supported."],
    ("raw_session_commands", "PROT S"): ["536 S protection level not supported."],
    # (AUTH and ADAT are carried out by server/handlers/security.py; tests/unit/server/
    # test_security_handlers.py
    # replays this transcript's AUTH/ADAT against a daemon without a host credential.)
    ("raw_session_commands", "SITE VERSION"): ["200 s3dsi 0.1.0"],
    # Not implemented for S3.
    ("raw_session_commands", "SITE UTIME 20200101000000 /srv/data/raw/hello.txt"): ["500 Invalid command."],
    ("raw_session_commands", "SITE TRNC 5 /srv/data/raw/trnc.txt"): ["500 Invalid command."],
    ("raw_session_commands", "SITE RDEL /srv/data/raw/rdel"): ["500 Invalid command."],
    ("raw_session_commands", "MFMT 20200102030405 /srv/data/raw/hello.txt"): ["500 Command not supported."],
    ("raw_session_commands", "DCSC D"): ["500 Command not supported."],
    ("raw_session_commands", "DCSC Q"): ["500 Command not supported."],
    ("raw_session_commands", "WHOAMI"): ["500 Command not supported."],
}

TRANSCRIPTS = [
    "raw_session_commands", "raw_prelogin_and_login", "raw_listings_stream_mode",
    "raw_stream_transfers_rest_eret_esto", "raw_delayed_pasv_spas", "raw_abor_behaviour",
    "raw_modeE_download_blocks", "raw_modeE_connection_reuse", "raw_modeE_upload_blocks",
    "raw_login_rejected", "raw_auth_gssapi_without_host_cred",
]


def _complete(core: ProtocolCore, deferred: Deferred, gt: list[str]) -> list[str] | None:
    """Simulate the network layer for the deferred commands whose outcome changes state."""
    verb = deferred.spec.verb
    if verb == "PASS":
        if gt[0].startswith("230"):
            reply = core.login_succeeded("gfuser")
            core.state.cwd = "/home/gfuser"  # GT's home for this user
        else:
            reply = core.login_failed(gt[0].partition(" : ")[2])
        return list(reply.lines)
    assert deferred.target is not None or verb not in ("CWD", "CDUP", "RNFR")
    if verb in ("CWD", "CDUP") and gt[0].startswith("250") and deferred.target is not None:
        return list(core.changed_directory(deferred.target.path).lines)
    if verb == "RNFR" and gt[0].startswith("350") and deferred.target is not None:
        return list(core.rnfr_accepted(deferred.target.path).lines)
    return None


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_replay(name: str) -> None:
    core = ProtocolCore(mode_e_supported=True)
    compared = deferred_count = 0
    used_deviations = set()
    for exchange in load(name):
        if not exchange.replies:  # the transcript ends before GT answered
            continue
        result = core.handle(CommandLine.parse(exchange.command))
        if isinstance(result, Deferred):
            assert result.spec.kind == "io", exchange.command
            deferred_count += 1
            ours = _complete(core, result, exchange.replies)
            if ours is not None:
                assert ours == exchange.replies, exchange.command
                compared += 1
            continue
        key = (name, exchange.command)
        expected = DEVIATIONS.get(key, exchange.replies)
        if key in DEVIATIONS:
            used_deviations.add(key)
            assert exchange.replies != expected  # a deviation that is not one should be removed
        assert list(result.lines) == expected, exchange.command
        compared += 1
    assert compared >= 3
    assert deferred_count >= 1
    assert used_deviations == {key for key in DEVIATIONS if key[0] == name}


def test_replay_covers_the_whole_session_transcript() -> None:
    core = ProtocolCore()
    answered = sum(1 for exchange in load("raw_session_commands")
                   if not isinstance(_answer(core, exchange.command), Deferred))
    assert answered >= 90


def _answer(core: ProtocolCore, command: str) -> object:
    result = core.handle(CommandLine.parse(command))
    if isinstance(result, Deferred) and result.spec.verb == "PASS":
        core.login_succeeded("gfuser")
    return result
