"""The one declarative command table: it drives dispatch, argument checks, HELP, SITE HELP and FEAT.

``kind="state"`` commands are answered by the pure core; ``kind="io"`` commands come back to the
network layer as ``Deferred`` (the core still answers their syntax errors and the cases that need
no I/O, such as PASS before USER or STAT without a path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from s3dsi.protocol.listing import FEAT_FACTS
from s3dsi.protocol.replies import Reply

ArgRule = Literal["none", "optional", "required"]
Kind = Literal["state", "io"]


@dataclass(frozen=True)
class CommandSpec:
    verb: str
    syntax: str
    pre_auth: bool
    arg: ArgRule
    kind: Kind
    takes_path: bool = False  # the argument is (or ends with) a path: checked for UTF-8, resolved
    listed: bool = True  # shown by HELP; False for placeholders that are not implemented


def _spec(verb: str, syntax: str, arg: ArgRule, kind: Kind, *, pre_auth: bool = False,
          path: bool = False, listed: bool = True) -> CommandSpec:
    return CommandSpec(verb, syntax, pre_auth, arg, kind, path, listed)


# Order = HELP order (GT's, without MFMT and DCSC, plus ABOR).
_TABLE: Final = (
    _spec("ALLO", "ALLO <sp> <decimal integer>", "required", "state"),
    _spec("APPE", "APPE <sp> pathname", "required", "io", path=True),
    _spec("REST", "REST <sp> <restart marker: offset or ranges a-b,c-d>", "required", "state"),
    _spec("CWD", "CWD <sp> pathname", "required", "io", path=True),
    _spec("CDUP", "CDUP (up one directory level)", "none", "io"),
    _spec("DCAU", "DCAU <sp> N | A | S <subject>", "required", "state"),
    _spec("EPSV", "EPSV [<sp> 1 | 2 | ALL]", "optional", "io"),
    _spec("FEAT", "FEAT (list the extensions supported)", "none", "state", pre_auth=True),
    _spec("ERET", "ERET <sp> P <sp> offset <sp> length <sp> pathname", "required", "io", path=True),
    _spec("MDTM", "MDTM <sp> pathname", "required", "io", path=True),
    _spec("STAT", "STAT [<sp> pathname]", "optional", "io", path=True),
    _spec("ESTO", "ESTO <sp> A <sp> offset <sp> pathname", "required", "io", path=True),
    _spec("HELP", "HELP [<sp> command]", "optional", "state", pre_auth=True),
    _spec("LIST", "LIST [<sp> pathname]", "optional", "io", path=True),
    _spec("MODE", "MODE <sp> S | E", "required", "state"),
    _spec("NLST", "NLST [<sp> pathname]", "optional", "io", path=True),
    _spec("MLSC", "MLSC [<sp> pathname]", "optional", "io", path=True),
    _spec("MLSD", "MLSD [<sp> pathname]", "optional", "io", path=True),
    _spec("PASV", "PASV (enter passive mode)", "none", "io"),
    _spec("RNFR", "RNFR <sp> pathname", "required", "io", path=True),
    _spec("MLSR", "MLSR [<sp> pathname]", "optional", "io", path=True),
    _spec("MLST", "MLST [<sp> pathname]", "optional", "io", path=True),
    _spec("NOOP", "NOOP", "none", "state", pre_auth=True),
    _spec("OPTS", "OPTS <sp> command <sp> options", "required", "state"),
    _spec("STOR", "STOR <sp> pathname", "required", "io", path=True),
    _spec("PASS", "PASS <sp> password", "optional", "io", pre_auth=True),
    _spec("PBSZ", "PBSZ <sp> size", "required", "state"),
    _spec("PORT", "PORT <sp> h1,h2,h3,h4,p1,p2", "required", "io"),
    _spec("PROT", "PROT <sp> C | P (P: on an AUTH TLS/GSSAPI control channel)", "required", "state"),
    _spec("SITE", "SITE <sp> command [<sp> arguments]", "required", "state"),
    _spec("EPRT", "EPRT <sp> |af|address|port|", "required", "io"),
    _spec("RETR", "RETR [<sp> pathname]", "required", "io", path=True),
    _spec("SPOR", "SPOR <sp> h1,h2,h3,h4,p1,p2 [<sp> ...]", "required", "io"),
    _spec("SCKS", "SCKS <sp> algorithm <sp> checksum", "required", "state"),
    _spec("TREV", "TREV <sp> PERF | RESTART <sp> seconds", "required", "state"),
    _spec("PWD", "PWD (print working directory)", "none", "state"),
    _spec("QUIT", "QUIT (close the session)", "optional", "state", pre_auth=True),
    _spec("SBUF", "SBUF <sp> buffer size", "required", "state"),
    _spec("SIZE", "SIZE <sp> pathname", "required", "io", path=True),
    _spec("SPAS", "SPAS [<sp> 2]", "optional", "io"),
    _spec("STRU", "STRU <sp> F", "required", "state"),
    _spec("SYST", "SYST", "none", "state"),
    _spec("RNTO", "RNTO <sp> pathname", "required", "io", path=True),
    _spec("TYPE", "TYPE <sp> A | I", "required", "state"),
    _spec("USER", "USER <sp> username", "required", "state", pre_auth=True),
    _spec("LANG", "LANG [<sp> EN]", "optional", "state"),
    _spec("MKD", "MKD <sp> pathname", "required", "io", path=True),
    _spec("RMD", "RMD <sp> pathname", "required", "io", path=True),
    _spec("DELE", "DELE <sp> pathname", "required", "io", path=True),
    _spec("CKSM", "CKSM <sp> algorithm <sp> offset <sp> length <sp> pathname", "required", "io",
          path=True),
    _spec("ABOR", "ABOR (abort the running transfer)", "none", "io"),
    # RFC 2228 / RFC 4217: carried out by server/handlers/security.py (GT's HELP does not list them)
    _spec("AUTH", "AUTH <sp> GSSAPI | TLS", "required", "io", pre_auth=True, listed=False),
    _spec("ADAT", "ADAT <sp> base64 data", "optional", "io", pre_auth=True, listed=False),
    _spec("CCC", "CCC (refused: the control channel stays protected)", "none", "state", listed=False),
)

COMMANDS: Final[dict[str, CommandSpec]] = {spec.verb: spec for spec in _TABLE}


@dataclass(frozen=True)
class SiteCommandSpec:
    name: str
    syntax: str
    arg: Literal["none", "optional", "required"]


_SITE_TABLE: Final = (
    SiteCommandSpec("HELP", "SITE HELP [<sp> command]: help on server commands", "optional"),
    SiteCommandSpec("CLIENTINFO", 'SITE CLIENTINFO <sp> appname="<name>";appver="<version>";'
                    'scheme="<ftp,gsiftp>";', "optional"),
    SiteCommandSpec("CHMOD", "SITE CHMOD <sp> mode <sp> pathname (accepted; S3 has no modes)", "required"),
    SiteCommandSpec("RETRBUFSIZE", "SITE RETRBUFSIZE <sp> size: TCP buffer for sending", "required"),
    SiteCommandSpec("RBUFSZ", "SITE RBUFSZ <sp> size: TCP buffer for sending", "required"),
    SiteCommandSpec("RBUFSIZ", "SITE RBUFSIZ <sp> size: TCP buffer for sending", "required"),
    SiteCommandSpec("STORBUFSIZE", "SITE STORBUFSIZE <sp> size: TCP buffer for receiving", "required"),
    SiteCommandSpec("SBUFSZ", "SITE SBUFSZ <sp> size: TCP buffer for receiving", "required"),
    SiteCommandSpec("SBUFSIZ", "SITE SBUFSIZ <sp> size: TCP buffer for receiving", "required"),
    SiteCommandSpec("WHOAMI", "SITE WHOAMI", "none"),
    SiteCommandSpec("VERSION", "SITE VERSION", "none"),
    SiteCommandSpec("SETDISKSTACK", "SITE SETDISKSTACK <sp> drivers (accepted and ignored)", "optional"),
    SiteCommandSpec("SETNETSTACK", "SITE SETNETSTACK <sp> drivers (accepted and ignored)", "optional"),
    SiteCommandSpec("TASKID", "SITE TASKID <sp> taskid", "required"),  # written in transfer logs
)

SITE_COMMANDS: Final[dict[str, SiteCommandSpec]] = {spec.name: spec for spec in _SITE_TABLE}

RETR_BUFFER_COMMANDS: Final = frozenset({"RETRBUFSIZE", "RBUFSZ", "RBUFSIZ"})
STOR_BUFFER_COMMANDS: Final = frozenset({"STORBUFSIZE", "SBUFSZ", "SBUFSIZ"})

_HELP_PER_LINE = 8


def help_reply(topic: str | None = None) -> Reply:
    """HELP / SITE HELP: the command list, ``HELP SITE``, ``HELP <cmd>``, or 502 for an unknown one."""
    if topic is None or not topic.strip():
        verbs = [spec.verb for spec in _TABLE if spec.listed]
        rows = ["    " + "    ".join(f"{verb:<4}" for verb in verbs[i:i + _HELP_PER_LINE])
                for i in range(0, len(verbs), _HELP_PER_LINE)]
        return Reply.multi(214, "The following commands are recognized:", rows, "End")
    word = topic.strip().split()[0].upper()
    if word == "SITE":
        return Reply.multi(214, "Help for SITE:", [f" {spec.syntax}" for spec in _SITE_TABLE], "End.")
    spec = COMMANDS.get(word)
    if spec is None or not spec.listed:
        return Reply.line(502, f"Unknown command '{word}'.")
    return Reply.multi(214, f"Help for {word}:", [f" {spec.syntax}"], "End.")


CHECKSUM_PRIORITIES: Final = {"MD5": 10, "ADLER32": 10, "SHA1": 10, "SHA256": 11, "SHA512": 12,
                              "CRC32C": 10}


def feat_reply(*, logged_in: bool, checksum_algorithms: Sequence[str], mode_e: bool,
               auth_mechanisms: Sequence[str] = ()) -> Reply:
    """FEAT listing only what is implemented; CKSM only after login (as GT), PARALLEL only with MODE E;
    ``AUTH <mechanism>`` for each mechanism the daemon can serve, then PBSZ and PROT (RFC 4217).

    DCAU is listed only where GSSAPI is served: a client seeing it assumes DCAU A, and without it
    silently drops -dcsafe/-dcpriv (gsi.md pitfall 8). Deliberately absent: DCSC, GETPUT, MFMT,
    STORATTR, HTTP, WHOAMI.
    """
    features: list[str] = []
    if logged_in and checksum_algorithms:
        algorithms = "".join(f"{alg.upper()}:{CHECKSUM_PRIORITIES.get(alg.upper(), 10)};"
                             for alg in checksum_algorithms)
        features.append(f"CKSM {algorithms}")
    features += ["MLSR", "MLSC", "UTF8", "LANG EN"]
    if mode_e:
        features.append("PARALLEL")
    features += ["SIZE", f"MLST {FEAT_FACTS}", "ERET", "ESTO", "SPAS", "SPOR", "REST STREAM", "MDTM",
                 "PASV AllowDelayed;", "SBUF"]
    if auth_mechanisms:
        features += [f"AUTH {mechanism}" for mechanism in auth_mechanisms] + ["PBSZ", "PROT"]
    if "GSSAPI" in auth_mechanisms:
        features.append("DCAU")
    return Reply.multi(211, "Extensions supported", [f" {feature}" for feature in features], "End.")
