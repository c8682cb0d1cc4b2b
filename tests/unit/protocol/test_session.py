from __future__ import annotations

import pytest

from s3dsi.protocol.commands import COMMANDS
from s3dsi.protocol.lines import CommandLine, ControlLineBuffer
from s3dsi.protocol.ranges import RangeList, RestMarker
from s3dsi.protocol.replies import Reply
from s3dsi.protocol.session import Deferred, ProtocolCore


def _core(*, logged_in: bool = True, **kwargs: object) -> ProtocolCore:
    core = ProtocolCore(**kwargs)  # type: ignore[arg-type]
    if logged_in:
        _reply(core, "USER anonymous")
        assert isinstance(core.handle(CommandLine.parse("PASS x")), Deferred)
        core.login_succeeded("gfuser")
    return core


def _reply(core: ProtocolCore, command: str) -> Reply:
    result = core.handle(CommandLine.parse(command))
    assert isinstance(result, Reply), command
    return result


def _text(core: ProtocolCore, command: str) -> str:
    return "\n".join(_reply(core, command).lines)


def _deferred(core: ProtocolCore, command: str) -> Deferred:
    result = core.handle(CommandLine.parse(command))
    assert isinstance(result, Deferred), (command, result)
    return result


# -- greeting and login ----------------------------------------------------------------------------

def test_greeting() -> None:
    core = ProtocolCore(version="1.2.3")
    assert core.greeting("gridftp.example.org", None).lines == (
        "220 gridftp.example.org GridFTP Server s3dsi 1.2.3 ready.",)
    banner = core.greeting("h", "Welcome\nauthorised use only\r\n226 x")
    assert banner.lines == ("220-Welcome", " authorised use only", " 226 x",
                            "220 h GridFTP Server s3dsi 1.2.3 ready.")
    assert core.greeting("h\r\n", "").lines == ("220 h   GridFTP Server s3dsi 1.2.3 ready.",)


@pytest.mark.parametrize("command", ["SYST", "PWD", "SIZE /x", "PASV", "RETR /x", "TYPE I", "SITE HELP",
                                     "CWD /", "MLSD", "ABOR", "OPTS RETR Parallelism=1,1,1;", "PBSZ 0"])
def test_prelogin_gating(command: str) -> None:
    assert _text(_core(logged_in=False), command) == "530 Please login with USER and PASS."


@pytest.mark.parametrize(("command", "reply"), [
    ("NOOP", "200 NOOP command successful."),
    ("FOO", "500 Command not supported."),
    ("foo bar", "500 Command not supported."),
    ("USER", "501 Syntax error in parameters or arguments."),
    ("PASS x", "503 Login with USER first."),
    ("QUIT", "221 Goodbye."),
    ("HELP FOO", "502 Unknown command 'FOO'."),
])
def test_prelogin_allowed_commands(command: str, reply: str) -> None:
    assert _text(_core(logged_in=False), command) == reply


def test_login_flow() -> None:
    core = ProtocolCore()
    assert _text(core, "USER anonymous") == "331 Password required for anonymous."
    assert core.state.pending_user == "anonymous"
    deferred = _deferred(core, "PASS secret")
    assert deferred.spec.verb == "PASS"
    assert deferred.line.arg == "secret"
    assert core.login_succeeded("gfuser").lines == ("230 User anonymous logged in.",)
    assert (core.state.logged_in, core.state.user, core.state.login_name) == (True, "gfuser", "anonymous")
    assert core.state.pending_user is None
    assert _text(core, "SITE WHOAMI") == "200 anonymous"
    assert _text(core, "USER other") == "503 You are already logged in."
    assert _text(core, "PASS x") == "503 You are already logged in."


def test_login_failed() -> None:
    core = ProtocolCore()
    _reply(core, "USER bob")
    _deferred(core, "PASS wrong")
    assert core.login_failed().lines == ("530 Login incorrect.",)
    assert not core.state.logged_in
    assert core.state.pending_user is None
    assert _text(core, "PWD") == "530 Please login with USER and PASS."
    assert _text(core, "PASS again") == "503 Login with USER first."
    _reply(core, "USER bob")
    _deferred(core, "PASS x")
    assert core.login_failed("Access denied by configuration.").lines == (
        "530 Login incorrect. : Access denied by configuration.",)


def test_login_succeeded_without_user_is_a_usage_error() -> None:
    with pytest.raises(RuntimeError):
        ProtocolCore().login_succeeded("x")


def test_password_without_argument_is_deferred() -> None:
    core = _core(logged_in=False)
    _reply(core, "USER anonymous")
    assert _deferred(core, "PASS").line.arg is None


def test_quit_sets_closing() -> None:
    core = _core()
    assert not core.closing
    _reply(core, "QUIT")
    assert core.closing


def test_quit_with_an_argument_still_closes() -> None:
    core = _core(logged_in=False)
    assert _text(core, "QUIT now") == "221 Goodbye."
    assert core.closing


def test_empty_line_gets_a_reply() -> None:
    (line,) = ControlLineBuffer().feed(b"\r\n")
    assert _core().handle(line) == Reply.line(500, "Command not supported.")


def test_too_long_line() -> None:
    (line,) = ControlLineBuffer(max_line=32).feed(b"RETR " + b"a" * 100 + b"\r\n")
    assert _core().handle(line) == Reply.line(500, "Command line too long.")


# -- argument rules --------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["PWD x", "CDUP x", "SYST x", "PASV x", "FEAT x", "RETR", "STOR", "CWD",
                                     "MKD", "TYPE", "SITE", "SPOR", "ALLO", "OPTS", "CKSM MD5 /x"])
def test_argument_presence(command: str) -> None:
    assert _text(_core(), command) == "501 Syntax error in parameters or arguments."


def test_non_utf8_path_is_refused() -> None:
    (line,) = ControlLineBuffer().feed(b"STOR /b/caf\xe9\r\n")
    reply = _core().handle(line)
    assert isinstance(reply, Reply)
    assert reply.code == 553


def test_verbs_are_case_insensitive() -> None:
    core = _core()
    assert _text(core, "pwd") == _text(core, "Pwd") == '257 "/" is current directory.'


# -- state commands --------------------------------------------------------------------------------

@pytest.mark.parametrize(("command", "reply", "attribute", "value"), [
    ("TYPE A", "200 Type set to A.", "type", "A"),
    ("type i", "200 Type set to I.", "type", "I"),
    ("TYPE A N", "200 Type set to A.", "type", "A"),
    ("MODE E", "200 Mode set to E.", "mode", "E"),
    ("ALLO 100000", "200 ALLO command successful.", "allo", 100000),
    ("SBUF 1048576", "200 SBUF Command Successful.", "sbuf", 1048576),
    ("PBSZ 1048576", "200 PBSZ=1048576", "pbsz", 1048576),
    ("DCAU N", "200 DCAU N.", "dcau", "N"),
    ("PROT C", "200 Protection level set to C.", "prot", "C"),
    ("LANG en", "200 lang set to EN.", "lang", "EN"),
    ("LANG", "200 lang set to EN.", "lang", "EN"),
    ("TREV PERF 2", "200 Command Successful.", "perf_interval", 2.0),
    ("TREV RESTART 0.5", "200 Command Successful.", "restart_interval", 0.5),
    ("SCKS adler32 28A7052F", "200 OK.", "expected_checksum", ("ADLER32", "28a7052f")),
    ("SITE RETRBUFSIZE 65536", "200 Site Command Successful.", "retr_bufsize", 65536),
    ("SITE RBUFSZ 1", "200 Site Command Successful.", "retr_bufsize", 1),
    ("SITE STORBUFSIZE 2097152", "200 Site Command Successful.", "stor_bufsize", 2097152),
    ("SITE SBUFSIZ 7", "200 Site Command Successful.", "stor_bufsize", 7),
    ("OPTS PASV AllowDelayed=1;", "200 OPTS Command Successful.", "delayed_pasv", True),
    ("OPTS SPAS allowdelayed=1", "200 OPTS Command Successful.", "delayed_pasv", True),
    ("OPTS CKSM markers=3;", "200 OPTS Command Successful.", "cksm_markers", 3),
    ("OPTS MLST Type;Size;UNIX.mode;", "200 OPTS Command Successful.", "mlst_facts",
     ("Type", "Size", "UNIX.mode")),
    ("OPTS MLST type;charset;bogus;", "200 OPTS Command Successful.", "mlst_facts", ("Type", "Charset")),
    ("EPSV ALL", "229 EPSV ALL Successful.", "epsv_all", True),
])
def test_state_command(command: str, reply: str, attribute: str, value: object) -> None:
    core = _core()
    assert _text(core, command) == reply
    assert getattr(core.state, attribute) == value


@pytest.mark.parametrize(("command", "reply"), [
    ("TYPE E", "501 'TYPE E' unrecognized type."),
    ("MODE B", "501 'MODE B' unrecognized transfer mode."),
    ("STRU R", "501 Syntax error in parameter."),
    ("STRU F", "200 STRU F ok."),
    ("ALLO -1", "501 Syntax error in parameters or arguments."),
    ("SBUF -5", "502 Invalid Parameter."),
    ("PBSZ x", "501 Syntax error in parameters or arguments."),
    ("DCAU X", "501 Bad DCAU mode."),
    ("PROT E", "536 E protection level not supported."),
    ("PROT X", "536 X protection level not supported."),
    ("TREV PERF", "501 Syntax error in parameters or arguments."),
    ("TREV PERF 0", "501 Syntax error in parameters or arguments."),
    ("TREV FOO 1", "502 Unsupported event."),
    ("SCKS CRC32 1234", "500 Unknown checksum algorithm requested."),
    ("SCKS 0123", "501 Syntax error in parameters or arguments."),
    ("OPTS RETR Parallelism=0,0,0;", "500 OPTS failed."),
    ("OPTS RETR Parallelism=4,4,4", "500 OPTS failed."),
    ("OPTS PASV AllowDelayed=2;", "500 OPTS failed."),
    ("OPTS MLSR onerror=continue", "500 OPTS failed."),
    ("OPTS MLST", "500 OPTS failed."),
    ("OPTS CKSM foo=1;", "500 OPTS failed."),
    ("SITE CHMOD 644", "501 Syntax error in parameters or arguments."),
    ("SITE CHMOD 9z9 /x", "501 Syntax error in parameters or arguments."),
    ("SITE CHMOD 0600 /srv/data/dst/gfal_up.bin", "250 OK."),
    ("SITE SETDISKSTACK file", "250 OK."),
    ("SITE SETNETSTACK tcp", "250 OK."),
    ("SITE RETRBUFSIZE x", "501 Syntax error in parameters or arguments."),
    ("SITE BUFSIZE 65536", "500 Invalid command."),
    ("SITE CLIENTINFO", "250 OK."),
    ("STAT", "212 GridFTP server status."),
    ("EPSV 3", "522 Network protocol not supported, use (1,2)"),
    ("SPAS 3", "501 Syntax error in parameters or arguments."),
    ("RNTO /x", "501 Invalid command arguments."),
    ("PORT 1,2,3", "501 Illegal PORT command."),
    ("EPRT |3|x|1|", "522 Network protocol not supported, use (1,2)"),
    ("ERET X 1 2 /x", "500 command failed."),
    ('ERET mymod="a=1;b=2" /srv/data/src/small.bin', "500 command failed."),
    ('ESTO mymod="x=y" /x', "500 command failed."),
    ("CKSM CRC32 0 -1 /x", "500 Unknown checksum algorithm requested."),
    ("CKSM MD5 0 -2 /x", "501 Syntax error in parameters or arguments."),
])
def test_state_errors(command: str, reply: str) -> None:
    assert _text(_core(), command) == reply


def test_opts_retr_applies_all_or_nothing() -> None:
    core = _core()
    assert _text(core, "OPTS RETR StripeLayout=Blocked;BlockSize=1048576;Parallelism=2,2,2;markers=5;"
                       "windowsize=65536;packetsize=1400;") == "200 OPTS Command Successful."
    state = core.state
    assert (state.parallelism, state.stripe_layout, state.stripe_block_size, state.retr_markers,
            state.window_size, state.packet_size) == (2, "Blocked", 1048576, 5.0, 65536, 1400)
    assert _text(core, "OPTS RETR Parallelism=7,7,7;Bogus=1;") == "500 OPTS failed."
    assert state.parallelism == 2
    _reply(core, "OPTS RETR markers=0;")
    assert state.retr_markers is None


def test_mode_e_unsupported() -> None:
    core = _core(mode_e_supported=False)
    assert _text(core, "MODE E") == "504 Command not implemented for that parameter."
    assert core.state.mode == "S"
    assert " PARALLEL" not in _reply(core, "FEAT").lines


def test_checksum_algorithms_drive_feat_and_cksm() -> None:
    core = _core(checksum_algorithms=["md5", "adler32"])
    assert _reply(core, "FEAT").lines[1] == " CKSM MD5:10;ADLER32:10;"
    assert _text(core, "CKSM SHA1 0 -1 /x") == "500 Unknown checksum algorithm requested."
    assert _deferred(core, "CKSM md5 0 -1 /x").algorithm == "MD5"


def test_site_clientinfo_is_stored() -> None:
    core = _core()
    _reply(core, 'SITE CLIENTINFO scheme=ftp;appname="globus-url-copy";appver="10.12 (gcc64) [GCT 6.2]";')
    assert core.state.client_info == {"scheme": "ftp", "appname": "globus-url-copy",
                                      "appver": "10.12 (gcc64) [GCT 6.2]"}


def test_site_help_and_version() -> None:
    core = _core()
    assert _reply(core, "SITE HELP").lines == _reply(core, "HELP").lines
    assert _reply(core, "SITE HELP RETR").lines == _reply(core, "HELP RETR").lines
    assert _text(core, "SITE VERSION") == f"200 s3dsi {core.version}"


# -- one-shot state --------------------------------------------------------------------------------

def test_rest_and_allo_are_one_shot() -> None:
    core = _core()
    assert core.take_rest() is None
    assert core.take_allo() is None
    assert _text(core, "REST 100") == "350 Restart Marker OK. Send STORE or RETR to initiate transfer."
    _reply(core, "ALLO 5")
    _deferred(core, "PASV")  # data setup between REST and the transfer keeps it
    rest = core.take_rest()
    assert rest == RestMarker(held=((0, 100),), stream_offset=100)
    assert core.take_rest() is None
    assert core.take_allo() == 5
    assert core.take_allo() is None
    _reply(core, "REST 0-100,200-300")
    taken = core.take_rest()
    assert taken is not None
    assert taken.held_ranges() == RangeList([(0, 100), (200, 300)])
    assert _text(core, "REST abc") == "501 bad parameter."
    assert core.take_rest() is None
    _reply(core, "SCKS MD5 ABC")
    assert core.take_expected_checksum() == ("MD5", "abc")
    assert core.take_expected_checksum() is None


def test_rnfr_rnto() -> None:
    core = _core()
    rnfr = _deferred(core, "RNFR /b/a.txt")
    assert rnfr.target is not None
    assert rnfr.target.path == "/b/a.txt"
    assert core.rnfr_accepted(rnfr.target.path).lines == ("350 OK. Send RNTO with destination name.",)
    rnto = _deferred(core, "RNTO c.txt")
    assert rnto.rename_from == "/b/a.txt"
    assert rnto.target is not None
    assert rnto.target.path == "/c.txt"
    assert _text(core, "RNTO /d") == "501 Invalid command arguments."


def test_rnfr_is_discarded_by_any_other_command() -> None:
    core = _core()
    core.rnfr_accepted("/b/a")
    _reply(core, "NOOP")
    assert _text(core, "RNTO /b/c") == "501 Invalid command arguments."


# -- deferred commands carry parsed values ---------------------------------------------------------

def test_paths_are_resolved_against_cwd() -> None:
    core = _core()
    core.changed_directory("/bucket/dir")
    assert _text(core, "PWD") == '257 "/bucket/dir" is current directory.'
    deferred = _deferred(core, "RETR ../x/./y")
    assert deferred.target is not None
    assert deferred.target.path == "/bucket/x/y"
    mlst = _deferred(core, "MLST")
    assert mlst.target is not None
    assert (mlst.target.path, mlst.target.given) == ("/bucket/dir", "/bucket/dir")
    mlsd = _deferred(core, "MLSD sub/")
    assert mlsd.target is not None
    assert mlsd.target.trailing_slash
    assert mlsd.target.given == "sub/"
    cdup = _deferred(core, "CDUP")
    assert cdup.target is not None
    assert cdup.target.path == "/bucket"
    assert core.resolve("..") == "/bucket"


@pytest.mark.parametrize(("command", "path"), [
    ("LIST -a /srv/data/raw", "/srv/data/raw"), ("LIST -la", "/"), ("LIST", "/"), ("NLST -l -a /x y", "/x y"),
    ("NLST /srv/data/raw/dir1", "/srv/data/raw/dir1"), ("STAT /a", "/a"),
])
def test_listing_targets(command: str, path: str) -> None:
    deferred = _deferred(_core(), command)
    assert deferred.target is not None
    assert deferred.target.path == path


def test_data_channel_commands_carry_addresses() -> None:
    core = _core()
    assert _deferred(core, "PORT 127,0,0,1,200,10").addresses == (("127.0.0.1", 51210),)
    assert _deferred(core, "EPRT |2|::1|51210|").addresses == (("::1", 51210),)
    assert _deferred(core, "SPOR 127,0,0,1,200,10 127,0,0,1,200,11").addresses == (
        ("127.0.0.1", 51210), ("127.0.0.1", 51211))
    for command in ("PASV", "EPSV", "EPSV 2", "SPAS", "SPAS 2", "ABOR"):
        assert _deferred(core, command).spec.kind == "io"


def test_partial_transfer_and_checksum_values() -> None:
    core = _core()
    eret = _deferred(core, "ERET P 1000 5000 /srv/data/raw/small file.bin")
    assert (eret.offset, eret.length) == (1000, 5000)
    assert eret.target is not None
    assert eret.target.path == "/srv/data/raw/small file.bin"
    esto = _deferred(core, "ESTO A 100 eb_up3.bin")
    assert esto.offset == 100
    assert esto.target is not None
    assert esto.target.path == "/eb_up3.bin"
    cksm = _deferred(core, "CKSM ADLER32 0 -1 /srv/data/raw/hello.txt")
    assert (cksm.algorithm, cksm.offset, cksm.length) == ("ADLER32", 0, -1)


def test_every_io_command_in_the_table_can_be_deferred() -> None:
    samples = {"PORT": "PORT 127,0,0,1,1,1", "EPRT": "EPRT |1|127.0.0.1|2000|", "SPOR": "SPOR 127,0,0,1,1,1",
               "ERET": "ERET P 0 1 /x", "ESTO": "ESTO A 0 /x", "CKSM": "CKSM MD5 0 -1 /x", "STAT": "STAT /x"}
    for spec in COMMANDS.values():
        if spec.kind != "io":
            continue
        core = _core()
        if spec.verb == "PASS":
            core = _core(logged_in=False)
            _reply(core, "USER u")
        if spec.verb == "RNTO":
            core.rnfr_accepted("/a")
        command = samples.get(spec.verb, spec.verb + (" /x" if spec.arg == "required" else ""))
        assert _deferred(core, command).spec is spec
