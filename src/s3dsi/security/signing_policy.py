"""``<hash>.signing_policy`` files (the EACL format GCT reads): which subjects a CA may sign.

    access_id_CA   X509    '/C=XX/O=GSITest/CN=GSITest CA'
    pos_rights     globus  CA:sign
    cond_subjects  globus  '"/C=XX/O=GSITest/*" "/C=XX/O=Other/*"'

Tokens are words or ``'single-quoted'`` strings; ``#`` outside quotes starts a comment. An
``access_id_CA`` line starts a block (consecutive ones share it); the ``pos_rights``/``neg_rights``
and ``cond_subjects`` lines that follow belong to it. A subject is allowed when a block names the
issuing CA, grants ``globus CA:sign`` and one of its patterns matches the whole subject; ``*`` matches
any run of characters and ``?`` one character (GCT turns the patterns into anchored regular expressions);
the comparison is case-sensitive, on the ``X509_NAME_oneline`` forms. A block with ``neg_rights globus
CA:sign`` whose pattern matches refuses the subject whatever else allows it. OpenSSL knows nothing
of these files; GCT enforces them, so we must too: otherwise any trusted CA could vouch for names it
has no authority over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class SigningPolicyError(ValueError):
    """The policy file cannot be parsed (``file:line: reason``)."""


@dataclass
class PolicyBlock:
    ca_dns: list[str] = field(default_factory=list)
    grants: bool = False
    denies: bool = False
    patterns: list[re.Pattern[str]] = field(default_factory=list)
    closed: bool = False  # rights or conditions seen: the next access_id starts a new block


def pattern_regex(glob: str) -> re.Pattern[str]:
    """Anchored regular expression of a signing-policy pattern (``*`` any run, ``?`` one character)."""
    parts = []
    for char in glob:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def _tokens(text: str, source: str) -> list[tuple[int, str, bool]]:
    """(line, token, was quoted) for the whole file."""
    out: list[tuple[int, str, bool]] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        char = text[i]
        if char == "\n":
            line += 1
            i += 1
        elif char.isspace():
            i += 1
        elif char == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise SigningPolicyError(f"{source}:{line}: unterminated quoted string")
            out.append((line, text[i + 1:end], True))
            line += text.count("\n", i, end)
            i = end + 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in "'#":
                i += 1
            out.append((line, text[start:i], False))
    return out


def _patterns(value: str) -> list[str]:
    quoted = re.findall(r'"([^"]*)"', value)
    return quoted if quoted else value.split()


@dataclass(frozen=True)
class SigningPolicy:
    blocks: tuple[PolicyBlock, ...]
    source: str = "<signing_policy>"

    @classmethod
    def parse(cls, text: str, source: str = "<signing_policy>") -> SigningPolicy:
        tokens = _tokens(text, source)
        blocks: list[PolicyBlock] = []
        i = 0
        while i < len(tokens):
            line, word, _ = tokens[i]
            if i + 2 >= len(tokens):
                raise SigningPolicyError(f"{source}:{line}: {word!r} needs two values")
            kind, value = tokens[i + 1][1], tokens[i + 2][1]
            i += 3
            if word == "access_id_CA":
                if kind != "X509":
                    raise SigningPolicyError(f"{source}:{line}: access_id_CA of type {kind!r} (only X509)")
                if not blocks or blocks[-1].closed:
                    blocks.append(PolicyBlock())
                blocks[-1].ca_dns.append(value)
                continue
            if not blocks:
                raise SigningPolicyError(f"{source}:{line}: {word} before any access_id_CA")
            block = blocks[-1]
            block.closed = True
            if word in ("pos_rights", "neg_rights"):
                if kind == "globus" and value == "CA:sign":
                    if word == "pos_rights":
                        block.grants = True
                    else:
                        block.denies = True
            elif word == "cond_subjects":
                if kind == "globus":
                    block.patterns.extend(pattern_regex(p) for p in _patterns(value))
            else:
                raise SigningPolicyError(f"{source}:{line}: unknown policy statement {word[:40]!r}")
        return cls(tuple(blocks), source)

    def allows(self, ca_dn: str, subject: str) -> bool:
        """Whether the CA named ``ca_dn`` may sign ``subject`` (both in oneline form)."""
        allowed = False
        for block in self.blocks:
            if ca_dn not in block.ca_dns:
                continue
            matches = any(p.fullmatch(subject) for p in block.patterns)
            if matches and block.denies:
                return False
            if matches and block.grants:
                allowed = True
        return allowed

    def names_ca(self, ca_dn: str) -> bool:
        return any(ca_dn in block.ca_dns for block in self.blocks)
