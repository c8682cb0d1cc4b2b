"""Logging for the whole process: structlog events, one per line (logfmt or JSON), and secret redaction.

Redaction happens twice, so that neither path can leak: a structlog processor cleans every event, and
the handlers' formatter cleans the final line of every record, ours and third-party ones (botocore
prints request headers such as ``X-Amz-Security-Token`` and ``Authorization`` at DEBUG). Two rules:
values registered with ``register_secret`` become ``***`` wherever they appear, and values under names
that look secret (secret, password, token, credential, authorization, signature) become ``***``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TextIO
from urllib.parse import quote

import structlog

from s3dsi.observability.levels import GT_LOG_BITS, parse_gt_log_level, parse_s3_debug
from s3dsi.observability.logfiles import LogOpener, LogStreams
from s3dsi.observability.printable import printable

REDACTED = "***"
TRANSFER_LOGGER = "s3dsi.transfer.stats"  # "Transfer stats" events: log_transfer file, TRANSFER level


class LogSettings(Protocol):
    """What logging reads from the daemon's ``Settings`` (which satisfies this), named here so that
    logging depends on nothing else in the daemon."""

    @property
    def log_level(self) -> str: ...
    @property
    def log_format(self) -> Literal["kv", "json"]: ...
    @property
    def log_single(self) -> str | None: ...
    @property
    def log_transfer(self) -> str | None: ...
    @property
    def s3_debug(self) -> str | None: ...
S3_DEBUG_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3")
S3_LAYER_LOGGER = "s3dsi.storage"
MIN_SECRET_LENGTH = 4  # shorter values would blank out ordinary words all over the log
_MAX_TRANSIENT = 1024

_SECRET_WORDS = "secret|password|passwd|token|credential|authorization|signature"  # noqa: S105
_SECRET_NAME_RE = re.compile(_SECRET_WORDS, re.IGNORECASE)
_EXEMPT_SUFFIXES = ("_file", "_filename", "_path", "_dir", "_files")
# a name (not the tail of a path), a separator (with a bytes literal's b prefix), then the value: quoted
# or one word
_SEPARATOR = r"(?P<sep>['\"]?\s*[:=]\s*(?:b(?=['\"]))?)"
_AUTH_RE = re.compile(r"(?<![\w./-])(?P<key>[\w.-]*authorization)" + _SEPARATOR +
                      r"(?P<value>'[^']*'|\"[^\"]*\"|(?:[A-Za-z0-9-]+[ \t]+)?[^\s,'\"]+)", re.IGNORECASE)
_KEY_VALUE_RE = re.compile(rf"(?<![\w./-])(?P<key>[\w.-]*(?:{_SECRET_WORDS})[\w.-]*)" + _SEPARATOR +
                           r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;&'\"}\])]+)", re.IGNORECASE)


# XML elements named like secrets: STS answers (``<SecretAccessKey>``, ``<SessionToken>``), which
# botocore prints at DEBUG before s3dsi has seen, let alone registered, the values inside
_XML_RE = re.compile(rf"<(?P<key>[\w.:-]*(?:{_SECRET_WORDS})[\w.:-]*)(?P<attrs>\s[^>]*)?>(?P<value>[^<]*)"
                     r"</(?P=key)>", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether a field or header name marks its value as secret (``*_file``/``*_path`` names do not)."""
    lowered = name.lower()
    return bool(_SECRET_NAME_RE.search(lowered)) and not lowered.endswith(_EXEMPT_SUFFIXES)


class _SecretRegistry:
    """Values to blank out: pinned ones (loaded keys) forever, transient ones (passwords) bounded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pinned: set[str] = set()
        self._transient: OrderedDict[str, None] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None
        self._dirty = False

    def add(self, value: str, transient: bool) -> None:
        variants = {value, quote(value, safe=""), json.dumps(value)[1:-1]}
        with self._lock:
            for variant in variants:
                if len(variant) < MIN_SECRET_LENGTH or variant in self._pinned:
                    continue
                if transient:
                    self._transient[variant] = None
                    self._transient.move_to_end(variant)
                    while len(self._transient) > _MAX_TRANSIENT:
                        self._transient.popitem(last=False)
                else:
                    self._pinned.add(variant)
                    self._transient.pop(variant, None)
                self._dirty = True

    def pattern(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._dirty:
                values = sorted(self._pinned | set(self._transient), key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, values))) if values else None
                self._dirty = False
            return self._pattern


_registry = _SecretRegistry()


def register_secret(value: str | None, *, transient: bool = False) -> None:
    """Never let ``value`` reach a log line. ``transient`` values (passwords) are kept in a bounded set."""
    if value:
        _registry.add(value, transient)


def _mask_value(match: re.Match[str]) -> str:
    if match.group("key").lower().endswith(_EXEMPT_SUFFIXES):
        return match.group(0)
    value = match.group("value")
    quote_char = value[0] if value[:1] in {"'", '"'} else ""
    return f"{match.group('key')}{match.group('sep')}{quote_char}{REDACTED}{quote_char}"


def redact_text(text: str) -> str:
    """``text`` with registered secrets and the values of secret-looking ``name: value`` pairs blanked."""
    pattern = _registry.pattern()
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _AUTH_RE.sub(_mask_value, text)
    text = _XML_RE.sub(lambda m: f"<{m.group('key')}{m.group('attrs') or ''}>{REDACTED}</{m.group('key')}>",
                       text)
    return _KEY_VALUE_RE.sub(_mask_value, text)


def _redact_any(value: object, depth: int = 0) -> object:
    if isinstance(value, str):
        return redact_text(value)
    if depth > 6:
        return value
    if isinstance(value, Mapping):
        return {k: (REDACTED if isinstance(k, str) and is_secret_name(k) and v is not None
                    else _redact_any(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_any(item, depth + 1) for item in value)
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "backslashreplace"))
    return value


def redact_event(logger: Any, method_name: str,
                 event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: secret-named keys and registered secret values become ``***``."""
    for key in list(event_dict):
        value = event_dict[key]
        if is_secret_name(key) and value is not None:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_any(value)
    return event_dict


class RedactingFilter(logging.Filter):
    """Attach to any handler: formats a stdlib record's message now and stores it redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            try:
                message = record.getMessage()
            except (TypeError, ValueError):
                message = f"{record.msg} {record.args!r}"
            record.msg, record.args = redact_text(message), None
        return True


class RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """The final line, exception text included, is cleaned once more, and every control character in it
    (a CR or ESC in a file name a client sent) is shown as an escape: one event is one printable line."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(redact_text(super().format(record)))


# ---- GT log levels ------------------------------------------------------------------------------

def stdlib_level(log_level: str) -> int:
    """The stdlib threshold for a GT log_level (ERROR, WARN, INFO, DUMP bits; TRANSFER is separate)."""
    mask = parse_gt_log_level(log_level)
    for bit, level in ((GT_LOG_BITS["DUMP"], logging.DEBUG), (GT_LOG_BITS["INFO"], logging.INFO),
                       (GT_LOG_BITS["WARN"], logging.WARNING), (GT_LOG_BITS["ERROR"], logging.ERROR)):
        if mask & bit:
            return level
    return logging.CRITICAL + 10  # nothing but TRANSFER (or nothing at all)


def logs_transfers(log_level: str) -> bool:
    return bool(parse_gt_log_level(log_level) & GT_LOG_BITS["TRANSFER"])


class _MainLogFilter(logging.Filter):
    def __init__(self, threshold: int, transfers: bool) -> None:
        super().__init__()
        self.threshold = threshold
        self.transfers = transfers

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == TRANSFER_LOGGER or record.name.startswith(TRANSFER_LOGGER + "."):
            return self.transfers or record.levelno >= max(self.threshold, logging.WARNING)
        return record.levelno >= self.threshold


# ---- configuration ------------------------------------------------------------------------------

_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
    structlog.processors.format_exc_info,
]
_KEY_ORDER = ["timestamp", "level", "logger", "event"]


def _renderer(log_format: str) -> Any:
    if log_format == "json":
        return structlog.processors.JSONRenderer(default=str)
    return structlog.processors.LogfmtRenderer(key_order=_KEY_ORDER, drop_missing=True, bool_as_flag=False)


def _configure_structlog(final: list[Any]) -> None:
    structlog.configure(
        # dropped first when the level is off: a debug call then costs a level check, not a rendered,
        # timestamped and redacted event that stdlib logging throws away
        processors=[structlog.stdlib.filter_by_level, *_SHARED_PROCESSORS, redact_event, *final],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def _formatter(log_format: str) -> RedactingFormatter:
    return RedactingFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact_event,
                    _renderer(log_format)],
        foreign_pre_chain=_SHARED_PROCESSORS,
    )


class _OwnHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler configure_logging installed (and removes again); its file stream belongs to _streams."""

    def __init__(self, stream: TextIO, log_format: str) -> None:
        super().__init__(stream)
        self.setFormatter(_formatter(log_format))
        self.addFilter(RedactingFilter())


def _remove_own_handlers(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        if isinstance(handler, _OwnHandler):
            logger.removeHandler(handler)
            handler.close()


@dataclass(frozen=True)
class LogFileProblem:
    """A log file a reconfiguration could not open, and where that output goes instead."""

    setting: str  # log_single, log_transfer or GLOBUS_S3_DEBUG
    path: str
    error: str
    instead: str  # "PATH (the previous file)", "stderr" or "nowhere"


_streams = LogStreams()
_destinations: dict[str, str | None] = {}  # setting -> the file it writes to now (None: the stream)
_lock = threading.Lock()


def configure_logging(settings: LogSettings, stream: TextIO | None = None, *,
                      opener: LogOpener | None = None) -> None:
    """Install the process's handlers from ``settings``; safe to call again (replaces what it installed).

    ``log_single`` sends the log to a file, otherwise to ``stream`` (default stderr); ``log_transfer``
    receives the TRANSFER_LOGGER events; ``s3_debug`` (GLOBUS_S3_DEBUG "LEVEL[,PATH]") with a non-zero
    level sends botocore/boto3/s3transfer/urllib3 and s3dsi.storage DEBUG output to PATH (or the stream);
    without it those libraries only report warnings, even at log_level ALL. A file already open under the
    same path and still named by it is kept open, not opened again. Raises OSError when a log file cannot
    be opened (the previous configuration then stays in place).
    """
    with _lock:
        _configure(settings, stream, opener, strict=True)


def reconfigure_logging(settings: LogSettings, stream: TextIO | None = None, *,
                        opener: LogOpener | None = None) -> list[LogFileProblem]:
    """configure_logging for a running process (SIGHUP): levels and format always take effect; output
    whose file cannot be opened keeps its previous destination (or, when it had none, goes to the stream
    for the main log and nowhere for the others). Returns what could not be opened."""
    with _lock:
        return _configure(settings, stream, opener, strict=False)


def _fallback(setting: str, out: TextIO) -> tuple[TextIO | None, str | None, str]:
    """Where ``setting``'s output goes when its file cannot be opened: (stream, its path, description)."""
    previous = _destinations.get(setting, "")
    if previous:
        stream = _streams.current(previous)
        if stream is not None and not stream.closed:
            return stream, previous, f"{previous} (the previous file)"
    if previous is None or setting == "log_single":
        return out, None, "stderr" if out is sys.stderr else "the log stream"
    return None, None, "nowhere"


def _configure(settings: LogSettings, stream: TextIO | None, opener: LogOpener | None,
               strict: bool) -> list[LogFileProblem]:
    out = stream if stream is not None else sys.stderr
    threshold = stdlib_level(settings.log_level)
    transfers = logs_transfers(settings.log_level)
    level, debug_path = parse_s3_debug(settings.s3_debug) if settings.s3_debug else (0, None)
    wanted: dict[str, str | None] = {"log_single": settings.log_single}
    if settings.log_transfer:
        wanted["log_transfer"] = settings.log_transfer
    if level:
        wanted["GLOBUS_S3_DEBUG"] = debug_path

    # open every file first, so that a failure (strict) leaves the old handlers working
    chosen: dict[str, tuple[TextIO, str | None]] = {}
    fresh: list[TextIO] = []
    problems: list[LogFileProblem] = []
    for setting, path in wanted.items():
        if path is None:
            chosen[setting] = (out, None)
            continue
        try:
            # two settings naming one file share one stream
            key = _streams.key(path)
            shared = [s for s, p in chosen.values() if p is not None and _streams.key(p) == key]
            file_stream = shared[0] if shared else _streams.stream(path, opener)
        except OSError as err:
            if strict:
                for opened in fresh:
                    _streams.discard(opened)
                raise
            fallback, fallback_path, instead = _fallback(setting, out)
            problems.append(LogFileProblem(setting, path, err.strerror or str(err), instead))
            if fallback is not None:
                chosen[setting] = (fallback, fallback_path)
            continue
        if file_stream is not _streams.current(path) and file_stream not in fresh:
            fresh.append(file_stream)
        chosen[setting] = (file_stream, path)

    root = logging.getLogger()
    transfer_logger = logging.getLogger(TRANSFER_LOGGER)
    library_loggers = [logging.getLogger(name) for name in S3_DEBUG_LOGGERS]
    layer_logger = logging.getLogger(S3_LAYER_LOGGER)
    for logger in (root, transfer_logger, layer_logger, *library_loggers):
        _remove_own_handlers(logger)

    main = _OwnHandler(chosen["log_single"][0], settings.log_format)
    main.addFilter(_MainLogFilter(threshold, transfers))
    root.addHandler(main)
    root.setLevel(threshold)
    transfer_file = chosen.get("log_transfer")
    transfer_logger.setLevel(logging.INFO if transfers or transfer_file else logging.NOTSET)
    if transfer_file is not None:
        transfer_logger.addHandler(_OwnHandler(transfer_file[0], settings.log_format))
    debug = chosen.get("GLOBUS_S3_DEBUG")
    for logger in library_loggers:
        logger.setLevel(logging.DEBUG if debug else logging.WARNING)
        logger.propagate = debug is None  # their debug output goes to its own destination only
    layer_logger.setLevel(logging.DEBUG if debug else logging.NOTSET)
    if debug is not None:
        handler = _OwnHandler(debug[0], settings.log_format)
        for logger in (layer_logger, *library_loggers):
            logger.addHandler(handler)

    _streams.keep({path: s for s, path in chosen.values() if path is not None})
    _destinations.clear()
    _destinations.update({setting: path for setting, (_, path) in chosen.items()})
    _configure_structlog([structlog.stdlib.ProcessorFormatter.wrap_for_formatter])
    return problems


def get_logger(name: str, **bind: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger named ``name`` with ``bind`` already bound."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger.bind(**bind) if bind else logger


if not structlog.is_configured():
    # Until configure_logging runs (tests, early start-up), events are rendered and cleaned here and
    # handed to stdlib logging as plain text.
    _configure_structlog([_renderer("kv")])
