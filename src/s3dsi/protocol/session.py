"""The control session's state machine: command lines in, replies (or I/O requests) out.

Rules of the session — every state transition happens in this module:

1. Each command line gets exactly one final reply. ``handle`` returns it as a ``Reply``, or returns
   a ``Deferred`` when answering needs I/O (storage, sockets); the network layer then sends the
   final reply, preceded by any preliminary ones (127, 150/125, 111, 112). Lines must be handled
   in arrival order, each Deferred completed before the next line is handled (ABOR of a running
   transfer excepted, which the network layer answers on its own).
2. Unknown verbs, and verbs switched off by ``disable_command_list``, get ``500 Command not
   supported.`` in every state. Before login only commands marked ``pre_auth`` run; the rest get
   ``530 Please login with USER and PASS.`` Switched-off arguments (``protocol/disabled.py``) are
   refused once the login and argument checks passed.
3. Login: ``USER`` stores ``pending_user`` (331). ``PASS`` without it is ``503``; with it PASS is
   deferred, and the network layer reports the outcome with ``login_succeeded`` (230) or
   ``login_failed`` (530, pending user cleared). USER/PASS after login are refused with 503.
4. Argument presence follows the command table (501); path arguments that are not UTF-8 get 553;
   every grammar error is answered here with GT's text, so a Deferred is always well-formed and
   carries its parsed values.
5. One-shot state: ``REST``, ``ALLO`` and ``SCKS`` stay until a transfer takes them
   (``take_rest``/``take_allo``/``take_expected_checksum``). ``RNFR`` (once the layer confirmed the
   source with ``rnfr_accepted``) is only valid for the very next command: an ``RNTO`` carries
   it in its Deferred, any other command discards it.
6. Session settings (TYPE, MODE, OPTS, SBUF, DCAU, PROT, PBSZ, TREV, LANG, MLST facts, CWD) last
   until changed. CWD/CDUP change the directory only through ``changed_directory``.
7. ``QUIT`` answers 221 and sets ``closing``; the network layer closes after sending it.
8. Security (RFC 2228/4217): while an AUTH GSSAPI exchange runs (``auth_in_progress``) only ADAT and
   QUIT are accepted (530 ``Must perform GSSAPI authentication.``, as GT). Once the control channel is
   protected (``protection``), the layer turns an unprotected command into a sentinel line answered
   with 533 (and an undecodable token with 535); PBSZ and PROT are then allowed before login, and
   ``PROT P|S`` is accepted (recorded for the data channels). ``require_protection`` refuses
   USER/PASS on a clear-text channel. A transfer or listing with a protection level other than C is
   refused with 521 until data-channel protection exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from s3dsi import __version__
from s3dsi.protocol.commands import (
    COMMANDS,
    RETR_BUFFER_COMMANDS,
    SITE_COMMANDS,
    STOR_BUFFER_COMMANDS,
    CommandSpec,
    feat_reply,
    help_reply,
)
from s3dsi.protocol.disabled import DisabledCommands
from s3dsi.protocol.lines import UNDECODABLE_LINE, UNPROTECTED_LINE, CommandLine
from s3dsi.protocol.listing import DEFAULT_FACTS, SUPPORTED_FACTS
from s3dsi.protocol.parsing import (
    OPTS_FAILED,
    ProtocolSyntaxError,
    parse_allow_delayed,
    parse_cksm,
    parse_cksm_markers,
    parse_clientinfo,
    parse_eprt,
    parse_eret,
    parse_esto,
    parse_mlst_facts,
    parse_opts_retr,
    parse_port,
    parse_rest,
    parse_spor,
    parse_uint,
)
from s3dsi.protocol.paths import Target, parent
from s3dsi.protocol.ranges import RestMarker
from s3dsi.protocol.replies import (
    ACTION_OK,
    CWD_OK,
    EPSV_ALL_OK,
    LINE_TOO_LONG,
    LOGIN_REQUIRED,
    NOT_SUPPORTED,
    RNFR_ACCEPTED,
    SYNTAX_ERROR,
    UNKNOWN_CHECKSUM,
    Reply,
    pwd_reply,
)

DEFAULT_CHECKSUMS = ("MD5", "ADLER32", "SHA1", "SHA256", "SHA512", "CRC32C")

_OCTAL_MODE = re.compile(r"[0-7]{3,4}")
_INTERVAL = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,3})?")

_ALREADY_LOGGED_IN = Reply.line(503, "You are already logged in.")
_UNPROTECTED_VERB = UNPROTECTED_LINE.decode().strip()
_UNDECODABLE_VERB = UNDECODABLE_LINE.decode().strip()
UNPROTECTED_REFUSED = Reply.line(533, "Command protection level denied for paranoid reasons.")
UNDECODABLE_REFUSED = Reply.line(535, "Failed security check: the protected command could not be decoded.")
EXPECTING_ADAT = Reply.line(530, "Must perform GSSAPI authentication.")
PROTECTION_REQUIRED = Reply.line(530, "Login refused: this server requires a protected control connection; "
                                      "use AUTH TLS (FTPS) or gsiftp://.")
_DATA_COMMANDS = frozenset({"RETR", "STOR", "APPE", "ERET", "ESTO", "LIST", "NLST", "MLSD", "MLSR"})
_SECURITY_PRE_AUTH = frozenset({"PBSZ", "PROT", "CCC"})
_MODE_E_UNAVAILABLE = Reply.line(504, "Command not implemented for that parameter.")


@dataclass
class SessionState:
    """Everything a control session remembers between commands (mutated only by ProtocolCore)."""

    logged_in: bool = False
    user: str | None = None  # the local user the session acts as
    login_name: str | None = None  # the name given with USER (230, SITE WHOAMI)
    pending_user: str | None = None
    cwd: str = "/"
    type: str = "A"  # RFC 959 default; every GridFTP client sends TYPE I
    mode: str = "S"
    rest: RestMarker | None = None
    rnfr: str | None = None
    allo: int | None = None
    parallelism: int = 1
    retr_markers: float | None = None  # seconds between 112s during RETR (OPTS RETR markers=N;)
    stripe_layout: str | None = None  # "Blocked" | "Partitioned"
    stripe_block_size: int | None = None
    window_size: int | None = None
    packet_size: int | None = None
    delayed_pasv: bool = False
    mlst_facts: tuple[str, ...] = DEFAULT_FACTS
    dcau: str = "N"  # "A" by default once GSSAPI protects the control channel
    dcau_subject: str | None = None  # DCAU S <subject>
    prot: str = "C"
    pbsz: int | None = None
    sbuf: int | None = None
    retr_bufsize: int | None = None  # SITE RETRBUFSIZE: socket buffer when we send
    stor_bufsize: int | None = None  # SITE STORBUFSIZE: socket buffer when we receive
    perf_interval: float = 5.0
    restart_interval: float = 5.0
    client_info: dict[str, str] = field(default_factory=dict)
    lang: str = "EN"
    cksm_markers: int | None = None
    expected_checksum: tuple[str, str] | None = None  # (ALGORITHM, lowercase hex) from SCKS
    epsv_all: bool = False  # recorded only: GT keeps accepting PORT/PASV after EPSV ALL
    task_id: str | None = None  # SITE TASKID: the client's task, written in the transfer log
    protection: str | None = None  # "GSSAPI" | "TLS" once the control channel is protected
    auth_in_progress: bool = False  # between AUTH GSSAPI (334) and the end of the ADAT exchange


@dataclass(frozen=True)
class Deferred:
    """A well-formed command the network layer must carry out, with its arguments parsed.

    ``target``: the path argument (ERET/ESTO/CKSM: the path after the numbers; MLST & co without an
    argument: the working directory; CDUP: its parent). ``addresses``: PORT/EPRT/SPOR. ``offset``
    and ``length``: ERET (offset, length), ESTO (offset), CKSM (offset, length; -1 = to the end).
    ``algorithm``: CKSM, upper-case and supported. ``rename_from``: RNTO's source.
    """

    spec: CommandSpec
    line: CommandLine
    target: Target | None = None
    addresses: tuple[tuple[str, int], ...] = ()
    offset: int = 0
    length: int = -1
    algorithm: str | None = None
    rename_from: str | None = None


Handler = Callable[[CommandSpec, CommandLine], "Reply | Deferred"]


class ProtocolCore:
    """Pure GridFTP control logic for one session (see the rules at the top of this module)."""

    def __init__(self, *, checksum_algorithms: Sequence[str] = DEFAULT_CHECKSUMS,
                 mode_e_supported: bool = True, version: str = __version__,
                 state: SessionState | None = None, require_protection: bool = False,
                 require_private_data: bool = False, auth_mechanisms: Sequence[str] = (),
                 disabled: DisabledCommands | None = None) -> None:
        self.checksum_algorithms = tuple(alg.upper() for alg in checksum_algorithms)
        self.require_protection = require_protection
        self.require_private_data = require_private_data  # encrypt_data: data commands need PROT P
        self.auth_mechanisms = tuple(auth_mechanisms)
        self.disabled = disabled or DisabledCommands()
        self.mode_e_supported = mode_e_supported
        self.version = version
        self.state = state if state is not None else SessionState()
        self.closing = False
        self._handlers: dict[str, Handler] = {
            "USER": self._user, "PASS": self._pass, "QUIT": self._quit, "NOOP": self._noop,
            "SYST": self._syst, "FEAT": self._feat, "HELP": self._help,
            "TYPE": self._type, "MODE": self._mode, "STRU": self._stru,
            "PWD": self._pwd, "ALLO": self._allo, "REST": self._rest, "SBUF": self._sbuf,
            "DCAU": self._dcau, "PBSZ": self._pbsz, "PROT": self._prot, "LANG": self._lang,
            "TREV": self._trev, "SCKS": self._scks, "OPTS": self._opts, "SITE": self._site,
            "STAT": self._stat, "RNTO": self._rnto, "CDUP": self._cdup, "EPSV": self._epsv,
            "SPAS": self._spas, "PORT": self._port, "EPRT": self._eprt, "SPOR": self._spor,
            "ERET": self._eret, "ESTO": self._esto, "CKSM": self._cksm, "LIST": self._list,
            "NLST": self._list, "CCC": self._ccc,
        }

    # -- entry points ----------------------------------------------------------------------------
    def greeting(self, host: str, banner: str | None = None, *, terse: bool = False) -> Reply:
        """``220 <host> GridFTP Server s3dsi <version> ready.``, after the admin's banner lines if any;
        ``terse`` (banner_terse): neither the version nor the banner."""
        if terse:
            return Reply.line(220, f"{host} GridFTP Server ready.")
        final = f"{host} GridFTP Server s3dsi {self.version} ready."
        if not banner or not banner.strip():
            return Reply.line(220, final)
        lines = banner.strip("\r\n").splitlines()
        return Reply.multi(220, lines[0], [f" {line}" for line in lines[1:]], final)

    def handle(self, line: CommandLine) -> Reply | Deferred:
        if line.verb != "RNTO":
            self.state.rnfr = None
        if line.too_long:
            return LINE_TOO_LONG
        if line.verb == _UNPROTECTED_VERB:
            return UNPROTECTED_REFUSED
        if line.verb == _UNDECODABLE_VERB:
            return UNDECODABLE_REFUSED
        if self.state.auth_in_progress and line.verb not in ("ADAT", "QUIT"):
            return EXPECTING_ADAT
        spec = COMMANDS.get(line.verb)
        if spec is None:
            return NOT_SUPPORTED
        removed = self.disabled.removed(spec.verb)
        if removed is not None:
            return removed
        protected = self.state.protection is not None
        early = spec.pre_auth or (protected and spec.verb in _SECURITY_PRE_AUTH)
        if not self.state.logged_in and not early:
            return LOGIN_REQUIRED
        if spec.verb in _DATA_COMMANDS and self.require_private_data and self.state.prot != "P":
            return Reply.line(521, "Data connections must be encrypted on this server (encrypt_data): send "
                                   "PROT P (globus-url-copy -dcpriv, curl --ssl-reqd).")
        if spec.verb in _DATA_COMMANDS and self.state.prot != "C" and self.state.protection == "GSSAPI" \
                and self.state.dcau == "N":
            return Reply.line(521, f"Data connection cannot be opened with PROT {self.state.prot} and DCAU "
                                   "N: protected data needs an authenticated data channel (DCAU A or S).")
        if (spec.arg == "required" and line.arg is None) or (spec.arg == "none" and line.arg is not None):
            return SYNTAX_ERROR
        refused = self.disabled.refused(spec.verb, line.arg)
        if refused is not None:
            return refused
        if spec.takes_path and line.arg is not None and line.has_undecodable:
            return Reply.line(553, "File name not allowed: it is not valid UTF-8.")
        handler = self._handlers.get(spec.verb)
        try:
            if handler is not None:
                return handler(spec, line)
            return Deferred(spec, line, target=self._target(line.arg) if spec.takes_path else None)
        except ProtocolSyntaxError as err:
            return err.reply

    # -- completions called by the network layer -------------------------------------------------
    def login_succeeded(self, user: str, name: str | None = None) -> Reply:
        """PASS accepted: the session now acts as local ``user``. ``230 User <name> logged in.``

        ``name``: the login name to show (GSI: the mapped account instead of ``:globus-mapping:``).
        """
        pending = self.state.pending_user
        if pending is None:
            raise RuntimeError("login_succeeded without a pending USER")
        name = name or pending
        self.state.logged_in = True
        self.state.user = user
        self.state.login_name = name
        self.state.pending_user = None
        return Reply.line(230, f"User {name} logged in.")

    def login_failed(self, reason: str | None = None) -> Reply:
        """``530 Login incorrect.`` (``: <reason>`` appended when given; keep it free of secrets)."""
        self.state.pending_user = None
        text = "Login incorrect." if not reason else f"Login incorrect. : {reason}"
        return Reply.line(530, text)

    def changed_directory(self, path: str) -> Reply:
        """CWD/CDUP target verified as a directory: ``250 CWD command successful.``"""
        self.state.cwd = path
        return CWD_OK

    def rnfr_accepted(self, path: str) -> Reply:
        """RNFR source verified: ``350 OK. Send RNTO with destination name.``"""
        self.state.rnfr = path
        return RNFR_ACCEPTED

    def take_rest(self) -> RestMarker | None:
        rest, self.state.rest = self.state.rest, None
        return rest

    def take_allo(self) -> int | None:
        allo, self.state.allo = self.state.allo, None
        return allo

    def take_expected_checksum(self) -> tuple[str, str] | None:
        expected, self.state.expected_checksum = self.state.expected_checksum, None
        return expected

    def resolve(self, arg: str | None) -> str:
        """Absolute normalised path of ``arg`` from the working directory."""
        return self._target(arg).path

    def feat(self) -> Reply:
        return feat_reply(logged_in=self.state.logged_in, checksum_algorithms=self.checksum_algorithms,
                          mode_e=self.mode_e_supported, auth_mechanisms=self.auth_mechanisms)

    # -- helpers ---------------------------------------------------------------------------------
    def _target(self, arg: str | None) -> Target:
        return Target.of(self.state.cwd, arg)

    # -- login and informational -----------------------------------------------------------------
    def _user(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        if self.state.logged_in:
            return _ALREADY_LOGGED_IN
        if self.require_protection and self.state.protection is None:
            return PROTECTION_REQUIRED
        name = line.arg or ""
        self.state.pending_user = name
        return Reply.line(331, f"Password required for {name}.")

    def _pass(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        if self.state.logged_in:
            return _ALREADY_LOGGED_IN
        if self.require_protection and self.state.protection is None:
            self.state.pending_user = None
            return PROTECTION_REQUIRED
        if self.state.pending_user is None:
            return Reply.line(503, "Login with USER first.")
        return Deferred(spec, line)

    def _quit(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        self.closing = True
        return Reply.line(221, "Goodbye.")

    def _noop(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        return Reply.line(200, "NOOP command successful.")

    def _syst(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        return Reply.line(215, "UNIX Type: L8")

    def _feat(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        return self.feat()

    def _help(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        return help_reply(line.arg)

    def _ccc(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        return Reply.line(534, "CCC refused: the control connection stays protected.")

    # -- security exchange (the network layer runs AUTH/ADAT and reports here) --------------------
    def auth_started(self) -> Reply:
        """AUTH GSSAPI accepted: only ADAT (and QUIT) until the exchange ends."""
        self.state.auth_in_progress = True
        return Reply.line(334, "Using authentication type; ADAT must follow.")

    def auth_ended(self, protection: str | None) -> None:
        """The exchange succeeded (``protection`` = the mechanism now protecting the channel) or failed."""
        self.state.auth_in_progress = False
        if protection is not None:
            self.state.protection = protection
            if protection == "GSSAPI":
                self.state.dcau = "A"  # the default once the control channel is GSSAPI-authenticated

    def _pwd(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        return pwd_reply(self.state.cwd)

    # -- transfer parameters ---------------------------------------------------------------------
    def _type(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        words = (line.arg or "").upper().split()
        if words in (["A"], ["A", "N"]):
            self.state.type = "A"
        elif words in (["I"], ["L", "8"]):
            self.state.type = "I"
        else:
            return Reply.line(501, f"'TYPE {line.arg}' unrecognized type.")
        return Reply.line(200, f"Type set to {self.state.type}.")

    def _mode(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        mode = (line.arg or "").strip().upper()
        if mode == "E" and not self.mode_e_supported:
            return _MODE_E_UNAVAILABLE
        if mode not in ("S", "E"):
            return Reply.line(501, f"'MODE {line.arg}' unrecognized transfer mode.")
        self.state.mode = mode
        return Reply.line(200, f"Mode set to {mode}.")

    def _stru(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        if (line.arg or "").strip().upper() != "F":
            return Reply.line(501, "Syntax error in parameter.")
        return Reply.line(200, "STRU F ok.")

    def _allo(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        words = (line.arg or "").split()
        self.state.allo = parse_uint(words[0] if words else "")
        return Reply.line(200, "ALLO command successful.")

    def _rest(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        self.state.rest = parse_rest(line.arg or "")
        return Reply.line(350, "Restart Marker OK. Send STORE or RETR to initiate transfer.")

    def _sbuf(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        self.state.sbuf = parse_uint((line.arg or "").strip(), Reply.line(502, "Invalid Parameter."))
        return Reply.line(200, "SBUF Command Successful.")

    def _dcau(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        words = (line.arg or "").split(None, 1)
        mode = words[0].upper() if words else ""
        if mode == "N":
            self.state.dcau, self.state.dcau_subject = "N", None
            return Reply.line(200, "DCAU N.")
        if mode not in ("A", "S"):
            return Reply.line(501, "Bad DCAU mode.")
        if self.state.protection != "GSSAPI":
            return Reply.line(504, f"DCAU {mode} not supported: no security context (only DCAU N).")
        if mode == "S":
            if len(words) < 2 or not words[1].strip():
                return Reply.line(501, "DCAU S expected subject.")
            self.state.dcau, self.state.dcau_subject = "S", words[1].strip()
            return Reply.line(200, "DCAU S.")
        self.state.dcau, self.state.dcau_subject = "A", None
        return Reply.line(200, "DCAU A.")

    def _pbsz(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        self.state.pbsz = parse_uint((line.arg or "").strip())
        return Reply.line(200, f"PBSZ={self.state.pbsz}")

    def _prot(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        level = (line.arg or "").strip().upper()
        if level != "C" and not (level in ("S", "P") and self.state.protection is not None):
            return Reply.line(536, f"{level} protection level not supported.")
        self.state.prot = level
        return Reply.line(200, f"Protection level set to {level}.")

    def _lang(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        if line.arg is not None and line.arg.strip().upper() != "EN":
            return Reply.line(501, f"'LANG {line.arg}' unrecognized language.")
        self.state.lang = "EN"
        return Reply.line(200, "lang set to EN.")

    def _trev(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        words = (line.arg or "").split()
        event = words[0].upper() if words else ""
        if event not in ("PERF", "RESTART"):
            return Reply.line(502, "Unsupported event.")
        if len(words) != 2 or _INTERVAL.fullmatch(words[1]) is None or float(words[1]) <= 0:
            return SYNTAX_ERROR
        if event == "PERF":
            self.state.perf_interval = float(words[1])
        else:
            self.state.restart_interval = float(words[1])
        return Reply.line(200, "Command Successful.")

    def _scks(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        words = (line.arg or "").split()
        if len(words) != 2:
            return SYNTAX_ERROR
        algorithm = words[0].upper()
        if algorithm not in self.checksum_algorithms:
            return UNKNOWN_CHECKSUM
        self.state.expected_checksum = (algorithm, words[1].lower())
        return Reply.line(200, "OK.")

    def _opts(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        command, _, options = (line.arg or "").strip().partition(" ")
        command = command.upper()
        if not options.strip():
            return OPTS_FAILED
        state = self.state
        if command == "RETR":
            retr = parse_opts_retr(options.strip())
            if retr.parallelism is not None:
                state.parallelism = retr.parallelism
            if retr.stripe_layout is not None:
                state.stripe_layout = retr.stripe_layout
            if retr.block_size is not None:
                state.stripe_block_size = retr.block_size
            if retr.markers is not None:
                state.retr_markers = retr.markers or None
            if retr.window_size is not None:
                state.window_size = retr.window_size
            if retr.packet_size is not None:
                state.packet_size = retr.packet_size
        elif command in ("PASV", "SPAS", "EPSV"):
            state.delayed_pasv = parse_allow_delayed(options)
        elif command in ("MLST", "MLSD"):
            state.mlst_facts = parse_mlst_facts(options, SUPPORTED_FACTS)
        elif command == "CKSM":
            state.cksm_markers = parse_cksm_markers(options.strip()) or None
        else:
            return OPTS_FAILED
        return Reply.line(200, "OPTS Command Successful.")

    # -- SITE ------------------------------------------------------------------------------------
    def _site(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        name, _, rest = (line.arg or "").strip().partition(" ")
        site = SITE_COMMANDS.get(name.upper())
        if site is None:
            return Reply.line(500, "Invalid command.")
        argument = rest.strip() or None
        if site.arg == "required" and argument is None:
            return SYNTAX_ERROR
        state = self.state
        if site.name == "HELP":
            return help_reply(argument)
        if site.name == "CLIENTINFO":
            state.client_info = parse_clientinfo(argument or "")
            return ACTION_OK
        if site.name == "CHMOD":
            words = (argument or "").split(" ", 1)
            if len(words) != 2 or _OCTAL_MODE.fullmatch(words[0]) is None or not words[1]:
                return SYNTAX_ERROR
            return ACTION_OK
        if site.name in RETR_BUFFER_COMMANDS:
            state.retr_bufsize = parse_uint(argument or "")
            return Reply.line(200, "Site Command Successful.")
        if site.name in STOR_BUFFER_COMMANDS:
            state.stor_bufsize = parse_uint(argument or "")
            return Reply.line(200, "Site Command Successful.")
        if site.name == "WHOAMI":
            return Reply.line(200, state.login_name or "")
        if site.name == "VERSION":
            return Reply.line(200, f"s3dsi {self.version}")
        if site.name == "TASKID":
            state.task_id = argument
            return ACTION_OK
        return ACTION_OK  # SETDISKSTACK / SETNETSTACK: nothing to choose for S3

    # -- commands that need I/O: validate, then defer --------------------------------------------
    def _stat(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        if line.arg is None:
            return Reply.line(212, "GridFTP server status.")
        return Deferred(spec, line, target=self._target(line.arg))

    def _rnto(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        source, self.state.rnfr = self.state.rnfr, None
        if source is None:
            return Reply.line(501, "Invalid command arguments.")
        return Deferred(spec, line, target=self._target(line.arg), rename_from=source)

    def _cdup(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        up = parent(self.state.cwd)
        return Deferred(spec, line, target=Target(path=up, given=up))

    def _list(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        # `LIST -a /dir`, `LIST -la`: ls-style options are accepted and ignored.
        arg = line.arg
        while arg is not None and arg.startswith("-"):
            _, _, remainder = arg.partition(" ")
            arg = remainder.lstrip(" ") or None
        return Deferred(spec, line, target=self._target(arg))

    def _epsv(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        argument = (line.arg or "").strip().upper()
        if argument == "ALL":
            self.state.epsv_all = True
            return EPSV_ALL_OK
        if argument not in ("", "1", "2"):
            return Reply.line(522, "Network protocol not supported, use (1,2)")
        return Deferred(spec, line)

    def _spas(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        if (line.arg or "").strip() not in ("", "2"):
            return SYNTAX_ERROR
        return Deferred(spec, line)

    def _port(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        return Deferred(spec, line, addresses=(parse_port(line.arg or ""),))

    def _eprt(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        return Deferred(spec, line, addresses=(parse_eprt(line.arg or ""),))

    def _spor(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        return Deferred(spec, line, addresses=tuple(parse_spor(line.arg or "")))

    def _eret(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        offset, length, path = parse_eret(line.arg or "")
        return Deferred(spec, line, target=self._target(path), offset=offset, length=length)

    def _esto(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        offset, path = parse_esto(line.arg or "")
        return Deferred(spec, line, target=self._target(path), offset=offset)

    def _cksm(self, spec: CommandSpec, line: CommandLine) -> Reply | Deferred:
        algorithm, offset, length, path = parse_cksm(line.arg or "")
        if algorithm not in self.checksum_algorithms:
            return UNKNOWN_CHECKSUM
        return Deferred(spec, line, target=self._target(path), offset=offset, length=length,
                        algorithm=algorithm)

