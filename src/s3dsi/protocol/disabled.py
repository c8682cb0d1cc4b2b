"""``disable_command_list``: commands, SITE commands or argument values a site switched off.

The reference server's rules (``globus_gsc_959_command_remove`` and its restrict lists):

* ``DELE``: the command is gone; it is answered as a command the server does not have (500), before
  login too.
* ``SITE CHMOD``: that SITE command is gone (``500 Invalid command.``, as any unknown SITE command).
* ``OPTS RETR``, ``SITE CHMOD 777``, ``TYPE A``: the command stays, but a command whose words match
  those argument words, compared one by one without regard to case for as many words as both have, is
  answered ``501 Command arguments disabled.`` (so ``OPTS RETR`` refuses every ``OPTS RETR ...``).
  As in the reference, this check comes after the login and argument checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from s3dsi.protocol.commands import COMMANDS, SITE_COMMANDS
from s3dsi.protocol.replies import NOT_SUPPORTED, Reply

ARGUMENTS_DISABLED = Reply.line(501, "Command arguments disabled.")
SITE_DISABLED = Reply.line(500, "Invalid command.")


def _words(text: str | None) -> list[str]:
    return (text or "").split()


@dataclass(frozen=True)
class DisabledCommands:
    verbs: frozenset[str] = frozenset()
    site: frozenset[str] = frozenset()
    # verb (or "SITE NAME") -> argument word lists that are refused
    arguments: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> DisabledCommands:
        verbs: set[str] = set()
        site: set[str] = set()
        arguments: dict[str, list[tuple[str, ...]]] = {}
        for entry in entries:
            words = entry.split()
            if not words:
                continue
            verb = words[0].upper()
            if verb == "SITE" and len(words) >= 2:
                name, args = f"SITE {words[1].upper()}", tuple(words[2:])
                if not args:
                    site.add(words[1].upper())
                    continue
            else:
                name, args = verb, tuple(words[1:])
                if not args:
                    verbs.add(verb)
                    continue
            arguments.setdefault(name, []).append(args)
        return cls(frozenset(verbs), frozenset(site), {k: tuple(v) for k, v in arguments.items()})

    def __bool__(self) -> bool:
        return bool(self.verbs or self.site or self.arguments)

    def removed(self, verb: str) -> Reply | None:
        """The answer for a command that is gone altogether, else None."""
        return NOT_SUPPORTED if verb in self.verbs else None

    def refused(self, verb: str, arg: str | None) -> Reply | None:
        """The answer for a command whose SITE name or arguments are switched off, else None (called
        once the login and argument-presence checks passed)."""
        words = _words(arg)
        if verb == "SITE":
            if not words:
                return None
            sub = words[0].upper()
            if sub in self.site:
                return SITE_DISABLED
            name, words = f"SITE {sub}", words[1:]
        else:
            name = verb
        for banned in self.arguments.get(name, ()):
            if _matches(words, banned):
                return ARGUMENTS_DISABLED
        return None


def _matches(words: Sequence[str], banned: Sequence[str]) -> bool:
    """The reference's comparison: word by word while they are equal, for as many words as both have."""
    refused = False
    for given, word in zip(words, banned, strict=False):
        refused = given.lower() == word.lower()
        if not refused:
            break
    return refused


def unknown_command(entry: str) -> str | None:
    """Why an entry of disable_command_list names nothing s3dsi has (a warning), or None."""
    words = entry.split()
    if not words:
        return None
    verb = words[0].upper()
    if verb not in COMMANDS:
        return f"{verb!r} is not a command s3dsi implements (nothing to disable)"
    if verb == "SITE" and len(words) >= 2 and words[1].upper() not in SITE_COMMANDS:
        return f"'SITE {words[1].upper()}' is not a SITE command s3dsi implements (nothing to disable)"
    return None


def list_warnings(entries: Iterable[str], source: str) -> list[str]:
    """The warnings ``disable_command_list`` deserves (entries naming nothing s3dsi has), each naming
    where the option was set; start-up logs them and ``s3dsi check-config`` prints them."""
    return [f"{source}: disable_command_list: {problem}" for entry in entries
            if (problem := unknown_command(entry)) is not None]
