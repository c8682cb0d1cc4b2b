"""The fourth field of a credential-map line: credential sources and policy keys."""

from __future__ import annotations

import pytest

from s3dsi.config.s3policy import Root
from s3dsi.identity.mapoptions import OptionError, parse_options
from s3dsi.identity.usermap import MapError, UserMap

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ROLE = "arn:aws:iam::123456789012:role/lab-writer"


def parse(text: str) -> UserMap:
    return UserMap.parse(text.encode(), "s3")


def test_role_with_the_lines_keys() -> None:
    entry = parse(f"alice;AKIAALICE;{SECRET};role_arn={ROLE},external_id=lab-42,session_name=alice@gw,"
                  "duration=1h\n").lookup("alice")
    assert entry is not None and entry.has_keys
    options = entry.options
    assert (options.role_arn, options.external_id, options.session_name, options.duration) == \
        (ROLE, "lab-42", "alice@gw", 3600)
    assert options.source is None


def test_default_chain_with_empty_key_fields() -> None:
    entry = parse(f"alice;;;source=default,role_arn={ROLE}\nbob;;;source=default,profile=lab\n")
    alice, bob = entry.lookup("alice"), entry.lookup("bob")
    assert alice is not None and not alice.has_keys
    assert alice.options.source == "default" and alice.options.role_arn == ROLE
    assert bob is not None and bob.options.profile == "lab" and bob.options.role_arn is None


def test_a_bare_role_arn_keeps_its_reserved_meaning() -> None:
    entry = parse(f"bob;AKIABOB;{SECRET};{ROLE}\n").lookup("bob")
    assert entry is not None and entry.options.role_arn == ROLE
    assert entry.extra == ROLE


def test_policy_keys_are_parsed() -> None:
    entry = parse(f"alice;AKIAALICE;{SECRET};root=/lab/home/alice,append_only=1,requester_pays=0,"
                  "storage_class=glacier_ir,object_acl=bucket-owner-full-control\n").lookup("alice")
    assert entry is not None
    assert entry.options.policy == {"root": Root("lab", "home/alice"), "append_only": True,
                                    "requester_pays": (), "storage_class": "GLACIER_IR",
                                    "object_acl": "bucket-owner-full-control"}
    assert entry.options.render() == entry.extra


def test_three_fields_have_no_options() -> None:
    entry = parse(f"alice;AKIAALICE;{SECRET}\n").lookup("alice")
    assert entry is not None and entry.extra is None
    assert entry.options.policy == {} and entry.options.role_arn is None and entry.options.source is None


@pytest.mark.parametrize(("field", "message"), [
    ("x", "expected key=value pairs"),
    ("role_arn=arn:aws:iam::1:role/x", "role_arn: expected an IAM role ARN"),
    ("rolearn=x", "unknown key 'rolearn'"),
    (f"role_arn={ROLE},role_arn={ROLE}", "role_arn is given twice"),
    ("external_id=abc", "external_id needs role_arn"),
    ("duration=2h", "duration needs role_arn"),
    (f"role_arn={ROLE},duration=13h", "duration: expected 900 to 43200 seconds"),
    (f"role_arn={ROLE},duration=60", "duration: expected 900 to 43200 seconds"),
    (f"role_arn={ROLE},duration=soon", "duration: expected seconds"),
    (f"role_arn={ROLE},session_name=x", "session_name: expected 2-64"),
    ("source=instance", "source: expected one of: default"),
    ("profile=lab", "profile needs source=default"),
    ("root=lab", "root: expected an absolute path"),
    ("append_only=", "append_only: empty value"),
    ("append_only=perhaps", "append_only: expected 1 or 0"),
    ("sse_kms_key_id=alias/x", "sse_kms_key_id needs sse=aws:kms"),
    (f"role_arn={ROLE},", "expected key=value pairs"),
])
def test_bad_fourth_fields_name_the_key_never_the_line(field: str, message: str) -> None:
    with pytest.raises(MapError, match=message) as caught:
        parse(f"alice;AKIAALICE;{SECRET};{field}\n")
    assert SECRET not in str(caught.value) and "AKIAALICE" not in str(caught.value)
    assert str(caught.value).startswith("s3:1: fourth field: ")


def test_keys_are_required_unless_a_source_says_otherwise() -> None:
    with pytest.raises(MapError, match=r"empty access key id .* only with source=default"):
        parse(f"alice;;;role_arn={ROLE}\n")
    with pytest.raises(MapError, match="leave the access key id and secret fields empty"):
        parse(f"alice;AKIAALICE;{SECRET};source=default\n")


def test_parse_options_directly() -> None:
    assert parse_options("").role_arn is None
    with pytest.raises(OptionError):
        parse_options("=1")
