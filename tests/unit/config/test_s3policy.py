"""The S3 policy: values, the site's policy from the S3 conf, and a user's narrowing of it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from s3dsi.config.errors import ConfigError
from s3dsi.config.loader import load_settings
from s3dsi.config.s3policy import (
    PolicyError,
    Root,
    S3Policy,
    narrow,
    parse_root,
    parse_value,
    site_policy,
)
from s3dsi.config.settings import Settings


def user(**text: str) -> dict[str, object]:
    return {key: parse_value(key, value) for key, value in text.items()}


@pytest.mark.parametrize(("text", "root"), [
    ("/lab", Root("lab", "")),
    ("/lab/", Root("lab", "")),
    ("/lab/home/alice", Root("lab", "home/alice")),
    ("/lab/home/alice/", Root("lab", "home/alice")),
])
def test_roots(text: str, root: Root) -> None:
    assert parse_root(text) == root


@pytest.mark.parametrize("text", ["lab", "/", "//", "/lab//x", "/lab/../x", "/lab/./x", "/l", "/a b"])
def test_bad_roots(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_root(text)


def test_root_containment_is_by_whole_segments() -> None:
    site = Root("lab", "home")
    assert site.contains(Root("lab", "home"))
    assert site.contains(Root("lab", "home/alice"))
    assert not site.contains(Root("lab", "homework"))
    assert not site.contains(Root("lab", ""))
    assert not site.contains(Root("other", "home"))
    assert Root("lab", "").contains(Root("lab", "anything"))


@pytest.mark.parametrize(("key", "text", "value"), [
    ("buckets", "a-1:b-2:a-1", ("a-1", "b-2")),
    ("append_only", "1", True),
    ("append_only", "no", False),
    ("overwrite", "if-unchanged", "if-unchanged"),
    ("requester_pays", "1", ("*",)),
    ("requester_pays", "0", ()),
    ("requester_pays", "pay-me:pay-too", ("pay-me", "pay-too")),
    ("storage_class", "intelligent_tiering", "INTELLIGENT_TIERING"),
    ("sse", "aes256", "AES256"),
    ("sse", "AWS:KMS", "aws:kms"),
    ("sse_kms_key_id", " arn:aws:kms:eu-west-1:123456789012:key/1a ",
     "arn:aws:kms:eu-west-1:123456789012:key/1a"),
    ("object_acl", "Bucket-Owner-Full-Control", "bucket-owner-full-control"),
])
def test_values(key: str, text: str, value: object) -> None:
    assert parse_value(key, text) == value


@pytest.mark.parametrize(("key", "text"), [
    ("buckets", ":"), ("append_only", "maybe"), ("overwrite", "sometimes"), ("sse", "des"),
    ("object_acl", "everyone"), ("storage_class", "a b"), ("sse_kms_key_id", "key with space"), ("nope", "1"),
])
def test_bad_values(key: str, text: str) -> None:
    with pytest.raises(PolicyError):
        parse_value(key, text)


SITE = S3Policy(root=Root("lab", "home"), append_only=True, overwrite="if-unchanged",
                requester_pays=("pay-me",), storage_class="STANDARD_IA", sse="AES256")


def test_a_user_may_narrow() -> None:
    result = narrow(SITE, user(root="/lab/home/alice", requester_pays="0", sse="aws:kms",
                               sse_kms_key_id="alias/lab"))
    assert result.root == Root("lab", "home/alice")
    assert result.append_only and result.overwrite == "if-unchanged"
    assert result.requester_pays == ()
    assert result.sse == "aws:kms" and result.sse_kms_key_id == "alias/lab"
    assert result.storage_class == "STANDARD_IA"


@pytest.mark.parametrize(("values", "message"), [
    ({"root": "/lab"}, "outside the site's root /lab/home"),
    ({"root": "/lab/homework"}, "outside the site's root"),
    ({"root": "/other"}, "outside"),
    ({"buckets": "lab"}, "site's root /lab/home already confines"),
    ({"append_only": "0"}, "cannot lift the site's append_only"),
    ({"overwrite": "always"}, "cannot lift the site's overwrite=if-unchanged"),
    ({"requester_pays": "1"}, "beyond what the site accepts"),
    ({"requester_pays": "other"}, "beyond what the site accepts"),
    ({"storage_class": "GLACIER"}, "differs from the site's storage_class=STANDARD_IA"),
])
def test_a_user_may_not_widen(values: dict[str, str], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        narrow(SITE, user(**values))


def test_bucket_allow_list_narrows_only_to_a_subset() -> None:
    site = S3Policy(buckets=("a-bucket", "b-bucket"))
    assert narrow(site, user(buckets="b-bucket")).buckets == ("b-bucket",)
    assert narrow(site, user(root="/a-bucket/x")).root == Root("a-bucket", "x")
    with pytest.raises(PolicyError, match="c-bucket not among"):
        narrow(site, user(buckets="a-bucket:c-bucket"))
    with pytest.raises(PolicyError, match="bucket the site does not allow"):
        narrow(site, user(root="/c-bucket"))


def test_kms_cannot_be_weakened_and_its_key_not_changed() -> None:
    site = S3Policy(sse="aws:kms", sse_kms_key_id="alias/site")
    with pytest.raises(PolicyError, match="cannot weaken"):
        narrow(site, user(sse="AES256"))
    with pytest.raises(PolicyError, match="differs from the site's"):
        narrow(site, user(sse_kms_key_id="alias/mine"))
    assert narrow(site, user(sse_kms_key_id="alias/site")).sse_kms_key_id == "alias/site"


def test_an_open_site_takes_the_users_values() -> None:
    result = narrow(S3Policy(), user(root="/x-bucket/p", append_only="1", storage_class="GLACIER",
                                     object_acl="bucket-owner-full-control"))
    assert result == S3Policy(root=Root("x-bucket", "p"), append_only=True, storage_class="GLACIER",
                              object_acl="bucket-owner-full-control")
    assert result.shapes_namespace
    assert not S3Policy(storage_class="GLACIER", sse="AES256").shapes_namespace


def test_inconsistent_values_are_refused() -> None:
    with pytest.raises(PolicyError, match="needs sse=aws:kms"):
        narrow(S3Policy(), user(sse_kms_key_id="alias/x"))
    with pytest.raises(PolicyError, match="root /b-bucket is not in buckets a-bucket"):
        narrow(S3Policy(), user(buckets="a-bucket", root="/b-bucket"))


def test_requester_pays_per_bucket() -> None:
    policy = S3Policy(requester_pays=("pay-me",))
    assert policy.pays_for("pay-me") and not policy.pays_for("free")
    assert S3Policy(requester_pays=("*",)).pays_for("anything")


def test_site_policy_expands_user_in_the_root() -> None:
    settings = replace(Settings(), root="/lab/home/$USER", append_only=True)
    assert site_policy(settings, "alice").root == Root("lab", "home/alice")
    assert site_policy(settings, "bob").append_only


def write_conf(tmp_path: Path, text: str) -> Path:
    (tmp_path / "gridftp.d").mkdir(exist_ok=True)
    conf = tmp_path / "s3.conf"
    conf.write_text(text)
    return conf


def load(tmp_path: Path, text: str) -> Settings:
    return load_settings(config_file="/dev/null", config_dir=str(tmp_path / "gridftp.d"),
                         s3_conf=str(write_conf(tmp_path, text)), environ={"HOME": str(tmp_path)})


def test_the_s3_conf_holds_the_site_policy(tmp_path: Path) -> None:
    settings = load(tmp_path, "root = /lab/home/${USER}\nbuckets = lab:shared\nappend_only = yes\n"
                              "overwrite = if-unchanged\nrequester_pays = shared\nsse = aws:kms\n"
                              "sse_kms_key_id = alias/lab\nobject_acl = bucket-owner-full-control\n"
                              "sts_endpoint = http://127.0.0.1:9\ncredential_refresh = 2m\n"
                              "conditional_writes = yes\nfull_object_checksums = no\n")
    policy = site_policy(settings, "carol")
    assert policy == S3Policy(root=Root("lab", "home/carol"), buckets=("lab", "shared"), append_only=True,
                              overwrite="if-unchanged", requester_pays=("shared",), sse="aws:kms",
                              sse_kms_key_id="alias/lab", object_acl="bucket-owner-full-control")
    assert settings.sts_endpoint == "http://127.0.0.1:9"
    assert settings.credential_refresh == 120
    assert not settings.full_object_checksums
    assert settings.sources["append_only"].endswith("s3.conf:3")


def test_defaults_leave_everything_as_before(tmp_path: Path) -> None:
    settings = load(tmp_path, "host_name = http://127.0.0.1:9\n")
    assert site_policy(settings, "alice") == S3Policy()
    assert settings.conditional_writes and settings.full_object_checksums


@pytest.mark.parametrize(("text", "message"), [
    ("root = /lab\nbuckets = other\n", "root: /lab is not in buckets other"),
    ("sse_kms_key_id = alias/x\n", "sse_kms_key_id: needs sse = aws:kms"),
    ("root = lab\n", "root: expected an absolute path"),
    ("credential_refresh = 0\n", "credential_refresh: expected at least 1 second"),
    ("requester_pays = x:y\n", "requester_pays: expected 1, 0 or bucket names"),
])
def test_a_broken_site_policy_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text)


def test_no_conditional_writes_is_said_when_it_matters(tmp_path: Path) -> None:
    settings = load(tmp_path, "append_only = 1\nconditional_writes = no\n")
    assert any("two writers racing can still both succeed" in w for w in settings.warnings)
