"""Which process model ``s3dsi serve`` runs under, decided once at start from who started it and the
configuration (docs/design.md, "Process model and privileges")."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from s3dsi.config.settings import Settings
from s3dsi.daemon.accounts import Account, AccountError


class ProcessModel(enum.Enum):
    INVOKER = "invoker"  # started unprivileged: everything runs as that user
    SERVICE_USER = "service-user"  # root with process_user: bind, read root-only files, drop for good
    PER_SESSION = "per-session"  # root without process_user: a forked child per connection drops to its user
    ROOT = "root"  # root without process_user, allow_root 1: sessions run as root (containers, tests)


class StartupRefused(Exception):
    """The daemon must not start this way; the message says what to change."""


@dataclass(frozen=True)
class ProcessPlan:
    model: ProcessModel
    account: Account | None = None  # SERVICE_USER: the account the daemon drops to
    warnings: tuple[str, ...] = ()


def choose_process_model(settings: Settings, *, euid: int, can_switch: bool) -> ProcessPlan:
    """The model for a daemon started by ``euid``; StartupRefused when none is safe."""
    if euid != 0:
        warnings: tuple[str, ...] = ()
        if settings.process_user:
            warnings = (f"{settings.sources.get('process_user', 'config')}: process_user is ignored: the "
                        "daemon was not started as root, so everything runs as the user who started it",)
        return ProcessPlan(ProcessModel.INVOKER, warnings=warnings)
    if settings.process_user:
        try:
            account = Account.lookup(settings.process_user, settings.process_group)
        except AccountError as err:
            raise StartupRefused(f"process_user: {err}; create it (e.g. adduser --system --group "
                                 f"{settings.process_user}) or change process_user") from None
        if account.uid == 0:
            raise StartupRefused("process_user names root (uid 0): name the unprivileged account the "
                                 "daemon should run as (e.g. globus-s3)")
        if not can_switch:
            raise StartupRefused("process_user is set but this process cannot change its user id (no "
                                 "CAP_SETUID/CAP_SETGID): start it with full root privileges or as "
                                 f"{account.name} directly")
        return ProcessPlan(ProcessModel.SERVICE_USER, account)
    if settings.allow_root:
        return ProcessPlan(ProcessModel.ROOT, warnings=(
            "allow_root 1: sessions run as root; use process_user for anything but throwaway hosts",))
    if not can_switch:
        raise StartupRefused("refusing to run as root: process_user is not set and sessions cannot be "
                             "switched to their users (this process lacks CAP_SETUID/CAP_SETGID or fork). "
                             "Set 'process_user globus-s3' in /etc/gridftp.d/gridftp-s3, or start s3dsi as "
                             "an unprivileged user")
    return ProcessPlan(ProcessModel.PER_SESSION)
