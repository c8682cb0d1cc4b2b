"""Builds the frozen Settings from every source, recording where each value came from.

Order, later overriding earlier (as globus-gridftp-server applies them, then the S3 connector conf):
defaults; the inherited environment (GLOBUS_TCP_PORT_RANGE, GLOBUS_S3_DEBUG); the files of the
gridftp.d directory in name order; the main file (/etc/gridftp.conf, which the reference server reads
*after* the directory); the S3 connector conf; command-line flags. ``$NAME value`` lines of the gridftp
files are applied to the environment first, before anything reads it.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin

from s3dsi.config import values as v
from s3dsi.config.errors import ConfigError
from s3dsi.config.gridftp_conf import ConfLine, directory_files, parse_conf
from s3dsi.config.options import (
    ACCEPTED_AUTH_LEVEL_BITS,
    FIELD_PARSERS,
    GRIDFTP_OPTIONS,
    HOSTNAME_OPTION,
    IGNORED_GT_OPTIONS,
    REFUSED_GT_OPTIONS,
    S3_OPTIONS,
    OptionSpec,
)
from s3dsi.config.s3_conf import KeyValue, parse_s3_conf
from s3dsi.config.settings import MIN_NAMESPACE_THREADS, Settings
from s3dsi.config.textfile import TextFileError, read_text_file
from s3dsi.observability.levels import parse_gt_log_level
from s3dsi.observability.logging import is_secret_name, register_secret

DEFAULT_CONFIG_FILE = "/etc/gridftp.conf"
FALLBACK_CONFIG_FILE = "/etc/grid-security/gridftp.conf"  # read when the default is missing
DEFAULT_CONFIG_DIR = "/etc/gridftp.d"
DEFAULT_S3_CONF = "/etc/globus/globus-gridftp-server-s3.conf"

PORT_RANGE_ENV = "GLOBUS_TCP_PORT_RANGE"
S3_DEBUG_ENV = "GLOBUS_S3_DEBUG"
_ENV_FIELDS = {PORT_RANGE_ENV: "port_range", S3_DEBUG_ENV: "s3_debug"}
BOOKKEEPING_FIELDS = frozenset({"environment", "sources", "warnings", "config_files", "s3_map_template"})
SETTING_FIELDS = tuple(f.name for f in dataclasses.fields(Settings) if f.name not in BOOKKEEPING_FIELDS)


class _Draft:
    """Values being assembled, each with its origin."""

    def __init__(self) -> None:
        defaults = Settings()
        self.values: dict[str, object] = {name: getattr(defaults, name) for name in SETTING_FIELDS}
        self.sources: dict[str, str] = dict.fromkeys(SETTING_FIELDS, "default")
        self.warnings: list[str] = []
        self.environment: dict[str, str] = {}
        self.files: list[str] = []
        self.hostname: tuple[str, str] | None = None  # (value, where) of the reference's ``hostname``

    def set(self, name: str, value: object, source: str) -> None:
        self.values[name] = value
        self.sources[name] = source

    def explicit(self, name: str) -> bool:
        return self.sources[name] != "default"


def _parse(spec: OptionSpec, option: str, raw: str, where: str) -> object:
    try:
        return spec.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: {option}: expected {exc}, got {v.shorten(raw)}") from None


def _read(path: str, required: bool) -> bytes | None:
    try:
        return read_text_file(path)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such file") from None
        return None
    except TextFileError as exc:
        raise ConfigError(exc.located(path)) from None


def _gridftp_files(config_file: str | None, config_dir: str | None) -> list[str]:
    """The gridftp files that exist, directory first and main file last; explicit ones must exist."""
    directory = config_dir if config_dir is not None else DEFAULT_CONFIG_DIR
    paths: list[str] = []
    try:
        paths.extend(directory_files(directory))
    except FileNotFoundError:
        if config_dir is not None:
            raise ConfigError(f"{directory}: no such directory") from None
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot list the directory: {exc.strerror}") from None
    if config_file is not None:
        paths.append(config_file)
    elif os.path.lexists(DEFAULT_CONFIG_FILE):
        paths.append(DEFAULT_CONFIG_FILE)
    elif os.path.lexists(FALLBACK_CONFIG_FILE):
        paths.append(FALLBACK_CONFIG_FILE)
    return paths


def _load_gridftp_lines(paths: list[str], draft: _Draft) -> list[ConfLine]:
    lines: list[ConfLine] = []
    for path in paths:
        data = _read(path, required=True)
        if data is None:
            continue
        try:
            lines.extend(parse_conf(data, path))
        except TextFileError as exc:
            raise ConfigError(exc.located(path)) from None
        draft.files.append(path)
    return lines


def _apply_environment(lines: list[ConfLine], env: dict[str, str], draft: _Draft,
                       process_environ: bool) -> None:
    for line in lines:
        if not line.env:
            continue
        env[line.name] = line.value
        draft.environment[line.name] = line.value
        if is_secret_name(line.name):
            register_secret(line.value)
        if process_environ:
            os.environ[line.name] = line.value


def _apply_env_field(draft: _Draft, name: str, raw: str, where: str) -> None:
    field = _ENV_FIELDS[name]
    draft.set(field, _parse(OptionSpec(field, FIELD_PARSERS[field]), name, raw, where), where)


def _apply_gridftp_options(lines: list[ConfLine], draft: _Draft) -> None:
    for line in lines:
        if line.env:
            if line.name in _ENV_FIELDS:
                _apply_env_field(draft, line.name, line.value, line.where)
            continue
        spec = GRIDFTP_OPTIONS.get(line.name)
        if spec is not None:
            draft.set(spec.field, _parse(spec, line.name, line.value, line.where), line.where)
        elif line.name == HOSTNAME_OPTION:
            draft.hostname = (line.value, line.where) if line.value else None
        elif line.name in REFUSED_GT_OPTIONS:
            _refuse_or_accept(line, draft)
        elif line.name in IGNORED_GT_OPTIONS:
            draft.warnings.append(f"{line.where}: option {line.name!r} of globus-gridftp-server is not "
                                  "supported by s3dsi (ignored)")
        else:
            draft.warnings.append(f"{line.where}: unknown option {v.shorten(line.name, 40)} (ignored)")


_REFUSAL_HINTS = {
    "restrict_paths": "limit what each user's S3 keys may reach with an IAM policy instead (s3dsi policy)",
    "chroot_path": "s3dsi serves no local files; confine the service with the systemd unit's sandboxing "
                   "(ProtectSystem=, ProtectHome=, ReadWritePaths=) instead",
    "acl": "s3dsi loads no access-control modules",
    "auth_level": f"only the bits {ACCEPTED_AUTH_LEVEL_BITS} (1 identity, 2 actions, 4 no setuid, 8 no "
                  "gridmap) are understood; 16 (restrict_paths on data nodes) and higher bits restrict "
                  "access in ways s3dsi does not implement",
}


def _refuse_or_accept(line: ConfLine, draft: _Draft) -> None:
    """A reference option that restricts access and that s3dsi does not implement: refusing to start is
    the only safe answer (ignoring it would serve what the site forbade). auth_level only refuses its
    restricting bits."""
    if line.name == "auth_level":
        try:
            level = v.parse_gt_int(line.value)
        except ValueError as exc:
            raise ConfigError(f"{line.where}: auth_level: expected {exc}, got {v.shorten(line.value)}") \
                from None
        if level >= 0 and not level & ~ACCEPTED_AUTH_LEVEL_BITS:
            draft.warnings.append(f"{line.where}: auth_level {level}: s3dsi always checks the login (pw_file "
                                  "and credential map) and S3 authorizes every action with the user's keys; "
                                  "the option has no further effect")
            return
    raise ConfigError(f"{line.where}: {line.name}: s3dsi does not implement {REFUSED_GT_OPTIONS[line.name]} "
                      f"and will not start without it: {_REFUSAL_HINTS[line.name]}; then remove the line")


def _apply_s3_conf(path: str | None, draft: _Draft) -> None:
    conf_path = path if path is not None else DEFAULT_S3_CONF
    data = _read(conf_path, required=path is not None)
    if data is None:
        return
    try:
        entries: list[KeyValue] = parse_s3_conf(data, conf_path)
    except TextFileError as exc:
        raise ConfigError(exc.located(conf_path)) from None
    draft.files.append(conf_path)
    for entry in entries:
        spec = S3_OPTIONS.get(entry.key)
        if spec is None:
            draft.warnings.append(f"{entry.where}: unknown setting {v.shorten(entry.key, 40)} (ignored)")
            continue
        draft.set(spec.field, _parse(spec, entry.key, entry.value, entry.where), entry.where)


def _type_matches(value: object, hint: object) -> bool:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_matches(value, arg) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if origin is Literal:
        return value in get_args(hint)
    if origin is tuple:
        args = get_args(hint)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_matches(item, args[0]) for item in value)
        return len(args) == len(value) and all(_type_matches(i, a) for i, a in zip(value, args, strict=True))
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(hint, type) and isinstance(value, hint)


def _apply_overrides(overrides: Mapping[str, object], draft: _Draft) -> None:
    hints = typing.get_type_hints(Settings)
    for name, raw in overrides.items():
        if name not in SETTING_FIELDS:
            raise ConfigError(f"flag: unknown setting {name!r}")
        value: object = raw
        if isinstance(raw, str) and name in FIELD_PARSERS:
            value = _parse(OptionSpec(name, FIELD_PARSERS[name]), name, raw, "flag")
        elif isinstance(raw, list):
            value = tuple(raw)
        if not _type_matches(value, hints[name]):
            raise ConfigError(f"flag: {name}: value of the wrong type ({type(raw).__name__})")
        draft.set(name, value, "flag")


def user_home(user: str | None, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(name, home directory) of ``user``, or of the effective user when None; None if unknown."""
    if user is not None:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            return None
        return entry.pw_name, entry.pw_dir
    try:
        entry = pwd.getpwuid(os.geteuid())
    except KeyError:
        home = environ.get("HOME")
        return (str(os.geteuid()), home) if home else None
    return entry.pw_name, environ.get("HOME") or entry.pw_dir


def _variable(name: str) -> re.Pattern[str]:
    """``$NAME`` or ``${NAME}``, not the start of a longer name (``$HOMEDIR`` is not ``$HOME``)."""
    return re.compile(rf"\$(?:\{{{name}\}}|{name}(?![A-Za-z0-9_]))")


def expand_user_path(raw: str, user: str, home: str) -> str:
    """``~``, ``$HOME`` and ``$USER`` of the process user substituted; made absolute."""
    text = home + raw[1:] if raw == "~" or raw.startswith("~/") else raw
    text = _variable("HOME").sub(lambda _m: home, text)
    text = _variable("USER").sub(lambda _m: user, text)
    return os.path.abspath(text)


def is_per_user_path(raw: str) -> bool:
    """Whether ``expand_user_path`` gives each user another path (``~``, ``$HOME`` or ``$USER``)."""
    return raw == "~" or raw.startswith("~/") or any(_variable(n).search(raw) for n in ("HOME", "USER"))


def _resolve_map_path(draft: _Draft, environ: Mapping[str, str]) -> None:
    raw = draft.values["s3_map_filename"]
    # process_user only applies to a daemon started as root; otherwise sessions run as the current user
    process_user = typing.cast("str | None", draft.values["process_user"]) if os.geteuid() == 0 else None
    needs_home = raw is None or is_per_user_path(str(raw))
    identity = user_home(process_user, environ) if needs_home else None
    if raw is None:
        if identity is None:
            draft.warnings.append(f"{draft.sources['process_user']}: s3_map_filename is not set and "
                                  f"process_user {process_user!r} does not exist here, so "
                                  f"~{process_user}/.globus/s3 cannot be located")
            return
        draft.values["s3_map_filename"] = os.path.join(identity[1], ".globus", "s3")
        return
    if needs_home and identity is None:
        raise ConfigError(f"{draft.sources['s3_map_filename']}: s3_map_filename: cannot expand "
                          f"~/$HOME/$USER: process_user {process_user!r} does not exist")
    name, home = identity if identity is not None else ("", "")
    draft.values["s3_map_filename"] = expand_user_path(str(raw), name, home)


def _derive(draft: _Draft, environ: Mapping[str, str]) -> None:
    if draft.hostname is not None:
        hostname, where = draft.hostname
        for name in ("control_interface", "data_interface"):
            if not draft.explicit(name):
                draft.set(name, hostname, f"{where} (hostname)")
    threads = typing.cast(int, draft.values["threads"])
    if 0 <= threads < MIN_NAMESPACE_THREADS:
        meaning = " (non-threaded in globus-gridftp-server)" if threads == 0 else ""
        draft.warnings.append(f"{draft.sources['threads']}: threads {threads}{meaning} is taken as "
                              f"{MIN_NAMESPACE_THREADS}: s3dsi always runs at least {MIN_NAMESPACE_THREADS} "
                              "namespace threads")
        draft.values["threads"] = MIN_NAMESPACE_THREADS
    dsi = str(draft.values["load_dsi_module"])
    if ":" in dsi:
        draft.warnings.append(f"{draft.sources['load_dsi_module']}: DSI options after 's3:' are ignored")
        draft.values["load_dsi_module"] = "s3"
    endpoint_region = v.region_from_endpoint(str(draft.values["host_name"]))
    if endpoint_region is not None:
        if not draft.explicit("region"):
            draft.set("region", endpoint_region, f"{draft.sources['host_name']} (from host_name)")
        elif draft.values["region"] != endpoint_region:
            draft.warnings.append(f"{draft.sources['region']}: region {draft.values['region']!r} differs "
                                  f"from the region of host_name ({endpoint_region!r})")
    _resolve_map_path(draft, environ)


def _fail(draft: _Draft, name: str, message: str) -> ConfigError:
    return ConfigError(f"{draft.sources[name]}: {name}: {message}")


def _validate(draft: _Draft) -> None:
    val = draft.values
    port = typing.cast(int, val["port"])
    if not 0 <= port <= 65535:
        raise _fail(draft, "port", "expected a port number from 0 to 65535")
    port_range = typing.cast("tuple[int, int] | None", val["port_range"])
    if port_range is not None and not 1 <= port_range[0] <= port_range[1] <= 65535:
        raise _fail(draft, "port_range", "expected 1 <= min <= max <= 65535")
    for name in ("threads", "part_workers", "max_attempts"):
        if typing.cast(int, val[name]) < 1:
            raise _fail(draft, name, "expected a positive integer")
    for name in ("idle_timeout", "preauth_timeout", "orphan_upload_age", "shutdown_grace"):
        if typing.cast(int, val[name]) < 0:
            raise _fail(draft, name, "expected a non-negative number of seconds")
    if val["load_dsi_module"] != "s3":
        raise _fail(draft, "load_dsi_module", "s3dsi only provides the 's3' DSI")
    try:
        parse_gt_log_level(str(val["log_level"]))
    except ValueError as exc:
        raise _fail(draft, "log_level", f"expected {exc}") from None
    _validate_parts(draft)
    if val["allow_anonymous"] and not val["anonymous_user"]:
        raise _fail(draft, "allow_anonymous", "anonymous_user must name the map entry anonymous sessions "
                                              "use when allow_anonymous is 1")
    storage_class = val["storage_class"]
    if isinstance(storage_class, str) and storage_class not in v.AWS_STORAGE_CLASSES:
        draft.warnings.append(f"{draft.sources['storage_class']}: storage_class {storage_class!r} is not an "
                              "AWS storage class (fine for stores that define their own)")
    if val["connections_max"] == 0:
        draft.warnings.append(f"{draft.sources['connections_max']}: connections_max 0 refuses every client")
    if val["connections_max_per_address"] == 0:
        draft.warnings.append(f"{draft.sources['connections_max_per_address']}: connections_max_per_address "
                              "0 refuses every client (-1 lifts the limit)")
    _check_access_lists(draft)
    _validate_policy(draft)


def _check_access_lists(draft: _Draft) -> None:
    allow = typing.cast("tuple[str, ...] | None", draft.values["allow_from"])
    for entry in allow or ():
        if v.loose_ipv4_fragment(entry):
            draft.warnings.append(f"{draft.sources['allow_from']}: allow_from {entry!r} is a prefix, as in "
                                  f"globus-gridftp-server: it also lets in the addresses that start with it "
                                  f"({entry}0, {entry}23, ...); write {entry}/32 for that address alone")


def _validate_policy(draft: _Draft) -> None:
    """The site's S3 policy (root, buckets, sse...) must hold together; see config/s3policy.py."""
    val = draft.values
    root = typing.cast("str | None", val["root"])
    buckets = typing.cast("tuple[str, ...] | None", val["buckets"])
    if root is not None and buckets is not None and "$" not in root:
        bucket = root.strip("/").split("/", 1)[0]
        if bucket not in buckets:
            raise _fail(draft, "root", f"{root} is not in buckets {':'.join(buckets)} "
                                       f"({draft.sources['buckets']})")
    if val["sse_kms_key_id"] is not None and val["sse"] != "aws:kms":
        raise _fail(draft, "sse_kms_key_id", "needs sse = aws:kms")
    if typing.cast(int, val["credential_refresh"]) < 1:
        raise _fail(draft, "credential_refresh", "expected at least 1 second")
    if not val["conditional_writes"]:  # said at start-up: any map line may ask for append_only
        draft.warnings.append(f"{draft.sources['conditional_writes']}: conditional_writes no: append_only "
                              "and overwrite=if-unchanged (site or map line) are checked with HeadObject "
                              "just before each commit, so two writers racing can still both succeed")


def _validate_parts(draft: _Draft) -> None:
    low = typing.cast(int, draft.values["part_size_min"])
    high = typing.cast(int, draft.values["part_size_max"])
    budget = typing.cast(int, draft.values["memory_budget"])
    if low < v.MIN_PART_SIZE:
        raise _fail(draft, "part_size_min", f"must be at least 5M (S3's minimum part size), got "
                                            f"{v.format_size(low)}")
    if high > v.MAX_PART_SIZE:
        raise _fail(draft, "part_size_max", f"must be at most 5G (S3's maximum part size), got "
                                            f"{v.format_size(high)}")
    if low > high:
        raise _fail(draft, "part_size_min", f"{v.format_size(low)} is larger than part_size_max "
                                            f"{v.format_size(high)} ({draft.sources['part_size_max']})")
    if budget < 2 * low:
        raise _fail(draft, "memory_budget", f"{v.format_size(budget)} must be at least twice part_size_min "
                                            f"({v.format_size(low)}, {draft.sources['part_size_min']})")
    workers = typing.cast(int, draft.values["workers"])
    if workers > 1 and budget // workers < 2 * low:
        raise _fail(draft, "workers", f"{workers} workers share memory_budget {v.format_size(budget)} "
                                      f"({draft.sources['memory_budget']}): each needs at least twice "
                                      f"part_size_min ({v.format_size(2 * low)}); raise memory_budget or "
                                      "use fewer workers")
    ports = typing.cast("tuple[int, int] | None", draft.values["port_range"])
    if workers > 1 and ports is not None and ports[1] - ports[0] + 1 < workers:
        raise _fail(draft, "workers", f"{workers} workers need at least one passive data port each; "
                                      f"port_range {ports[0]},{ports[1]} ({draft.sources['port_range']}) "
                                      "has fewer")


def load_settings(*, config_file: str | None = None, config_dir: str | None = None,
                  s3_conf: str | None = None, overrides: Mapping[str, object] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """The effective Settings. Raises ConfigError naming file and line on any bad input.

    ``config_file``/``config_dir``/``s3_conf`` replace the default paths and must then exist.
    ``overrides`` are parsed command-line flags (field name -> value, text or typed). With ``environ``
    None the process environment is read and ``$NAME`` lines are applied to ``os.environ``; with a
    mapping given, that mapping is read and nothing global changes.
    """
    draft = _Draft()
    env = dict(os.environ if environ is None else environ)
    for name in _ENV_FIELDS:
        if name in env:
            _apply_env_field(draft, name, env[name], f"env {name}")
    lines = _load_gridftp_lines(_gridftp_files(config_file, config_dir), draft)
    _apply_environment(lines, env, draft, process_environ=environ is None)
    _apply_gridftp_options(lines, draft)
    _apply_s3_conf(s3_conf, draft)
    if overrides:
        _apply_overrides(overrides, draft)
    map_template = typing.cast("str | None", draft.values["s3_map_filename"])
    _derive(draft, env)
    _validate(draft)
    fields: dict[str, Any] = {
        **draft.values,
        "sources": types.MappingProxyType(dict(draft.sources)),
        "environment": types.MappingProxyType(dict(draft.environment)),
        "warnings": tuple(draft.warnings),
        "config_files": tuple(draft.files),
        "s3_map_template": map_template,
    }
    return Settings(**fields)
