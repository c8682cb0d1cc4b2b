from __future__ import annotations

import pytest

from s3dsi.security.signing_policy import SigningPolicy, SigningPolicyError

IGTF_STYLE = """
# EACL - Globus signing policy
 access_id_CA      X509         '/C=DE/O=GermanGrid/CN=GridKa-CA'
 pos_rights        globus        CA:sign
 cond_subjects     globus       '"/C=DE/O=GermanGrid/*" "/C=DE/O=GridGermany/*"'
# second block, sharing nothing with the first
access_id_CA X509 '/C=XX/O=Test/CN=Test CA'
pos_rights globus CA:sign
cond_subjects globus '"/C=XX/O=Test/OU=?/*"'
"""


def test_patterns_per_ca() -> None:
    policy = SigningPolicy.parse(IGTF_STYLE)
    gridka = "/C=DE/O=GermanGrid/CN=GridKa-CA"
    assert policy.allows(gridka, "/C=DE/O=GermanGrid/OU=KIT/CN=Someone")
    assert policy.allows(gridka, "/C=DE/O=GridGermany/CN=host/x.example.org")
    assert not policy.allows(gridka, "/C=DE/O=GermanGridX/CN=Someone")  # anchored, the slash is literal
    assert not policy.allows(gridka, "/c=de/O=GermanGrid/CN=Someone")  # case-sensitive
    assert not policy.allows(gridka, "/C=XX/O=Test/OU=A/CN=x")  # the other CA's namespace
    assert policy.allows("/C=XX/O=Test/CN=Test CA", "/C=XX/O=Test/OU=A/CN=x")
    assert not policy.allows("/C=XX/O=Test/CN=Test CA", "/C=XX/O=Test/OU=AB/CN=x")  # ? is one character
    assert not policy.allows("/C=XX/O=Unknown/CN=CA", "/C=XX/O=Unknown/CN=x")
    assert policy.names_ca(gridka)
    assert not policy.names_ca("/C=XX/O=Unknown/CN=CA")


def test_regex_characters_are_literal() -> None:
    policy = SigningPolicy.parse("access_id_CA X509 '/CN=CA'\npos_rights globus CA:sign\n"
                                 "cond_subjects globus '\"/O=a.b/*\"'\n")
    assert policy.allows("/CN=CA", "/O=a.b/CN=x")
    assert not policy.allows("/CN=CA", "/O=aXb/CN=x")


def test_negative_rights_win() -> None:
    policy = SigningPolicy.parse("access_id_CA X509 '/CN=CA'\npos_rights globus CA:sign\n"
                                 "cond_subjects globus '\"/O=a/*\"'\n"
                                 "access_id_CA X509 '/CN=CA'\nneg_rights globus CA:sign\n"
                                 "cond_subjects globus '\"/O=a/CN=bad*\"'\n")
    assert policy.allows("/CN=CA", "/O=a/CN=good")
    assert not policy.allows("/CN=CA", "/O=a/CN=bad one")


def test_without_pos_rights_nothing_is_allowed() -> None:
    policy = SigningPolicy.parse("access_id_CA X509 '/CN=CA'\ncond_subjects globus '\"/*\"'\n")
    assert not policy.allows("/CN=CA", "/O=a/CN=x")


@pytest.mark.parametrize(("text", "reason"), [
    ("access_id_CA X509 '/CN=CA\n", "unterminated"),
    ("pos_rights globus CA:sign\n", "before any access_id_CA"),
    ("access_id_CA X509 '/CN=CA'\nbogus globus x\n", "unknown policy statement"),
    ("access_id_CA X509\n", "needs two values"),
])
def test_errors(text: str, reason: str) -> None:
    with pytest.raises(SigningPolicyError, match=reason):
        SigningPolicy.parse(text, "p")
