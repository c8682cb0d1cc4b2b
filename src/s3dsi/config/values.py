"""Text-to-value conversions for configuration options; each raises ValueError saying what was expected.

The callers add file and line. Integer syntax follows the reference server (``globus_args_bytestr_to_num``:
ASCII digits with an optional K/M/G/B suffix, binary multiples); booleans in gridftp.d are ``0``/``1``
only, as there; the S3 connector conf, which is ours, also takes yes/no/true/false/on/off.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from s3dsi.config.settings import MiB
from s3dsi.observability.levels import parse_gt_log_level

_SIZE_RE = re.compile(r"(-?[0-9]+)\s*([kmgt]?)(i?b)?", re.IGNORECASE)
_POWER = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_DURATION_RE = re.compile(r"([0-9]+)\s*([smhd]?)", re.IGNORECASE)
# Numbers are ASCII digits, as the reference's C parser reads them: str.isdigit() and int() also take
# "²", "٣" or "1_0" (and int() then refuses "²" in words that are not the option's).
_DIGITS = re.compile(r"[0-9]+")
_DURATION_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

CHECKSUM_ALGORITHMS = ("MD5", "ADLER32", "CRC32", "CRC32C", "SHA1", "SHA256", "SHA512")
AWS_STORAGE_CLASSES = frozenset({
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER",
    "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE",
})

# s3.amazonaws.com, s3.<region>.amazonaws.com, s3-<region>.amazonaws.com, with optional fips/dualstack
_AWS_HOST_RE = re.compile(
    r"s3(?:[.-]fips)?(?:\.dualstack)?[.-](?P<region>[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d+)"
    r"\.amazonaws\.com(?:\.cn)?",
)
_US_EAST_1_HOSTS = frozenset({"s3.amazonaws.com", "s3-external-1.amazonaws.com",
                              "s3.dualstack.amazonaws.com"})


def shorten(value: str, limit: int = 60) -> str:
    """A value quoted for an error message, cut short so a hostile file cannot flood the output."""
    if len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    return repr(value)


def parse_gt_int(text: str) -> int:
    """An integer as the reference server reads one: ``10``, ``-1``, ``64K``, ``1G``."""
    match = re.fullmatch(r"(-?[0-9]+)([kKmMgGbB]?)", text.strip())
    if match is None:
        raise ValueError("an integer, optionally with a K, M or G suffix")
    number = int(match.group(1))
    return number * int(1024 ** _POWER.get(match.group(2).lower(), 0))


def parse_gt_bool(text: str) -> bool:
    if text == "1":
        return True
    if text == "0":
        return False
    raise ValueError("0 or 1")


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "yes", "true", "on"}:
        return True
    if lowered in {"0", "no", "false", "off"}:
        return False
    raise ValueError("a boolean (yes/no, true/false, on/off, 1/0)")


def parse_size(text: str) -> int:
    """Bytes, with an optional binary suffix: ``8M``, ``8MiB``, ``8MB``, ``1G``, ``5242880``."""
    match = _SIZE_RE.fullmatch(text.strip())
    if match is None or (match.group(3) and match.group(3).lower() == "ib" and not match.group(2)):
        raise ValueError("a size in bytes, optionally with a K, M, G or T suffix (8M, 8MiB, 1G)")
    number = int(match.group(1))
    if number < 0:
        raise ValueError("a non-negative size")
    return number * int(1024 ** _POWER[match.group(2).lower()])


def parse_duration(text: str) -> int:
    """Seconds, with an optional unit: ``30``, ``30s``, ``10m``, ``24h``, ``2d``."""
    match = _DURATION_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError("a duration in seconds, optionally with an s, m, h or d unit (30, 10m, 24h)")
    return int(match.group(1)) * _DURATION_UNIT[match.group(2).lower()]


def parse_positive_int(text: str) -> int:
    value = int(text.strip()) if _DIGITS.fullmatch(text.strip()) else 0
    if value < 1:
        raise ValueError("a positive integer")
    return value


def parse_port_range(text: str) -> tuple[int, int]:
    """``min,max`` (the reference syntax) or ``min max``; 1 <= min <= max <= 65535."""
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    if len(parts) != 2 or not all(_DIGITS.fullmatch(p) for p in parts):
        raise ValueError('a port range "min,max" (or "min max")')
    low, high = int(parts[0]), int(parts[1])
    if not 1 <= low <= high <= 65535:
        raise ValueError("a port range with 1 <= min <= max <= 65535")
    return low, high


def normalise_log_level(text: str) -> str:
    parse_gt_log_level(text)
    value = text.strip()
    return value if _DIGITS.fullmatch(value) else ",".join(n.strip().upper() for n in value.split(","))


def parse_endpoint_url(text: str) -> str:
    """An S3 endpoint: ``host[:port]`` (https implied) or an http(s) URL; returned as a full URL."""
    value = text.strip()
    if not value:
        raise ValueError("an S3 endpoint host name or URL")
    if "://" not in value:
        value = "https://" + value
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"}:
        raise ValueError("an http:// or https:// endpoint")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("an endpoint with a valid port") from None
    host = parts.hostname
    if not host or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("an endpoint URL of the form https://host[:port] without user, query or fragment")
    if re.search(r"[\s/\\]", host):
        raise ValueError("an endpoint with a valid host name")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{netloc}{path}"


def region_from_endpoint(url: str) -> str | None:
    """The AWS region an endpoint URL names, if it is an AWS S3 endpoint; None otherwise."""
    host = (urlsplit(url).hostname or "").lower()
    if host in _US_EAST_1_HOSTS:
        return "us-east-1"
    match = _AWS_HOST_RE.fullmatch(host)
    return match.group("region") if match else None


def parse_region(text: str) -> str:
    value = text.strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", value):
        raise ValueError("a region name such as us-east-1")
    return value


def parse_addressing_style(text: str) -> str:
    value = text.strip().lower()
    if value not in {"auto", "path", "virtual"}:
        raise ValueError("one of auto, path, virtual")
    return value


def parse_log_format(text: str) -> str:
    value = text.strip().lower()
    if value not in {"kv", "json"}:
        raise ValueError("kv or json")
    return value


def parse_storage_class(text: str) -> str | None:
    value = text.strip().upper()
    if not value:
        return None
    if not re.fullmatch(r"[A-Z0-9_]{1,64}", value):
        raise ValueError("a storage class name such as STANDARD or INTELLIGENT_TIERING")
    return value


def parse_checksums(text: str) -> tuple[str, ...]:
    value = text.strip()
    if value.lower() in {"", "none"}:
        return ()
    names: list[str] = []
    for raw in value.split(","):
        name = raw.strip().upper()
        if name not in CHECKSUM_ALGORITHMS:
            raise ValueError("a comma list of " + ", ".join(CHECKSUM_ALGORITHMS) + ", or none")
        if name not in names:
            names.append(name)
    return tuple(names)


def parse_listen(text: str) -> str:
    """``host:port`` or ``[v6]:port`` for the metrics endpoint."""
    value = text.strip()
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})", value)
    if match is None or not 0 < int(match.group(2)) <= 65535:
        raise ValueError('"host:port" such as 127.0.0.1:9102 or [::1]:9102')
    return value


def parse_port(text: str) -> int:
    value = parse_gt_int(text)
    if not 0 <= value <= 65535:
        raise ValueError("a port number from 0 to 65535")
    return value


def parse_text(text: str) -> str | None:
    """A free string; the empty string means unset."""
    return text or None


def parse_name_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ValueError("a comma-separated list of names")
    return names


def parse_networks(text: str) -> tuple[str, ...]:
    """A comma or space separated list of IP networks (``192.0.2.0/24``, ``2001:db8::/32``, ``10.1.2.3``)."""
    networks: list[str] = []
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError("a comma-separated list of IP networks such as 192.0.2.0/24") from None
    return tuple(networks)


def format_size(value: int) -> str:
    """A size in the shortest exact binary form (``8M``, ``5G``), for messages."""
    for suffix, power in (("T", 4), ("G", 3), ("M", 2), ("K", 1)):
        if value and value % (1024 ** power) == 0:
            return f"{value // 1024 ** power}{suffix}"
    return str(value)


MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB


_FRAGMENT = re.compile(r"\[?[0-9A-Fa-f.:]+\]?:?")
_ADDRESS_LIST = "IP networks (192.0.2.0/24) or address fragments (192.168.1.), comma separated"


def parse_address_list(text: str) -> tuple[str, ...]:
    """``allow_from`` / ``deny_from``: comma (or space) separated networks (``192.0.2.0/24``) and the
    reference server's address fragments (``192.168.1.``: every address that starts so)."""
    entries: list[str] = []
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        if "/" in item:
            try:
                entries.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(f"{_ADDRESS_LIST} ({shorten(item, 40)} is not a network)") from None
            continue
        if not _FRAGMENT.fullmatch(item) or not any(c.isdigit() or c in "abcdefABCDEF" for c in item):
            raise ValueError(f"{_ADDRESS_LIST} ({shorten(item, 40)} is neither; host names are not "
                             "matched, as in the reference server)")
        entries.append(item)
    return tuple(entries)


def loose_ipv4_fragment(entry: str) -> bool:
    """Whether a fragment is a whole IPv4 address (``10.0.0.1``), which the reference's prefix rule
    also matches to longer addresses (10.0.0.10-19, 10.0.0.100-199)."""
    try:
        ipaddress.IPv4Address(entry)
    except ValueError:
        return False
    return True
