"""Which option names the configuration files accept, and the Settings field and parser behind each.

gridftp.d names are the reference server's (``pw_file``, ``control_idle_timeout``...), with the short
spellings the S3 connector documentation uses accepted as aliases. Reference options that s3dsi does
not implement are recognised so that they draw a precise warning rather than "unknown option".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from s3dsi.config import s3policy
from s3dsi.config import values as v
from s3dsi.observability.levels import parse_s3_debug


@dataclass(frozen=True)
class OptionSpec:
    field: str
    parse: Callable[[str], object]


def _path(text: str) -> str | None:
    """A file path; relative paths are taken from the current directory, as the reference does."""
    if not text:
        return None
    return os.path.abspath(os.path.expanduser(text))


def _non_negative_gt_int(text: str) -> int:
    value = v.parse_gt_int(text)
    if value < 0:
        raise ValueError("a non-negative integer")
    return value


def _connections_max(text: str) -> int | None:
    value = v.parse_gt_int(text)
    return None if value < 0 else value


def _positive_gt_int(text: str) -> int:
    value = v.parse_gt_int(text)
    if value < 1:
        raise ValueError("a positive integer")
    return value


def _address_list_or_unset(text: str) -> tuple[str, ...] | None:
    return v.parse_address_list(text) or None


def _command_list(text: str) -> tuple[str, ...]:
    """The reference's comma list of commands: ``DELE``, ``SITE CHMOD``, or a command with arguments."""
    return tuple(" ".join(item.split()) for item in text.split(",") if item.strip())


def _dsi(text: str) -> str:
    module = text.split(":", 1)[0].strip()
    if module != "s3":
        raise ValueError("'s3' (s3dsi only provides the S3 DSI; it cannot load other modules)")
    return text.strip()


def _s3_debug(text: str) -> str:
    parse_s3_debug(text)
    return text.strip()


def _tls_version(text: str) -> str:
    value = text.strip()
    if value not in ("1.2", "1.3"):
        raise ValueError("1.2 or 1.3")
    return value


def _workers(text: str) -> int:
    """``auto`` (or 0): one per core, within the memory budget; else how many."""
    if text.strip().lower() == "auto":
        return 0
    value = v.parse_gt_int(text)
    if value < 0:
        raise ValueError("auto or a non-negative integer")
    return value


def _optional(parse: Callable[[str], object]) -> Callable[[str], object]:
    def parse_or_unset(text: str) -> object:
        return None if not text.strip() else parse(text)

    return parse_or_unset


GRIDFTP_OPTIONS: dict[str, OptionSpec] = {
    "port": OptionSpec("port", v.parse_port),
    "control_interface": OptionSpec("control_interface", v.parse_text),
    "data_interface": OptionSpec("data_interface", v.parse_text),
    "port_range": OptionSpec("port_range", v.parse_port_range),
    "threads": OptionSpec("threads", _non_negative_gt_int),
    "process_user": OptionSpec("process_user", v.parse_text),
    "process_group": OptionSpec("process_group", v.parse_text),
    "load_dsi_module": OptionSpec("load_dsi_module", _dsi),
    "log_level": OptionSpec("log_level", v.normalise_log_level),
    "log_single": OptionSpec("log_single", _path),
    "log_transfer": OptionSpec("log_transfer", _path),
    "banner": OptionSpec("banner", v.parse_text),
    "connections_max": OptionSpec("connections_max", _connections_max),
    "connections_max_per_address": OptionSpec("connections_max_per_address", _connections_max),  # s3dsi
    "connections_disabled": OptionSpec("connections_disabled", v.parse_gt_bool),
    "offline_msg": OptionSpec("offline_msg", v.parse_text),
    "allow_from": OptionSpec("allow_from", _address_list_or_unset),
    "deny_from": OptionSpec("deny_from", v.parse_address_list),
    "disable_command_list": OptionSpec("disable_command_list", _command_list),
    "banner_terse": OptionSpec("banner_terse", v.parse_gt_bool),
    "login_attempts_max": OptionSpec("login_attempts_max", _positive_gt_int),  # s3dsi
    "anonymous_read_only": OptionSpec("anonymous_read_only", v.parse_gt_bool),  # s3dsi
    "allow_anonymous": OptionSpec("allow_anonymous", v.parse_gt_bool),
    "anonymous_user": OptionSpec("anonymous_user", v.parse_text),
    "anonymous_names_allowed": OptionSpec("anonymous_names_allowed", v.parse_name_list),
    "pw_file": OptionSpec("password_file", _path),
    "password_file": OptionSpec("password_file", _path),
    "control_idle_timeout": OptionSpec("idle_timeout", _non_negative_gt_int),
    "idle_timeout": OptionSpec("idle_timeout", _non_negative_gt_int),
    "control_preauth_timeout": OptionSpec("preauth_timeout", _non_negative_gt_int),
    "preauth_timeout": OptionSpec("preauth_timeout", _non_negative_gt_int),
    "port_allow": OptionSpec("port_allow", v.parse_networks),  # s3dsi's own: third-party PORT targets
    "data_idle_timeout": OptionSpec("data_idle_timeout", _non_negative_gt_int),  # s3dsi's own
    "data_pressure_timeout": OptionSpec("data_pressure_timeout", _non_negative_gt_int),  # s3dsi's own
    # GT: "allow clients to be mapped to root"; here: root without process_user runs sessions as root
    "allow_root": OptionSpec("allow_root", v.parse_gt_bool),
    "workers": OptionSpec("workers", _workers),  # s3dsi's own
    "gridmap": OptionSpec("gridmap", _path),
    "tls_certificate": OptionSpec("tls_certificate", _path),
    "tls_key": OptionSpec("tls_key", _path),
    "require_tls": OptionSpec("require_tls", v.parse_gt_bool),
    "encrypt_data": OptionSpec("encrypt_data", v.parse_gt_bool),
    "tls_require_session_reuse": OptionSpec("tls_require_session_reuse", v.parse_gt_bool),  # s3dsi's own
    "gsi_tls_max_version": OptionSpec("gsi_tls_max_version", _tls_version),
}

# ``hostname`` sets both interfaces unless they are set themselves (handled by the loader).
HOSTNAME_OPTION = "hostname"

# -- credentials and S3 policy (site defaults; config/s3policy.py has the rules) -----------------------
def _policy(key: str, to_setting: Callable[[object], object] | None = None) -> Callable[[str], object]:
    def parse(text: str) -> object:
        try:
            value = s3policy.parse_value(key, text)
        except s3policy.PolicyError as exc:
            raise ValueError(str(exc)) from None
        return to_setting(value) if to_setting is not None else value

    return parse


def _site_root(text: str) -> str:
    """A root, checked with ``$USER`` standing for a user name; kept as text (expanded per session)."""
    try:
        s3policy.parse_root(s3policy.expand_root(text, "user"))
    except s3policy.PolicyError as exc:
        raise ValueError(str(exc)) from None
    return text.strip().rstrip("/") or "/"


def _sts_endpoint(text: str) -> str | None:
    return v.parse_endpoint_url(text) if text.strip() else None


CREDENTIAL_POLICY_OPTIONS: dict[str, OptionSpec] = {
    "root": OptionSpec("root", _optional(_site_root)),
    "buckets": OptionSpec("buckets", _optional(_policy("buckets"))),
    "append_only": OptionSpec("append_only", v.parse_bool),
    "overwrite": OptionSpec("overwrite", _policy("overwrite")),
    "requester_pays": OptionSpec("requester_pays", _policy("requester_pays")),
    "sse": OptionSpec("sse", _optional(_policy("sse"))),
    "sse_kms_key_id": OptionSpec("sse_kms_key_id", _optional(_policy("sse_kms_key_id"))),
    "object_acl": OptionSpec("object_acl", _optional(_policy("object_acl"))),
    "sts_endpoint": OptionSpec("sts_endpoint", _sts_endpoint),
    "credential_refresh": OptionSpec("credential_refresh", v.parse_duration),
    "conditional_writes": OptionSpec("conditional_writes", v.parse_bool),
    "full_object_checksums": OptionSpec("full_object_checksums", v.parse_bool),
}

S3_OPTIONS: dict[str, OptionSpec] = {
    "host_name": OptionSpec("host_name", v.parse_endpoint_url),
    "s3_map_filename": OptionSpec("s3_map_filename", v.parse_text),
    "region": OptionSpec("region", v.parse_region),
    "addressing_style": OptionSpec("addressing_style", v.parse_addressing_style),
    "part_size_min": OptionSpec("part_size_min", v.parse_size),
    "part_size_max": OptionSpec("part_size_max", v.parse_size),
    "part_workers": OptionSpec("part_workers", v.parse_positive_int),
    "max_attempts": OptionSpec("max_attempts", v.parse_positive_int),
    "memory_budget": OptionSpec("memory_budget", v.parse_size),
    "storage_class": OptionSpec("storage_class", v.parse_storage_class),
    "verify_tls": OptionSpec("verify_tls", v.parse_bool),
    "ca_bundle": OptionSpec("ca_bundle", _path),
    "unsigned_payload_over_http": OptionSpec("unsigned_payload_over_http", v.parse_bool),
    "upload_checksums": OptionSpec("upload_checksums", v.parse_checksums),
    "state_dir": OptionSpec("state_dir", _path),
    "orphan_upload_age": OptionSpec("orphan_upload_age", v.parse_duration),
    "shutdown_grace": OptionSpec("shutdown_grace", v.parse_duration),
    "metrics_listen": OptionSpec("metrics_listen", _optional(v.parse_listen)),
    "admin_socket": OptionSpec("admin_socket", _path),
    "log_format": OptionSpec("log_format", v.parse_log_format),
    **CREDENTIAL_POLICY_OPTIONS,
}

# Parser per Settings field, for command-line overrides given as text.
FIELD_PARSERS: dict[str, Callable[[str], object]] = {
    **{spec.field: spec.parse for spec in GRIDFTP_OPTIONS.values()},
    **{spec.field: spec.parse for spec in S3_OPTIONS.values()},
    "s3_debug": _s3_debug,
}

# Options of globus-gridftp-server that restrict access and that s3dsi does not implement: ignoring one would
# serve more than the site allowed, so the daemon refuses to start on them (auth_level only for the
# restricting bits, see ACCEPTED_AUTH_LEVEL_BITS), naming the file and line.
REFUSED_GT_OPTIONS: dict[str, str] = {
    "restrict_paths": "the paths clients may access",
    "chroot_path": "a chroot for each session",
    "acl": "access-control modules",
    "auth_level": "an authorization level",
}
# GT auth_level bits: 1 identity, 2 per-action authorization (through `acl` modules and authorization
# callouts: without `acl`, which s3dsi refuses, the reference checks nothing more than S3 already does
# with the user's own keys), 4 no setuid, 8 no gridmap. 16 (restrict_paths on data nodes) and any bit
# unknown here restrict something s3dsi does not do.
ACCEPTED_AUTH_LEVEL_BITS = 0x0F

# Options of globus-gridftp-server that s3dsi accepts in gridftp.d but does not act on: they select
# modes or features s3dsi does not have (IPC, striping, sharing, drivers), so ignoring them serves
# nothing the site meant to forbid. encrypt_data is recognised for the secure-transport work.
IGNORED_GT_OPTIONS = frozenset({
    "help", "longhelp", "version", "versions", "inetd", "daemon", "detach", "ssh", "exec", "chdir",
    "chdir_to", "fork", "fork_fallback", "single", "ipc_allow_from",
    "ipc_deny_from", "secure_ipc", "ipc_auth_mode",
    "ipc_user_name", "ipc_subject", "ipc_credential", "ipc_cookie", "anonymous_group", "sharing_dn",
    "sharing_state_dir", "sharing_control", "sharing_rp", "sharing_users_allow", "sharing_users_deny",
    "sharing_groups_allow", "sharing_groups_deny", "allow_disabled_login",
    "cas", "use_home_dirs", "home_dir",
    "rp_follow_symlinks", "log_module", "log_unique", "log_filemode",
    "disable_usage_stats", "usage_stats_target", "usage_stats_id", "remote_nodes", "hybrid", "data_node",
    "stripe_blocksize", "stripe_count", "brain", "stripe_layout", "stripe_blocksize_locked",
    "stripe_layout_locked", "stripe_mode", "blocksize", "sync_writes", "direct", "perms", "file_timeout",
    "ipc_interface", "ipc_port", "ipc_idle_timeout", "ipc_connect_timeout", "always_send_markers",
    "allow_udt", "epsv_ip", "epsv_match", "banner_file", "banner_append", "version_tag",
    "login_msg", "login_msg_file", "allowed_modules", "dc_whitelist", "fs_whitelist", "popen_whitelist",
    "xnetmgr", "dc_default", "fs_default", "config_dir", "config_base_path", "debug", "pidfile",
    "globus_location", "ignore_bad_threads", "bad_signal_exit", "extension",
})
