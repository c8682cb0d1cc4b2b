"""The one frozen ``Settings`` object the daemon reads; nothing else reads configuration.

Built by ``s3dsi.config.loader.load_settings`` from, in increasing precedence: defaults, the
inherited environment (``GLOBUS_TCP_PORT_RANGE``, ``GLOBUS_S3_DEBUG``), the files of ``/etc/gridftp.d``
(name order, skipping hidden files, ``*~`` and package-manager leftovers), ``/etc/gridftp.conf`` (read
after the directory, as globus-gridftp-server does), the S3 connector conf
(``/etc/globus/globus-gridftp-server-s3.conf``) and command-line flags. ``sources`` records where each
field's value came from ("path:line", "env NAME", "flag", "default").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

MiB = 1024 * 1024
GiB = 1024 * MiB
# The start-up janitor's sweep runs on a namespace thread: a second one keeps listings from waiting for it.
MIN_NAMESPACE_THREADS = 2


def namespace_threads(configured: int) -> int:
    """The namespace-operation threads a daemon runs for the ``threads`` setting (the loader already
    raises smaller values, with a warning; this holds for Settings built in code too)."""
    return max(MIN_NAMESPACE_THREADS, configured)

AddressingStyle = Literal["auto", "path", "virtual"]


@dataclass(frozen=True)
class Settings:
    # ---- gridftp.d options (reference server meaning) -------------------------------------------
    port: int = 2811
    control_interface: str | None = None  # None: all interfaces
    data_interface: str | None = None  # None: the address the control connection arrived on
    port_range: tuple[int, int] | None = None  # passive data ports (also GLOBUS_TCP_PORT_RANGE)
    threads: int = 4  # namespace-operation worker threads (GT: threads of the server), >= 2
    process_user: str | None = None
    process_group: str | None = None
    load_dsi_module: str = "s3"
    log_level: str = "ERROR"  # GT levels: ERROR,WARN,INFO,TRANSFER,DUMP,ALL (comma list or number)
    log_single: str | None = None  # session/error log path
    log_transfer: str | None = None  # "Transfer stats:" log path
    banner: str | None = None
    connections_max: int | None = 500  # every control connection, logged in or not; None: unlimited
    connections_max_per_address: int | None = 50  # s3dsi: per IPv4 address / IPv6 /64; None: unlimited
    connections_disabled: bool = False  # refuse every client with 422 offline_msg
    offline_msg: str | None = None
    allow_from: tuple[str, ...] | None = None  # None: every address (then deny_from applies)
    deny_from: tuple[str, ...] = ()
    disable_command_list: tuple[str, ...] = ()  # "VERB", "SITE NAME" or "VERB ARG..." entries
    banner_terse: bool = False  # greeting without version or banner before login
    login_attempts_max: int = 3  # s3dsi: failed PASS per connection before it is closed
    allow_anonymous: bool = False
    anonymous_user: str | None = None  # map entry anonymous sessions use; required with allow_anonymous
    anonymous_names_allowed: tuple[str, ...] = ("anonymous", "ftp")  # login names treated as anonymous
    anonymous_read_only: bool = True  # s3dsi: anonymous sessions may not write, whatever the keys allow
    password_file: str | None = None  # GT option name: pw_file
    idle_timeout: int = 600  # GT option name: control_idle_timeout
    preauth_timeout: int = 60  # GT option name: control_preauth_timeout; from connect, not from each byte
    s3_debug: str | None = None  # GLOBUS_S3_DEBUG "LEVEL[,PATH]" (environment or a `$` line)
    port_allow: tuple[str, ...] = ()  # networks besides the client's own that PORT may name (3rd party)
    # and that may connect to passive data ports without authenticated data channels
    data_idle_timeout: int = 180  # seconds without a data byte moving fail a transfer (0: never)
    data_pressure_timeout: int = 20  # ... shorter while it holds memory another transfer waits for
    allow_root: bool = False  # started as root without process_user: run sessions as root, no fork
    # s3dsi: session-serving processes of the single-process models (the service user's, above all);
    # 0: one per core, within the memory budget (daemon/workers.py)
    workers: int = 0
    # ---- security (GSI and FTPS; the GSI paths also come from X509_* / GRIDMAP in the environment) -----
    gridmap: str | None = None  # grid-mapfile; None: $GRIDMAP, else /etc/grid-security/grid-mapfile
    tls_certificate: str | None = None  # FTPS certificate; None: the host certificate
    tls_key: str | None = None  # its key; None: tls_certificate itself, or the host key
    require_tls: bool = False  # refuse USER/PASS on a clear-text control connection
    encrypt_data: bool = False  # GT: transfers and listings only over encrypted data channels (PROT P)
    tls_require_session_reuse: bool = True  # FTPS PROT P: a data connection must resume the control's TLS
    gsi_tls_max_version: str = "1.3"  # "1.2" for GCT clients of 2021-2022 whose TLS 1.3 was broken
    # ---- S3 connector conf -----------------------------------------------------------------------
    host_name: str = "https://s3.amazonaws.com"  # endpoint URL of the default region
    s3_map_filename: str | None = None  # None: ~/.globus/s3 of the process user
    region: str = "us-east-1"
    addressing_style: AddressingStyle = "auto"
    part_size_min: int = 16 * MiB  # also the ranged-GET size; 8M costs more CPU (docs/performance.md)
    part_size_max: int = 512 * MiB
    part_workers: int = 8
    max_attempts: int = 8  # tries of one S3 request in all (botocore standard retries) before it fails
    memory_budget: int = 160 * MiB  # in-flight part buffers, whole process
    storage_class: str | None = None
    verify_tls: bool = True
    ca_bundle: str | None = None
    unsigned_payload_over_http: bool = False  # plain-HTTP endpoints: skip SHA-256 payload signing
    # computed while receiving; MD5 (1.4 CPU s/GiB, serial) is opt-in: docs/performance.md
    upload_checksums: tuple[str, ...] = ("ADLER32", "CRC32C")
    state_dir: str | None = None  # resumable-upload journal; None: a per-user default
    orphan_upload_age: int = 24 * 3600  # janitor aborts this service's unfinished uploads older
    shutdown_grace: int = 30  # seconds SIGTERM lets running transfers finish
    metrics_listen: str | None = None  # "127.0.0.1:9102" enables the Prometheus endpoint
    admin_socket: str | None = None  # `s3dsi status` socket; None: a default under state_dir
    log_format: Literal["kv", "json"] = "kv"
    # ---- credentials and S3 policy (S3 conf; config/s3policy.py). Site defaults: a map line's fourth
    # field may only narrow them. storage_class above belongs to this policy too. ----------------------
    root: str | None = None  # virtual root /bucket[/prefix] of every user ($USER: the local user name)
    buckets: tuple[str, ...] | None = None  # the only buckets reachable (and shown in /); None: all
    append_only: bool = False  # new objects only: no overwrite, DELE, RMD, RNFR
    overwrite: str = "always"  # "if-unchanged": replace only the object seen when the upload began
    requester_pays: tuple[str, ...] = ()  # buckets whose requests carry RequestPayer; ("*",): all
    sse: str | None = None  # AES256 or aws:kms for every new object
    sse_kms_key_id: str | None = None  # the KMS key of sse=aws:kms; None: the account's aws/s3 key
    object_acl: str | None = None  # canned ACL of new objects; None: bucket-owner-full-control abroad
    sts_endpoint: str | None = None  # STS for role_arn; None: host_name of non-AWS stores, else AWS STS
    credential_refresh: int = 300  # seconds between look-ups of source=default credentials
    conditional_writes: bool = True  # the store honours If-None-Match/If-Match on writes
    full_object_checksums: bool = True  # ask S3 for a FULL_OBJECT CRC32C of multipart uploads
    # ---- bookkeeping -----------------------------------------------------------------------------
    environment: Mapping[str, str] = field(default_factory=dict)  # `$NAME value` lines applied
    sources: Mapping[str, str] = field(default_factory=dict)  # field name -> origin
    warnings: tuple[str, ...] = ()  # unknown options etc., each naming file and line
    config_files: tuple[str, ...] = ()  # the files read, in the order they were applied
    # s3_map_filename as configured, before ~/$HOME/$USER expansion (None: the default ~/.globus/s3);
    # per-session processes expand it for each session's user
    s3_map_template: str | None = None
