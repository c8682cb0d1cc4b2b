"""``s3dsi serve``: from the configuration to a running daemon under the right process model.

Everything that needs root happens here, in this order, before any thread or event loop exists:
settings and logging, the password file, the transfer log, the service account's journal directory
and the root helper (service-user model), the listening sockets; then the privilege drop, and only then
the daemon proper.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from s3dsi.config.errors import ConfigError
from s3dsi.config.settings import Settings
from s3dsi.daemon.accounts import Account, PrivilegeError, can_switch_users, drop_privileges
from s3dsi.daemon.configsource import ConfigSource
from s3dsi.daemon.eventloop import run_loop
from s3dsi.daemon.hardening import no_core_dumps
from s3dsi.daemon.model import ProcessModel, ProcessPlan, StartupRefused, choose_process_model
from s3dsi.daemon.pwhelper import PasswordHelper
from s3dsi.daemon.runtime import Listeners, Reloaded, SingleProcessRuntime
from s3dsi.daemon.services import (
    S3Factories,
    apply_logging,
    authenticator_from_data,
    load_authenticator,
    load_isolated_authenticator,
)
from s3dsi.daemon.sockets import (
    AdminSocketError,
    bind_admin,
    bind_control,
    bind_metrics,
    default_admin_socket,
)
from s3dsi.daemon.statedir import StateDirError, prepare_service_state_dir
from s3dsi.daemon.supervisor import Supervisor
from s3dsi.daemon.workers import WorkerPool, worker_count
from s3dsi.identity.passwords import PasswordFileError
from s3dsi.observability.logging import get_logger
from s3dsi.observability.metrics import Metrics, prometheus_available
from s3dsi.observability.transferlog import TransferLog
from s3dsi.protocol.disabled import list_warnings
from s3dsi.security.credentials import CredentialError
from s3dsi.server.security import SecurityServices

log = get_logger("s3dsi.daemon")


class StartupError(Exception):
    """The daemon cannot start; the message is for the administrator (exit status 1 or 2)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def open_listeners(settings: Settings, owner: Account | None) -> Listeners:
    """Bind the control port, the admin socket (handed to ``owner``) and the metrics endpoint."""
    try:
        control = bind_control(settings)
    except OSError as err:
        raise StartupError(f"cannot listen on port {settings.port}: {err.strerror}", 1) from None
    listeners = Listeners(control)
    path = default_admin_socket(settings)
    try:
        listeners.admin, listeners.admin_path = bind_admin(path, owner), path
    except AdminSocketError as err:
        if settings.admin_socket:
            listeners.close()
            raise StartupError(f"admin_socket: {err}") from None
        log.warning("no admin socket; 's3dsi status' will not reach this daemon", reason=str(err))
    if settings.metrics_listen:
        try:
            listeners.metrics = bind_metrics(settings.metrics_listen)
        except OSError as err:
            listeners.close()
            raise StartupError(f"metrics_listen {settings.metrics_listen}: {err.strerror}", 1) from None
    return listeners


def prepare(source: ConfigSource) -> tuple[Settings, ProcessPlan]:
    """Settings, process model and logging; StartupError when the daemon must not start."""
    try:
        settings = source.load()
    except ConfigError as err:
        raise StartupError(str(err)) from None
    try:
        plan = choose_process_model(settings, euid=os.geteuid(), can_switch=can_switch_users())
    except StartupRefused as err:
        raise StartupError(str(err)) from None
    if settings.metrics_listen and not prometheus_available():
        raise StartupError("metrics_listen needs prometheus-client: pip install 's3dsi[metrics]'")
    try:
        apply_logging(settings)
    except OSError as err:
        raise StartupError(f"cannot open the log file: {err.filename}: {err.strerror}") from None
    where = settings.sources.get("disable_command_list", "disable_command_list")
    for warning in (*settings.warnings, *plan.warnings,
                    *list_warnings(settings.disable_command_list, where)):
        log.warning(warning)
    return settings, plan


def _transfer_log(settings: Settings) -> TransferLog:
    try:
        return TransferLog(settings.log_transfer)
    except OSError as err:
        raise StartupError(f"log_transfer: cannot open {settings.log_transfer}: {err.strerror}") from None


def _prepare_state_dir(state_dir: str, service: Account) -> None:
    """The service account's restart journal directory, made by root before the drop."""
    try:
        prepare_service_state_dir(state_dir, service)
    except StateDirError as err:
        raise StartupError(f"state_dir: {err}") from None
    except OSError as err:
        raise StartupError(f"state_dir: {err.filename or state_dir}: {err.strerror}") from None


def load_security(settings: Settings) -> SecurityServices:
    """The host credential (GSI) and the FTPS certificate, read now (as root, before any drop)."""
    try:
        services = SecurityServices.load(settings)
    except CredentialError as err:
        raise StartupError(f"GSI/FTPS credential: {err}") from None
    log.info("security", gsi=services.gsi is not None, ftps=services.ftps is not None,
             host_dn=services.host_dn, cert_dir=services.cert_dir, gridmap=services.gridmap)
    if settings.require_tls and not services.mechanisms:
        log.warning("require_tls is set but neither GSI nor FTPS has a certificate: every login is refused")
    return services


def serve(source: ConfigSource, stdout: TextIO | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; the exit status of ``s3dsi serve``."""
    no_core_dumps()
    settings, plan = prepare(source)
    security = load_security(settings)  # per-session children load it again, still root, per connection
    if plan.model is ProcessModel.PER_SESSION:
        return _serve_per_session(source, settings, stdout)
    return _serve_single(source, settings, plan, stdout, security)


def _serve_per_session(source: ConfigSource, settings: Settings, stdout: TextIO | None) -> int:
    if settings.workers > 1:
        log.warning(f"{settings.sources.get('workers', 'workers')}: workers is ignored in the per-session "
                    "process model, which runs one process per connection")
    try:
        authenticator = load_isolated_authenticator(settings)
    except PasswordFileError as err:
        raise StartupError(str(err)) from None
    transfer_log = _transfer_log(settings)
    listeners = open_listeners(settings, owner=None)
    supervisor = Supervisor(source, settings, authenticator, listeners, transfer_log,
                            metrics=bool(settings.metrics_listen), stdout=stdout)
    return supervisor.run()


def _serve_single(source: ConfigSource, settings: Settings, plan: ProcessPlan, stdout: TextIO | None,
                  security: SecurityServices) -> int:
    service = plan.account if plan.model is ProcessModel.SERVICE_USER else None
    try:
        authenticator = load_authenticator(settings, owner_uid=service.uid if service else None)
    except PasswordFileError as err:
        raise StartupError(str(err)) from None
    transfer_log = _transfer_log(settings)
    if service is not None and settings.state_dir is not None:
        _prepare_state_dir(settings.state_dir, service)
    helper = PasswordHelper.spawn(source, service.uid) if service is not None else None
    try:
        listeners = open_listeners(settings, owner=service)
        if service is not None:
            try:
                drop_privileges(service)
            except PrivilegeError as err:
                raise StartupError(f"privilege drop failed, not serving: {err}", 1) from None
            log.info("privileges dropped", account=service.describe())
        count = worker_count(settings)
        if count > 1:
            pool = WorkerPool(source, settings, count=count, model=plan.model,
                              runs_as=service or Account.current(), listeners=listeners,
                              authenticator=authenticator, transfer_log=transfer_log, security=security,
                              helper=helper, metrics=bool(settings.metrics_listen), stdout=stdout)
            return pool.run()
        metrics = Metrics() if settings.metrics_listen else None
        factories = S3Factories(metrics)

        def reload() -> Reloaded:
            loaded = source.load()
            if helper is not None:
                data = helper.read()
                new_auth = authenticator_from_data(loaded, data.path, data.data)
            else:
                new_auth = load_authenticator(loaded)
            return Reloaded(loaded, new_auth, factories.map_backends(loaded))

        runtime = SingleProcessRuntime(
            settings, model=plan.model, runs_as=service or Account.current(), listeners=listeners,
            authenticator=authenticator, backends=factories.map_backends(settings),
            transfer_log=transfer_log, metrics=metrics, reload=reload, stdout=stdout or sys.stdout,
            log_opener=helper.log_opener if helper is not None else None, security=security)
        return run_loop(runtime.run())
    finally:
        if helper is not None:
            helper.close()
