"""Argument grammars of the GridFTP commands, and the address replies built from parsed values.

Every parser raises ``ProtocolSyntaxError`` carrying the exact reply GT gives for that mistake, so a
caller answers with ``err.reply`` and nothing else. Numbers are ASCII digits only (no sign, no
``_``, no other scripts' digits, which ``int()`` would accept).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from s3dsi.protocol.ranges import RestMarker
from s3dsi.protocol.replies import SYNTAX_ERROR, Reply


class ProtocolSyntaxError(Exception):
    """The peer broke the protocol; ``reply`` is what to answer."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.lines[-1])
        self.reply = reply


ILLEGAL_PORT = Reply.line(501, "Illegal PORT command.")
NETWORK_PROTOCOL = Reply.line(522, "Network protocol not supported, use (1,2)")
TRANSFER_SYNTAX = Reply.line(500, "command failed.")
BAD_REST = Reply.line(501, "bad parameter.")
OPTS_FAILED = Reply.line(500, "OPTS failed.")

_UINT = re.compile(r"[0-9]{1,19}")
_INT = re.compile(r"-?[0-9]{1,19}")
_OCTET = re.compile(r"[0-9]{1,3}")
_MAX_OFFSET = (1 << 63) - 1


def parse_uint(text: str, reply: Reply = SYNTAX_ERROR) -> int:
    """A non-negative decimal that fits in an off_t."""
    if _UINT.fullmatch(text) is None or int(text) > _MAX_OFFSET:
        raise ProtocolSyntaxError(reply)
    return int(text)


def _parse_int(text: str, reply: Reply) -> int:
    if _INT.fullmatch(text) is None or abs(int(text)) > _MAX_OFFSET:
        raise ProtocolSyntaxError(reply)
    return int(text)


# -- data channel addresses ------------------------------------------------------------------------

def parse_port(arg: str) -> tuple[str, int]:
    """``h1,h2,h3,h4,p1,p2`` → ``("h1.h2.h3.h4", p1*256+p2)``."""
    fields = arg.strip().split(",")
    if len(fields) != 6 or any(_OCTET.fullmatch(f) is None for f in fields):
        raise ProtocolSyntaxError(ILLEGAL_PORT)
    numbers = [int(f) for f in fields]
    if any(n > 255 for n in numbers):
        raise ProtocolSyntaxError(ILLEGAL_PORT)
    port = numbers[4] * 256 + numbers[5]
    if port == 0:
        raise ProtocolSyntaxError(ILLEGAL_PORT)
    return ".".join(str(n) for n in numbers[:4]), port


def parse_eprt(arg: str) -> tuple[str, int]:
    """``|1|ip4|port|`` or ``|2|ip6|port|`` (any printable delimiter, RFC 2428)."""
    text = arg.strip()
    if len(text) < 2 or not 33 <= ord(text[0]) <= 126:
        raise ProtocolSyntaxError(ILLEGAL_PORT)
    fields = text.split(text[0])
    if len(fields) != 5 or fields[0] or fields[4]:
        raise ProtocolSyntaxError(ILLEGAL_PORT)
    family, host, port_text = fields[1], fields[2], fields[3]
    if family not in ("1", "2"):
        raise ProtocolSyntaxError(NETWORK_PROTOCOL)
    try:
        address = ipaddress.IPv4Address(host) if family == "1" else ipaddress.IPv6Address(host)
    except ValueError:
        raise ProtocolSyntaxError(ILLEGAL_PORT) from None
    port = parse_uint(port_text, ILLEGAL_PORT)
    if not 1 <= port <= 65535:
        raise ProtocolSyntaxError(ILLEGAL_PORT)
    return str(address), port


MAX_SPOR_ADDRESSES = 16  # stripes one SPOR may name; each costs data connections


def parse_spor(arg: str) -> list[tuple[str, int]]:
    """Space-separated PORT-style (or EPRT-style) addresses, one per stripe."""
    tokens = arg.split()
    if not tokens:
        raise ProtocolSyntaxError(SYNTAX_ERROR)
    if len(tokens) > MAX_SPOR_ADDRESSES:
        raise ProtocolSyntaxError(Reply.line(501, f"Illegal SPOR command: at most {MAX_SPOR_ADDRESSES} "
                                                  "addresses."))
    return [parse_port(t) if t[0].isdigit() else parse_eprt(t) for t in tokens]


def _ipv4_octets(host: str) -> tuple[int, ...]:
    address = ipaddress.ip_address(host)
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is None:
            raise ValueError(f"{host} is not an IPv4 address; use EPSV or SPAS 2")
        address = mapped
    return tuple(address.packed)


def _host_port(host: str, port: int) -> str:
    if not 1 <= port <= 65535:
        raise ValueError(f"port out of range: {port}")
    h1, h2, h3, h4 = _ipv4_octets(host)
    return f"{h1},{h2},{h3},{h4},{port // 256},{port % 256}"


def _extended(host: str, port: int) -> str:
    address = ipaddress.ip_address(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    family = 1 if isinstance(address, ipaddress.IPv4Address) else 2
    return f"|{family}|{address}|{port}|"


def format_pasv(host: str, port: int) -> Reply:
    """``227 Entering Passive Mode (127,0,0,1,217,71)``; ValueError for a non-IPv4 host."""
    return Reply.line(227, f"Entering Passive Mode ({_host_port(host, port)})")


def format_delayed_pasv(host: str, port: int) -> Reply:
    """``127 Entering Passive Mode (...)``: the address of a delayed PASV, sent before 150."""
    return Reply.line(127, f"Entering Passive Mode ({_host_port(host, port)})")


def format_epsv(port: int) -> Reply:
    """``229 Entering Extended Passive Mode (|||42213|)``"""
    if not 1 <= port <= 65535:
        raise ValueError(f"port out of range: {port}")
    return Reply.line(229, f"Entering Extended Passive Mode (|||{port}|)")


def format_spas(addresses: Sequence[tuple[str, int]], extended: bool = False) -> Reply:
    """``229-Entering Striped Passive Mode.`` + one `` h1,..,p2`` (or `` |1|ip|port|``) line + ``229 End``."""
    if not addresses:
        raise ValueError("SPAS needs at least one address")
    body = [" " + (_extended(h, p) if extended else _host_port(h, p)) for h, p in addresses]
    return Reply.multi(229, "Entering Striped Passive Mode.", body, "End")


# -- partial transfers and checksums ---------------------------------------------------------------

def _is_module_form(word: str) -> bool:
    # `ERET mymod="a=1;b=2" path`: Globus storage modules, which we do not offer.
    return "=" in word


def parse_eret(arg: str) -> tuple[int, int, str]:
    """``P <offset> <length> <path>`` → (offset, length, path)."""
    fields = arg.split(" ", 3)
    if len(fields) != 4 or _is_module_form(fields[0]) or fields[0].upper() != "P" or not fields[3]:
        raise ProtocolSyntaxError(TRANSFER_SYNTAX)
    return parse_uint(fields[1], TRANSFER_SYNTAX), parse_uint(fields[2], TRANSFER_SYNTAX), fields[3]


def parse_esto(arg: str) -> tuple[int, str]:
    """``A <offset> <path>`` → (offset, path)."""
    fields = arg.split(" ", 2)
    if len(fields) != 3 or _is_module_form(fields[0]) or fields[0].upper() != "A" or not fields[2]:
        raise ProtocolSyntaxError(TRANSFER_SYNTAX)
    return parse_uint(fields[1], TRANSFER_SYNTAX), fields[2]


def parse_cksm(arg: str) -> tuple[str, int, int, str]:
    """``<alg> <offset> <length> <path>`` → (ALG upper-cased, offset, length, path); length -1 = to end."""
    fields = arg.split(" ", 3)
    if len(fields) != 4 or not fields[0] or not fields[3]:
        raise ProtocolSyntaxError(SYNTAX_ERROR)
    offset = parse_uint(fields[1])
    length = _parse_int(fields[2], SYNTAX_ERROR)
    if length < -1:
        raise ProtocolSyntaxError(SYNTAX_ERROR)
    return fields[0].upper(), offset, length, fields[3]


def parse_rest(arg: str) -> RestMarker:
    """``REST n`` or ``REST a-b,c-d``; ``501 bad parameter.`` otherwise."""
    try:
        return RestMarker.parse(arg)
    except ValueError:
        raise ProtocolSyntaxError(BAD_REST) from None


# -- SITE CLIENTINFO -------------------------------------------------------------------------------

_CLIENTINFO_MAX_KEYS = 32
_CLIENTINFO_MAX_KEY = 64
_CLIENTINFO_MAX_VALUE = 512


def parse_clientinfo(arg: str) -> dict[str, str]:
    """``key=value;key="quoted; value";`` → {key: value}, keys lower-cased; tolerant and bounded.

    Malformed items are skipped (clients ignore the reply anyway); at most 32 keys, keys of 64 and
    values of 512 characters are kept, because the result ends up in logs.
    """
    info: dict[str, str] = {}
    i, n = 0, len(arg)
    while i < n and len(info) < _CLIENTINFO_MAX_KEYS:
        while i < n and arg[i] in " ;":
            i += 1
        eq = arg.find("=", i)
        semi = arg.find(";", i)
        if eq < 0 or (0 <= semi < eq):
            if semi < 0:
                break
            i = semi + 1
            continue
        key = arg[i:eq].strip().lower()
        i = eq + 1
        if i < n and arg[i] == '"':
            close = arg.find('"', i + 1)
            end = n if close < 0 else close
            value = arg[i + 1:end]
            semi = arg.find(";", end)
            i = n if semi < 0 else semi + 1
        else:
            semi = arg.find(";", i)
            end = n if semi < 0 else semi
            value = arg[i:end]
            i = end + 1
        if key:
            info[key[:_CLIENTINFO_MAX_KEY]] = value[:_CLIENTINFO_MAX_VALUE]
    return info


# -- OPTS ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetrOptions:
    """What one ``OPTS RETR`` line set; None = not mentioned (keep the session's value)."""

    parallelism: int | None = None
    stripe_layout: str | None = None
    block_size: int | None = None
    markers: float | None = None  # 0 turns RETR perf markers off
    window_size: int | None = None
    packet_size: int | None = None


_MAX_PARALLELISM = 65535
_PARALLELISM = re.compile(r"([0-9]{1,5})(?:,[0-9]{1,5}){0,2}")
_SECONDS = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,3})?")


def _items(text: str) -> Iterable[tuple[str, str]]:
    """``k=v;k=v;`` → (k lower-cased, v); every item must end with ``;``."""
    if not text.endswith(";"):
        raise ProtocolSyntaxError(OPTS_FAILED)
    for item in text[:-1].split(";"):
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise ProtocolSyntaxError(OPTS_FAILED)
        yield key.lower(), value.strip()


def parse_opts_retr(text: str) -> RetrOptions:
    """``Parallelism=4,4,4;StripeLayout=Blocked;BlockSize=1048576;markers=5;...``

    Keys are case-insensitive; an unknown key, a bad value or a missing ``;`` is ``500 OPTS failed.``
    and nothing is applied. Parallelism uses the first number, as GT does.
    """
    parallelism: int | None = None
    layout: str | None = None
    sizes: dict[str, int] = {}
    markers: float | None = None
    for key, value in _items(text):
        if key == "parallelism":
            match = _PARALLELISM.fullmatch(value)
            if match is None or not 1 <= int(match.group(1)) <= _MAX_PARALLELISM:
                raise ProtocolSyntaxError(OPTS_FAILED)
            parallelism = int(match.group(1))
        elif key == "stripelayout":
            if value.lower() not in ("blocked", "partitioned"):
                raise ProtocolSyntaxError(OPTS_FAILED)
            layout = value.lower().capitalize()
        elif key in ("blocksize", "windowsize", "packetsize"):
            sizes[key] = parse_uint(value, OPTS_FAILED)
        elif key == "markers":
            if _SECONDS.fullmatch(value) is None:
                raise ProtocolSyntaxError(OPTS_FAILED)
            markers = float(value)
        else:
            raise ProtocolSyntaxError(OPTS_FAILED)
    return RetrOptions(parallelism=parallelism, stripe_layout=layout, block_size=sizes.get("blocksize"),
                       markers=markers, window_size=sizes.get("windowsize"),
                       packet_size=sizes.get("packetsize"))


def parse_allow_delayed(text: str) -> bool:
    """``AllowDelayed=0|1;`` (the trailing ``;`` is optional, as in GT)."""
    key, sep, value = text.strip().rstrip(";").partition("=")
    if not sep or key.strip().lower() != "allowdelayed" or value.strip() not in ("0", "1"):
        raise ProtocolSyntaxError(OPTS_FAILED)
    return value.strip() == "1"


def parse_mlst_facts(text: str, supported: Sequence[str]) -> tuple[str, ...]:
    """``Type;Size;UNIX.mode;`` → the supported facts named, canonical spelling and order.

    Unknown facts are ignored (RFC 3659 §7.9).
    """
    wanted = {name.strip().lower() for name in text.split(";") if name.strip()}
    return tuple(fact for fact in supported if fact.lower() in wanted)


def parse_cksm_markers(text: str) -> int:
    """``markers=N;`` → N seconds between 113 status markers (0 = none)."""
    items = dict(_items(text if text.endswith(";") else text + ";"))
    if set(items) != {"markers"}:
        raise ProtocolSyntaxError(OPTS_FAILED)
    return parse_uint(items["markers"], OPTS_FAILED)
